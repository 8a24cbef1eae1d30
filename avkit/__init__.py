"""avkit: the build, audit, packaging and test tooling of the Kerio antivirus plugins.

One command-line tool (`python -m avkit <command>`), called by the nox sessions.
The package is split by concern; dependencies run one way, downwards:

    commands/   one thin module per subcommand (main_<command>.py)
    stress/     fuzz, sanitizers, valgrind, soak, benchmark       -> check, build
    smoke/      the QEMU smoke test of the packages                -> check
    ship/       audit, packages, apt/yum repositories              -> (core)
    check/      the avhost client, a private clamd, the test kit   -> (core)
    build/      Conan, CMake, staging of dist/<target>/            -> (core)
    core        facts, paths, prereqs, elf, errors, workdir        -> nothing above
"""
