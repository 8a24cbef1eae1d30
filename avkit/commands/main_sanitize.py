"""`avkit sanitize`: the kit and the plugin tests against the ASan+UBSan build."""

from avkit.stress.sanitize import run_sanitize

DEFAULT_TESTS = [
    "tests/test_faults.py",
    "tests/test_clam_plugin.py",
    "tests/test_lifecycle.py",
    "tests/test_clam_pool.py",
]


def register(subparsers):
    p = subparsers.add_parser("sanitize", help="kit and fault tests against the ASan+UBSan build")
    p.add_argument("--skip-build", action="store_true", help="use dist/i386-gcc-asan as it is")
    p.add_argument("--skip-kit", action="store_true")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder in /tmp (kept anyway when a sanitizer reports)",
    )
    p.add_argument(
        "--tests",
        nargs="*",
        default=DEFAULT_TESTS,
        help="pytest files run against the sanitized build",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    return run_sanitize(args.skip_build, args.skip_kit, args.skip_tests, args.tests, keep=args.keep)
