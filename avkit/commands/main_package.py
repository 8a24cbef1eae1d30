"""`avkit package`: audited plugins -> .deb/.rpm packages, apt and yum repositories, SHA256SUMS."""

import time
from pathlib import Path

from avkit import facts, paths
from avkit.ship import author as authors
from avkit.ship.package_run import authors_inputs, lint_step, summary
from avkit.ship.packages import package


def register(subparsers):
    p = subparsers.add_parser("package", help="build the .deb/.rpm packages (after the audit)")
    p.add_argument(
        "--toolchain",
        choices=paths.TOOLCHAINS,
        default="zig",
        help="whose dist folder to package (default zig, the release)",
    )
    p.add_argument(
        "--arch",
        action="append",
        choices=[*facts.architectures(), "all"],
        help="whose dist folder to package (repeatable: both architectures into one "
        "folder; `all`: every release architecture, as `nox -s package` does; "
        "default: the default architecture, i386)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: <dist>/packages)")
    p.add_argument(
        "--version",
        help="package version (default: VERSION, with a git snapshot suffix unless HEAD is tagged)",
    )
    p.add_argument(
        "--sign-key",
        help="armored OpenPGP secret key file to sign the .rpms, the "
        "apt and yum repositories and SHA256SUMS (or "
        "AVKIT_SIGNING_KEY; passphrase in AVKIT_SIGNING_PASSPHRASE)",
    )
    p.add_argument(
        "--policy",
        help="audit policy the plugins must satisfy (default: the "
        "audit_policy of each plugin's architecture)",
    )
    p.add_argument("--no-repo", action="store_true", help="skip the apt/yum repository metadata")
    p.add_argument(
        "--lint",
        action="store_true",
        help="then run lintian and rpmlint over the packages (their whole output, "
        "with explanations, in <out>-lint.log beside the output folder)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        type=Path,
        help="a plugin author's avir_<name>.so (repeatable: one per architecture), "
        "packaged with --components instead of this repository's plugins "
        "(docs/author.md, 'Packaging your own plugin')",
    )
    p.add_argument(
        "--components",
        type=Path,
        help="with --plugin: the author's project, components and licenses (JSON)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="list every file written, not only the summary"
    )
    p.set_defaults(func=run)


def selected_archs(chosen) -> list[str]:
    """--arch values -> architectures, in cmake/architectures.json's order, each once."""
    if not chosen:
        return [facts.default_arch()]
    every = list(facts.architectures())
    return every if "all" in chosen else [a for a in every if a in chosen]


def run(args) -> int:
    started = time.monotonic()
    if args.plugin:
        out, archs, inputs, author = authors_inputs(args.plugin, args.components, args.out)
    else:
        out, author = args.out or paths.DIST / "packages", None
        archs = selected_archs(args.arch)
        inputs = [paths.dist_dir(args.toolchain, arch=a) for a in archs]
    done = package(
        inputs,
        out,
        version=args.version,
        sign_key=args.sign_key,
        repo=not args.no_repo,
        policy=args.policy,
        author=author,
    )
    print(summary(done, archs, time.monotonic() - started, repo=not args.no_repo))
    if args.verbose:
        print("\n".join(f"  {f.relative_to(out)}" for f in sorted(out.rglob("*")) if f.is_file()))
    return lint_step(done, authors.license_ids(author) if author else []) if args.lint else 0
