"""`avkit release`: the release artifacts (source archive, SBOM, provenance, notes,
packages with their signed repositories, the public key, SHA256SUMS and its signature)
in dist/release/, after `avkit package`. `--all` does what `nox -s release` does: the
checks, both builds, the audit, the packages, then the release; `--preflight` only the
checks (placeholders, key, clean tree, changelog), which every run does first."""

import argparse
import subprocess
import sys
from pathlib import Path

from avkit import facts, paths
from avkit.commands.main_package import selected_archs
from avkit.ship.release import preflight, release


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("release", help="write the release artifacts (after package)")
    p.add_argument(
        "--toolchain",
        choices=sorted(paths.TOOLCHAINS),
        default="zig",
        help="whose dist folder is released (default zig)",
    )
    p.add_argument(
        "--arch",
        action="append",
        choices=[*facts.architectures(), "all"],
        help="whose plugins the release describes (repeatable; default: all, "
        "every release architecture, as `nox -s release` packages them)",
    )
    p.add_argument(
        "--packages",
        type=Path,
        help="the packages to publish (default: dist/packages, what `avkit package` wrote)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: dist/release)")
    p.add_argument(
        "--version",
        help="version (default: the tag's, or VERSION with a "
        "snapshot suffix; packages of another are refused)",
    )
    p.add_argument(
        "--sign-key",
        help="armored OpenPGP secret key file that signed the "
        "packages and signs SHA256SUMS (or AVKIT_SIGNING_KEY; "
        "required for a tagged release)",
    )
    p.add_argument(
        "--key-checked-later",
        action="store_true",
        help="with --preflight, in a CI job without the key: skip the check "
        "that a tagged release has one (the signing job, which has the "
        "key, makes it)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--preflight",
        action="store_true",
        help="only check that the release may be cut (nothing is built)",
    )
    mode.add_argument(
        "--all",
        action="store_true",
        help="check, build both architectures, audit, package (signed), then "
        "release: what `nox -s release` runs",
    )
    p.set_defaults(func=run)


def avkit(*args: str) -> None:
    """A step of --all, as its own avkit command (what the nox sessions run)."""
    print(f"avkit release --all: python -m avkit {' '.join(args)}", file=sys.stderr, flush=True)
    r = subprocess.run([sys.executable, "-m", "avkit", *args], cwd=paths.ROOT)
    if r.returncode != 0:
        raise SystemExit(r.returncode)


def build_and_package(args: argparse.Namespace, archs: list[str], version: str) -> None:
    for arch in archs:
        avkit("build", "--arch", arch, "--toolchain", args.toolchain, "--werror")
    avkit("audit")
    key = ["--sign-key", args.sign_key] if args.sign_key else []
    arch_args = [a for arch in archs for a in ("--arch", arch)]
    out = ["--out", str(args.packages)] if args.packages else []
    avkit("package", *arch_args, "--toolchain", args.toolchain, "--version", version, *key, *out)


def run(args: argparse.Namespace) -> int:
    version = preflight(
        args.version, args.sign_key, key_checked_later=args.preflight and args.key_checked_later
    )
    if args.preflight:
        return 0
    out = args.out or paths.DIST / "release"
    archs = selected_archs(args.arch or ["all"])
    if args.all:
        build_and_package(args, archs, version)
    files = release(
        [paths.dist_dir(args.toolchain, arch=a) for a in archs],
        args.packages or paths.DIST / "packages",
        out,
        version=version,
        sign_key=args.sign_key,
    )
    print(f"release {version} in {out}/:")
    for f in files:
        print(f"  {f.relative_to(out)}  ({f.stat().st_size} bytes)")
    return 0
