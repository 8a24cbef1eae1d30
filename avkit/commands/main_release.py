"""`avkit release`: the release artifacts (source archive, SBOM, provenance, notes,
packages, SHA256SUMS) in dist/release/, after `avkit package`."""
from pathlib import Path

from avkit import facts, paths
from avkit.commands.main_package import selected_archs
from avkit.ship.release import release


def register(subparsers):
    p = subparsers.add_parser("release", help="write the release artifacts (after package)")
    p.add_argument("--toolchain", choices=sorted(paths.TOOLCHAINS), default="zig",
                   help="whose dist folder is released (default zig)")
    p.add_argument("--arch", action="append", choices=[*facts.architectures(), "all"],
                   help="whose plugins the release describes (repeatable; default: all, "
                        "every release architecture, as `nox -s release` packages them)")
    p.add_argument("--packages", type=Path, help="the packages to publish (default: "
                                                 "dist/packages, what `avkit package` wrote)")
    p.add_argument("--out", type=Path, help="output folder (default: dist/release)")
    p.add_argument("--version", help="version (default: as `avkit package` computes it)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = args.out or paths.DIST / "release"
    archs = selected_archs(args.arch or ["all"])
    files = release([paths.dist_dir(args.toolchain, arch=a) for a in archs],
                    args.packages or paths.DIST / "packages", out, version=args.version)
    print(f"release in {out}/:")
    for f in files:
        print(f"  {f.name}  ({f.stat().st_size} bytes)")
    return 0
