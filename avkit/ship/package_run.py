"""What `avkit package` reports (a short summary: what, where, how long, what was signed
with which key), its lint step (explanations in a log beside the output folder) and an
author's inputs (plugin files and their components file)."""

import sys
from pathlib import Path

from avkit.errors import UserError
from avkit.ship import author as authors, lint
from avkit.ship.packages import Packaged, plugin_arch


def authors_inputs(plugins: list[Path], components: Path | None, out: Path | None) -> tuple:
    """(output folder, architectures, plugin files, author) of an author's run: in the
    folder it runs in, nothing of this repository's dist/."""
    if not components:
        raise UserError(
            "--plugin needs --components: the JSON file with your project, "
            "components and licenses (docs/author.md, 'Packaging your own plugin')"
        )
    missing = [str(p) for p in plugins if not p.is_file()]
    if missing:
        raise UserError(
            f"no plugin file {', '.join(missing)}: build it first "
            f"(avkit plugin <folder> [--arch x86_64])"
        )
    archs = [plugin_arch(p) for p in plugins]
    return (
        out or Path.cwd() / "packages",
        archs,
        [p.resolve() for p in plugins],
        authors.read(components),
    )


def lint_step(done: Packaged, licenses: list[str]) -> int:
    """lintian and rpmlint over the packages; their explanations only in the log."""
    log = lint_log(done.out)
    found = lint.lint(done.built, log, licenses=licenses)
    if found:
        print(f"lint: {len(found)} findings:\n{lint.report(found, log)}", file=sys.stderr)
        return 1
    print(f"lint: lintian and rpmlint clean ({len(done.built)} packages; log: {log})")
    return 0


def lint_log(out: Path) -> Path:
    """Beside the output folder, not in it: that folder is what is published."""
    return out.parent / f"{out.name}-lint.log"


def summary(done: Packaged, archs: list[str], seconds: float, repo: bool) -> str:
    """What was built, where, how long, and what was signed with which key (or that
    nothing was)."""
    debs = sum(1 for f in done.built if f.suffix == ".deb")
    rpms = [f for f in done.built if f.suffix == ".rpm"]
    lines = [
        f"packaged {debs} .deb and {len(rpms)} .rpm ({', '.join(archs)}) into "
        f"{done.out}/ in {seconds:.0f} s"
        + ("; apt (dists/) and yum (yum/<basearch>/) repositories" if repo else "")
        + "; SHA256SUMS"
    ]
    if done.fingerprint:
        signed = [
            f"{len(done.signed_rpms)} of {len(rpms)} .rpm",
            *(str(f.relative_to(done.out)) for f in done.signatures),
        ]
        lines.append(
            f"signed with key {done.fingerprint}: {', '.join(signed)} "
            f"(the .debs through the signed Release)"
        )
    else:
        lines.append(
            "NOT signed (no --sign-key nor AVKIT_SIGNING_KEY): the .rpms, the "
            "repositories and SHA256SUMS carry no signature"
        )
    return "\n".join(lines)
