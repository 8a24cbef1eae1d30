"""`avkit bench`: throughput of avir_clam.so against raw clamd, and of avir_icap.so through
c-icap against avir_clam.so; table, JSON and PNG chart."""

from pathlib import Path

from avkit import facts, paths
from avkit.stress.bench import run_bench


def register(subparsers):
    p = subparsers.add_parser(
        "bench",
        help="throughput of avir_clam.so against raw clamd, "
        "avir_icap.so through c-icap against avir_clam.so",
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        help="another plugin to compare (repeatable); avir_clam.so of the --arch "
        "dist folder always runs",
    )
    p.add_argument(
        "--arch",
        choices=list(facts.architectures()),
        default=facts.default_arch(),
        help="whose plugins and avhost run (default i386; x86_64: the 64-bit "
        "build, as today's Kerio Connect loads it)",
    )
    p.add_argument("--threads", default="1,2,4", help="comma-separated N (1,2,4)")
    p.add_argument(
        "--transport",
        default="tcp,unix,icap",
        help="cells to run: tcp, unix (avir_clam.so and raw clamd clients), icap "
        "(avir_icap.so through c-icap beside avir_clam.so); default all three",
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (3)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small workloads, 1 repetition, N = 1,2 (a smoke run, minutes less)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (workloads, clamd's folder) in /tmp; it is "
        "removed at the end otherwise (on a failure, all but the workloads stay)",
    )
    p.add_argument("--json", help="default build/bench/bench.json (bench-x86_64.json for x86_64)")
    p.add_argument("--png", help="default build/bench/bench.png (bench-x86_64.png for x86_64)")
    p.set_defaults(func=run)


def default_output(arch: str, suffix: str) -> Path:
    """build/bench/bench.<suffix> for the default architecture, bench-<arch>.<suffix> else:
    a run of one never overwrites the other's figures."""
    name = "bench" if arch == facts.default_arch() else f"bench-{arch}"
    return paths.BUILD / "bench" / f"{name}.{suffix}"


def run(args) -> int:
    return run_bench(
        [int(x) for x in args.threads.split(",")],
        args.transport.split(","),
        args.reps,
        args.quick,
        args.plugin,
        Path(args.json or default_output(args.arch, "json")),
        Path(args.png or default_output(args.arch, "png")),
        keep=args.keep,
        arch=args.arch,
    )
