"""The build itself: headers that refuse a wrong ABI, the sample folder building
on its own as a plugin author uses it, the pinned Boost source, the staged output."""
import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import elf, facts, paths

ROOT = paths.ROOT
VENV_BIN = Path(sys.executable).parent


def compile_header(compiler, flags, header="avPlugin.h"):
    return subprocess.run([compiler, *flags, "-fsyntax-only", "-I", ROOT / "api", "-x",
                           "c++" if compiler == "g++" else "c", ROOT / "api" / header],
                          capture_output=True, text=True)


@pytest.mark.parametrize("compiler,std", [("gcc", "-std=c11"), ("g++", "-std=c++17")])
def test_headers_compile_for_i386_in_c_and_cxx(compiler, std):
    result = compile_header(compiler, ["-m32", std, "-Wall", "-Wextra", "-Werror"])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("compiler", ["gcc", "g++"])
def test_headers_refuse_a_64_bit_build(compiler):
    result = compile_header(compiler, ["-m64"], header="avApi.h")
    assert result.returncode != 0
    assert "32-bit (i386) plugins only" in result.stderr


def cmake(*args, cwd=None):
    return subprocess.run([VENV_BIN / "cmake", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def copy_sample_kit(tmp_path):
    """What a plugin author copies: sample/ and api/, side by side."""
    for folder in ("sample", "api"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path / "sample"


def test_sample_folder_builds_on_its_own_with_the_gcc_toolchain(tmp_path):
    src = copy_sample_kit(tmp_path)
    toolchain = ROOT / "cmake" / "toolchains" / "gcc-m32.cmake"
    configure = cmake("-S", src, "-B", tmp_path / "b", "-G", "Ninja",
                      f"-DCMAKE_MAKE_PROGRAM={VENV_BIN / 'ninja'}",
                      f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DKERIO_WERROR=ON")
    assert configure.returncode == 0, configure.stdout + configure.stderr
    built = cmake("--build", tmp_path / "b")
    assert built.returncode == 0, built.stdout + built.stderr
    plugin = tmp_path / "b" / "avir_sample.so"
    assert elf.header(plugin) == {"class": 32, "machine": "EM_386", "type": "ET_DYN"}
    assert elf.exported_symbols(plugin) == ["get_plugin_extended_iface"]


def test_sample_folder_refuses_a_64_bit_compiler_with_a_way_out(tmp_path):
    src = copy_sample_kit(tmp_path)
    configure = cmake("-S", src, "-B", tmp_path / "b", "-G", "Ninja",
                      f"-DCMAKE_MAKE_PROGRAM={VENV_BIN / 'ninja'}")
    assert configure.returncode != 0
    message = " ".join((configure.stdout + configure.stderr).split())
    assert "32-bit (i386) plugins only" in message
    assert "gcc-m32.cmake" in message


def load_boost_recipe():
    path = ROOT / "conan" / "index" / "recipes" / "boost" / "all" / "conanfile.py"
    spec = importlib.util.spec_from_file_location("boost_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_boost_recipe_refuses_headers_with_another_checksum(tmp_path):
    from conan.errors import ConanException

    recipe = load_boost_recipe()
    fake = tmp_path / "boost_headers-1.85.0.post1-py3-none-any.whl"
    fake.write_bytes(b"not the pinned wheel")
    with pytest.raises(ConanException, match="does not match the pinned"):
        recipe.BoostHeadersConan._verify(str(fake), "0" * 64)


def test_lockfile_pins_the_boost_recipe_revision():
    lock = (ROOT / "conan.lock").read_text()
    assert '"boost/1.85.0#' in lock


@pytest.mark.parametrize("toolchain", ["zig", "gcc"])
def test_staged_plugins_are_stripped_with_debug_info_by_build_id(toolchain):
    plugins = sorted(paths.dist_dir(toolchain).glob("avir_*.so"))
    assert plugins, f"nothing built in {paths.dist_dir(toolchain)}"
    for plugin in plugins:
        build_id = elf.build_id(plugin)
        assert len(build_id) == 40, f"{plugin.name}: expected a sha1 build-id, got {build_id!r}"
        debug = Path(facts.debug_file(build_id, paths.dist_dir(toolchain) / "debug"))
        assert debug.is_file(), f"{plugin.name}: no split debug file {debug}"
        assert elf.build_id(debug) == build_id
        sections = subprocess.run(["readelf", "-SW", plugin], capture_output=True, text=True).stdout
        assert ".symtab" not in sections and ".debug_info" not in sections, plugin.name
        debug_sections = subprocess.run(["readelf", "-SW", debug], capture_output=True,
                                        text=True).stdout
        assert ".debug_info" in debug_sections


def test_every_nox_session_says_what_it_does():
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = [f for f in tree.body if isinstance(f, ast.FunctionDef)
                and any("session" in ast.unparse(d) for d in f.decorator_list)]
    assert {"build_i386", "tests"} <= {f.name for f in sessions}
    for f in sessions:
        doc = ast.get_docstring(f)
        assert doc and len(doc.splitlines()) == 1, f"session {f.name} needs a one-line docstring"
