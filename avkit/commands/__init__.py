"""The subcommands of `python -m avkit`: one thin module each (main_<command>.py) with
`register(subparsers)` and `run(args)`, over the library in the subpackages."""

COMMANDS = [
    "prereqs",
    "build",
    "plugin",
    "kit",
    "audit",
    "package",
    "release",
    "smoke",
    "fuzz",
    "sanitize",
    "valgrind",
    "soak",
    "bench",
    "failover",
]
