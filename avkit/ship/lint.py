"""lintian and rpmlint over built packages with the project's overrides and filters
(packaging/lintian-overrides*, packaging/rpmlint.toml).

What is wrong (an error, a warning, an override or filter that no longer matches) is
returned, one line each; everything the linters said, with lintian's explanation of
every tag, goes to a log file, named where a finding is reported, so a failure prints
the tags and not a page of explanations per tag."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from avkit import paths, prereqs

RPMLINT_CONFIG = paths.PACKAGING / "rpmlint.toml"
#: lintian lines that are findings: errors, warnings, and overrides that match nothing.
LINTIAN_FINDING = re.compile(r"^[EW]: |unused-override|mismatched-override")
RPMLINT_FINDING = re.compile(r": [EW]: ")
RPMLINT_CLEAN = re.compile(r"\b0 errors, 0 warnings\b")


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return r.stdout + r.stderr


def lintian_findings(debs: list[Path], log) -> list[str]:
    out = _run(
        ["lintian", "--no-cfg", "--fail-on", "none", "--info", "--show-overrides", *map(str, debs)]
    )
    log.write(f"$ lintian --info --show-overrides ({len(debs)} .debs)\n{out}\n")
    return [line for line in out.splitlines() if LINTIAN_FINDING.search(line)]


def rpmlint_config(folder: Path, licenses: list[str]) -> Path:
    """packaging/rpmlint.toml, or a folder of it and more valid licenses (an author's):
    rpmlint merges the lists of every file of a configuration folder."""
    if not licenses:
        return RPMLINT_CONFIG
    shutil.copy(RPMLINT_CONFIG, folder / "rpmlint.toml")
    (folder / "author.toml").write_text(f"ValidLicenses = {json.dumps(licenses)}\n")
    return folder


def rpmlint_findings(
    rpms: list[Path], log, rpm_home: Path | None = None, licenses: Iterable[str] = ()
) -> list[str]:
    env = dict(os.environ, HOME=str(rpm_home)) if rpm_home else None
    with tempfile.TemporaryDirectory(prefix="avkit-rpmlint-") as tmp:
        config = rpmlint_config(Path(tmp), list(licenses))
        out = _run(["rpmlint", "-c", str(config), *map(str, rpms)], env=env)
    log.write(f"$ rpmlint -c {RPMLINT_CONFIG} ({len(rpms)} .rpms)\n{out}\n")
    found = [line for line in out.splitlines() if RPMLINT_FINDING.search(line)]
    if not found and not RPMLINT_CLEAN.search(out):
        found.append(f"rpmlint did not report 0 errors, 0 warnings: {out.strip()[-300:]}")
    return found


def lint(
    files: Iterable[Path], log: Path, rpm_home: Path | None = None, licenses: Iterable[str] = ()
) -> list[str]:
    """The findings of lintian (.debs) and rpmlint (.rpms) over files; their whole output
    in log. licenses: SPDX identifiers valid besides the project's (an author's)."""
    files = sorted(files)
    debs = [f for f in files if f.suffix == ".deb"]
    rpms = [f for f in files if f.suffix == ".rpm"]
    prereqs.require_commands(*(["lintian"] if debs else []), *(["rpmlint"] if rpms else []))
    log.parent.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    with log.open("w") as f:
        if debs:
            found += lintian_findings(debs, f)
        if rpms:
            found += rpmlint_findings(rpms, f, rpm_home, licenses)
    return found


def report(found: list[str], log: Path) -> str:
    """The findings, then where the linters' whole output and explanations are."""
    return "\n".join(
        [*found, f"(lintian's and rpmlint's whole output, with the explanation of each tag: {log})"]
    )
