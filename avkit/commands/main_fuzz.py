"""`avkit fuzz`: libFuzzer runs of the clamd reply parser and the option parsing."""

from avkit.stress.fuzz import FUZZ_TARGETS, run_fuzz


def register(subparsers):
    p = subparsers.add_parser("fuzz", help="libFuzzer runs of the reply parser and option parsing")
    p.add_argument("--seconds", type=int, default=60, help="time budget per target (60)")
    p.add_argument(
        "--target",
        action="append",
        choices=sorted(FUZZ_TARGETS),
        help="only this target (repeatable; default: all)",
    )
    p.add_argument("--jobs", type=int, default=1, help="parallel fuzzing processes per target")
    p.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    return run_fuzz(args.seconds, args.target, args.jobs, args.json)
