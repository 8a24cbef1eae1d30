"""The pinned zig of the active environment: where its package is, its version, and
the canonical folder its sources are named by in the shipped debug info."""
import functools
import subprocess
from pathlib import Path

from avkit import paths

#: the zig wrappers CMake uses (cmake/zig/); the cache is warmed through the same one
CXX = paths.ROOT / "cmake" / "zig" / "zig-c++"


@functools.lru_cache(maxsize=None)
def package_dir(python: str) -> Path:
    """The ziglang package folder as zig itself sees it (symlinks resolved): the folder
    zig's runtime is compiled in (see cmake/zig/zig-driver.py)."""
    out = subprocess.run([python, "-c", "import ziglang, pathlib; "
                          "print(pathlib.Path(ziglang.__file__).resolve().parent)"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@functools.lru_cache(maxsize=None)
def version(python: str) -> str:
    out = subprocess.run([package_dir(python) / "zig", "version"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def debug_source_dir(python: str) -> str:
    """The ziglang package folder's name in the debug info: its lib/ holds every source
    zig's runtime is built from (the same prefix api/KerioPlugin.cmake maps lib/ to)."""
    return f"/usr/src/debug/zig-{version(python)}"
