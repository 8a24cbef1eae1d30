"""`python -m avkit <command>`: one subcommand per job; the nox sessions call these.

Each command lives in avkit/commands/main_<command>.py with `register(subparsers)`,
which adds its parser and sets `func` to a callable taking the parsed arguments and
returning an exit code. Only the named command's module is imported (all of them for
--help): `avkit prereqs` runs with a bare Python, before the session's tools are installed.

stdout carries a command's result only (a report, JSON); progress goes to stderr.
"""

import argparse
import importlib
import os
import signal
import sys

from avkit.commands import COMMANDS
from avkit.errors import UserError


def build_parser(only: str = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avkit", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only in COMMANDS else COMMANDS:
        importlib.import_module(f"avkit.commands.main_{name}").register(subparsers)
    return parser


def reader_went_away() -> int:
    """`avkit audit | head -1`: the reader has what it wanted and closed the pipe. Stop as a
    Unix tool killed by SIGPIPE would (status 128+13), without a traceback; stdout goes to
    /dev/null so the interpreter's last flush at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv=None) -> int:
    """Every command, a closed stdout handled once here: `avkit <command> | head -1`."""
    try:
        try:
            code = run_command(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        return reader_went_away()


def run_command(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM (a CI timeout, nox stopping a session) unwinds like Ctrl-C: the jobs' `with`
    # blocks stop their clamd and VMs and remove their temporary folders.
    try:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    except ValueError:
        previous = None  # not the main thread (main() called in-process): signals as they are
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"avkit {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
