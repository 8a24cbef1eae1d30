"""Packages of both architectures from one set of templates: `avkit package --arch i386
--arch x86_64` puts _i386.deb/.i686.rpm and _amd64.deb/.x86_64.rpm of every plugin and
product, with their debug packages, into one folder, its apt and yum metadata and
SHA256SUMS; the i386 packages are the same bytes as when packaged alone.
(tests/test_packages.py checks the packages themselves: contents, scripts, lintian.)"""
import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import facts, paths

VERSION, RELEASE = "1.0.0", "1"
EPOCH = "1764547200"  # 2025-12-01: after every changelog entry


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
    return r


def package(out: Path, *archs: str):
    args = [a for arch in archs for a in ("--arch", arch)]
    return run([sys.executable, "-m", "avkit", "package", *args, "--out", out, "--version",
                VERSION], cwd=paths.ROOT, env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH))


def plugins(arch):
    return sorted(p.name[5:-3] for p in paths.dist_dir("zig", arch=arch).glob("avir_*.so"))


def expected_files(arch):
    a = facts.architecture(arch)
    names = []
    for p in plugins(arch):
        for product in facts.products():
            names += [f"kerio-{product}-avir-{p}_{VERSION}-{RELEASE}_{a['deb']}.deb",
                      f"kerio-{product}-avir-{p}-{VERSION}-{RELEASE}.{a['rpm']}.rpm"]
        names += [f"kerio-avir-{p}-dbgsym_{VERSION}-{RELEASE}_{a['deb']}.deb",
                  f"kerio-avir-{p}-debuginfo-{VERSION}-{RELEASE}.{a['rpm']}.rpm"]
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
    assert built == sorted([n for arch in facts.architectures() for n in expected_files(arch)]
                           + debugsource)


def test_x86_64_packages_name_their_architecture_and_the_64_bit_glibc(both):
    deb = both / f"kerio-connect-avir-clam_{VERSION}-{RELEASE}_amd64.deb"
    rpm = both / f"kerio-connect-avir-clam-{VERSION}-{RELEASE}.x86_64.rpm"
    assert run(["dpkg-deb", "-f", deb, "Architecture"]).stdout.strip() == "amd64"
    assert re.fullmatch(r"libc6 \(>= 2\.\d+\)", run(["dpkg-deb", "-f", deb, "Depends"]).stdout.strip())
    installed = run(["dpkg-deb", "-c", deb]).stdout
    assert f"{facts.plugin_dir('connect')}/avir_clam.so".lstrip("/") in installed
    assert run(["rpm", "-qp", "--qf", "%{ARCH}", rpm]).stdout == "x86_64"
    requires = run(["rpm", "-qp", "--requires", rpm]).stdout.split("\n")
    assert "libc.so.6()(64bit)" in requires and "ld-linux-x86-64.so.2()(64bit)" in requires
    assert not [r for r in requires if r.startswith("lib") and not r.endswith("(64bit)")]
    dbgsym = both / f"kerio-avir-clam-dbgsym_{VERSION}-{RELEASE}_amd64.deb"
    assert run(["dpkg-deb", "-f", dbgsym, "Architecture"]).stdout.strip() == "amd64"


def test_repositories_and_checksums_list_both_architectures(both):
    stanzas = (both / "Packages").read_text().split("\n\n")
    archs = {re.search(r"^Architecture: (\S+)", s, re.M).group(1) for s in stanzas if s.strip()}
    assert archs == {"i386", "amd64", "all"}
    release = (both / "Release").read_text()
    assert re.search(r"^Architectures: all amd64 i386$", release, re.M), release
    primary = subprocess.run(["zcat", *both.glob("repodata/*primary.xml.gz")],
                             capture_output=True, text=True).stdout
    assert "<arch>x86_64</arch>" in primary and "<arch>i686</arch>" in primary
    sums = {line.split()[1]: line.split()[0]
            for line in (both / "SHA256SUMS").read_text().splitlines()}
    for arch in facts.architectures():
        for name in expected_files(arch):
            assert sums[name] == hashlib.sha256((both / name).read_bytes()).hexdigest()


def test_i386_packages_are_the_same_bytes_when_packaged_alone(both, tmp_path):
    package(tmp_path, "i386")
    alone = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".deb", ".rpm"))
    assert alone and not [n for n in alone if "amd64" in n or "x86_64" in n]
    for name in expected_files("i386"):
        assert (tmp_path / name).read_bytes() == (both / name).read_bytes(), name


def test_rpmlint_is_clean_for_the_x86_64_rpms(both):
    rpms = sorted(both.glob("*.x86_64.rpm"))
    r = subprocess.run(["rpmlint", "-c", paths.ROOT / "packaging" / "rpmlint.toml", *rpms],
                       capture_output=True, text=True)
    assert re.search(r"\b0 errors, 0 warnings\b", r.stdout), r.stdout


def session_calls(function: str) -> list:
    """[(callee, literal args, keyword names)] of the calls in one noxfile function."""
    tree = ast.parse((paths.ROOT / "noxfile.py").read_text())
    body = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == function)
    return [(getattr(c.func, "id", ""), [a.value for a in c.args if isinstance(a, ast.Constant)],
             {k.arg: ast.unparse(k.value) for k in c.keywords})
            for c in ast.walk(body) if isinstance(c, ast.Call)]


@pytest.mark.parametrize("function", ["package", "build_test_ship"])
def test_the_package_and_release_sessions_package_every_architecture(function):
    """`nox -s package` and the sessions that ship (tests, release: build_test_ship)
    build every architecture and package them all into dist/packages/."""
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
