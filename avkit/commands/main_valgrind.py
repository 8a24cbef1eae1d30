"""`avkit valgrind`: memcheck of avhost + avir_clam.so and avir_icap.so over N scans each."""

from avkit.stress.valgrind import run_valgrind


def register(subparsers):
    p = subparsers.add_parser(
        "valgrind", help="memcheck: init, N scans, close of avir_clam.so and avir_icap.so"
    )
    p.add_argument("--scans", type=int, default=1000)
    p.add_argument("--toolchain", default="gcc", choices=["gcc", "zig"])
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder in /tmp (kept anyway when memcheck complains)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    return run_valgrind(args.scans, args.toolchain, keep=args.keep)
