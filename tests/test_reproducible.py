"""Byte-identical builds anywhere: what a user gets from a fresh clone is what CI built.

The checkout builds as usual (its path, its caches). A second clone of the same commit,
in a folder of another depth, with its own venv and fresh Conan and zig caches, builds
the way users do (`./nox -s build-i386`, `./nox -s build-x86_64`, then `avkit package
--arch all`), and every plugin, debug file and package of both architectures must have
the same sha256. With uncommitted changes the checkout
is not that commit, so two fresh clones of HEAD are compared instead.
"""

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from avkit import elf, facts, paths, toolsenv
from avkit.build import zig

VERSION = (paths.ROOT / "VERSION").read_text().strip()
EPOCH = "1700000000"  # any fixed time: the packages' file dates
#: where the debug info names the sources (api/KerioPlugin.cmake, clam/ and zig's lib/)
PROJECT_SOURCES = "/usr/src/debug/kerio-avir-plugins/"
#: what a user's environment may set that would point a clone at the checkout's
#: tools or caches (or at a build folder outside the clone)
CHECKOUT_ONLY = (
    "VIRTUAL_ENV",
    "KERIO_PYTHON",
    "CONAN_HOME",
    "ZIG_GLOBAL_CACHE_DIR",
    "ZIG_LOCAL_CACHE_DIR",
    "ZIG_LIB_DIR",
    "AVKIT_BUILD_ROOT",
    "AVKIT_DIST_ROOT",
)

pytestmark = pytest.mark.skipif(
    not (paths.ROOT / ".git").exists(), reason="not a git checkout: nothing to clone"
)


def first_difference(a: Path, b: Path) -> str:
    """Where two files differ, in a few words: for ELF files the first section (in file
    order) whose contents differ, else the first differing byte; "" when they do not."""
    da, db = a.read_bytes(), b.read_bytes()
    if da == db:
        return ""
    offset = next((i for i, (x, y) in enumerate(zip(da, db)) if x != y), min(len(da), len(db)))
    where = f"first differing byte at {offset:#x} of {len(da)} and {len(db)} bytes"
    if not (da.startswith(b"\x7fELF") and db.startswith(b"\x7fELF")):
        return where
    with open(a, "rb") as fa, open(b, "rb") as fb:
        sa = {s.name: s for s in ELFFile(fa).iter_sections()}
        sb = {s.name: s for s in ELFFile(fb).iter_sections()}
        if list(sa) != list(sb):
            return f"sections differ: {sorted(set(sa) ^ set(sb)) or 'same names, other order'}"
        for name in sorted(sa, key=lambda n: sa[n]["sh_offset"]):
            if sa[name].data() != sb[name].data():
                return f"section {name or '(null)'} differs; {where}"
        return f"same section contents, other layout or headers; {where}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped(dist_root: Path, packages: Path) -> dict:
    """name -> file: each architecture's staged programs and their debug files, the
    packages and their sums."""
    files = {}
    for arch in facts.architectures():
        folder = facts.architecture(arch)["dist"]["zig"]
        dist = dist_root / folder
        for f in sorted(dist.iterdir()):
            if f.is_file():
                debug = Path(facts.debug_file(elf.build_id(f), dist / "debug"))
                files[f"{folder}/{f.name}"] = f
                files[f"{folder}/{debug.relative_to(dist)}"] = debug
    files.update(
        {
            f"packages/{f.name}": f
            for f in sorted(packages.iterdir())
            if f.suffix in (".deb", ".rpm") or f.name == "SHA256SUMS"
        }
    )
    return files


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
            f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        )
    return r


def user_env() -> dict:
    """A user's environment: none of the checkout's venv, caches or build folders."""
    env = {k: v for k, v in os.environ.items() if k not in CHECKOUT_ONLY}
    env["PATH"] = os.pathsep.join(
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and not Path(p).resolve().is_relative_to(paths.ROOT)
    )
    env["SOURCE_DATE_EPOCH"] = EPOCH
    return env


def head() -> str:
    return run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT).stdout.strip()


def uncommitted() -> str:
    return run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.ROOT).stdout


def build_fresh_clone(clone: Path, commit: str) -> dict:
    """What a user does: clone, `./nox -s build-i386` and `build-x86_64` (its own
    tools environment and .cache), `avkit package --arch all`. Returns what it ships."""
    env = user_env()
    clone.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "--quiet", "--no-checkout", paths.ROOT, clone], env=env)
    # HEAD by name: a CI checkout's HEAD is often on no branch, which a clone lacks
    run(["git", "fetch", "--quiet", paths.ROOT, "HEAD"], cwd=clone, env=env)
    run(["git", "checkout", "--quiet", "--detach", commit], cwd=clone, env=env)
    run([clone / "nox", "-s", "build-i386", "build-x86_64"], cwd=clone, env=env)
    run(
        [
            clone / toolsenv.PYTHON.relative_to(paths.ROOT),
            "-m",
            "avkit",
            "package",
            "--arch",
            "all",
            "--version",
            VERSION,
            "--out",
            clone / "dist" / "packages",
        ],
        cwd=clone,
        env=env,
    )
    return shipped(clone / "dist", clone / "dist" / "packages")


def build_checkout(out: Path) -> dict:
    """The checkout's own build (a no-op after the session's build: same flags), packaged."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    for arch in facts.architectures():
        run(
            [
                sys.executable,
                "-m",
                "avkit",
                "build",
                "--arch",
                arch,
                "--toolchain",
                "zig",
                "--werror",
            ],
            cwd=paths.ROOT,
            env=env,
        )
    run(
        [
            sys.executable,
            "-m",
            "avkit",
            "package",
            "--arch",
            "all",
            "--version",
            VERSION,
            "--out",
            out,
        ],
        cwd=paths.ROOT,
        env=env,
    )
    return shipped(paths.DIST, out)


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    """(folder, shipped files) of two builds of HEAD at paths of different depths."""
    tmp = tmp_path_factory.mktemp("clones")
    commit = head()
    second = tmp / "b" / "c" / "d" / "kerio-avir-plugins"
    if uncommitted():
        first = tmp / "a"
        clones = [first, second]
        builds = [(first, build_fresh_clone(first, commit))]
    else:
        clones = [second]
        builds = [(paths.ROOT, build_checkout(tmp / "packages"))]
    builds.append((second, build_fresh_clone(second, commit)))
    yield builds
    for clone in clones:  # a clone's venv and caches are a gigabyte; its dist/ stays
        for heavy in (".nox", ".tools", ".cache", "build"):
            shutil.rmtree(clone / heavy, ignore_errors=True)


@pytest.mark.timeout(3600)
def test_two_clones_ship_byte_identical_files(two_builds):
    (_, a), (_, b) = two_builds
    assert sorted(a) == sorted(b), "the two builds ship different files"
    for arch in facts.architectures().values():
        folder = arch["dist"]["zig"]
        assert f"{folder}/avir_clam.so" in a
        assert any(n.startswith(f"{folder}/debug/") and n.endswith(".debug") for n in a)
        assert any(n.endswith(f"_{arch['deb']}.deb") for n in a)
        assert any(n.endswith(f".{arch['rpm']}.rpm") for n in a)
    differ = {n: first_difference(a[n], b[n]) for n in sorted(a) if sha256(a[n]) != sha256(b[n])}
    assert not differ, "not byte-identical:\n" + "\n".join(f"  {n}: {d}" for n, d in differ.items())


@pytest.mark.timeout(3600)
def test_shipped_files_name_sources_by_canonical_paths_only(two_builds):
    """No clone, venv or cache folder in a plugin or debug file; the canonical names are
    there instead (Boost's __FILE__ strings even in the stripped plugin)."""
    for folder, files in two_builds:
        cache = str(folder / ".cache").encode()
        elves = {n: f for n, f in files.items() if f.read_bytes()[:4] == b"\x7fELF"}
        for name, f in elves.items():
            data = f.read_bytes()
            for leak in (
                str(folder).encode(),
                cache,
                b"/.cache/conan/",
                b"/.nox/",
                b"/.tools/",
                b"site-packages",
                zig.compilation_dir().encode(),
            ):
                assert leak not in data, f"{name} holds {leak.decode()}"
        sources = set()
        for name, f in elves.items():
            if name.endswith(".debug"):
                sources |= source_files(f)
        canonical = {
            "project": f"{PROJECT_SOURCES}clam/src/",
            "Boost": f"/usr/src/debug/boost-{boost_version()}/boost/asio/",
            "zig": f"/usr/src/debug/zig-{zig.version(sys.executable)}/lib/libcxx/",
        }
        for what, prefix in canonical.items():
            assert any(s.startswith(prefix) for s in sources), f"no {what} source under {prefix}"
        plugin = next(f for n, f in elves.items() if n.endswith("avir_clam.so"))
        assert canonical["Boost"].encode() in plugin.read_bytes()  # __FILE__ in .rodata


def source_files(debug: Path) -> set:
    """The source files the line tables of a debug file name, as full paths."""
    found = set()
    with open(debug, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            top = cu.get_top_DIE().attributes
            comp_dir = top["DW_AT_comp_dir"].value.decode() if "DW_AT_comp_dir" in top else ""
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            dirs = [d.decode() for d in program.header["include_directory"]]
            if program.header["version"] < 5:
                dirs = [comp_dir, *dirs]  # DWARF 4 counts directories from 1
            for entry in program.header["file_entry"]:
                folder = os.path.join(comp_dir, dirs[entry.dir_index])
                found.add(os.path.join(folder, entry.name.decode()))
    return found


def boost_version() -> str:
    lock = (paths.ROOT / "conan.lock").read_text()
    return re.search(r'"boost/([^#"]+)', lock).group(1)


def test_first_difference_names_the_section(tmp_path, dist):
    plugin = dist / "avir_sample.so"
    with open(plugin, "rb") as f:
        rodata = ELFFile(f).get_section_by_name(".rodata")
        at = rodata["sh_offset"] + rodata["sh_size"] // 2
    data = bytearray(plugin.read_bytes())
    data[at] ^= 0xFF
    changed = tmp_path / plugin.name
    changed.write_bytes(bytes(data))
    assert first_difference(plugin, plugin) == ""
    assert first_difference(plugin, changed).startswith("section .rodata differs")
    one, two = tmp_path / "one.deb", tmp_path / "two.deb"
    one.write_bytes(b"abcd")
    two.write_bytes(b"abXd")
    assert first_difference(one, two) == "first differing byte at 0x2 of 4 and 4 bytes"


def test_every_session_builds_with_the_same_flags():
    """Sessions share build/i386 (and the test above shares the checkout's build) only
    when each passes `avkit build` the same flags: other flags reconfigure and relink.
    The architecture is no such flag: each has its own build folder (build/x86_64/)."""
    tree = ast.parse((paths.ROOT / "noxfile.py").read_text())
    builds = []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "avkit":
            literal = [a.value for a in call.args if isinstance(a, ast.Constant)]
            if literal[:1] == ["build"]:
                builds.append(
                    [
                        a
                        for a in literal[1:]
                        if a not in ("--toolchain", "zig", "gcc")
                        and a not in ("--update-lock", "--arch", *facts.architectures())
                    ]
                )
    assert len(builds) >= 2 and all(b == ["--werror"] for b in builds), builds
