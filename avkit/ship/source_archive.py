"""The release's source archive: `git archive` of HEAD, gzip'd reproducibly.

git archive of a commit is already deterministic (every entry has the commit's time,
fixed owner and mode, the commit id in the pax header); gzip's own header would add
the time and a file name, so it is written with mtime 0 and no name. Two runs on one
commit give the same bytes. Only what is committed goes in: a dirty tree is recorded
by the provenance, not archived.
"""

import gzip
import subprocess
from pathlib import Path

from avkit import paths
from avkit.errors import UserError


def write(
    out: Path, prefix: str, commit: str = "HEAD", extra: dict[str, str] | None = None
) -> Path:
    """extra: {path in the archive: text} added beside the commit's files (git archive
    --add-virtual-file: same time and mode as the rest, so still reproducible)."""
    added = [
        f"--add-virtual-file={prefix}/{name}:{text}" for name, text in sorted((extra or {}).items())
    ]
    r = subprocess.run(
        [
            "git",
            "-C",
            str(paths.ROOT),
            "archive",
            "--format=tar",
            f"--prefix={prefix}/",
            *added,
            commit,
        ],
        capture_output=True,
    )
    if r.returncode != 0:
        raise UserError(f"git archive failed: {r.stderr.decode(errors='replace').strip()}")
    with open(out, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
            gz.write(r.stdout)
    return out
