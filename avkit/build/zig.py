"""The pinned zig of the active environment: its version, the folder its runtime is
compiled in, and the canonical folder its sources are named by in the shipped debug info."""
import functools
import importlib.util
import subprocess

from avkit import paths

#: the zig wrappers CMake uses (cmake/zig/); the cache is warmed through the same one
CXX = paths.ROOT / "cmake" / "zig" / "zig-c++"
DRIVER = paths.ROOT / "cmake" / "zig" / "zig-driver.py"


def compilation_dir() -> str:
    """What the debug info of zig's runtime names the folder it was compiled in (the
    driver's COMPILATION_DIR: one string for every clone, renamed when staging)."""
    spec = importlib.util.spec_from_file_location("zig_driver", DRIVER)
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    return driver.COMPILATION_DIR


@functools.lru_cache(maxsize=None)
def version(python: str) -> str:
    out = subprocess.run([python, "-m", "ziglang", "version"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def debug_source_dir(python: str) -> str:
    """zig's package folder in the debug info: its lib/ holds every source zig's runtime
    is built from (the same name api/KerioPlugin.cmake gives lib/ for our compiles)."""
    return f"/usr/src/debug/zig-{version(python)}"
