"""The .deb and .rpm packages (avkit package): contents and metadata, installation
into throwaway roots with dpkg and rpm (scripts, upgrade, downgrade, removal, purge,
the product's own files untouched), dependencies, reproducibility, lint, signing and
the repository metadata."""
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import elf, facts, paths
from avkit.ship import audit, packages as pkg

V1, V2 = "1.0.0", "1.0.1"
RELEASE = "1"
#: product -> (plugin folder, the file that marks the product installed), from products.json
PRODUCTS = {name: (p["plugin_dir"], p["product_marker"]) for name, p in facts.products().items()}

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("rpm"),
                                reason="installs into chroots: needs root, dpkg and rpm")


def run(cmd, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
                             f"{r.stdout}\n{r.stderr}")
    return r


def avkit_package(out: Path, version: str, *extra, env=None):
    return run([sys.executable, "-m", "avkit", "package", "--out", out, "--version", version,
                *extra], cwd=paths.ROOT, env=env)


@pytest.fixture(scope="module")
def plugins(dist, artifact):
    artifact("avir_sample.so")
    return [pkg.plugin_name(p) for p in audit.plugins_in(dist)]


@pytest.fixture(scope="module")
def v1(tmp_path_factory, plugins):
    out = tmp_path_factory.mktemp("packages-v1")
    avkit_package(out, V1)
    return out


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
        expected |= {deb(v1, f"kerio-avir-{p}-dbgsym").name,
                     rpm_file(v1, f"kerio-avir-{p}-debuginfo").name}
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
            assert deb_field(f, "Recommends") == ("clamav-daemon" if p == "clam" else "")
            listing = run(["dpkg-deb", "-c", f]).stdout
            assert f".{plugin_dir}/avir_{p}.so" in listing
            for doc in ("copyright", "changelog.Debian.gz", "README"):
                assert f"./usr/share/doc/kerio-{product}-avir-{p}/{doc}" in listing
            other = [d for k, (d, _) in PRODUCTS.items() if k != product][0]
            assert other.split("/")[3] not in listing  # never creates the other product's tree
            changelog = run(["sh", "-c", f"dpkg-deb --fsys-tarfile '{f}' | tar -xO "
                                         f"./usr/share/doc/kerio-{product}-avir-{p}/changelog.Debian.gz"
                                         f" | zcat"]).stdout
            assert changelog.startswith(f"kerio-{product}-avir-{p} ({V1}-{RELEASE}) unstable;")


def test_rpm_metadata_requires_the_32bit_glibc(v1, plugins, dist):
    for p in plugins:
        deps = audit.audit_file(dist / f"avir_{p}.so")["dependencies"]
        for product in PRODUCTS:
            f = rpm_file(v1, f"kerio-{product}-avir-{p}")
            assert rpm_query(f, "%{ARCH} %{VERSION}-%{RELEASE} %{LICENSE}") == \
                f"i686 {V1}-{RELEASE} BSD-3-Clause"
            requires = run(["rpm", "-qp", "--requires", f]).stdout.split("\n")
            glibc = deps["glibc"]
            assert f"libc.so.6(GLIBC_{glibc})" in requires
            # Only 32-bit names: a 64-bit glibc provides "...(64bit)" and must not satisfy them.
            assert not [r for r in requires if "64bit" in r or r.startswith("glibc")]
            recommends = run(["rpm", "-qp", "--recommends", f]).stdout.split()
            assert recommends == (["clamd"] if p == "clam" else [])
            changelog = run(["rpm", "-qp", "--changelog", f]).stdout
            assert f"- {V1}-{RELEASE}" in changelog.splitlines()[0]


def test_a_new_plugin_in_dist_is_packaged_and_clam_recommends_clamd(tmp_path, dist, artifact):
    """Packaging is generic over dist's avir_*.so: a plugin named clam gets its own
    packages with clamd recommended, avhost is left out."""
    fake = tmp_path / "dist"
    sample = artifact("avir_sample.so")
    bid = elf.build_id(sample)
    debug = Path(facts.debug_file(bid))
    (fake / "debug" / debug.parent).mkdir(parents=True)
    shutil.copy2(sample, fake / "avir_clam.so")
    shutil.copy2(sample.parent / "debug" / debug, fake / "debug" / debug)
    (fake / "avhost").write_bytes(b"\x7fELF not packaged")
    out = tmp_path / "out"
    pkg.package(fake, out, version=V1, repo=False)
    names = sorted(f.name for f in out.iterdir() if f.suffix in (".deb", ".rpm"))
    assert names == sorted([deb(out, "kerio-avir-clam-dbgsym").name,
                            deb(out, "kerio-connect-avir-clam").name,
                            deb(out, "kerio-control-avir-clam").name,
                            rpm_file(out, "kerio-avir-clam-debuginfo").name,
                            rpm_file(out, "kerio-connect-avir-clam").name,
                            rpm_file(out, "kerio-control-avir-clam").name])
    assert deb_field(deb(out, "kerio-connect-avir-clam"), "Recommends") == "clamav-daemon"
    assert run(["rpm", "-qp", "--recommends", rpm_file(out, "kerio-control-avir-clam")]
               ).stdout.split() == ["clamd"]
    assert "ClamAV" in deb_field(deb(out, "kerio-control-avir-clam"), "Description")


def test_a_plugin_failing_the_audit_is_not_packaged(tmp_path, artifact):
    fake = tmp_path / "dist"
    fake.mkdir()
    shutil.copy2(artifact("avir_sample.so"), fake / "avir_bad.so")
    subprocess.run(["objcopy", "--add-symbol", "leak=.text:0,global,function",
                    str(fake / "avir_bad.so")], check=True)
    r = subprocess.run(["readelf", "-s", "-W", str(fake / "avir_bad.so")], capture_output=True,
                       text=True)
    if " leak" not in r.stdout:
        pytest.skip("objcopy could not add a symbol")
    with pytest.raises(Exception, match="fails the audit"):
        pkg.package(fake, tmp_path / "out", version=V1, repo=False)
    assert not list((tmp_path / "out").glob("*.deb"))


# --- throwaway roots ---------------------------------------------------------------------

def make_root(root: Path, products=True) -> dict:
    """A root with a shell for the maintainer scripts, the base directories a real
    system has, and (optionally) a fake install of both products. Returns the files
    of the products with their contents."""
    for d in ["bin", "tmp", "var/tmp", "opt/vendor", "usr/share/doc/base-files", "usr/lib/debug",
              "usr/share/lintian/overrides"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    # Directories a real system has because other packages own files in them.
    (root / "opt/vendor/other-software").write_text("another vendor's file\n")
    (root / "usr/share/doc/base-files/copyright").write_text("base\n")
    (root / "usr/share/lintian/overrides/base-files").write_text("base\n")
    (root / "usr/lib/debug/.keep").write_text("")
    shutil.copy2(os.path.realpath("/bin/sh"), root / "bin" / "sh")
    for lib in re.findall(r"(/\S+) \(0x", run(["ldd", os.path.realpath("/bin/sh")]).stdout):
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), target)
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
        f"Version: {libc_version}\nDescription: stand-in for the i386 C library\n\n")
    (admin / "info" / "libc6:i386.list").write_text("")
    run(["dpkg", f"--root={root}", "--add-architecture", "i386"])


def dpkg(root, *args, check=True):
    return run(["dpkg", f"--root={root}", *args], check=check)


def installed_version(root, name):
    r = run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f",
             "${Status} ${Version}", name], check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def check_installed(root, plugin, product, debug=True):
    plugin_dir = PRODUCTS[product][0]
    so = root / plugin_dir.lstrip("/") / f"avir_{plugin}.so"
    assert so.is_file()
    st = so.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0 and st.st_gid == 0
    assert stat.S_IMODE(so.parent.stat().st_mode) == 0o755
    doc = root / f"usr/share/doc/kerio-{product}-avir-{plugin}"
    assert stat.S_IMODE((doc / "copyright").stat().st_mode) == 0o644
    assert "BSD-3-Clause" in (doc / "copyright").read_text()
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
    debs1 = [deb(v1, n) for n in main_names(plugins)] + \
            [deb(v1, f"kerio-avir-{p}-dbgsym") for p in plugins]
    r = dpkg(root, "-i", *debs1)
    for p in plugins:
        for product in PRODUCTS:
            name = f"kerio-{product}-avir-{p}"
            assert installed_version(root, name) == f"install ok installed {V1}-{RELEASE}"
            # postinst ran and told how to select the plugin, knowing the product is there
            assert f"{name}: to use it, open the Kerio" in r.stdout
            assert f"Select antivirus... 'avir_{p}'" in r.stdout
            check_installed(root, p, product)
    debs2 = [deb(v2, n, V2) for n in main_names(plugins)] + \
            [deb(v2, f"kerio-avir-{p}-dbgsym", V2) for p in plugins]
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
    rpms1 = [rpm_file(v1, n) for n in main_names(plugins)] + \
            [rpm_file(v1, f"kerio-avir-{p}-debuginfo") for p in plugins]
    rpms2 = [rpm_file(v2, n, V2) for n in main_names(plugins)] + \
            [rpm_file(v2, f"kerio-avir-{p}-debuginfo", V2) for p in plugins]
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
    cfg.write_text(json.dumps({
        "name": name, "arch": "386" if bits == 32 else "amd64", "version": "2.36",
        "maintainer": "test <t@example.org>", "description": "stand-in glibc",
        "provides": provides, "rpm": {"arch": "i686" if bits == 32 else "x86_64"}}))
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


# --- reproducibility, lint, signing, repositories ------------------------------------------

def test_packages_are_reproducible(tmp_path, v1):
    again = tmp_path / "again"
    avkit_package(again, V1)
    for f in sorted(v1.iterdir()):
        if f.is_file():
            assert (again / f.name).read_bytes() == f.read_bytes(), f"{f.name} differs"
    assert (again / "repodata" / "primary.xml.gz").exists()


def test_lintian_is_clean(v1, v2):
    """No error or warning (and no unused override) for the first release (v1: one
    changelog entry) nor for a later one (v2)."""
    for folder in (v1, v2):
        debs = sorted(folder.glob("*.deb"))
        r = run(["lintian", "--no-cfg", "--fail-on", "none", "--info", "--show-overrides", *debs])
        tags = [line for line in r.stdout.splitlines()
                if re.match(r"[EW]: ", line) or "unused-override" in line]
        assert tags == [], r.stdout
        overridden = {m for m in re.findall(r"^O: \S+ (\S+)", r.stdout, re.M)}
        assert "dir-or-file-in-opt" in overridden  # the overrides ship and are needed


def test_rpmlint_is_clean(v1, v2):
    r = run(["rpmlint", "-c", paths.ROOT / "packaging" / "rpmlint.toml",
             *sorted(v1.glob("*.rpm")), *sorted(v2.glob("*.rpm"))], check=False)
    assert re.search(r"\b0 errors\b", r.stdout), r.stdout
    assert re.search(r"\b0 warnings\b", r.stdout), r.stdout


def test_repository_metadata(v1, tmp_path):
    packages = (v1 / "Packages").read_text()
    stanzas = [dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", s, re.M))
               for s in packages.strip().split("\n\n")]
    debs = sorted(v1.glob("*.deb"))
    assert sorted(s["Filename"] for s in stanzas) == sorted(f"./{d.name}" for d in debs)
    for s in stanzas:
        data = (v1 / s["Filename"]).read_bytes()
        assert s["SHA256"] == hashlib.sha256(data).hexdigest() and int(s["Size"]) == len(data)
    assert gzip.decompress((v1 / "Packages.gz").read_bytes()).decode() == packages
    release = (v1 / "Release").read_text()
    for name in ("Packages", "Packages.gz"):
        digest = hashlib.sha256((v1 / name).read_bytes()).hexdigest()
        assert re.search(rf"^ {digest} +\d+ {re.escape(name)}$", release, re.M)
    # apt itself reads the flat repository.
    state = tmp_path / "apt"
    for d in ("lists/partial", "cache/archives/partial", "etc/sources.list.d",
              "etc/preferences.d", "etc/apt.conf.d"):
        (state / d).mkdir(parents=True)
    (state / "etc/sources.list").write_text(f"deb [trusted=yes arch=i386] file:{v1} ./\n")
    (state / "status").write_text("")
    opts = ["-o", f"Dir::Etc={state}/etc", "-o", f"Dir::State={state}",
            "-o", f"Dir::State::status={state}/status", "-o", f"Dir::Cache={state}/cache",
            "-o", "APT::Architecture=i386", "-o", "APT::Architectures::=i386",
            "-o", "Debug::NoLocking=1"]
    run(["apt-get", *opts, "update"])
    shown = run(["apt-cache", *opts, "show", "kerio-connect-avir-sample"]).stdout
    assert f"Version: {V1}-{RELEASE}" in shown
    # yum: createrepo_c's primary lists every rpm.
    repomd = (v1 / "repodata" / "repomd.xml").read_text()
    assert "primary.xml.gz" in repomd
    primary = gzip.decompress((v1 / "repodata" / "primary.xml.gz").read_bytes()).decode()
    for f in v1.glob("*.rpm"):
        assert f'<location href="{f.name}"/>' in primary
    # SHA256SUMS covers every file.
    run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=v1)
    listed = {line.split("  ", 1)[1] for line in (v1 / "SHA256SUMS").read_text().splitlines()}
    assert {f.relative_to(v1).as_posix() for f in v1.rglob("*")
            if f.is_file() and f.name != "SHA256SUMS"} == listed


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    """A throwaway key without passphrase, in its own GNUPGHOME."""
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
         "Kerio plugins test key <test@example.org>", "rsa2048", "sign", "never"], env=env)
    key = home / "secret.asc"
    run(["gpg", "--batch", "--armor", "--export-secret-keys", "--output", key], env=env)
    pub = home / "public.asc"
    run(["gpg", "--batch", "--armor", "--export", "--output", pub], env=env)
    yield key, pub, env
    run(["gpgconf", "--kill", "all"], env=env, check=False)


def test_signed_packages_and_repositories(tmp_path, signing_key, plugins):
    key, pub, gpg_env = signing_key
    out = tmp_path / "signed"
    # The armored key itself in the environment (a CI secret); --sign-key takes a path.
    env = dict(os.environ, AVKIT_SIGNING_KEY=key.read_text())
    avkit_package(out, V1, env=env)
    # .deb: the origin signature (_gpgorigin) over debian-binary + control + data.
    for f in out.glob("*.deb"):
        work = tmp_path / "ar" / f.stem
        work.mkdir(parents=True)
        run(["ar", "x", f], cwd=work)
        members = run(["ar", "t", f]).stdout.split()
        assert "_gpgorigin" in members, members
        signed = b"".join((work / m).read_bytes() for m in members if m != "_gpgorigin")
        (work / "signed").write_bytes(signed)
        run(["gpg", "--batch", "--verify", work / "_gpgorigin", work / "signed"], env=gpg_env)
        (work / "signed").write_bytes(signed + b"tampered")
        assert run(["gpg", "--batch", "--verify", work / "_gpgorigin", work / "signed"],
                   env=gpg_env, check=False).returncode != 0
    # .rpm: rpm -K checks the header signature against the imported public key.
    db = tmp_path / "rpmdb"
    db.mkdir()
    run(["rpm", "--dbpath", db, "--import", pub])
    for f in out.glob("*.rpm"):
        r = run(["rpm", "--dbpath", db, "-K", f])
        assert "signatures OK" in r.stdout, r.stdout
        assert rpm_query(f, "%{SIGPGP:pgpsig}%{RSAHEADER:pgpsig}") not in ("", "(none)(none)")
    # Repository metadata signatures, and the public key published beside them.
    run(["gpg", "--batch", "--verify", out / "Release.gpg", out / "Release"], env=gpg_env)
    run(["gpg", "--batch", "--verify", out / "InRelease"], env=gpg_env)
    run(["gpg", "--batch", "--verify", out / "repodata" / "repomd.xml.asc",
         out / "repodata" / "repomd.xml"], env=gpg_env)
    assert "BEGIN PGP PUBLIC KEY BLOCK" in (out / "signing-key.asc").read_text()


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


def test_unsigned_by_default(v1):
    for f in v1.glob("*.deb"):
        assert "_gpgorigin" not in run(["ar", "t", f]).stdout.split()
    for f in v1.glob("*.rpm"):
        assert rpm_query(f, "%{RSAHEADER:pgpsig}") == "(none)"
    assert not list(v1.glob("*.gpg")) and not (v1 / "InRelease").exists()


def test_products_install_where_the_abi_says():
    """packaging/products.json is the one list of folders; docs/ABI.md is the contract."""
    abi = (Path(__file__).resolve().parent.parent / "docs" / "ABI.md").read_text()
    for name, product in facts.products().items():
        assert f"`{product['plugin_dir']}/`" in abi, f"{name}: {product['plugin_dir']}"
