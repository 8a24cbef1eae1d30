"""`avkit build`: the plugins and avhost of one architecture, staged in dist/<target>/.

Everything it prints (the tools' output, the summary) goes to stderr: stdout stays empty,
so a session that builds and then prints JSON (`./nox -s audit -- --json`) gives JSON alone.
"""
import sys

from avkit import facts
from avkit.build import PROFILES, build
from avkit.errors import UserError


def register(subparsers):
    p = subparsers.add_parser("build", help="build the plugins and avhost of one architecture")
    p.add_argument("--arch", choices=list(facts.architectures()), default=facts.default_arch(),
                   help="target architecture (cmake/architectures.json): i386 (default) into "
                        "dist/i386/, x86_64 into dist/x86_64/")
    p.add_argument("--toolchain", choices=sorted(PROFILES), default="zig",
                   help="zig (release, default) or gcc (-m32, developer cross-check)")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors (CI)")
    p.add_argument("--sanitize", action="store_true",
                   help="ASan+UBSan build (gcc only) into dist/<arch>-gcc-asan/")
    p.add_argument("--update-lock", action="store_true",
                   help="re-resolve Boost and rewrite conan.lock")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.sanitize and args.toolchain != "gcc":
        raise UserError("--sanitize needs --toolchain gcc (zig's runtime has no i386 ASan)")
    out = build(args.toolchain, werror=args.werror, update_lock=args.update_lock,
                sanitize=args.sanitize, arch=args.arch)
    print(f"built into {out}/:", file=sys.stderr)
    for f in sorted(out.iterdir()):
        if f.is_file():
            print(f"  {f.name:24} {f.stat().st_size:>10,} bytes", file=sys.stderr)
    return 0
