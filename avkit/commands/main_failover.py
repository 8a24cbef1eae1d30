"""`avkit failover`: a pool of two clamds, one killed mid-run; scans/s and verdicts around it."""

from avkit.stress.failover import run_failover


def register(subparsers):
    p = subparsers.add_parser("failover", help="a pool of two clamds, one killed mid-run")
    p.add_argument("--plugin", help="plugin to run (default: dist/i386/avir_clam.so)")
    p.add_argument("--workers", type=int, default=8, help="concurrent clients (8)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the run (10)")
    p.add_argument("--kill-at", type=float, help="second of the kill (default: the middle)")
    p.add_argument(
        "--transport",
        choices=["tcp", "unix"],
        default="tcp",
        help="Address list (tcp, INSTREAM) or LocalSocket list (unix, FILDES)",
    )
    p.add_argument(
        "--scans", type=int, default=1_000_000, help="stop a worker after this many scans anyway"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="where the report goes (default: build/failover/failover.json)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder in /tmp (kept anyway when the run fails)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    return run_failover(
        args.plugin,
        args.workers,
        args.seconds,
        args.kill_at,
        args.transport,
        args.scans,
        args.json,
        keep=args.keep,
    )
