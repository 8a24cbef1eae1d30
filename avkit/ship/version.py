"""The project's version, decided in one place: every package, the SBOM, the copyright
files and the release notes read it from here (packages.py and components.py both do,
so neither imports the other for it)."""

import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from avkit import paths
from avkit.errors import UserError

#: in a source archive (not in git): the version the archive was made of, for a build
#: without .git
ARCHIVE_VERSION_FILE = ".version"


def git(*args: str, root: Path = paths.ROOT) -> str:
    """git's output in root's repository, stripped; "" when git fails (no repository)."""
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def project_version(root: Path = paths.ROOT) -> str:
    """VERSION (the last release) for a tagged release (tag VERSION or vVERSION on HEAD),
    else the snapshot VERSION+git<commit time, UTC>.<hash>, which sorts after that release
    and before the next one in dpkg and in every rpm (rpm before 4.10 cannot order a
    tilde). It reads HEAD only, no history: a shallow clone gives the same version.
    AVKIT_VERSION overrides both."""
    if os.environ.get("AVKIT_VERSION"):
        return os.environ["AVKIT_VERSION"]
    base = (root / "VERSION").read_text().strip()
    tags = git("tag", "--points-at", "HEAD", root=root).split()
    if base in tags or f"v{base}" in tags:
        return base
    sha, ct = git("rev-parse", "HEAD", root=root), git("log", "-1", "--format=%ct", root=root)
    if not sha or not ct:
        # An unpacked source archive: the version it was released as (release.py writes
        # it into the archive), else the bare VERSION.
        archived = root / ARCHIVE_VERSION_FILE
        return archived.read_text().strip() if archived.is_file() else base
    # Seven hex digits whatever the clone holds (--short grows with the object count), and
    # short enough for lintian's limit on a .deb's file name.
    when = datetime.fromtimestamp(int(ct), tz=timezone.utc)
    return f"{base}+git{when.strftime('%Y%m%d%H%M%S')}.{sha[:7]}"


def check_version(version: str) -> None:
    """A version every dpkg and rpm orders alike (dpkg's own rules are wider)."""
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+]*", version):
        raise UserError(
            f"version {version!r}: use digits, letters, '.' and '+' only, "
            f"starting with a digit (a '~' or '-' is not ordered by rpm 4.8 of "
            f"CentOS 6, or splits version and release)"
        )
