"""`avkit bench`: throughput of avir_clam.so against raw clamd, and of avir_icap.so through
c-icap against avir_clam.so; table, JSON and PNG chart."""
from pathlib import Path

from avkit import paths
from avkit.stress.bench import run_bench


def register(subparsers):
    p = subparsers.add_parser("bench", help="throughput of avir_clam.so against raw clamd, "
                                            "avir_icap.so through c-icap against avir_clam.so")
    p.add_argument("--plugin", action="append", default=[],
                   help="another plugin to compare (repeatable); avir_clam.so of dist/i386 always runs")
    p.add_argument("--threads", default="1,2,4", help="comma-separated N (1,2,4)")
    p.add_argument("--transport", default="tcp,unix,icap",
                   help="cells to run: tcp, unix (avir_clam.so and raw clamd clients), icap "
                        "(avir_icap.so through c-icap beside avir_clam.so); default all three")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (3)")
    p.add_argument("--quick", action="store_true",
                   help="small workloads, 1 repetition, N = 1,2 (a smoke run, minutes less)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work folder (workloads, clamd's folder) in /tmp; it is "
                        "removed at the end otherwise (on a failure, all but the workloads stay)")
    p.add_argument("--json", default=str(paths.BUILD / "bench" / "bench.json"))
    p.add_argument("--png", default=str(paths.BUILD / "bench" / "bench.png"))
    p.set_defaults(func=run)


def run(args) -> int:
    return run_bench([int(x) for x in args.threads.split(",")], args.transport.split(","),
                     args.reps, args.quick, args.plugin, Path(args.json), Path(args.png),
                     keep=args.keep)
