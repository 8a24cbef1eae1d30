"""`avkit package`: audited plugins -> .deb/.rpm packages, apt and yum repositories, SHA256SUMS."""
from pathlib import Path

from avkit import facts, paths
from avkit.ship.packages import package


def register(subparsers):
    p = subparsers.add_parser("package", help="build the .deb/.rpm packages (after the audit)")
    p.add_argument("--toolchain", choices=paths.TOOLCHAINS, default="zig",
                   help="whose dist folder to package (default zig, the release)")
    p.add_argument("--arch", action="append", choices=[*facts.architectures(), "all"],
                   help="whose dist folder to package (repeatable: both architectures into one "
                        "folder; `all`: every release architecture, as `nox -s package` does; "
                        "default: the default architecture, i386)")
    p.add_argument("--out", type=Path, help="output folder (default: <dist>/packages)")
    p.add_argument("--version", help="package version (default: VERSION, with a git "
                                     "snapshot suffix unless HEAD is tagged)")
    p.add_argument("--sign-key", help="armored OpenPGP secret key file to sign the .rpms, the "
                                      "apt and yum repositories and SHA256SUMS (or "
                                      "AVKIT_SIGNING_KEY; passphrase in AVKIT_SIGNING_PASSPHRASE)")
    p.add_argument("--policy", help="audit policy the plugins must satisfy (default: the "
                                    "audit_policy of each plugin's architecture)")
    p.add_argument("--no-repo", action="store_true", help="skip the apt/yum repository metadata")
    p.set_defaults(func=run)


def selected_archs(chosen) -> list[str]:
    """--arch values -> architectures, in cmake/architectures.json's order, each once."""
    if not chosen:
        return [facts.default_arch()]
    every = list(facts.architectures())
    return every if "all" in chosen else [a for a in every if a in chosen]


def run(args) -> int:
    out = args.out or paths.DIST / "packages"
    archs = selected_archs(args.arch)
    built = package([paths.dist_dir(args.toolchain, arch=a) for a in archs], out,
                    version=args.version,
                    sign_key=args.sign_key, repo=not args.no_repo, policy=args.policy)
    print(f"packages in {out}/:")
    for f in built:
        print(f"  {f.name}")
    repos = ", apt (dists/) and yum (yum/<basearch>/) repositories, one index per architecture"
    print(f"  SHA256SUMS{'' if args.no_repo else repos}")
    return 0
