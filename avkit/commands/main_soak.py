"""`avkit soak`: many threads x many scans through one avhost, with clamd restarts."""

from avkit.stress.soak import run_soak


def register(subparsers):
    p = subparsers.add_parser("soak", help="many threads x many scans with clamd restarts")
    p.add_argument("--plugin", help="plugin to soak (default: dist/i386/avir_clam.so)")
    p.add_argument("--workers", type=int, default=64, help="concurrent clients (64)")
    p.add_argument("--scans", type=int, default=10000, help="scans per worker (10000)")
    p.add_argument("--restarts", type=int, default=3, help="clamd restarts during the run (3)")
    p.add_argument("--seconds", type=float, default=3600, help="stop after this long anyway (3600)")
    p.add_argument("--json", metavar="FILE", help="write samples and totals as JSON")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder in /tmp (kept anyway when the soak fails)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    return run_soak(
        args.plugin,
        args.workers,
        args.scans,
        args.restarts,
        args.seconds,
        args.json,
        keep=args.keep,
    )
