"""`avkit prereqs`: check a nox session's system prerequisites before its first slow step."""

import sys

from avkit import prereqs
from avkit.smoke import rootfs


def register(subparsers):
    p = subparsers.add_parser(
        "prereqs",
        help="check the Debian packages a nox session needs (every session runs it first)",
    )
    p.add_argument(
        "session",
        nargs="?",
        choices=sorted(prereqs.SESSION_NEEDS),
        metavar="SESSION",
        help="the nox session whose needs to check (%(choices)s)",
    )
    p.add_argument("--list", action="store_true", help="print every session's needs")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.list or not args.session:
        for name, needs in prereqs.SESSION_NEEDS.items():
            print(f"{name:11} {' '.join(needs)}")
        return 0
    prereqs.require_for_session(args.session)
    if "qemu-system-i386" in prereqs.SESSION_NEEDS[args.session]:
        rootfs.require_cached_or_root()
    print(f"avkit prereqs: {args.session}: all system prerequisites present", file=sys.stderr)
    return 0
