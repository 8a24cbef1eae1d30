"""Where things are: the source tree, build trees and the output folder."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Overridable so that two builds (say, two developers' trees) never share one Ninja folder.
BUILD = Path(os.environ.get("AVKIT_BUILD_ROOT", ROOT / "build")).resolve()
DIST = Path(os.environ.get("AVKIT_DIST_ROOT", ROOT / "dist")).resolve()
CACHE = ROOT / ".cache"

#: The output folder of each toolchain: what `nox -s build-i386` leaves behind.
TOOLCHAINS = {
    "zig": "i386",  # release: dist/i386/
    "gcc": "i386-gcc",  # developer cross-check: dist/i386-gcc/
}


SANITIZE_SUFFIX = "-asan"  # ASan+UBSan builds (gcc only) sit beside the plain ones


def _folder(toolchain: str, sanitize: bool) -> str:
    return TOOLCHAINS[toolchain] + (SANITIZE_SUFFIX if sanitize else "")


def dist_dir(toolchain: str = "zig", sanitize: bool = False) -> Path:
    return DIST / _folder(toolchain, sanitize)


def build_dir(toolchain: str = "zig", sanitize: bool = False) -> Path:
    return BUILD / _folder(toolchain, sanitize)
