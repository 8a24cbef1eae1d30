"""Where things are: the source tree, build trees and the output folder."""

import json
import os
from pathlib import Path

from avkit.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
# Overridable so that two builds (say, two developers' trees) never share one Ninja folder.
BUILD = Path(os.environ.get("AVKIT_BUILD_ROOT", ROOT / "build")).resolve()
DIST = Path(os.environ.get("AVKIT_DIST_ROOT", ROOT / "dist")).resolve()
CACHE = ROOT / ".cache"


def _data(folder: str) -> Path:
    """A data folder of the source tree, or of an installed avkit (pip install .: avkit/_data/)."""
    source = ROOT / folder
    return source if source.is_dir() else Path(__file__).resolve().parent / "_data" / folder


#: the packaging data (nFPM configs, scripts, policy JSON) and the architectures table
PACKAGING = _data("packaging")
ARCH_FILE = _data("cmake") / "architectures.json"

#: zig: the release; gcc: the developer cross-check. Each architecture names the output
#: folder of each (cmake/architectures.json): dist/i386/, dist/i386-gcc/, dist/x86_64/...
TOOLCHAINS = ("zig", "gcc")


SANITIZE_SUFFIX = "-asan"  # ASan+UBSan builds (gcc only) sit beside the plain ones


def folder(toolchain: str = "zig", arch: str = None) -> str:
    """The output folder name of a toolchain for an architecture (default: the default one).
    Read here, not through facts (which reads its files through this module): the table
    is checked against its schema when facts loads it."""
    table = json.loads(ARCH_FILE.read_text())
    name = arch or table["default"]
    if name not in table["architectures"]:
        raise UserError(
            f"{ARCH_FILE}: no architecture {name!r}: {', '.join(table['architectures'])}"
        )
    return table["architectures"][name]["dist"][toolchain]


def _folder(toolchain: str, sanitize: bool, arch: str = None) -> str:
    return folder(toolchain, arch) + (SANITIZE_SUFFIX if sanitize else "")


def dist_dir(toolchain: str = "zig", sanitize: bool = False, arch: str = None) -> Path:
    return DIST / _folder(toolchain, sanitize, arch)


def build_dir(toolchain: str = "zig", sanitize: bool = False, arch: str = None) -> Path:
    return BUILD / _folder(toolchain, sanitize, arch)
