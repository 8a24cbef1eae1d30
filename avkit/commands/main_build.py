"""`avkit build`: the plugins and avhost of one architecture, staged in dist/<target>/.

Quiet by default: two summary lines (what was built, where, how long, where the tools'
output went); -v shows Conan's, CMake's and zig's output as well. Everything it prints
goes to stderr: stdout stays empty, so a session that builds and then prints JSON (`./nox -s audit -- --json`) gives JSON alone.
"""

import sys

from avkit import facts
from avkit.build import PROFILES, build, tools
from avkit.errors import UserError


def register(subparsers):
    p = subparsers.add_parser("build", help="build the plugins and avhost of one architecture")
    p.add_argument(
        "--arch",
        choices=list(facts.architectures()),
        default=facts.default_arch(),
        help="target architecture (cmake/architectures.json): i386 (default) into "
        "dist/i386/, x86_64 into dist/x86_64/",
    )
    p.add_argument(
        "--toolchain",
        choices=sorted(PROFILES),
        default="zig",
        help="zig (release, default) or gcc (-m32, developer cross-check)",
    )
    p.add_argument("--werror", action="store_true", help="treat warnings as errors (CI)")
    p.add_argument(
        "--sanitize",
        action="store_true",
        help="ASan+UBSan build (gcc only) into dist/<arch>-gcc-asan/",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Conan's, CMake's and zig's output as it comes (otherwise it "
        "goes to build/<target>/build.log, named when a step fails)",
    )
    p.add_argument(
        "--update-lock", action="store_true", help="re-resolve Boost and rewrite conan.lock"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    if args.sanitize and args.toolchain != "gcc":
        raise UserError("--sanitize needs --toolchain gcc (zig's runtime has no i386 ASan)")
    tools.set_verbose(args.verbose)
    built = build(
        args.toolchain,
        werror=args.werror,
        update_lock=args.update_lock,
        sanitize=args.sanitize,
        arch=args.arch,
    )
    for line in built.summary():
        print(line, file=sys.stderr)
    return 0
