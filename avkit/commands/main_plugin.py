"""`avkit plugin DIR`: build a plugin author's own folder as the release builds its plugins."""

import sys
from pathlib import Path

from avkit import facts
from avkit.build.plugin import TOOLCHAIN_FILES, build_plugin


def register(subparsers):
    p = subparsers.add_parser(
        "plugin",
        help="build your own plugin folder (a copy of sample/) "
        "stripped, with its debug file, into DIR/dist/",
    )
    p.add_argument("source", type=Path, help="the plugin's folder (api/ beside it)")
    p.add_argument(
        "--toolchain",
        choices=sorted(TOOLCHAIN_FILES),
        default="zig",
        help="zig (release: old glibc floor, default) or gcc (-m32)",
    )
    p.add_argument(
        "--werror",
        action="store_true",
        help="treat every warning as an error (format misuse always is one)",
    )
    p.add_argument(
        "--arch",
        choices=list(facts.architectures()),
        default=facts.default_arch(),
        help="target architecture: i386 (default, DIR/dist/i386/) or x86_64",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    out = build_plugin(args.source, args.toolchain, args.werror, args.arch)
    print(f"built into {out}/:", file=sys.stderr)
    for f in sorted(out.glob("avir_*.so")):
        print(f"  {f.name}  (debug info: {out / 'debug'}/.build-id/...)", file=sys.stderr)
    return 0
