"""Staging: the stripped artifacts in dist/<target>/ and their debug info by build-id."""
import shutil
from pathlib import Path

from avkit import elf, facts, prereqs
from avkit.errors import UserError


def built_artifacts(build_dir: Path, pattern: str = "*/"):
    """The files a release ships: every avir_*.so and the avhost program."""
    found = sorted(build_dir.glob(f"{pattern}avir_*.so"))
    found += sorted(p for p in build_dir.glob(f"{pattern}avhost") if p.is_file())
    return found


#: mixed into the recomputed build-id; any fixed string would do
BUILD_ID_SEED = "kerio-avir-plugins"


def rewrite_debug_paths(path: Path, rewrites) -> None:
    """Renames folders in the debug info of `path` (base -> canonical) and recomputes its
    build-id over the result. For what the compiler flags cannot reach: zig compiles its
    runtime with flags of its own, so the folder it ran in (cmake/zig/zig-driver.py) is
    renamed here. lld's build-id covered the old name; with a seed debugedit recomputes
    it even when a file had nothing to rename, from the file's content alone."""
    for base, canonical in rewrites:
        prereqs.run_quiet(["debugedit", "--base-dir", base, "--dest-dir", canonical, path])
    if rewrites:
        prereqs.run_quiet(["debugedit", "--build-id", "--build-id-seed", BUILD_ID_SEED, path])


def stage(build_dir: Path, out: Path, artifacts=None, rewrites=()) -> Path:
    """rewrites: (folder, canonical name) pairs for rewrite_debug_paths."""
    out.mkdir(parents=True, exist_ok=True)
    for src in built_artifacts(build_dir) if artifacts is None else artifacts:
        dest = out / src.name
        if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
            continue
        linked = dest.with_suffix(dest.suffix + ".linked")
        shutil.copy2(src, linked)  # the build tree's file stays as the linker wrote it
        rewrite_debug_paths(linked, rewrites)
        build_id = elf.build_id(linked)
        if not build_id:
            raise UserError(f"{src} has no build-id; link it with --build-id")
        debug = Path(facts.debug_file(build_id, out / "debug"))
        debug.parent.mkdir(parents=True, exist_ok=True)
        prereqs.run_quiet(["objcopy", "--only-keep-debug", linked, debug])
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        prereqs.run_quiet(["objcopy", "--strip-unneeded", "--remove-section=.comment", linked, tmp])
        shutil.copystat(src, tmp)
        previous = elf.build_id(dest) if dest.exists() else build_id
        tmp.replace(dest)
        linked.unlink()
        if previous and previous != build_id:  # the last build's debug file belongs to no staged file
            Path(facts.debug_file(previous, out / "debug")).unlink(missing_ok=True)
    return out
