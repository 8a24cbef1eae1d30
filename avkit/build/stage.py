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


def stage(build_dir: Path, out: Path, artifacts=None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for src in built_artifacts(build_dir) if artifacts is None else artifacts:
        dest = out / src.name
        if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
            continue
        build_id = elf.build_id(src)
        if not build_id:
            raise UserError(f"{src} has no build-id; link it with --build-id")
        debug = Path(facts.debug_file(build_id, out / "debug"))
        debug.parent.mkdir(parents=True, exist_ok=True)
        prereqs.run_quiet(["objcopy", "--only-keep-debug", src, debug])
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        prereqs.run_quiet(["objcopy", "--strip-unneeded", "--remove-section=.comment", src, tmp])
        shutil.copystat(src, tmp)
        tmp.replace(dest)
    return out
