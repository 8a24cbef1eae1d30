"""Where the linked components come from, and their versions: the ziglang wheel (zig,
LLVM's libc++ and friends, glibc's headers and libc_nonshared sources) and the Boost
package pinned by conan.lock. Nothing here reads a plugin."""

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.errors import UserError


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def zig_folder() -> Path:
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the ziglang package is not installed here: run in the tools "
            "environment (./nox -s release, or .tools/venv/bin/python -m avkit)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def zig_version() -> str:
    return importlib.metadata.version("ziglang")


def zig_executable() -> Path:
    return zig_folder() / ("zig.exe" if os.name == "nt" else "zig")


def llvm_version() -> str:
    """libc++'s version as zig ships it: _LIBCPP_VERSION XXYYZZ -> XX.YY.ZZ."""
    config = (zig_folder() / "lib" / "libcxx" / "include" / "__config").read_text()
    m = re.search(r"#\s*define\s+_LIBCPP_VERSION\s+(\d+)", config)
    if not m:
        raise UserError("no _LIBCPP_VERSION in zig's lib/libcxx/include/__config")
    v = int(m.group(1))
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


GLIBC_ABILISTS = "lib/libc/glibc/abilists"
GLIBC_VERSION_HOW = (
    f"the newest glibc release in zig's {GLIBC_ABILISTS} (zig updates its glibc headers and "
    f"libc_nonshared sources and that list from the same glibc release); the plugins are "
    f"built against them for the older glibc of their target (-target <arch>-linux-gnu.<floor>, "
    f"zig passes -D__GLIBC_MINOR__=<floor>)"
)


def parse_abilists(data: bytes) -> list[tuple[int, int, int]]:
    """The glibc versions of zig's abilists file, in its order (oldest first). Its head is
    a count of library names, the names (NUL-terminated), a count of versions, then each
    version as three bytes: major, minor, patch."""
    try:
        at = 1
        for _ in range(data[0]):
            at = data.index(b"\0", at) + 1
        count = data[at]
        start = at + 1
        return (
            [
                (data[start + 3 * i], data[start + 3 * i + 1], data[start + 3 * i + 2])
                for i in range(count)
            ]
            if len(data) >= start + 3 * count
            else []
        )
    except (IndexError, ValueError):
        return []


@functools.lru_cache(maxsize=None)
def glibc_version() -> str:
    """The glibc release zig's glibc pieces come from (see GLIBC_VERSION_HOW)."""
    path = zig_folder() / GLIBC_ABILISTS
    versions = parse_abilists(path.read_bytes()) if path.is_file() else []
    if not versions:
        raise UserError(
            f"cannot read the glibc versions of {path}: the SBOM needs glibc's "
            f"version for the glibc parts zig links into the plugins"
        )
    major, minor, patch = max(versions)
    return f"{major}.{minor}" + (f".{patch}" if patch else "")


def boost_reference() -> str:
    """boost/<version>#<revision> from conan.lock."""
    lock = json.loads((paths.ROOT / "conan.lock").read_text())
    for ref in lock["requires"]:
        if ref.startswith("boost/"):
            return ref.split("%")[0]
    raise UserError("conan.lock has no boost reference: run ./nox -s lock")


def boost_version() -> str:
    return boost_reference().split("/", 1)[1].split("#")[0]


def boost_source() -> dict[str, Any]:
    """The pinned wheel of Boost's version, from the recipe's conandata.yml."""
    import yaml  # conan's own dependency, in the tools environment

    data = yaml.safe_load(
        (paths.ROOT / "conan" / "index" / "recipes" / "boost" / "all" / "conandata.yml").read_text()
    )
    return data["sources"][boost_version()]


def boost_package_folder() -> Path:
    """The Boost package in the Conan cache (its package id is cleared: one for all)."""
    ref = boost_reference() + ":da39a3ee5e6b4b0d3255bfef95601890afd80709"
    # The Conan home the build uses (avkit/build/tools.py), with this environment's conan.
    env = dict(os.environ, CONAN_HOME=str((paths.CACHE / "conan").resolve()))
    conan = (
        shutil.which(
            "conan", path=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        )
        or "conan"
    )
    r = subprocess.run([conan, "cache", "path", ref], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(
            f"Boost {ref} is not in the Conan cache: build first "
            f"(./nox -s build-i386): {r.stderr.strip()[-300:]}"
        )
    return Path(r.stdout.strip())
