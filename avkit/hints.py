"""The one command each hint names ("build it first: ..."), for the clone's dist/ and for
a plugin author's folder. Core, below build/check/ship, because all of them give hints."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from avkit import facts, paths


def _dist_folder_of(path: Path) -> Optional[tuple[Path, str]]:
    """(the folder holding dist/, the dist/<folder> name) for a path under some dist/."""
    path = Path(path).resolve()
    for parent in [path, *path.parents]:
        if parent.parent.name == "dist":
            return parent.parent.parent, parent.name
    return None


def author_folder(plugin: Path) -> Optional[Path]:
    """FOLDER for FOLDER/dist/ARCH/avir_x.so built by `avkit plugin FOLDER` (or this clone)."""
    found = _dist_folder_of(plugin)
    return found[0] if found else None


def _toolchain_arch(folder_name: str) -> tuple[str, str]:
    """dist/<folder> name -> (toolchain, architecture): i386-gcc -> (gcc, i386)."""
    for arch, data in facts.architectures().items():
        for toolchain, name in data.get("dist", {}).items():
            if name == folder_name:
                return toolchain, arch
    return "zig", facts.default_arch()


def build_command(path: Path, arch: Optional[str] = None) -> str:
    """The one command that builds what `path` (a plugin, avhost) should be, for every
    hint that says "build it": ./nox -s build-ARCH in this clone for this clone's dist/,
    `avkit plugin FOLDER` for an author's folder (FOLDER/dist/ARCH/)."""
    found = _dist_folder_of(path)
    if found is None:
        return f"avkit plugin YOUR_FOLDER --arch {arch or facts.default_arch()}"
    owner, name = found
    toolchain, dist_arch = _toolchain_arch(name)
    arch = arch or dist_arch
    if owner == paths.DIST.parent or owner == paths.ROOT:
        gcc = " -- --toolchain gcc" if toolchain == "gcc" else ""
        return f"cd {paths.ROOT} && ./nox -s build-{arch}{gcc}"
    flags = (f" --arch {arch}" if arch != facts.default_arch() else "") + (
        " --toolchain gcc" if toolchain == "gcc" else ""
    )
    return f"avkit plugin {owner}{flags}"


def avhost_command(arch: Optional[str] = None) -> str:
    """avhost is built with this clone's plugins: the one command that builds it."""
    return f"cd {paths.ROOT} && ./nox -s build-{arch or facts.default_arch()}"
