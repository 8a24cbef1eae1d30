"""The .deb and .rpm packages (avkit package): contents and metadata, installation
into throwaway roots with dpkg and rpm (scripts, upgrade, downgrade, removal, purge,
the product's own files untouched), dependencies, reproducibility, lint, signing and
the repository metadata."""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from avkit import elf, facts, paths
from avkit.ship import audit, components, lint, packages as pkg
from private_apt import private_apt

# V2 has the form of a snapshot after V1 (README: Versions): upgrades and lint see one.
#: the VERSION file's (the last release), whatever it holds
V1 = (paths.ROOT / "VERSION").read_text().strip()
V2 = f"{V1}+git20261129011413.0a65e5f"
RELEASE = "1"
#: where sites fetch the repository: a placeholder until a release fills it in
BASE_URL = json.loads((paths.ROOT / "packaging" / "repositories.json").read_text())["base_url"]
#: product -> (plugin folder, the file that marks the product installed), from products.json
PRODUCTS = {name: (p["plugin_dir"], p["product_marker"]) for name, p in facts.products().items()}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("rpm"),
    reason="installs into chroots: needs root, dpkg and rpm",
)


def run(cmd, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r


def avkit_package(out: Path, version: str, *extra, env=None):
    return run(
        [sys.executable, "-m", "avkit", "package", "--out", out, "--version", version, *extra],
        cwd=paths.ROOT,
        env=env,
    )


@pytest.fixture(scope="module")
def plugins(dist, artifact):
    artifact("avir_sample.so")
    return [pkg.plugin_name(p) for p in audit.plugins_in(dist)]


@pytest.fixture(scope="module")
def v1(tmp_path_factory, plugins):
    out = tmp_path_factory.mktemp("packages-v1")
    r = avkit_package(out, V1)
    stdout_of(out).write_text(r.stdout + r.stderr)
    return out


def stdout_of(out: Path) -> Path:
    """Where a fixture keeps what `avkit package` printed: beside its output folder, whose
    every file SHA256SUMS must list."""
    return out.with_name(out.name + ".stdout")


@pytest.fixture(scope="module")
def v2(tmp_path_factory, plugins):
    out = tmp_path_factory.mktemp("packages-v2")
    avkit_package(out, V2, "--no-repo")
    return out


def deb(folder, name, version=V1):
    return folder / f"{name}_{version}-{RELEASE}_i386.deb"


def rpm_file(folder, name, version=V1):
    return folder / f"{name}-{version}-{RELEASE}.i686.rpm"


def main_names(plugins):
    return [f"kerio-{product}-avir-{p}" for p in plugins for product in PRODUCTS]


def debugsource_names(folder, version=V1):
    """The one package of debug sources (arch all/noarch), shared by every plugin."""
    return [
        f"kerio-avir-debugsource_{version}-{RELEASE}_all.deb",
        f"kerio-avir-debugsource-{version}-{RELEASE}.noarch.rpm",
    ]


def deb_field(path, field):
    return run(["dpkg-deb", "-f", path, field]).stdout.strip()


def rpm_query(path, fmt):
    return run(["rpm", "-qp", "--qf", fmt, path]).stdout


# --- what is built ---------------------------------------------------------------------


def test_one_package_per_plugin_and_product_plus_debug(v1, plugins, dist):
    expected = set()
    for p in plugins:
        for name in (f"kerio-connect-avir-{p}", f"kerio-control-avir-{p}"):
            expected |= {deb(v1, name).name, rpm_file(v1, name).name}
        expected |= {
            deb(v1, f"kerio-avir-{p}-dbgsym").name,
            rpm_file(v1, f"kerio-avir-{p}-debuginfo").name,
        }
    expected |= set(debugsource_names(v1))
    expected |= {deb(v1, "kerio-avir-tools").name, rpm_file(v1, "kerio-avir-tools").name}
    built = {f.name for f in v1.iterdir() if f.suffix in (".deb", ".rpm")}
    assert built == expected
    assert not [f for f in built if "avhost" in f]


def test_deb_metadata(v1, plugins, dist):
    project = pkg.load("project.json")
    for p in plugins:
        deps = audit.audit_file(dist / f"avir_{p}.so")["dependencies"]
        for product, (plugin_dir, _) in PRODUCTS.items():
            f = deb(v1, f"kerio-{product}-avir-{p}")
            assert deb_field(f, "Architecture") == "i386"
            assert deb_field(f, "Version") == f"{V1}-{RELEASE}"
            assert deb_field(f, "Maintainer") == project["maintainer"]
            assert deb_field(f, "Homepage") == project["homepage"]
            assert deb_field(f, "Depends") == ", ".join(deps["deb"])
            assert re.fullmatch(r"libc6 \(>= 2\.\d+\)", deb_field(f, "Depends"))
            # clamd of any architecture serves: only suggested (plugins.json says why)
            assert deb_field(f, "Recommends") == ""
            assert deb_field(f, "Suggests") == ("clamav-daemon" if p == "clam" else "")
            listing = run(["dpkg-deb", "-c", f]).stdout
            assert f".{plugin_dir}/avir_{p}.so" in listing
            for doc in ("copyright", "changelog.Debian.gz", "README"):
                assert f"./usr/share/doc/kerio-{product}-avir-{p}/{doc}" in listing
            other = [d for k, (d, _) in PRODUCTS.items() if k != product][0]
            assert other.split("/")[3] not in listing  # never creates the other product's tree
            changelog = run(
                [
                    "sh",
                    "-c",
                    f"dpkg-deb --fsys-tarfile '{f}' | tar -xO "
                    f"./usr/share/doc/kerio-{product}-avir-{p}/changelog.Debian.gz"
                    f" | zcat",
                ]
            ).stdout
            assert changelog.startswith(f"kerio-{product}-avir-{p} ({V1}-{RELEASE}) unstable;")


def test_rpm_metadata_requires_the_32bit_glibc(v1, plugins, dist):
    for p in plugins:
        deps = audit.audit_file(dist / f"avir_{p}.so")["dependencies"]
        for product in PRODUCTS:
            f = rpm_file(v1, f"kerio-{product}-avir-{p}")
            # License: the SPDX expression of everything linked in, the project's first.
            license_ = components.expression(components.linked(dist / f"avir_{p}.so"))
            assert license_.startswith("BSD-3-Clause")
            assert (
                rpm_query(f, "%{ARCH} %{VERSION}-%{RELEASE} %{LICENSE}")
                == f"i686 {V1}-{RELEASE} {license_}"
            )
            requires = run(["rpm", "-qp", "--requires", f]).stdout.split("\n")
            glibc = deps["glibc"]
            assert f"libc.so.6(GLIBC_{glibc})" in requires
            # Only 32-bit names: a 64-bit glibc provides "...(64bit)" and must not satisfy them.
            assert not [r for r in requires if "64bit" in r or r.startswith("glibc")]
            recommends = run(["rpm", "-qp", "--recommends", f]).stdout.split()
            assert recommends == (["clamd"] if p == "clam" else [])
            changelog = run(["rpm", "-qp", "--changelog", f]).stdout
            assert f"- {V1}-{RELEASE}" in changelog.splitlines()[0]


def test_a_new_plugin_in_dist_is_packaged_and_clam_relates_to_clamd(tmp_path, dist, artifact):
    """Packaging is generic over dist's avir_*.so: a plugin named clam gets its own
    packages with clamd suggested (.deb) or recommended (.rpm); dist's avhost goes into
    kerio-avir-tools, not into a plugin's package."""
    fake = tmp_path / "dist"
    sample = artifact("avir_sample.so")
    bid = elf.build_id(sample)
    debug = Path(facts.debug_file(bid))
    (fake / "debug" / debug.parent).mkdir(parents=True)
    shutil.copy2(sample, fake / "avir_clam.so")
    shutil.copy2(sample.parent / "debug" / debug, fake / "debug" / debug)
    avhost = artifact("avhost")
    avhost_debug = Path(facts.debug_file(elf.build_id(avhost)))
    (fake / "debug" / avhost_debug.parent).mkdir(parents=True, exist_ok=True)
    shutil.copy2(avhost, fake / "avhost")
    shutil.copy2(avhost.parent / "debug" / avhost_debug, fake / "debug" / avhost_debug)
    out = tmp_path / "out"
    pkg.package(fake, out, version=V1, repo=False)
    names = sorted(f.name for f in out.iterdir() if f.suffix in (".deb", ".rpm"))
    assert names == sorted(
        [
            deb(out, "kerio-avir-clam-dbgsym").name,
            deb(out, "kerio-connect-avir-clam").name,
            deb(out, "kerio-control-avir-clam").name,
            rpm_file(out, "kerio-avir-clam-debuginfo").name,
            rpm_file(out, "kerio-connect-avir-clam").name,
            rpm_file(out, "kerio-control-avir-clam").name,
            deb(out, "kerio-avir-tools").name,
            rpm_file(out, "kerio-avir-tools").name,
            *debugsource_names(out),
        ]
    )
    assert deb_field(deb(out, "kerio-connect-avir-clam"), "Suggests") == "clamav-daemon"
    assert run(
        ["rpm", "-qp", "--recommends", rpm_file(out, "kerio-control-avir-clam")]
    ).stdout.split() == ["clamd"]
    assert "ClamAV" in deb_field(deb(out, "kerio-control-avir-clam"), "Description")


def test_a_plugin_failing_the_audit_is_not_packaged(tmp_path, artifact):
    fake = tmp_path / "dist"
    fake.mkdir()
    shutil.copy2(artifact("avir_sample.so"), fake / "avir_bad.so")
    subprocess.run(
        ["objcopy", "--add-symbol", "leak=.text:0,global,function", str(fake / "avir_bad.so")],
        check=True,
    )
    r = subprocess.run(
        ["readelf", "-s", "-W", str(fake / "avir_bad.so")], capture_output=True, text=True
    )
    if " leak" not in r.stdout:
        pytest.skip("objcopy could not add a symbol")
    with pytest.raises(Exception, match="fails the audit"):
        pkg.package(fake, tmp_path / "out", version=V1, repo=False)
    assert not list((tmp_path / "out").glob("*.deb"))


# --- throwaway roots ---------------------------------------------------------------------

#: What the maintainer scripts run, besides sh's builtins (a real system has them all:
#: dpkg and coreutils are essential). rpm itself is left out: its scripts ask it only
#: when it is there.
SCRIPT_TOOLS = ["sh", "mkdir", "mv", "rmdir", "od", "dpkg-query", "dpkg-divert"]


def copy_program(root: Path, name: str) -> None:
    """The program at the path it has on this machine, with its libraries (ldd)."""
    exe = Path(shutil.which(name))
    target = root / exe.as_posix().lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(exe), target)
    for lib in re.findall(r"(/\S+) \(0x", run(["ldd", os.path.realpath(exe)]).stdout):
        lib_target = root / lib.lstrip("/")
        lib_target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), lib_target)


def make_root(root: Path, products=True) -> dict:
    """A root with a shell for the maintainer scripts, the base directories a real
    system has, and (optionally) a fake install of both products. Returns the files
    of the products with their contents."""
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr, as on Debian 12 and RHEL 7+
    # (usr/share/licenses: the %license folder, which rpm systems' filesystem package owns)
    for d in [
        "tmp",
        "var/tmp",
        "opt/vendor",
        "usr/share/doc/base-files",
        "usr/lib/debug",
        "usr/share/lintian/overrides",
        "usr/share/licenses",
    ]:
        (root / d).mkdir(parents=True, exist_ok=True)
    # Directories a real system has because other packages own files in them.
    (root / "opt/vendor/other-software").write_text("another vendor's file\n")
    (root / "usr/share/doc/base-files/copyright").write_text("base\n")
    (root / "usr/share/lintian/overrides/base-files").write_text("base\n")
    (root / "usr/lib/debug/.keep").write_text("")
    for tool in SCRIPT_TOOLS:
        copy_program(root, tool)
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    product_files = {}
    if products:
        for plugin_dir, marker in PRODUCTS.values():
            for f in (marker, f"{plugin_dir}/avir_other.so", f"{Path(marker).parent}/avserver.cfg"):
                path = root / f.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"product file {f}\n")
                product_files[f] = path.read_text()
    return product_files


def tree(root: Path, skip=("var/lib/dpkg", "var/lib/rpm", "var/log", "var/cache")) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        out[rel] = (stat.S_IMODE(p.lstat().st_mode), p.is_dir())
    return out


def dpkg_root(root: Path, libc_version="2.36-9"):
    admin = root / "var/lib/dpkg"
    for d in ("updates", "info", "triggers"):
        (admin / d).mkdir(parents=True, exist_ok=True)
    # The i386 C library, as the dependency the packages derive from the audit.
    (admin / "status").write_text(
        f"Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
        f"Installed-Size: 1\nMaintainer: test\nArchitecture: i386\nMulti-Arch: same\n"
        f"Version: {libc_version}\nDescription: stand-in for the i386 C library\n\n"
    )
    (admin / "info" / "libc6:i386.list").write_text("")
    (admin / "info" / "libc6:i386.md5sums").write_text("")  # so dpkg --audit is quiet
    run(["dpkg", f"--root={root}", "--add-architecture", "i386"])


def dpkg(root, *args, check=True):
    return run(["dpkg", f"--root={root}", *args], check=check)


def installed_version(root, name):
    r = run(
        ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", "${Status} ${Version}", name],
        check=False,
    )
    return r.stdout.strip() if r.returncode == 0 else ""


def check_installed(root, plugin, product, debug=True):
    plugin_dir = PRODUCTS[product][0]
    so = root / plugin_dir.lstrip("/") / f"avir_{plugin}.so"
    assert so.is_file()
    st = so.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0 and st.st_gid == 0
    assert stat.S_IMODE(so.parent.stat().st_mode) == 0o755
    # dpkg: /usr/share/doc/<package>/copyright; rpm: the %license under /usr/share/licenses
    package = f"kerio-{product}-avir-{plugin}"
    found = [
        f
        for f in (
            root / f"usr/share/doc/{package}/copyright",
            root / f"usr/share/licenses/{package}/copyright",
        )
        if f.is_file()
    ]
    assert len(found) == 1
    assert stat.S_IMODE(found[0].stat().st_mode) == 0o644
    assert "BSD-3-Clause" in found[0].read_text()
    if debug:
        bid = elf.build_id(so)
        dbg = root / str(facts.debug_file(bid, "usr/lib/debug"))
        assert dbg.is_file() and stat.S_IMODE(dbg.stat().st_mode) == 0o644
        assert elf.build_id(dbg) == bid  # the debug file belongs to the installed plugin
    return so


# --- dpkg --------------------------------------------------------------------------------


def test_deb_lifecycle_with_products(tmp_path, v1, v2, plugins):
    root = tmp_path / "root"
    product_files = make_root(root)
    dpkg_root(root)
    before = tree(root)
    debs1 = [deb(v1, n) for n in main_names(plugins)] + [
        deb(v1, f"kerio-avir-{p}-dbgsym") for p in plugins
    ]
    r = dpkg(root, "-i", *debs1)
    for p in plugins:
        for product in PRODUCTS:
            name = f"kerio-{product}-avir-{p}"
            assert installed_version(root, name) == f"install ok installed {V1}-{RELEASE}"
            # postinst ran and told how to select the plugin, knowing the product is there
            assert f"{name}: to use it, open the Kerio" in r.stdout
            assert f"Select antivirus... 'avir_{p}'" in r.stdout
            check_installed(root, p, product)
    debs2 = [deb(v2, n, V2) for n in main_names(plugins)] + [
        deb(v2, f"kerio-avir-{p}-dbgsym", V2) for p in plugins
    ]
    r = dpkg(root, "-i", *debs2)  # upgrade
    for name in main_names(plugins):
        assert installed_version(root, name) == f"install ok installed {V2}-{RELEASE}"
        assert f"{name}: updated " in r.stdout
    r = dpkg(root, "-i", *debs1)  # downgrade
    for name in main_names(plugins):
        assert installed_version(root, name) == f"install ok installed {V1}-{RELEASE}"
    for p in plugins:
        for product in PRODUCTS:
            check_installed(root, p, product)
    names = main_names(plugins) + [f"kerio-avir-{p}-dbgsym" for p in plugins]
    r = dpkg(root, "-r", *names)
    assert "select another antivirus" in r.stdout  # prerm ran
    for p in plugins:
        for plugin_dir, _ in PRODUCTS.values():
            assert not (root / plugin_dir.lstrip("/") / f"avir_{p}.so").exists()
    dpkg(root, "-P", *names)
    for name in names:
        assert installed_version(root, name) == ""
    # Nothing of ours is left, nothing of the products' was touched.
    assert tree(root) == before
    for f, content in product_files.items():
        assert (root / f.lstrip("/")).read_text() == content


def test_deb_install_without_the_product(tmp_path, v1, plugins):
    root = tmp_path / "root"
    make_root(root, products=False)
    dpkg_root(root)
    before = tree(root)
    names = main_names(plugins)
    r = dpkg(root, "-i", *[deb(v1, n) for n in names])
    for name in names:
        assert installed_version(root, name) == f"install ok installed {V1}-{RELEASE}"
        assert re.search(rf"{name}: Kerio \w+ is not installed here", r.stdout)
    dpkg(root, "-P", *names)
    assert tree(root) == before  # the product tree the package created is gone again


def test_deb_depends_on_the_audited_glibc(tmp_path, v1, plugins, dist):
    root = tmp_path / "root"
    make_root(root, products=False)
    dpkg_root(root, libc_version="2.3.6-1")
    name = f"kerio-connect-avir-{plugins[0]}"
    r = dpkg(root, "-i", deb(v1, name), check=False)
    assert r.returncode != 0
    glibc = audit.audit_file(dist / f"avir_{plugins[0]}.so")["dependencies"]["glibc"]
    assert f"depends on libc6 (>= {glibc})" in r.stderr


ADMIN_PLUGIN = b"an avir plugin the administrator copied by hand\n"


def admins_plugin(root: Path, plugin: str) -> tuple:
    """The control package's plugin path in root, with the administrator's own file there;
    and where the package keeps that file."""
    name = f"kerio-control-avir-{plugin}"
    target = root / PRODUCTS["control"][0].lstrip("/") / f"avir_{plugin}.so"
    target.write_bytes(ADMIN_PLUGIN)
    backup = root / pkg.ADMIN_BACKUP_DIR.lstrip("/") / name / f"avir_{plugin}.so"
    return name, target, backup


def plugin_folder(target: Path) -> list:
    return sorted(f.name for f in target.parent.iterdir())


def test_deb_keeps_an_admins_own_plugin_and_puts_it_back(tmp_path, v1, v2, plugins, dist):
    root = tmp_path / "root"
    make_root(root)
    dpkg_root(root)
    p = plugins[0]
    name, target, backup = admins_plugin(root, p)
    before = tree(root)
    r = dpkg(root, "-i", deb(v1, name))
    assert (
        f"{name}: /{target.relative_to(root)} was not installed by a package: kept as "
        f"/{backup.relative_to(root)}, put back when {name} is removed." in r.stdout
    )
    assert target.read_bytes() == (dist / f"avir_{p}.so").read_bytes()  # ours is installed
    assert backup.read_bytes() == ADMIN_PLUGIN
    # Nothing else in the plugin folder: the product loads every avir_*.so there.
    assert plugin_folder(target) == sorted(["avir_other.so", f"avir_{p}.so"])
    diversion = run(["dpkg-divert", f"--admindir={root}/var/lib/dpkg", "--list"]).stdout
    assert f"/{target.relative_to(root)} to /{backup.relative_to(root)} by {name}" in diversion
    r = dpkg(root, "-i", deb(v2, name, V2))  # an upgrade keeps no copy of our own file
    assert "kept as" not in r.stdout and backup.read_bytes() == ADMIN_PLUGIN
    r = dpkg(root, "-r", name)
    assert f"{name}: put back /{target.relative_to(root)}" in r.stdout
    assert target.read_bytes() == ADMIN_PLUGIN
    assert run(["dpkg-divert", f"--admindir={root}/var/lib/dpkg", "--list"]).stdout == ""
    dpkg(root, "-P", name)
    assert tree(root) == before


def other_package(
    tmp_path: Path, path: str, packager: str, content=b"the vendor's packaged plugin\n"
) -> Path:
    """A vendor's package that owns the plugin's path (as the Kerio SDK's ClamAV plugin
    could): the conflict dpkg and rpm must refuse."""
    cfg = tmp_path / f"vendor-{packager}.yaml"
    src = tmp_path / "vendor.so"
    src.write_bytes(content)
    cfg.write_text(
        json.dumps(
            {
                "name": "vendor-avir",
                "arch": "386",
                "version": "7.0",
                "maintainer": "t <t@example.org>",
                "description": "another package owning the same path",
                "contents": [{"src": str(src), "dst": path, "file_info": {"mode": 0o644}}],
                "deb": {"arch": "i386"},
                "rpm": {"arch": "i686"},
            }
        )
    )
    out = tmp_path / f"vendor.{packager}"
    run([pkg.find_nfpm(), "package", "-f", cfg, "-p", packager, "-t", out])
    return out


def test_deb_never_moves_another_packages_file(tmp_path, v1, plugins):
    root = tmp_path / "root"
    make_root(root)
    dpkg_root(root)
    p = plugins[0]
    name, target, backup = admins_plugin(root, p)
    target.unlink()
    dpkg(root, "-i", other_package(tmp_path, f"/{target.relative_to(root)}", "deb"))
    owned = target.read_bytes()
    r = dpkg(root, "-i", deb(v1, name), check=False)
    assert r.returncode != 0 and "trying to overwrite" in r.stderr
    assert target.read_bytes() == owned and not backup.exists()
    assert not backup.parent.parent.exists()
    assert run(["dpkg-divert", f"--admindir={root}/var/lib/dpkg", "--list"]).stdout == ""
    assert not installed_version(root, name).startswith("install ok installed")


# --- rpm ---------------------------------------------------------------------------------


def rpm_root(root, *args, check=True):
    return run(["rpm", f"--root={root}", "--dbpath=/var/lib/rpm", *args], check=check)


def rpm_installed(root, name):
    r = rpm_root(root, "-q", "--qf", "%{VERSION}-%{RELEASE}", name, check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def test_rpm_lifecycle_with_products(tmp_path, v1, v2, plugins):
    root = tmp_path / "root"
    product_files = make_root(root)
    rpm_root(root, "--initdb")
    before = tree(root)
    rpms1 = [rpm_file(v1, n) for n in main_names(plugins)] + [
        rpm_file(v1, f"kerio-avir-{p}-debuginfo") for p in plugins
    ]
    rpms2 = [rpm_file(v2, n, V2) for n in main_names(plugins)] + [
        rpm_file(v2, f"kerio-avir-{p}-debuginfo", V2) for p in plugins
    ]
    r = rpm_root(root, "-i", "--nodeps", "--ignorearch", *rpms1)
    for p in plugins:
        for product in PRODUCTS:
            name = f"kerio-{product}-avir-{p}"
            assert rpm_installed(root, name) == f"{V1}-{RELEASE}"
            assert f"{name}: to use it, open the Kerio" in r.stdout
            check_installed(root, p, product)
    r = rpm_root(root, "-U", "--nodeps", "--ignorearch", *rpms2)
    for name in main_names(plugins):
        assert rpm_installed(root, name) == f"{V2}-{RELEASE}"
        assert f"{name}: updated " in r.stdout
        assert "select another antivirus" not in r.stdout  # an upgrade is no removal
    rpm_root(root, "-U", "--oldpackage", "--nodeps", "--ignorearch", *rpms1)
    for p in plugins:
        for product in PRODUCTS:
            assert rpm_installed(root, f"kerio-{product}-avir-{p}") == f"{V1}-{RELEASE}"
            check_installed(root, p, product)
    names = main_names(plugins) + [f"kerio-avir-{p}-debuginfo" for p in plugins]
    r = rpm_root(root, "-e", *names)
    assert "select another antivirus" in r.stdout
    for name in names:
        assert rpm_installed(root, name) == ""
    assert tree(root) == before
    for f, content in product_files.items():
        assert (root / f.lstrip("/")).read_text() == content


def test_rpm_install_without_the_product(tmp_path, v1, plugins):
    root = tmp_path / "root"
    make_root(root, products=False)
    rpm_root(root, "--initdb")
    before = tree(root)
    names = main_names(plugins)
    r = rpm_root(root, "-i", "--nodeps", "--ignorearch", *[rpm_file(v1, n) for n in names])
    for name in names:
        assert re.search(rf"{name}: Kerio \w+ is not installed here", r.stdout)
    rpm_root(root, "-e", *names)
    assert tree(root) == before


def test_rpm_keeps_an_admins_own_plugin_and_puts_it_back(tmp_path, v1, v2, plugins, dist):
    root = tmp_path / "root"
    make_root(root)
    rpm_root(root, "--initdb")
    p = plugins[0]
    name, target, backup = admins_plugin(root, p)
    before = tree(root)
    r = rpm_root(root, "-i", "--nodeps", "--ignorearch", rpm_file(v1, name))
    assert (
        f"{name}: /{target.relative_to(root)} was not installed by a package: kept as "
        f"/{backup.relative_to(root)}, put back when {name} is removed." in r.stdout
    )
    assert target.read_bytes() == (dist / f"avir_{p}.so").read_bytes()
    assert backup.read_bytes() == ADMIN_PLUGIN
    assert plugin_folder(target) == sorted(["avir_other.so", f"avir_{p}.so"])
    r = rpm_root(root, "-U", "--nodeps", "--ignorearch", rpm_file(v2, name, V2))
    assert "kept as" not in r.stdout and "put back" not in r.stdout
    assert backup.read_bytes() == ADMIN_PLUGIN
    r = rpm_root(root, "-e", name)
    assert f"{name}: put back /{target.relative_to(root)}" in r.stdout
    assert target.read_bytes() == ADMIN_PLUGIN
    assert tree(root) == before


def test_rpm_never_moves_another_packages_file(tmp_path, v1, plugins):
    root = tmp_path / "root"
    make_root(root)
    rpm_root(root, "--initdb")
    p = plugins[0]
    name, target, backup = admins_plugin(root, p)
    target.unlink()
    rpm_root(
        root,
        "-i",
        "--nodeps",
        "--ignorearch",
        other_package(tmp_path, f"/{target.relative_to(root)}", "rpm"),
    )
    owned = target.read_bytes()
    r = rpm_root(root, "-i", "--nodeps", "--ignorearch", rpm_file(v1, name), check=False)
    assert r.returncode != 0 and "conflicts with file from package vendor-avir" in r.stderr
    assert target.read_bytes() == owned and not backup.exists()
    assert not backup.parent.parent.exists()
    assert rpm_installed(root, name) == ""


def rpm_in_root(root: Path) -> None:
    """rpm itself inside root, reading root's database, for the scripts that ask it."""
    copy_program(root, "rpm")
    for f in ("rpmrc", "macros"):
        target = root / "usr/lib/rpm" / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path("/usr/lib/rpm") / f, target)
    (root / "etc/rpm").mkdir(parents=True)
    (root / "etc/rpm/macros").write_text("%_dbpath /var/lib/rpm\n")


def test_rpm_leaves_alone_a_file_another_package_shares(tmp_path, v1, plugins, dist):
    """rpm lets two packages own one path when their files are identical; %pre asks rpm
    who owns the file and does not take it for the administrator's."""
    root = tmp_path / "root"
    make_root(root)
    rpm_in_root(root)
    rpm_root(root, "--initdb")
    p = plugins[0]
    name, target, backup = admins_plugin(root, p)
    target.unlink()
    shared = other_package(
        tmp_path,
        f"/{target.relative_to(root)}",
        "rpm",
        content=(dist / f"avir_{p}.so").read_bytes(),
    )
    rpm_root(root, "-i", "--nodeps", "--ignorearch", shared)
    r = rpm_root(root, "-i", "--nodeps", "--ignorearch", rpm_file(v1, name))
    assert "kept as" not in r.stdout and not backup.parent.parent.exists()
    rpm_root(root, "-e", name)
    assert target.read_bytes() == (dist / f"avir_{p}.so").read_bytes()
    assert rpm_root(root, "-qf", f"/{target.relative_to(root)}").stdout.startswith("vendor-avir-")


def fake_glibc_rpm(tmp_path, bits: int, requirements) -> Path:
    """A stand-in glibc package providing the plugin's requirements the way rpm's
    elfdeps names them for 32-bit files ("libc.so.6(GLIBC_2.7)") or for 64-bit ones
    ("libc.so.6(GLIBC_2.7)(64bit)", "libc.so.6()(64bit)")."""
    if bits == 64:
        provides = [f"{r}()(64bit)" if "(" not in r else f"{r}(64bit)" for r in requirements]
    else:
        provides = list(requirements)
    name = f"glibc{bits}"
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(
        json.dumps(
            {
                "name": name,
                "arch": "386" if bits == 32 else "amd64",
                "version": "2.36",
                "maintainer": "test <t@example.org>",
                "description": "stand-in glibc",
                "provides": provides,
                "rpm": {"arch": "i686" if bits == 32 else "x86_64"},
            }
        )
    )
    out = tmp_path / f"{name}.rpm"
    run([pkg.find_nfpm(), "package", "-f", cfg, "-p", "rpm", "-t", out])
    return out


def test_rpm_requirements_need_the_32bit_glibc(tmp_path, v1, plugins, dist):
    for p in plugins:
        requirements = audit.audit_file(dist / f"avir_{p}.so")["dependencies"]["rpm"]
        g64 = fake_glibc_rpm(tmp_path, 64, requirements)
        g32 = fake_glibc_rpm(tmp_path, 32, requirements)
        plugin = rpm_file(v1, f"kerio-connect-avir-{p}")
        root = tmp_path / f"root-{p}"
        make_root(root, products=False)
        rpm_root(root, "--initdb")
        rpm_root(root, "-i", "--ignorearch", "--justdb", g64)
        r = rpm_root(root, "-i", "--test", "--ignorearch", plugin, check=False)
        assert r.returncode != 0 and "libc.so.6(GLIBC_" in r.stderr  # a 64-bit glibc is not enough
        rpm_root(root, "-i", "--ignorearch", "--justdb", g32)
        rpm_root(root, "-i", "--test", "--ignorearch", plugin)


# --- the maintainer scripts as state machines: dpkg and rpm, every path ------------------


class Packager:
    """dpkg or rpm on a throwaway root, run as an administrator runs them; every call
    must exit 0 unless check=False."""

    def __init__(self, kind: str, root: Path):
        self.kind, self.root = kind, root
        if kind == "deb":
            dpkg_root(root)
        else:
            rpm_in_root(root)  # %pre asks rpm who owns a file, as on a real system
            rpm_root(root, "--initdb")

    def file(self, folder: Path, name: str, version=V1) -> Path:
        return deb(folder, name, version) if self.kind == "deb" else rpm_file(folder, name, version)

    def _rpm(self, *args, check=True):
        return rpm_root(self.root, *args, "--nodeps", "--ignorearch", check=check)

    def install(self, f, check=True):
        return (
            dpkg(self.root, "-i", f, check=check)
            if self.kind == "deb"
            else self._rpm("-i", f, check=check)
        )

    def upgrade(self, f):
        return dpkg(self.root, "-i", f) if self.kind == "deb" else self._rpm("-U", f)

    def downgrade(self, f):
        return (
            dpkg(self.root, "-i", f) if self.kind == "deb" else self._rpm("-U", "--oldpackage", f)
        )

    def reinstall(self, f):
        return dpkg(self.root, "-i", f) if self.kind == "deb" else self._rpm("--reinstall", f)

    def remove(self, name, check=True):
        return (
            dpkg(self.root, "-r", name, check=check)
            if self.kind == "deb"
            else rpm_root(self.root, "-e", name, check=check)
        )

    def purge(self, name, check=True):
        return (
            dpkg(self.root, "-P", name, check=check)
            if self.kind == "deb"
            else rpm_root(self.root, "-e", name, check=check)
        )

    def installed(self, name) -> bool:
        if self.kind == "deb":
            return installed_version(self.root, name).startswith("install ok installed")
        return rpm_installed(self.root, name) != ""

    def diversions(self) -> str:
        if self.kind == "rpm":
            return ""
        return run(["dpkg-divert", f"--admindir={self.root}/var/lib/dpkg", "--list"]).stdout

    def assert_settled(self, name, installed: bool):
        """Installed or gone, nothing in between (dpkg --audit lists half-installed,
        half-configured and unpacked packages)."""
        assert self.installed(name) == installed
        if self.kind == "deb":
            assert dpkg(self.root, "--audit").stdout.strip() == ""
            status = installed_version(self.root, name).split()
            settled = ["installed"] if installed else ["not-installed", "config-files"]
            assert status == [] or (status[1] == "ok" and status[2] in settled), status


PACKAGERS = ["deb", "rpm"]
MATRIX_PLUGIN = "sample"


@pytest.fixture
def lone(tmp_path):
    """A root without the product where the administrator's own avir_sample.so is the
    only file in Kerio Control's plugin folder (dpkg and rpm remove the emptied folder
    before postrm runs)."""
    root = tmp_path / "root"
    make_root(root, products=False)
    name, target, backup = admins_plugin_alone(root, MATRIX_PLUGIN)
    return root, name, target, backup


def admins_plugin_alone(root: Path, plugin: str) -> tuple:
    target = root / PRODUCTS["control"][0].lstrip("/") / f"avir_{plugin}.so"
    target.parent.mkdir(parents=True, exist_ok=True)
    return admins_plugin(root, plugin)


def assert_put_back(pm: Packager, root, name, target, backup, before, output: str):
    assert target.read_bytes() == ADMIN_PLUGIN  # byte-identical
    assert f"{name}: put back /{target.relative_to(root)}" in output
    assert pm.diversions() == ""
    assert not (root / pkg.ADMIN_BACKUP_DIR.lstrip("/")).exists()
    pm.assert_settled(name, installed=False)
    assert tree(root) == before


def step_log(*results) -> str:
    return "".join(r.stdout + r.stderr for r in results)


@pytest.mark.parametrize("kind", PACKAGERS)
def test_lone_admin_file_remove_then_purge(kind, lone, v1, dist):
    root, name, target, backup = lone
    pm = Packager(kind, root)
    before = tree(root)
    r = pm.install(pm.file(v1, name))
    assert "kept as" in r.stdout and backup.read_bytes() == ADMIN_PLUGIN
    assert target.read_bytes() == (dist / target.name).read_bytes()
    pm.assert_settled(name, installed=True)
    r1 = pm.remove(name)
    r2 = pm.purge(name, check=kind == "deb")  # rpm: a second rpm -e finds nothing to do
    assert kind == "deb" or "is not installed" in r2.stderr
    assert_put_back(pm, root, name, target, backup, before, step_log(r1))
    assert "put back" not in step_log(r2)


@pytest.mark.parametrize("kind", PACKAGERS)
def test_lone_admin_file_purge_at_once(kind, lone, v1):
    root, name, target, backup = lone
    pm = Packager(kind, root)
    before = tree(root)
    pm.install(pm.file(v1, name))
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.purge(name)))


@pytest.mark.parametrize("kind", PACKAGERS)
def test_lone_admin_file_through_upgrade_downgrade_reinstall(kind, lone, v1, v2):
    root, name, target, backup = lone
    pm = Packager(kind, root)
    before = tree(root)
    steps = [
        pm.install(pm.file(v1, name)),
        pm.upgrade(pm.file(v2, name, V2)),
        pm.downgrade(pm.file(v1, name)),
        pm.reinstall(pm.file(v1, name)),
    ]
    log = step_log(*steps)
    assert log.count("kept as") == 1 and "put back /" not in log  # kept once, until removal
    assert backup.read_bytes() == ADMIN_PLUGIN
    pm.assert_settled(name, installed=True)
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


@pytest.mark.parametrize("kind", PACKAGERS)
def test_plugin_folder_deleted_while_installed(kind, lone, v1):
    """The administrator deleted the whole plugin folder (with our file): removing the
    package still succeeds and puts their file back where it was."""
    root, name, target, backup = lone
    pm = Packager(kind, root)
    before = tree(root)
    pm.install(pm.file(v1, name))
    shutil.rmtree(target.parent)
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


def test_deb_diversion_removed_by_hand(lone, v1):
    """Someone removed the diversion record (dpkg-divert --remove without --rename):
    the kept file still goes back."""
    root, name, target, backup = lone
    pm = Packager("deb", root)
    before = tree(root)
    pm.install(pm.file(v1, name))
    run(
        [
            "dpkg-divert",
            f"--admindir={root}/var/lib/dpkg",
            "--package",
            name,
            "--remove",
            f"/{target.relative_to(root)}",
        ]
    )
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


@pytest.mark.parametrize("kind", PACKAGERS)
def test_kept_file_deleted_while_installed(kind, lone, v1):
    """The kept file is gone: removal still succeeds, leaves no diversion, no backup
    folder and no half-removed package (there is nothing to put back)."""
    root, name, target, backup = lone
    pm = Packager(kind, root)
    pm.install(pm.file(v1, name))
    backup.unlink()
    r = pm.remove(name)
    assert "put back /" not in step_log(r) and not target.exists()
    assert pm.diversions() == ""
    assert not (root / pkg.ADMIN_BACKUP_DIR.lstrip("/")).exists()
    pm.assert_settled(name, installed=False)


def test_deb_interrupted_install_then_configure_all(lone, v1):
    """Unpacked but not configured (an interrupted dpkg): `dpkg --configure -a`
    finishes it, and removal, twice, puts the file back once."""
    root, name, target, backup = lone
    pm = Packager("deb", root)
    before = tree(root)
    dpkg(root, "--unpack", pm.file(v1, name))
    assert backup.read_bytes() == ADMIN_PLUGIN
    dpkg(root, "--configure", "-a")
    pm.assert_settled(name, installed=True)
    r1, r2 = pm.remove(name), pm.remove(name)
    assert step_log(r1, r2).count("put back /") == 1
    assert_put_back(pm, root, name, target, backup, before, step_log(r1))


def test_deb_unpacked_package_removed_before_configure(lone, v1):
    root, name, target, backup = lone
    pm = Packager("deb", root)
    before = tree(root)
    dpkg(root, "--unpack", pm.file(v1, name))
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


def test_rpm_removal_after_its_scriptlet_ran_once(lone, v1):
    """%postun run twice (as a retried transaction would): the second run changes
    nothing and does not fail."""
    root, name, target, backup = lone
    pm = Packager("rpm", root)
    before = tree(root)
    pm.install(pm.file(v1, name))
    postun = rpm_root(root, "-q", "--qf", "%{POSTUN}", name).stdout
    r1 = pm.remove(name)
    again = root / "tmp/postun.sh"
    again.write_text(postun)
    r2 = run(["chroot", root, "/bin/sh", "/tmp/postun.sh", "0"])
    again.unlink()
    assert "put back /" not in step_log(r2)
    assert_put_back(pm, root, name, target, backup, before, step_log(r1))


def plant_link(root: Path, level: str, name: str) -> Path:
    """The backup folder (or the package's folder in it) as a symbolic link to a
    folder elsewhere; returns that folder."""
    base = root / pkg.ADMIN_BACKUP_DIR.lstrip("/")
    elsewhere = root / "tmp/elsewhere"
    elsewhere.mkdir(parents=True)
    link = base if level == "base" else base / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/tmp/elsewhere")  # as the scripts see it, in the root
    return elsewhere


@pytest.mark.parametrize("level", ["base", "package"])
@pytest.mark.parametrize("kind", PACKAGERS)
def test_backup_folder_planted_as_a_symlink_is_never_followed(kind, level, lone, v1):
    root, name, target, backup = lone
    pm = Packager(kind, root)
    elsewhere = plant_link(root, level, name)
    r = pm.install(pm.file(v1, name), check=False)
    assert r.returncode != 0
    assert "is not a folder (a symbolic link" in r.stderr and "install again" in r.stderr
    assert target.read_bytes() == ADMIN_PLUGIN and list(elsewhere.iterdir()) == []
    assert pm.diversions() == ""
    pm.assert_settled(name, installed=False)
    # What an administrator runs after a failure finds nothing half done.
    if kind == "deb":
        dpkg(root, "--configure", "-a")
    else:
        assert "is not installed" in pm.remove(name, check=False).stderr
    assert target.read_bytes() == ADMIN_PLUGIN and list(elsewhere.iterdir()) == []
    pm.assert_settled(name, installed=False)
    # Once the link is gone, the same install keeps the file and removal puts it back.
    link = root / pkg.ADMIN_BACKUP_DIR.lstrip("/")
    (link / name).unlink() if level == "package" else link.unlink()
    if level == "package":
        link.rmdir()
    before = tree(root)
    pm.install(pm.file(v1, name))
    assert backup.read_bytes() == ADMIN_PLUGIN
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


@pytest.mark.parametrize("kind", PACKAGERS)
def test_backup_folder_swapped_for_a_symlink_before_removal(kind, lone, v1):
    """A link planted while the package is installed never brings a plugin from where
    it points into the plugin folder."""
    root, name, target, backup = lone
    pm = Packager(kind, root)
    pm.install(pm.file(v1, name))
    base = root / pkg.ADMIN_BACKUP_DIR.lstrip("/")
    elsewhere = root / "tmp/elsewhere"
    (elsewhere / name).mkdir(parents=True)
    planted = elsewhere / name / target.name
    planted.write_bytes(b"a plugin planted through the link\n")
    shutil.move(base, root / "tmp/kept")
    base.symlink_to("/tmp/elsewhere")
    r = pm.remove(name)
    assert "is a symbolic link" in r.stderr
    assert not target.exists() and planted.read_bytes() == b"a plugin planted through the link\n"
    assert (root / "tmp/kept" / name / target.name).read_bytes() == ADMIN_PLUGIN
    assert pm.diversions() == ""
    pm.assert_settled(name, installed=False)


#: The postrm of the versions before the fix (dpkg-divert --rename with the plugin
#: folder gone fails): what an administrator may have installed.
FAILING_POSTRM = """#!/bin/sh
set -e
file=@PLUGIN_DIR@/@PLUGIN_ID@.so
if [ -n "${DPKG_MAINTSCRIPT_PACKAGE:-}" ]; then
    case "${1:-}" in
        remove|abort-install|disappear) ;;
        *) exit 0 ;;
    esac
    [ "$(dpkg-divert --listpackage "$file")" = @PACKAGE@ ] || exit 0
    dpkg-divert --quiet --package @PACKAGE@ --divert @BACKUP@ --rename --remove "$file"
fi
exit 0
"""


def test_deb_half_removed_by_an_earlier_version_recovers(tmp_path, lone, artifact, v2, monkeypatch):
    """An earlier version's postrm failed on the lone file and left the package
    half-installed (every retry failing alike): installing this version over it and
    removing it puts the administrator's file back."""
    root, name, target, backup = lone
    pm = Packager("deb", root)
    before = tree(root)
    old = tmp_path / "packaging"
    shutil.copytree(pkg.PACKAGING, old)
    (old / "scripts/postrm.sh").write_text(FAILING_POSTRM)
    declared = json.loads((old / "templates.json").read_text())  # the keys it uses
    declared["templates"]["scripts/postrm.sh"] = {
        "text": ["BACKUP", "PACKAGE", "PLUGIN_DIR", "PLUGIN_ID"]
    }
    (old / "templates.json").write_text(json.dumps(declared))
    fake = tmp_path / "dist"
    sample = artifact("avir_sample.so")
    debug = Path(facts.debug_file(elf.build_id(sample)))
    (fake / "debug" / debug.parent).mkdir(parents=True)
    shutil.copy2(sample, fake / sample.name)
    shutil.copy2(sample.parent / "debug" / debug, fake / "debug" / debug)
    monkeypatch.setattr(pkg, "PACKAGING", old)
    pkg.package(fake, tmp_path / "old", version=V1, repo=False)
    monkeypatch.undo()
    pm.install(pm.file(tmp_path / "old", name))
    for _ in range(2):
        r = pm.remove(name, check=False)
        assert r.returncode != 0 and "error checking" in r.stderr
    assert "half-installed" in installed_version(root, name)
    pm.upgrade(pm.file(v2, name, V2))
    pm.assert_settled(name, installed=True)
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


def test_rpm_file_stranded_by_an_earlier_version_goes_back(tmp_path, lone, v1):
    """An earlier version's %postun failed on the lone file (rpm -e exits 0 anyway):
    the file stayed kept, its folder gone. Installing this version and removing it
    puts the file back."""
    root, name, target, backup = lone
    pm = Packager("rpm", root)
    before = tree(root)
    backup.parent.mkdir(parents=True)
    shutil.move(target, backup)
    target.parent.rmdir()
    pm.install(pm.file(v1, name))
    assert backup.read_bytes() == ADMIN_PLUGIN
    assert_put_back(pm, root, name, target, backup, before, step_log(pm.remove(name)))


# --- Kerio Connect's folder moved (the vendor's later word) ---------------------------------

OLD_CONNECT_DIR = "/opt/kerio/mailserver/plugin/avirs"
NEW_CONNECT_DIR = "/opt/kerio/mailserver/plugin/avserver/avirs"


def test_connect_folder_follows_the_vendors_later_word():
    """The last commit of Kerio's SDK repository (April 2014, "Fixed path to avir
    folder") moved Kerio Connect's plugin folder to plugin/avserver/avirs/; Kerio
    Control's stayed. The packages follow that later word, and remember the earlier
    folder to clean up after the versions that used it."""
    products = facts.products()
    assert products["connect"]["plugin_dir"] == NEW_CONNECT_DIR
    assert products["control"]["plugin_dir"] == "/opt/kerio/winroute/avirplugins"
    assert [d["plugin_dir"] for d in products["connect"]["former_plugin_dirs"]] == [OLD_CONNECT_DIR]
    # No document still sends an administrator to the old folder.
    # No document sends an administrator to the old folder: a line naming it names the
    # new one too (the move).
    for doc in (
        "README.md",
        "docs/admin.md",
        "docs/ABI.md",
        "packaging/README.in",
        "tests/test_smoke.py",
    ):
        for line in (paths.ROOT / doc).read_text().splitlines():
            assert "plugin/avirs" not in line or "avserver/avirs" in line, (doc, line)


@pytest.fixture(scope="module")
def old_folder_packages(tmp_path_factory, artifact):
    """The sample plugin's packages as the versions before the move built them: Kerio
    Connect's previous products.json value, V1 (the packages under test are V2)."""
    tmp = tmp_path_factory.mktemp("old-folder")
    products = json.loads(facts.PRODUCTS_FILE.read_text())
    for key in ("admin_backup", "former_plugin_dirs"):
        products["connect"].pop(key)
    products["connect"]["plugin_dir"] = OLD_CONNECT_DIR
    (tmp / "products.json").write_text(json.dumps(products))
    fake = tmp / "dist"
    sample = artifact("avir_sample.so")
    debug = Path(facts.debug_file(elf.build_id(sample)))
    (fake / "debug" / debug.parent).mkdir(parents=True)
    shutil.copy2(sample, fake / sample.name)
    shutil.copy2(sample.parent / "debug" / debug, fake / "debug" / debug)
    out = tmp / "out"
    saved = facts.PRODUCTS_FILE
    facts.PRODUCTS_FILE = tmp / "products.json"
    facts.products.cache_clear()
    try:
        pkg.package(fake, out, version=V1, repo=False)
    finally:
        facts.PRODUCTS_FILE = saved
        facts.products.cache_clear()
    return out


CONNECT = f"kerio-connect-avir-{MATRIX_PLUGIN}"


def in_root(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


@pytest.mark.parametrize("admin_files", [(), ("old",), ("old", "new")])
@pytest.mark.parametrize("kind", PACKAGERS)
def test_upgrade_from_the_old_connect_folder(
    kind, admin_files, tmp_path, old_folder_packages, v2, dist
):
    """old-folder package -> new-folder package: nothing of ours stays in the old folder;
    the administrator's file the old version kept goes back there, byte-identical;
    one in the new folder is kept and put back like any."""
    root = tmp_path / "root"
    make_root(root, products=False)
    so = f"avir_{MATRIX_PLUGIN}.so"
    old, new = in_root(root, f"{OLD_CONNECT_DIR}/{so}"), in_root(root, f"{NEW_CONNECT_DIR}/{so}")
    admins = {
        "old": (old, b"the administrator's plugin in the old folder\n"),
        "new": (new, b"the administrator's plugin in the new folder\n"),
    }
    for which in admin_files:
        path, content = admins[which]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    pm = Packager(kind, root)
    before = tree(root)
    r = pm.install(pm.file(old_folder_packages, CONNECT))
    assert ("kept as" in r.stdout) == ("old" in admin_files)
    assert old.read_bytes() == (dist / so).read_bytes()
    r = pm.upgrade(pm.file(v2, CONNECT, V2))
    assert new.read_bytes() == (dist / so).read_bytes()
    if "old" in admin_files:
        assert old.read_bytes() == admins["old"][1]
        assert f"put back {OLD_CONNECT_DIR}/{so}" in r.stdout
        assert sorted(p.name for p in old.parent.iterdir()) == [so]
    else:
        assert not in_root(root, OLD_CONNECT_DIR).exists()  # nothing left behind
    if "new" in admin_files:
        assert "kept as" in r.stdout
    diversions = pm.diversions()
    assert OLD_CONNECT_DIR not in diversions
    pm.assert_settled(CONNECT, installed=True)
    r = pm.remove(CONNECT)
    for which in admin_files:
        path, content = admins[which]
        assert path.read_bytes() == content
    assert pm.diversions() == ""
    assert not (root / pkg.ADMIN_BACKUP_DIR.lstrip("/")).exists()
    pm.assert_settled(CONNECT, installed=False)
    assert tree(root) == before


# --- the right package for the installed product ---------------------------------------------


def product_binary(root: Path, path: str, source: Path) -> None:
    target = in_root(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


@pytest.mark.parametrize("kind", PACKAGERS)
def test_install_says_when_the_product_is_of_the_other_class(kind, tmp_path, v1, artifact):
    """The product's avserver decides; a 64-bit one cannot load this i386 plugin: the
    install says which package to take instead and still succeeds; a 32-bit one, or
    no product at all (a staging machine), gets no such word."""
    elf64 = Path(os.path.realpath(shutil.which("true")))
    assert elf64.read_bytes()[4] == 2
    elf32 = artifact("avhost")
    assert elf32.read_bytes()[4] == 1
    cases = {
        "64-bit avserver": (
            {"/opt/kerio/mailserver/avserver": elf64, "/opt/kerio/mailserver/mailserver": elf64},
            True,
        ),
        "64-bit mailserver only": ({"/opt/kerio/mailserver/mailserver": elf64}, True),
        "32-bit": (
            {"/opt/kerio/mailserver/avserver": elf32, "/opt/kerio/mailserver/mailserver": elf32},
            False,
        ),
        "not installed": ({}, False),
    }
    name = CONNECT
    for case, (binaries, warned) in cases.items():
        root = tmp_path / case.replace(" ", "-")
        make_root(root, products=False)
        for path, source in binaries.items():
            product_binary(root, path, source)
        pm = Packager(kind, root)
        r = pm.install(pm.file(v1, name))
        pm.assert_settled(name, installed=True)
        if warned:
            bin_ = next(iter(binaries))
            assert (
                f"{name}: WARNING: {bin_} is a 64-bit program and this package's plugin "
                f"is 32-bit (i386/i686): Kerio Connect cannot load it." in r.stderr
            ), case
            other = (
                f"apt-get install {name}:amd64" if kind == "deb" else f"yum install {name}.x86_64"
            )
            assert f"Install the 64-bit package instead ({other}," in r.stderr, case
        else:
            assert "WARNING" not in r.stdout + r.stderr, case
        pm.remove(name)


# --- relations: never another architecture's server ------------------------------------------


def fake_debs_repo(folder: Path, stanzas) -> None:
    folder.mkdir(parents=True)
    text = ""
    for package, arch, version in stanzas:
        text += (
            f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
            f"Maintainer: test <t@example.org>\nFilename: pool/{package}_{arch}.deb\n"
            f"Size: 1\nSHA256: {'0' * 64}\nDescription: stand-in\n\n"
        )
    (folder / "Packages").write_text(text)


def apt_simulate(tmp_path: Path, sources: list, status: str, install: list):
    """apt-get -s install in a private apt state: an amd64 machine with i386 added.
    sources: sources.list lines."""
    opts = private_apt(tmp_path / "apt", sources, ["amd64", "i386"], status)
    opts += ["-o", "Dir::Etc::trusted=/dev/null", "-o", "Dir::Etc::trustedparts=/dev/null"]
    run(["apt-get", *opts, "update"])
    return run(["apt-get", *opts, "-s", "-y", "install", *install], check=False)


def installed_stanza(package, arch, version, multi_arch=None) -> str:
    ma = f"Multi-Arch: {multi_arch}\n" if multi_arch else ""
    return (
        f"Package: {package}\nStatus: install ok installed\nPriority: optional\n"
        f"Section: misc\nInstalled-Size: 1\nMaintainer: test\nArchitecture: {arch}\n{ma}"
        f"Version: {version}\nDescription: installed\n\n"
    )


def test_apt_on_amd64_never_replaces_the_admins_clamd(tmp_path, v1, plugins):
    """An amd64 machine with the i386 architecture added (as Kerio Connect 8.0 needed)
    and Debian's amd64 clamav-daemon and clamdscan installed; the mirror has both of
    each architecture. apt installing every package of ours removes or replaces
    nothing and installs no i386 server (clamd is reached over a socket: any
    architecture serves)."""
    mirror = tmp_path / "mirror"
    server = "1.0.7+dfsg-1~deb12u1"
    fake_debs_repo(
        mirror, [(p, a, server) for p in ("clamav-daemon", "clamdscan") for a in ("amd64", "i386")]
    )
    status = (
        installed_stanza("libc6", "amd64", "2.36-9", "same")
        + installed_stanza("libc6", "i386", "2.36-9", "same")
        + installed_stanza("clamav-daemon", "amd64", server)
        + installed_stanza("clamdscan", "amd64", server)
    )
    ours = [
        line.split(": ", 1)[1]
        for line in apt_index(v1, "i386").read_text().splitlines()
        if line.startswith("Package: ")
    ]
    sources = [f"deb [trusted=yes] file:{v1} stable main", f"deb [trusted=yes] file:{mirror} ./"]
    for wanted in (ours, [f"kerio-connect-avir-{p}" for p in plugins]):
        r = apt_simulate(tmp_path / f"n{len(wanted)}", sources, status, wanted)
        assert r.returncode == 0, r.stdout + r.stderr
        actions = [line for line in r.stdout.splitlines() if re.match(r"(Inst|Remv|Conf) ", line)]
        assert not [a for a in actions if a.startswith("Remv")], r.stdout
        installed = {a.split()[1].split(":")[0] for a in actions if a.startswith("Inst")}
        assert installed == set(wanted), r.stdout  # ours, nothing else
    assert "clamav-daemon" in r.stdout  # apt names it as a suggestion: the admin decides


def test_rpm_clamd_relation_takes_any_architecture(tmp_path, v1):
    """rpm matches the plain name in the .rpm's relation with a clamd of any
    architecture: a 64-bit clamd satisfies the i686 package's relation (shown with a
    package that requires what ours recommends)."""
    recommends = run(
        ["rpm", "-qp", "--recommends", rpm_file(v1, "kerio-connect-avir-clam")]
    ).stdout.split()
    assert recommends == ["clamd"]
    cfgs = {
        "clamd": {"name": "clamd", "arch": "amd64", "version": "1.0.7", "rpm": {"arch": "x86_64"}},
        "needs": {
            "name": "needs-clamd",
            "arch": "386",
            "version": "1",
            "depends": recommends,
            "rpm": {"arch": "i686"},
        },
    }
    built = {}
    for key, cfg in cfgs.items():
        f = tmp_path / f"{key}.yaml"
        f.write_text(json.dumps({**cfg, "maintainer": "t <t@example.org>", "description": key}))
        built[key] = tmp_path / f"{key}.rpm"
        run([pkg.find_nfpm(), "package", "-f", f, "-p", "rpm", "-t", built[key]])
    root = tmp_path / "root"
    make_root(root, products=False)
    rpm_root(root, "--initdb")
    r = rpm_root(root, "-i", "--test", "--ignorearch", built["needs"], check=False)
    assert r.returncode != 0 and "clamd is needed" in r.stderr
    rpm_root(root, "-i", "--ignorearch", "--justdb", built["clamd"])
    rpm_root(root, "-i", "--test", "--ignorearch", built["needs"])


# --- reproducibility, lint, signing, repositories ------------------------------------------


def test_packages_are_reproducible(tmp_path, v1):
    again = tmp_path / "again"
    avkit_package(again, V1)
    files = sorted(f.relative_to(v1) for f in v1.rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(again) for f in again.rglob("*") if f.is_file())
    for f in files:  # the packages, and the repositories' metadata
        assert (again / f).read_bytes() == (v1 / f).read_bytes(), f"{f} differs"
    assert Path("yum/i386/repodata/primary.xml.gz") in files
    assert Path("dists/stable/main/binary-i386/Packages") in files


def test_lintian_is_clean(v1, v2, tmp_path):
    """No error or warning (and no unused override) for the first release (v1: one
    changelog entry) nor for a later one (v2)."""
    for folder in (v1, v2):
        log = tmp_path / f"lint-{folder.name}.log"
        found = lint.lint(folder.glob("*.deb"), log)
        assert found == [], lint.report(found, log)
        overridden = {m for m in re.findall(r"^O: \S+ (\S+)", log.read_text(), re.M)}
        assert "dir-or-file-in-opt" in overridden  # the overrides ship and are needed


def test_rpmlint_is_clean(v1, v2, tmp_path):
    log = tmp_path / "lint.log"
    found = lint.lint([*v1.glob("*.rpm"), *v2.glob("*.rpm")], log)
    assert found == [], lint.report(found, log)


def apt_index(folder: Path, deb_arch: str) -> Path:
    """The Packages file of one architecture in the folder's apt repository."""
    return folder / "dists" / "stable" / "main" / f"binary-{deb_arch}" / "Packages"


def test_repository_metadata(v1, tmp_path):
    """The i386 packages alone: Debian's layout with one binary-i386 index (and no
    other), its Release, apt reading it; yum/i386/ (i686's $basearch) listing every .rpm."""
    index = apt_index(v1, "i386")
    packages = index.read_text()
    stanzas = [
        dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", s, re.M))
        for s in packages.strip().split("\n\n")
    ]
    debs = sorted(v1.glob("*.deb"))
    assert sorted(s["Filename"] for s in stanzas) == sorted(d.name for d in debs)
    for s in stanzas:
        data = (v1 / s["Filename"]).read_bytes()
        assert s["SHA256"] == hashlib.sha256(data).hexdigest() and int(s["Size"]) == len(data)
    assert gzip.decompress(index.with_name("Packages.gz").read_bytes()).decode() == packages
    assert sorted(p.name for p in index.parent.parent.iterdir()) == ["binary-i386"]
    release = (v1 / "dists" / "stable" / "Release").read_text()
    assert re.search(r"^Architectures: i386$", release, re.M), release
    assert re.search(r"^Components: main$", release, re.M), release
    for name in ("Packages", "Packages.gz"):
        digest = hashlib.sha256(index.with_name(name).read_bytes()).hexdigest()
        assert re.search(rf"^ {digest} +\d+ main/binary-i386/{name}$", release, re.M), release
    # apt itself reads the repository.
    opts = private_apt(tmp_path / "apt", [f"deb [trusted=yes] file:{v1} stable main"], ["i386"])
    run(["apt-get", *opts, "update"])
    shown = run(["apt-cache", *opts, "show", "kerio-connect-avir-sample"]).stdout
    assert f"Version: {V1}-{RELEASE}" in shown
    # yum: createrepo_c's primary of yum/i386/ lists every rpm, where it is.
    repo = v1 / "yum" / "i386"
    assert sorted(p.name for p in repo.parent.iterdir()) == ["i386"]
    repomd = (repo / "repodata" / "repomd.xml").read_text()
    assert "primary.xml.gz" in repomd
    primary = gzip.decompress((repo / "repodata" / "primary.xml.gz").read_bytes()).decode()
    for f in v1.glob("*.rpm"):
        assert f'<location href="../../{f.name}"/>' in primary
        assert (repo / "../.." / f.name).resolve() == f.resolve()
    # SHA256SUMS covers every file.
    run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=v1)
    listed = {line.split("  ", 1)[1] for line in (v1 / "SHA256SUMS").read_text().splitlines()}
    assert {
        f.relative_to(v1).as_posix()
        for f in v1.rglob("*")
        if f.is_file() and f.name != "SHA256SUMS"
    } == listed


PASSPHRASE = "test-only passphrase 7f3a"


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    """A throwaway key protected by PASSPHRASE, in its own GNUPGHOME."""
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    secret = ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    run(
        [
            "gpg",
            "--batch",
            *secret,
            "--quick-gen-key",
            "Kerio plugins test key <test@example.org>",
            "rsa2048",
            "sign",
            "never",
        ],
        env=env,
        input=PASSPHRASE,
    )
    key = home / "secret.asc"
    run(
        ["gpg", "--batch", *secret, "--armor", "--export-secret-keys", "--output", key],
        env=env,
        input=PASSPHRASE,
    )
    pub = home / "public.asc"
    run(["gpg", "--batch", "--armor", "--export", "--output", pub], env=env)
    yield key, pub, env
    run(["gpgconf", "--kill", "all"], env=env, check=False)


def watched_run(cmd, env, secret: str, log: Path) -> tuple:
    """Runs cmd while scanning every process's argv (/proc/*/cmdline) for `secret`, as
    any user of the machine could with ps; gpg is reached through a wrapper that logs
    its argv. Returns (completed process, argvs that showed the secret, gpg argvs)."""
    wrappers = log.parent / "bin"
    wrappers.mkdir()
    (wrappers / "gpg").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec {shutil.which("gpg")} "$@"\n'
    )
    (wrappers / "gpg").chmod(0o755)
    env = dict(env, PATH=f"{wrappers}{os.pathsep}{env['PATH']}")
    seen = []
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env=env,
        cwd=paths.ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out = io.StringIO(), io.StringIO()
    readers = [
        threading.Thread(target=lambda s, o: o.write(s.read()), args=(stream, buf))
        for stream, buf in zip((proc.stdout, proc.stderr), out)
    ]
    for t in readers:
        t.start()
    while proc.poll() is None:  # ends with the process
        # os.listdir, not Path.glob: glob stats each /proc/<pid>/cmdline, which raises
        # when that process ends in between; every read here may find it gone
        for pid in (e for e in os.listdir("/proc") if e.isdigit()):
            try:
                argv = Path("/proc", pid, "cmdline").read_bytes()
            except OSError:
                continue  # the process ended meanwhile
            if secret.encode() in argv:
                seen.append(argv.replace(b"\0", b" ").decode(errors="replace"))
    for t in readers:
        t.join()
    done = subprocess.CompletedProcess(cmd, proc.returncode, out[0].getvalue(), out[1].getvalue())
    return done, seen, log.read_text().splitlines() if log.exists() else []


def lint_findings(debs=(), rpms=(), rpm_home=None) -> list[str]:
    """lintian's errors, warnings and unused overrides, rpmlint's (with the project's
    config) for the given packages, then where their whole output is; rpm_home: a HOME
    whose rpm database rpmlint uses."""
    log = Path(tempfile.mkdtemp(prefix="lint-")) / "lint.log"
    found = lint.lint([*debs, *rpms], log, rpm_home=rpm_home)
    return [lint.report(found, log)] if found else []


def rpm_home_with_key(home: Path, public_key: Path) -> Path:
    """A HOME whose rpm database has the project's key, imported as a site does
    (rpm --import): there rpm -K, and so rpmlint, know the key."""
    db = home / "rpmdb"
    db.mkdir(parents=True)
    (home / ".rpmmacros").write_text(f"%_dbpath {db}\n")
    run(["rpm", "--import", public_key], env=dict(os.environ, HOME=str(home)))
    return home


def apt_update(tmp_path: Path, sources_line: str) -> subprocess.CompletedProcess:
    """apt-get update of one sources line, in a private apt state (i386 only)."""
    opts = private_apt(tmp_path, [sources_line], ["i386"])
    r = run(["apt-get", *opts, "update"], check=False)
    r.opts = opts
    return r


def test_signed_packages_and_repositories(tmp_path, signing_key, plugins):
    key, pub, gpg_env = signing_key
    out = tmp_path / "signed"
    # The armored key itself in the environment (a CI secret); --sign-key takes a path.
    env = dict(os.environ, AVKIT_SIGNING_KEY=key.read_text(), AVKIT_SIGNING_PASSPHRASE=PASSPHRASE)
    r, shown, gpg_calls = watched_run(
        [sys.executable, "-m", "avkit", "package", "--out", out, "--version", V1],
        env,
        PASSPHRASE,
        tmp_path / "gpg-argv.log",
    )
    assert r.returncode == 0, r.stderr
    # It says what it signed and with which key.
    listing = run(["gpg", "--list-secret-keys", "--with-colons"], env=gpg_env).stdout
    fingerprint = re.search(r"^fpr:(?:[^:]*:){8}([0-9A-F]+):", listing, re.M)[1]
    rpm_count = len(list(out.glob("*.rpm")))
    assert f"signed with key {fingerprint}: {rpm_count} of {rpm_count} .rpm, " in r.stdout
    for name in (
        "dists/stable/InRelease",
        "dists/stable/Release.gpg",
        "yum/i386/repodata/repomd.xml.asc",
        "SHA256SUMS.asc",
    ):
        assert name in r.stdout, r.stdout
    assert "NOT signed" not in r.stdout
    # The passphrase reached gpg (it signed) but never a command line nor the output.
    assert any("--detach-sign" in call for call in gpg_calls), gpg_calls
    assert not [c for c in gpg_calls if PASSPHRASE in c] and shown == []
    assert PASSPHRASE not in r.stdout + r.stderr
    # .deb: unsigned, like Debian's; apt trusts it through InRelease, checked below.
    debs, rpms = sorted(out.glob("*.deb")), sorted(out.glob("*.rpm"))
    for f in debs:
        assert "_gpgorigin" not in run(["ar", "t", f]).stdout.split()
    # .rpm: rpm -K checks the header signature against the imported public key, and
    # rpmlint is clean without any override for signatures.
    home = rpm_home_with_key(tmp_path / "home", out / "signing-key.asc")
    for f in rpms:
        r = run(["rpm", "-K", f], env=dict(os.environ, HOME=str(home)))
        assert "signatures OK" in r.stdout, r.stdout
        assert rpm_query(f, "%{SIGPGP:pgpsig}%{RSAHEADER:pgpsig}") not in ("", "(none)(none)")
    assert lint_findings(debs, rpms, rpm_home=home) == []
    # SHA256SUMS, signed: gpgv with the published key, then sha256sum.
    keyring = out / "signing-key.gpg"
    run(["gpgv", "--keyring", keyring, out / "SHA256SUMS.asc", out / "SHA256SUMS"])
    run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=out)
    forged = tmp_path / "SHA256SUMS"
    forged.write_text((out / "SHA256SUMS").read_text().replace(" ", "  ", 1))
    assert (
        run(["gpgv", "--keyring", keyring, out / "SHA256SUMS.asc", forged], check=False).returncode
        != 0
    )
    # Repository metadata signatures, and the public key published beside them.
    dists = out / "dists" / "stable"
    run(["gpgv", "--keyring", keyring, dists / "Release.gpg", dists / "Release"])
    run(["gpgv", "--keyring", keyring, dists / "InRelease"])
    repodata = out / "yum" / "i386" / "repodata"
    run(["gpgv", "--keyring", keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml"])
    assert "BEGIN PGP PUBLIC KEY BLOCK" in (out / "signing-key.asc").read_text()
    # apt, with the sources line avkit writes for sites (signed-by, no trusted=yes),
    # accepts the signed folder and refuses it once InRelease is altered.
    sources = [
        line
        for line in (out / "kerio-avir-plugins.list").read_text().splitlines()
        if line.startswith("deb ")
    ]
    assert sources == [
        f"deb [signed-by=/usr/share/keyrings/kerio-avir-plugins.gpg] {BASE_URL} stable main"
    ]
    line = (
        sources[0]
        .replace("/usr/share/keyrings/kerio-avir-plugins.gpg", str(keyring))
        .replace(BASE_URL, f"file:{out}")
    )
    r = apt_update(tmp_path / "apt", line)
    assert r.returncode == 0 and "not signed" not in r.stderr + r.stdout, r.stderr
    shown = run(["apt-cache", *r.opts, "show", "kerio-connect-avir-sample"]).stdout
    assert f"Version: {V1}-{RELEASE}" in shown
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    (tampered / "dists" / "stable" / "Release.gpg").unlink()
    (tampered / "dists" / "stable" / "InRelease").write_text(
        (dists / "InRelease").read_text().replace("Suite: stable", "Suite: stabLe")
    )
    r = apt_update(tmp_path / "apt-tampered", line.replace(str(out), str(tampered)))
    assert r.returncode != 0 and "BADSIG" in r.stderr, r.stderr
    # yum: the .repo file checks package and repository signatures with the project's key.
    repo = (out / "kerio-avir-plugins.repo").read_text()
    for setting in (
        "gpgcheck=1",
        "repo_gpgcheck=1",
        "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-kerio-avir-plugins",
        f"baseurl={BASE_URL}/yum/$basearch/",
    ):
        assert setting in repo.splitlines()


def test_signing_key_from_a_path_or_the_environment(tmp_path, monkeypatch):
    key = tmp_path / "k.asc"
    key.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n")
    monkeypatch.delenv("AVKIT_SIGNING_KEY", raising=False)
    assert pkg.signing_key(None) == ("", False)
    assert pkg.signing_key(str(key)) == (str(key), False)
    monkeypatch.setenv("AVKIT_SIGNING_KEY", key.read_text())
    path, temporary = pkg.signing_key(None)
    assert temporary and Path(path).read_text() == key.read_text()
    os.unlink(path)
    with pytest.raises(Exception, match="does not exist"):
        pkg.signing_key(str(tmp_path / "missing.asc"))


def test_a_package_run_prints_a_short_summary(v1):
    """What, where and how long in a few lines; the file list only with -v."""
    said = stdout_of(v1).read_text().splitlines()
    debs, rpms = len(list(v1.glob("*.deb"))), len(list(v1.glob("*.rpm")))
    assert len(said) <= 3, said
    assert re.fullmatch(
        rf"packaged {debs} \.deb and {rpms} \.rpm \(i386\) into {v1}/ in "
        rf"\d+ s; apt \(dists/\) and yum \(yum/<basearch>/\) repositories; "
        rf"SHA256SUMS",
        said[0],
    ), said[0]


def test_unsigned_by_default(v1):
    said = stdout_of(v1).read_text()
    assert "NOT signed (no --sign-key nor AVKIT_SIGNING_KEY)" in said and "signed with" not in said
    for f in v1.glob("*.deb"):
        assert "_gpgorigin" not in run(["ar", "t", f]).stdout.split()
    for f in v1.glob("*.rpm"):
        assert rpm_query(f, "%{RSAHEADER:pgpsig}") == "(none)"
    assert not list(v1.rglob("*.gpg")) and not list(v1.rglob("InRelease"))
    assert not list(v1.rglob("*.asc")) and not list(v1.glob("*.repo"))


# --- versions, rpm 4.8 ---------------------------------------------------------------------


def commit(repo: Path, when: int, message: str) -> None:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
        GIT_AUTHOR_DATE=f"@{when} +0000",
        GIT_COMMITTER_DATE=f"@{when} +0000",
    )
    (repo / "history").open("a").write(message + "\n")
    run(["git", "-C", repo, "add", "-A"], env=env)
    run(["git", "-C", repo, "commit", "-q", "-m", message], env=env)


def dpkg_older(a: str, b: str) -> bool:
    return run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def rpm_vercmp(a: str, b: str) -> int:
    """rpm's own comparison (rpmvercmp, through rpm's Lua)."""
    return int(run(["rpm", "--eval", f"%{{lua: print(rpm.vercmp('{a}', '{b}'))}}"]).stdout)


def test_snapshot_versions_sort_between_releases_and_need_no_history(tmp_path, monkeypatch):
    monkeypatch.delenv("AVKIT_VERSION", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q", repo])
    (repo / "VERSION").write_text("1.0.0\n")
    commit(repo, 1764000000, "release 1.0.0")
    run(["git", "-C", repo, "tag", "v1.0.0"])
    assert pkg.project_version(repo) == "1.0.0"
    commit(repo, 1764100000, "a fix")
    first = pkg.project_version(repo)
    sha = run(["git", "-C", repo, "rev-parse", "HEAD"]).stdout.strip()
    assert first == f"1.0.0+git{time.strftime('%Y%m%d%H%M%S', time.gmtime(1764100000))}.{sha[:7]}"
    for n in range(3):  # a longer history changes nothing but the commit
        commit(repo, 1764200000 + n, f"more {n}")
    second = pkg.project_version(repo)
    # CI's checkout: one commit, no history. Same version, for a snapshot and a release.
    shallow = tmp_path / "shallow"
    run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", shallow])
    assert (
        run(["git", "-C", shallow, "rev-parse", "--is-shallow-repository"]).stdout.strip() == "true"
    )
    assert pkg.project_version(shallow) == second
    tagged = tmp_path / "tagged"
    run(["git", "clone", "-q", "--depth", "1", "--branch", "v1.0.0", f"file://{repo}", tagged])
    assert pkg.project_version(tagged) == "1.0.0"
    # The last release < its snapshots (in commit order) < the next release, in dpkg and
    # in rpm; with no tilde or caret, whose meaning rpm 4.8 (CentOS 6) does not know.
    order = ["1.0.0", first, second, "1.0.1"]
    for older, newer in zip(order, order[1:]):
        assert dpkg_older(f"{older}-{RELEASE}", f"{newer}-{RELEASE}"), (older, newer)
        assert rpm_vercmp(older, newer) == -1 and rpm_vercmp(newer, older) == 1, (older, newer)
        pkg.check_version(newer)
    assert not set("".join(order)) & set(pkg.NEWER_RPM_VERSION_CHARS)
    with pytest.raises(Exception, match="rpm 4.8"):
        pkg.check_version("1.0.1~rc1")


def test_rpms_are_readable_by_rpm_4_8(v1):
    from avkit.ship import rpm_compat

    policy = rpm_compat.load_policy()
    # The list's names and versions are rpm's own: today's rpm still provides each alike.
    showrc = run(["rpm", "--showrc"]).stdout
    for feature, evr in policy["rpmlib"].items():
        assert f"    {feature} = {evr}\n" in showrc, feature
    rpms = sorted(v1.glob("*.rpm"))
    for f in rpms:
        info = rpm_compat.inspect(f)
        assert rpm_compat.problems(info, policy) == [], f.name
        assert {r["name"] for r in info["rpmlib"]} >= {"rpmlib(FileDigests)"}
        assert info["payload_compressor"] == "gzip" and info["file_digest_algorithm"] == "8"
    listing = rpm_compat.listing(rpms[0], rpm_compat.inspect(rpms[0]), policy)
    assert "rpmlib(FileDigests) <= 4.6.0-1  (rpm 4.8: 4.6.0-1)" in listing
    rpm_compat.require_compatible(rpms)


def test_a_package_rpm_4_8_cannot_read_is_refused(tmp_path):
    from avkit.ship import rpm_compat

    cfg = tmp_path / "new.yaml"
    cfg.write_text(
        json.dumps(
            {
                "name": "too-new",
                "arch": "386",
                "version": "1.0~rc1",
                "maintainer": "t <t@example.org>",
                "description": "zstd payload, tilde version",
                "rpm": {"arch": "i686", "compression": "zstd"},
            }
        )
    )
    out = tmp_path / "too-new.rpm"
    run([pkg.find_nfpm(), "package", "-f", cfg, "-p", "rpm", "-t", out])
    found = " ".join(rpm_compat.problems(rpm_compat.inspect(out), rpm_compat.load_policy()))
    assert "payload compressed with zstd" in found and "has ~" in found
    with pytest.raises(Exception, match="CentOS 6 \\(rpm 4.8\\) cannot use these packages"):
        rpm_compat.require_compatible([out])


def test_products_install_where_the_abi_says():
    """packaging/products.json is the one list of folders; docs/ABI.md is the contract."""
    abi = (Path(__file__).resolve().parent.parent / "docs" / "ABI.md").read_text()
    for name, product in facts.products().items():
        assert f"`{product['plugin_dir']}/`" in abi, f"{name}: {product['plugin_dir']}"
