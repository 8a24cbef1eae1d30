"""Packages of both architectures from one set of templates: `avkit package --arch i386
--arch x86_64` puts _i386.deb/.i686.rpm and _amd64.deb/.x86_64.rpm of every plugin and
product, with their debug packages, into one folder, its apt repository (one index per
architecture) and yum repositories (one per architecture) and SHA256SUMS; the i386
packages are the same bytes as when packaged alone.
(tests/test_packages.py checks the packages themselves: contents, scripts, lintian.)"""

import ast
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import facts, paths
from avkit.ship import lint
from private_apt import apt, private_apt

VERSION, RELEASE = (paths.ROOT / "VERSION").read_text().strip(), "1"
EPOCH = "1764547200"  # 2025-12-01: after every changelog entry


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
    return r


def package(out: Path, *archs: str):
    args = [a for arch in archs for a in ("--arch", arch)]
    return run(
        [sys.executable, "-m", "avkit", "package", *args, "--out", out, "--version", VERSION],
        cwd=paths.ROOT,
        env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH),
    )


def plugins(arch):
    return sorted(p.name[5:-3] for p in paths.dist_dir("zig", arch=arch).glob("avir_*.so"))


def expected_files(arch):
    a = facts.architecture(arch)
    names = []
    for p in plugins(arch):
        for product in facts.products():
            names += [
                f"kerio-{product}-avir-{p}_{VERSION}-{RELEASE}_{a['deb']}.deb",
                f"kerio-{product}-avir-{p}-{VERSION}-{RELEASE}.{a['rpm']}.rpm",
            ]
        names += [
            f"kerio-avir-{p}-dbgsym_{VERSION}-{RELEASE}_{a['deb']}.deb",
            f"kerio-avir-{p}-debuginfo-{VERSION}-{RELEASE}.{a['rpm']}.rpm",
        ]
    # avhost and kerio-avir-check, once per architecture
    names += [
        f"kerio-avir-tools_{VERSION}-{RELEASE}_{a['deb']}.deb",
        f"kerio-avir-tools-{VERSION}-{RELEASE}.{a['rpm']}.rpm",
    ]
    return names


@pytest.fixture(scope="module")
def both(tmp_path_factory, artifact):
    for arch in facts.architectures():
        artifact("avir_sample.so", arch=arch)
    out = tmp_path_factory.mktemp("both")
    package(out, "all")
    return out


def test_every_plugin_and_product_of_both_architectures_is_packaged(both):
    built = sorted(p.name for p in both.iterdir() if p.suffix in (".deb", ".rpm"))
    debugsource = [n for n in built if n.startswith("kerio-avir-debugsource")]
    assert len(debugsource) == 2  # one for both architectures: the same sources
    assert built == sorted(
        [n for arch in facts.architectures() for n in expected_files(arch)] + debugsource
    )


def test_x86_64_packages_name_their_architecture_and_the_64_bit_glibc(both):
    deb = both / f"kerio-connect-avir-clam_{VERSION}-{RELEASE}_amd64.deb"
    rpm = both / f"kerio-connect-avir-clam-{VERSION}-{RELEASE}.x86_64.rpm"
    assert run(["dpkg-deb", "-f", deb, "Architecture"]).stdout.strip() == "amd64"
    assert re.fullmatch(
        r"libc6 \(>= 2\.\d+\)", run(["dpkg-deb", "-f", deb, "Depends"]).stdout.strip()
    )
    installed = run(["dpkg-deb", "-c", deb]).stdout
    assert f"{facts.plugin_dir('connect')}/avir_clam.so".lstrip("/") in installed
    assert run(["rpm", "-qp", "--qf", "%{ARCH}", rpm]).stdout == "x86_64"
    requires = run(["rpm", "-qp", "--requires", rpm]).stdout.split("\n")
    assert "libc.so.6()(64bit)" in requires and "ld-linux-x86-64.so.2()(64bit)" in requires
    assert not [r for r in requires if r.startswith("lib") and not r.endswith("(64bit)")]
    dbgsym = both / f"kerio-avir-clam-dbgsym_{VERSION}-{RELEASE}_amd64.deb"
    assert run(["dpkg-deb", "-f", dbgsym, "Architecture"]).stdout.strip() == "amd64"


def stanzas(index: Path) -> list:
    return [
        dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", s, re.M))
        for s in index.read_text().strip().split("\n\n")
    ]


def test_apt_has_one_index_per_architecture_and_release_lists_both(both):
    """Debian's layout: dists/stable/main/binary-<arch>/Packages of each architecture's
    .debs and the arch "all" ones, each in Release with its hashes."""
    dists = both / "dists" / "stable"
    deb_archs = [a["deb"] for a in facts.architectures().values()]
    assert sorted(p.name for p in (dists / "main").iterdir()) == sorted(
        f"binary-{a}" for a in deb_archs
    )
    release = (dists / "Release").read_text()
    assert re.search(rf"^Architectures: {' '.join(deb_archs)}$", release, re.M), release
    for arch in deb_archs:
        index = dists / "main" / f"binary-{arch}" / "Packages"
        listed = stanzas(index)
        assert {s["Architecture"] for s in listed} == {arch, "all"}
        debs = sorted(p.name for p in both.glob(f"*_{arch}.deb")) + sorted(
            p.name for p in both.glob("*_all.deb")
        )
        assert sorted(s["Filename"] for s in listed) == sorted(debs)
        for name in ("Packages", "Packages.gz"):
            digest = hashlib.sha256(index.with_name(name).read_bytes()).hexdigest()
            assert re.search(rf"^ {digest} +\d+ main/binary-{arch}/{name}$", release, re.M)


def client(tmp_path: Path, both: Path, archs: list) -> list:
    """apt on an amd64 machine (with i386 added or not) where only libc6 is installed,
    of each of its architectures, with our repository as its one source."""
    status = "".join(
        f"Package: libc6\nStatus: install ok installed\nPriority: optional\n"
        f"Section: libs\nInstalled-Size: 1\nMaintainer: test\n"
        f"Architecture: {a}\nMulti-Arch: same\nVersion: 2.36-9\n"
        f"Description: installed\n\n"
        for a in archs
    )
    opts = private_apt(
        tmp_path / "-".join(archs), [f"deb [trusted=yes] file:{both} stable main"], archs, status
    )
    r = apt("apt-get", opts, "update")
    assert "doesn't support architecture" not in r.stdout + r.stderr, r.stdout + r.stderr
    return opts


def simulated_installs(opts: list, *names: str) -> set:
    """{(package, architecture)} that `apt-get -s install names` would unpack."""
    r = apt("apt-get", opts, "-s", "-y", "--no-install-recommends", "install", *names)
    return {
        (name.split(":")[0], arch)  # apt writes a foreign one as name:arch
        for name, arch in re.findall(r"^Inst (\S+) \(.*\[(\S+)\]\)", r.stdout, re.M)
    }


def test_an_amd64_client_sees_amd64_and_i386_only_once_added(both, tmp_path):
    """A plain amd64 machine (Kerio Connect 8.5 and newer) sees and installs the amd64
    packages only; with `dpkg --add-architecture i386` (Kerio Connect 8.0) it sees both,
    installs amd64 by default and i386 when asked by name:i386."""
    name = "kerio-connect-avir-clam"
    plain = client(tmp_path, both, ["amd64"])
    shown = apt("apt-cache", plain, "show", name).stdout
    assert re.findall(r"^Architecture: (\S+)$", shown, re.M) == ["amd64"]
    assert apt("apt-cache", plain, "show", f"{name}:i386", check=False).returncode != 0
    assert simulated_installs(plain, name, "kerio-avir-debugsource") == {
        (name, "amd64"),
        ("kerio-avir-debugsource", "all"),
    }
    multi = client(tmp_path, both, ["amd64", "i386"])
    shown = apt("apt-cache", multi, "show", f"{name}:amd64", f"{name}:i386").stdout
    assert sorted(re.findall(r"^Architecture: (\S+)$", shown, re.M)) == ["amd64", "i386"]
    assert simulated_installs(multi, name) == {(name, "amd64")}
    assert simulated_installs(multi, f"{name}:i386") == {(name, "i386")}


def primary(repo: Path) -> str:
    return gzip.decompress((repo / "repodata" / "primary.xml.gz").read_bytes()).decode()


def test_yum_has_one_repository_per_basearch_with_its_own_and_noarch(both):
    """yum/<basearch>/ per architecture ($basearch: i386 on an i686 system), its
    primary listing that architecture's .rpms and the noarch ones, each where it is."""
    yum = both / "yum"
    archs = facts.architectures().values()
    assert sorted(p.name for p in yum.iterdir()) == sorted(a["yum_basearch"] for a in archs)
    for a in archs:
        listed = primary(yum / a["yum_basearch"])
        assert set(re.findall(r"<arch>(\S+)</arch>", listed)) == {a["rpm"], "noarch"}
        hrefs = sorted(re.findall(r'<location href="([^"]+)"/>', listed))
        expected = sorted(
            f"../../{p.name}"
            for p in both.glob("*.rpm")
            if p.name.endswith((f".{a['rpm']}.rpm", ".noarch.rpm"))
        )
        assert hrefs == expected
        for href in hrefs:
            assert (yum / a["yum_basearch"] / href).is_file()


def dnf(tmp_path: Path, both: Path, arch: str, *args) -> subprocess.CompletedProcess:
    """dnf of a machine of `arch` (--forcearch: its $basearch follows) whose one
    repository is ours, as the .repo file writes it: .../yum/$basearch/."""
    if shutil.which("dnf") is None:
        pytest.fail("dnf is missing: apt-get install dnf (ci/apt-packages.txt)")
    conf = tmp_path / "dnf.conf"
    conf.write_text(
        f"[main]\nreposdir=/dev/null\ngpgcheck=0\ncachedir={tmp_path}/cache\n"
        f"logdir={tmp_path}/log\npersistdir={tmp_path}/persist\n"
        f"[ours]\nname=ours\nbaseurl=file://{both}/yum/$basearch/\nenabled=1\n"
    )
    return run(
        [
            "dnf",
            "-q",
            "-c",
            conf,
            f"--installroot={tmp_path}/root-{arch}",
            f"--forcearch={arch}",
            "--releasever=1",
            *args,
        ]
    )


@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_dnf_on_each_architecture_reads_its_own_repository(both, tmp_path, arch):
    """dnf on an i686 machine ($basearch i386) and on an x86_64 one sees its own
    architecture's packages and the noarch ones, and fetches them through ../../."""
    rpm_arch = facts.architecture(arch)["rpm"]
    listed = dnf(
        tmp_path, both, rpm_arch, "repoquery", "--qf", "%{name}.%{arch}", "kerio-*"
    ).stdout.split()
    assert {n.rsplit(".", 1)[1] for n in listed} == {rpm_arch, "noarch"}, listed
    assert f"kerio-connect-avir-clam.{rpm_arch}" in listed
    fetched = tmp_path / "fetched"
    dnf(
        tmp_path,
        both,
        rpm_arch,
        "install",
        "--downloadonly",
        "-y",
        f"--destdir={fetched}",
        "kerio-avir-debugsource",
    )
    got = list(fetched.glob("*.rpm"))
    assert [f.name for f in got] == [f"kerio-avir-debugsource-{VERSION}-{RELEASE}.noarch.rpm"]
    assert got[0].read_bytes() == (both / got[0].name).read_bytes()


def test_checksums_cover_both_architectures(both):
    sums = {
        line.split()[1]: line.split()[0] for line in (both / "SHA256SUMS").read_text().splitlines()
    }
    for arch in facts.architectures():
        for name in expected_files(arch):
            assert sums[name] == hashlib.sha256((both / name).read_bytes()).hexdigest()
    for a in facts.architectures().values():
        assert f"dists/stable/main/binary-{a['deb']}/Packages" in sums
        assert f"yum/{a['yum_basearch']}/repodata/repomd.xml" in sums


def test_i386_packages_are_the_same_bytes_when_packaged_alone(both, tmp_path):
    package(tmp_path, "i386")
    alone = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".deb", ".rpm"))
    assert alone and not [n for n in alone if "amd64" in n or "x86_64" in n]
    for name in expected_files("i386"):
        assert (tmp_path / name).read_bytes() == (both / name).read_bytes(), name


def test_rpmlint_is_clean_for_the_x86_64_rpms(both, tmp_path):
    log = tmp_path / "lint.log"
    found = lint.lint(both.glob("*.x86_64.rpm"), log)
    assert found == [], lint.report(found, log)


def session_calls(function: str) -> list:
    """[(callee, literal args, keyword names)] of the calls in one noxfile function."""
    tree = ast.parse((paths.ROOT / "noxfile.py").read_text())
    body = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == function)
    return [
        (
            getattr(c.func, "id", ""),
            [a.value for a in c.args if isinstance(a, ast.Constant)],
            {k.arg: ast.unparse(k.value) for k in c.keywords},
        )
        for c in ast.walk(body)
        if isinstance(c, ast.Call)
    ]


@pytest.mark.parametrize("function", ["package", "tests"])
def test_the_package_and_release_sessions_package_every_architecture(function):
    """`nox -s package` and `nox -s tests` build every architecture and package them all
    into dist/packages/ (release does the same in avkit: `avkit release --all`)."""
    calls = session_calls(function)
    packs = [args for callee, args, _ in calls if callee == "avkit" and args[:1] == ["package"]]
    assert packs and all(args[1:3] == ["--arch", "all"] for args in packs), packs
    builds = [kw for callee, _, kw in calls if callee == "build"]
    assert builds and all(kw.get("archs") == "ARCHS" for kw in builds), builds


def test_arch_all_is_every_architecture_in_the_tables_order():
    from avkit.commands.main_package import selected_archs

    every = list(facts.architectures())
    assert selected_archs(None) == [facts.default_arch()]
    assert selected_archs(["all"]) == every
    assert selected_archs(list(reversed(every)) + every) == every
