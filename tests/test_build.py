"""The build itself: headers that refuse a wrong ABI, the sample folder building
on its own as a plugin author uses it, the pinned Boost source, the staged output."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avkit import elf, facts, paths

ROOT = paths.ROOT
VENV_BIN = Path(sys.executable).parent


def compile_header(compiler, flags, header="avPlugin.h"):
    return subprocess.run(
        [
            compiler,
            *flags,
            "-fsyntax-only",
            "-I",
            ROOT / "api",
            "-x",
            "c++" if compiler == "g++" else "c",
            ROOT / "api" / header,
        ],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("flag", ["-m32", "-m64"])
@pytest.mark.parametrize("compiler,std", [("gcc", "-std=c11"), ("g++", "-std=c++17")])
def test_headers_compile_for_i386_and_x86_64_in_c_and_cxx(compiler, std, flag):
    result = compile_header(compiler, [flag, std, "-Wall", "-Wextra", "-Werror"])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("compiler", ["gcc", "g++"])
def test_headers_refuse_x32_whose_pointers_no_avserver_has(compiler):
    """x86_64 with 4-byte pointers: neither product's layout."""
    result = compile_header(compiler, ["-mx32"], header="avApi.h")
    assert result.returncode != 0
    assert "loads i386 or x86_64 (LP64) plugins only" in result.stderr


def test_headers_refuse_another_machine():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "aarch64-linux-gnu",
            "-fsyntax-only",
            "-I",
            ROOT / "api",
            "-x",
            "c",
            ROOT / "api" / "avApi.h",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "loads i386 or x86_64 (LP64) plugins only" in result.stderr


def cmake(*args, cwd=None):
    return subprocess.run(
        [VENV_BIN / "cmake", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def copy_sample_kit(tmp_path):
    """What a plugin author copies: sample/ and api/, side by side."""
    for folder in ("sample", "api"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path / "sample"


@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_sample_folder_builds_on_its_own_with_the_gcc_toolchain(tmp_path, arch):
    """One toolchain file for both architectures: KERIO_ARCH selects the flag."""
    src = copy_sample_kit(tmp_path)
    toolchain = ROOT / "cmake" / "toolchains" / "gcc.cmake"
    configure = cmake(
        "-S",
        src,
        "-B",
        tmp_path / "b",
        "-G",
        "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={VENV_BIN / 'ninja'}",
        f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
        f"-DKERIO_ARCH={arch}",
        "-DKERIO_WERROR=ON",
        "-DCMAKE_C_FLAGS=-DAUTHOR_FLAG=1",
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    built = cmake("--build", tmp_path / "b")
    assert built.returncode == 0, built.stdout + built.stderr
    plugin = tmp_path / "b" / "avir_sample.so"
    want = facts.architecture(arch)
    assert elf.header(plugin) == {
        "class": want["elf_class"],
        "machine": want["elf_machine"],
        "type": "ET_DYN",
    }
    assert elf.exported_symbols(plugin) == ["get_plugin_extended_iface"]


def test_an_unknown_architecture_is_refused_naming_the_table(tmp_path):
    src = copy_sample_kit(tmp_path)
    configure = cmake(
        "-S",
        src,
        "-B",
        tmp_path / "b",
        "-G",
        "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={VENV_BIN / 'ninja'}",
        f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'toolchains' / 'gcc.cmake'}",
        "-DKERIO_ARCH=arm64",
    )
    assert configure.returncode != 0
    message = " ".join((configure.stdout + configure.stderr).split())
    assert "KERIO_ARCH=arm64 is not an architecture of cmake/architectures.json" in message


BOOST_RECIPE = ROOT / "conan" / "index" / "recipes" / "boost" / "all"


def test_boost_recipe_refuses_headers_with_another_checksum(tmp_path):
    """The recipe's source() checks the wheel with Conan's check_sha256 against
    conandata.yml before unpacking anything (a copy of the recipe, a wrong wheel)."""
    from avkit.build import tools

    recipe = tmp_path / "boost"
    shutil.copytree(BOOST_RECIPE, recipe, ignore=shutil.ignore_patterns("test_package"))
    fake = tmp_path / "boost_headers-1.85.0.post1-py3-none-any.whl"
    fake.write_bytes(b"not the pinned wheel")
    env = {**tools.environment(), "KERIO_BOOST_WHEEL": str(fake)}
    result = subprocess.run(
        [VENV_BIN / "conan", "source", recipe, "--version", "1.85.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    pinned = yaml.safe_load((BOOST_RECIPE / "conandata.yml").read_text())["sources"]["1.85.0"][
        "sha256"
    ]
    assert "check_sha256" in result.stderr and f"Provided hash: {pinned}" in result.stderr, (
        result.stderr
    )
    assert not (recipe / "include").exists()  # nothing unpacked


@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_boost_test_package_builds_and_runs_an_asio_program(tmp_path, arch):
    """conan test of the recipe's test_package/ against the package already in the
    project's Conan cache (offline), with the release toolchain, for each architecture."""
    from avkit.build import conan

    log = tmp_path / "conan-test.log"
    conan.check_boost_package("zig", arch, tmp_path, log)
    text = log.read_text()
    bits = facts.architecture(arch)["pointer_size"] * 8
    assert f"Boost 1.85.0 Asio ok, {bits}-bit" in text, text[-3000:]


def test_lockfile_pins_the_boost_recipe_revision():
    lock = (ROOT / "conan.lock").read_text()
    assert '"boost/1.85.0#' in lock


@pytest.mark.parametrize("arch", list(facts.architectures()))
@pytest.mark.parametrize("toolchain", ["zig", "gcc"])
def test_staged_plugins_are_stripped_with_debug_info_by_build_id(toolchain, arch):
    dist = paths.dist_dir(toolchain, arch=arch)
    plugins = sorted(dist.glob("avir_*.so"))
    assert plugins, f"nothing built in {dist}"
    want = facts.architecture(arch)
    for plugin in [*plugins, dist / "avhost"]:
        assert elf.header(plugin)["class"] == want["elf_class"], plugin
        assert elf.header(plugin)["machine"] == want["elf_machine"], plugin
    for plugin in plugins:
        build_id = elf.build_id(plugin)
        assert len(build_id) == 40, f"{plugin.name}: expected a sha1 build-id, got {build_id!r}"
        debug = Path(facts.debug_file(build_id, dist / "debug"))
        assert debug.is_file(), f"{plugin.name}: no split debug file {debug}"
        assert elf.build_id(debug) == build_id
        sections = subprocess.run(["readelf", "-SW", plugin], capture_output=True, text=True).stdout
        assert ".symtab" not in sections and ".debug_info" not in sections, plugin.name
        debug_sections = subprocess.run(
            ["readelf", "-SW", debug], capture_output=True, text=True
        ).stdout
        assert ".debug_info" in debug_sections


def test_every_nox_session_says_what_it_does():
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = [
        f
        for f in tree.body
        if isinstance(f, ast.FunctionDef)
        and any("session" in ast.unparse(d) for d in f.decorator_list)
    ]
    assert {"build_i386", "build_x86_64", "tests"} <= {f.name for f in sessions}
    for f in sessions:
        doc = ast.get_docstring(f)
        assert doc and len(doc.splitlines()) == 1, f"session {f.name} needs a one-line docstring"


def test_the_architecture_table_is_validated_when_loaded(tmp_path):
    """A missing or mistyped fact is named with its architecture, before any build uses it."""
    import json
    from avkit.errors import UserError

    table = json.loads(facts.ARCH_FILE.read_text())
    del table["architectures"]["x86_64"]["rpm"]
    broken = tmp_path / "architectures.json"
    broken.write_text(json.dumps(table))
    with pytest.raises(UserError, match="architecture 'x86_64' has no rpm of type str"):
        facts.architectures(broken)
    table = json.loads(facts.ARCH_FILE.read_text())
    table["architectures"]["x86_64"]["dist"] = {"zig": "i386", "gcc": "x86_64-gcc"}
    broken.write_text(json.dumps(table))
    with pytest.raises(UserError, match="two architectures share a dist folder"):
        facts.architectures(broken)
    assert list(facts.architectures()) == ["i386", "x86_64"]


def test_a_build_folder_naming_a_compiler_gone_since_configures_anew(tmp_path):
    """A build folder configured before the compiler wrappers were renamed (gcc-m32/ became
    gcc/) would fail in CMake for good; the build drops its cache and configures anew,
    and leaves alone a cache whose compilers exist."""
    from avkit.build import cmake

    stale = tmp_path / "stale"
    (stale / "CMakeFiles").mkdir(parents=True)
    (stale / "CMakeCache.txt").write_text(
        "CMAKE_C_COMPILER:FILEPATH=/nonexistent/gcc-m32\n"
        f"CMAKE_CXX_COMPILER:FILEPATH={shutil.which('sh')}\n"
    )
    cmake.drop_stale_cmake_cache(stale)
    assert not (stale / "CMakeCache.txt").exists() and not (stale / "CMakeFiles").exists()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "CMakeCache.txt").write_text(f"CMAKE_C_COMPILER:FILEPATH={shutil.which('sh')}\n")
    cmake.drop_stale_cmake_cache(fresh)
    assert (fresh / "CMakeCache.txt").exists()


def test_every_unit_test_source_is_registered_with_ctest():
    """Adding clam/tests/x_test.cpp means one line in its CMakeLists.txt; a test source
    CMake does not know about would never run."""
    sources = sorted(ROOT.glob("*/tests/*_test.cpp"))
    assert len(sources) >= 7, sources
    listed = subprocess.run(
        [VENV_BIN / "ctest", "-N", "--test-dir", paths.build_dir("zig")],
        capture_output=True,
        text=True,
    ).stdout
    for source in sources:
        name = f"{source.parent.parent.name}.{source.stem}"
        assert re.search(rf"Test +#\d+: {re.escape(name)}$", listed, re.M), (name, listed)


def test_fuzz_targets_are_built_by_cmake_and_run(tmp_path):
    """avkit fuzz builds its targets through fuzz/CMakeLists.txt (-DKERIO_FUZZ=ON, clang),
    for the default architecture, and each runs its seed corpus."""
    from avkit.stress import fuzz

    programs = fuzz.build_fuzzers(fuzz.FUZZ_TARGETS)
    assert sorted(programs) == sorted(
        p.name.split("_fuzz.")[0] for p in (ROOT / "fuzz").glob("*_fuzz.c*")
    )
    for target, program in programs.items():
        assert facts.arch_of(elf.header(program)) == facts.default_arch(), program
        found = tmp_path / target  # libFuzzer adds new inputs to its first folder
        found.mkdir()
        run = subprocess.run(
            [program, "-runs=200", found, ROOT / "fuzz" / "corpus" / target],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0 and "Done 200 runs" in run.stderr, run.stderr[-2000:]


def avkit_build(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "avkit", "build", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=1800,
    )


def test_a_warm_build_prints_a_short_summary():
    """Conan's, CMake's and zig's chatter goes to build/i386/build.log; the user reads
    what was built, where, in how long."""
    assert avkit_build("--werror").returncode == 0
    r = avkit_build("--werror")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stderr.splitlines()
    assert r.stdout == "" and len(lines) <= 3, r.stderr
    assert "built into dist/i386/ in " in lines[0] and "nothing to rebuild" in lines[0], lines
    assert "avir_clam.so" in lines[0] and "build/i386/build.log" in r.stderr
    assert "zig: building" not in r.stderr  # nothing was built: no "minutes the first time"
    log = (paths.build_dir("zig") / "build.log").read_text()
    assert "ninja: no work to do" in log and "+ cmake --build" in log


def test_a_failing_build_names_its_log_and_shows_its_end(tmp_path):
    """Every compile fails (a forced include that does not exist): the error says which
    step failed, names the log and shows its last lines, with no traceback."""
    env = {
        **os.environ,
        "AVKIT_BUILD_ROOT": str(tmp_path),
        "CFLAGS": "-include /nonexistent.h",
        "CXXFLAGS": "-include /nonexistent.h",
    }
    r = avkit_build("--werror", env=env)
    assert r.returncode == 1, r.stderr[-3000:]
    log = tmp_path / "i386" / "build.log"
    assert f"its log, {log}:" in r.stderr, r.stderr
    assert "nonexistent.h" in r.stderr  # the log's end, where the compiler said why
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 40, r.stderr


def test_verbose_shows_the_tools_output():
    r = avkit_build("--werror", "-v")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ninja: no work to do" in r.stderr and "+ cmake --build" in r.stderr
