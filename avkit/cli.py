"""`python -m avkit <command>`: one subcommand per job; the nox sessions call these.

Each command lives in avkit/commands/main_<command>.py with `register(subparsers)`,
which adds its parser and sets `func` to a callable taking the parsed arguments and
returning an exit code.
"""
import argparse
import importlib
import sys

from avkit.commands import COMMANDS
from avkit.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avkit", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"avkit.commands.main_{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"avkit {args.command}: {exc}", file=sys.stderr)
        return 1
