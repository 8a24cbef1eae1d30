"""Every job of the project is a session here; `nox -l` is the table of contents.

Sessions only: each checks the system packages it needs (`avkit prereqs <session>`, with
nox's own Python: nothing is installed or built before a missing package is named), then
runs the project's CLI (`python -m avkit ...`) in the one shared tools environment that
avkit/toolsenv.py makes (python=False: no per-session venv). Every session that builds
passes the same flags (warnings are errors), so sessions that share build/i386 never
reconfigure it for one another.
"""

import functools
import json
import os
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["build-i386"]

ROOT = Path(__file__).resolve().parent
#: the suite in two workers, a test file each at a time (its module fixtures, such as a
#: private clamd, stay in one process): most of its time is spent waiting on servers
#: and timeouts, so two workers on two cores halve it (16 min 14 s -> 8 min 45 s here)
PYTEST_WORKERS = ["-n", "2", "--dist", "loadfile"]


def avkit_session(func=None, *, name=None, default=False):
    """A session that checks its prerequisites, then runs in the shared tools venv."""
    if func is None:
        return functools.partial(avkit_session, name=name, default=default)
    session_name = name or func.__name__

    @nox.session(name=session_name, python=False, default=default)
    @functools.wraps(func)
    def wrapper(session: nox.Session) -> None:
        session.run(
            sys.executable, "-m", "avkit", "prereqs", session_name, external=True, stderr=None
        )
        python = session.run(
            sys.executable, "-m", "avkit.toolsenv", external=True, silent=True, stderr=None
        ).strip()
        session.env["VIRTUAL_ENV"] = str(Path(python).parent.parent)
        session.env["PATH"] = os.pathsep.join([str(Path(python).parent), os.environ["PATH"]])
        func(session)

    return wrapper


def tools(session: nox.Session, module: str, *args: str) -> None:
    """`python -m module args` in the tools environment. stderr stays stderr (nox would
    fold it into stdout): `./nox -s audit -- --json > report.json` gets the JSON alone."""
    python = Path(session.env["VIRTUAL_ENV"], "bin", "python")
    session.run(str(python), "-m", module, *args, external=True, stderr=None)


def avkit(session: nox.Session, *args: str) -> None:
    tools(session, "avkit", *args)


#: every release architecture, in the order of cmake/architectures.json (i386 first)
ARCHS = tuple(json.loads((ROOT / "cmake" / "architectures.json").read_text())["architectures"])


def arch_flags(archs=ARCHS) -> list:
    """--arch i386 --arch x86_64: what package and smoke take for every architecture."""
    return [flag for arch in archs for flag in ("--arch", arch)]


def build(session: nox.Session, *toolchains: str, archs=ARCHS[:1]) -> None:
    for arch in archs:
        for toolchain in toolchains or ("zig",):
            avkit(session, "build", "--arch", arch, "--toolchain", toolchain, "--werror")


@avkit_session(name="build-i386", default=True)
def build_i386(session: nox.Session) -> None:
    """Build the 32-bit plugins and avhost into dist/i386/ (`-- --toolchain gcc`: gcc -m32 into dist/i386-gcc/)."""
    avkit(session, "build", "--werror", *session.posargs)


@avkit_session(name="build-x86_64")
def build_x86_64(session: nox.Session) -> None:
    """Build the 64-bit plugins and avhost (today's Kerio Connect) into dist/x86_64/ (`-- --toolchain gcc`: gcc -m64 into dist/x86_64-gcc/)."""
    avkit(session, "build", "--arch", "x86_64", "--werror", *session.posargs)


@avkit_session(default=True)
def tests(session: nox.Session) -> None:
    """What CI runs: both toolchains for both architectures (i386, x86_64) with -Werror, the pytest suite, then packages and the QEMU smoke test."""
    build(session, "zig", "gcc", archs=ARCHS)
    tools(session, "pytest", *PYTEST_WORKERS, *session.posargs)
    avkit(session, "package", "--arch", "all")
    avkit(session, "smoke", *arch_flags())


@avkit_session
def unit(session: nox.Session) -> None:
    """The unit tests alone (no build, root, clamd, c-icap, QEMU or servers), in under a minute."""
    tools(session, "pytest", "-m", "unit", *session.posargs)


@avkit_session
def lint(session: nox.Session) -> None:
    """ruff (lint, format check), mypy on avkit, bare dict/list returns, clang-format and cppcheck on the C/C++."""
    tools(session, "ruff", "check", ".")
    tools(session, "mypy")
    tools(session, "avkit.lint", "returns", "cppcheck")
    tools(session, "ruff", "format", "--check", ".")  # the formatters last: the code first
    tools(session, "avkit.lint", "clang-format")


@avkit_session
def kit(session: nox.Session) -> None:
    """Plugin test kit (scanning, waiting, server) against avir_sample.so, avir_clam.so with a private clamd, avir_icap.so with a private c-icap + clamd."""
    build(session)
    data = "build/kit-data"
    avkit(session, "kit", "generate-test-data", data)
    for plugin, extra in (
        ("avir_sample.so", []),
        ("avir_clam.so", ["--with-clamd"]),
        ("avir_icap.so", ["--with-cicap"]),
    ):
        for test in ("scanning", "waiting", "server"):
            avkit(
                session,
                "kit",
                test,
                "--plugin",
                f"dist/i386/{plugin}",
                "--data",
                data,
                "--junit",
                f"build/kit-junit/{plugin[5:-3]}-{test}.xml",
                *extra,
            )


@avkit_session
def audit(session: nox.Session) -> None:
    """Check the release plugins of both architectures, each against its own policies of packaging/audit-policies.json (auditwheel-style)."""
    build(session, archs=ARCHS)
    avkit(session, "audit", *session.posargs)


@avkit_session
def package(session: nox.Session) -> None:
    """Build both architectures, audit, then their .deb/.rpm packages with SHA256SUMS and apt/yum repositories in dist/packages/."""
    build(session, archs=ARCHS)
    avkit(session, "package", "--arch", "all", *session.posargs)


@avkit_session
def smoke(session: nox.Session) -> None:
    """Boot an i386 and an x86_64 Debian in QEMU (TCG, no network), install each one's packages, load and scan every plugin (`-- --arch x86_64`: one of them)."""
    build(session, archs=ARCHS)
    avkit(session, "package", "--arch", "all")
    chosen = any(a == "--arch" or a.startswith("--arch=") for a in session.posargs)
    avkit(session, "smoke", *([] if chosen else arch_flags()), *session.posargs)


@avkit_session
def release(session: nox.Session) -> None:
    """Checks before anything builds, both builds, audit, signed packages, then dist/release/ (`-- --sign-key KEY.asc`; run `./nox -s tests` first: docs/release.md)."""
    avkit(session, "release", "--all", *session.posargs)


@avkit_session
def sanitize(session: nox.Session) -> None:
    """Kit and plugin tests against the ASan+UBSan build; valgrind memcheck of 1,000 scans (`-- --keep`: keep the work folders)."""
    avkit(session, "sanitize", *session.posargs)
    build(session, "gcc")
    avkit(session, "valgrind", "--scans", "1000", *[a for a in session.posargs if a == "--keep"])


@avkit_session
def fuzz(session: nox.Session) -> None:
    """libFuzzer runs of the clamd reply parser, the ICAP response parser and the option parsing, 300 s per target (`-- --seconds N` per target)."""
    avkit(session, "fuzz", *(session.posargs or ["--seconds", "300"]))


@avkit_session
def bench(session: nox.Session) -> None:
    """Throughput of avir_clam.so against raw clamd: table, JSON and PNG chart under build/bench/ (`-- --quick`: a short run; `-- --arch x86_64`: the 64-bit build)."""
    args = list(session.posargs)
    arch = args[args.index("--arch") + 1] if "--arch" in args[:-1] else ARCHS[0]
    build(session, archs=(arch,))
    avkit(session, "bench", *args)


@avkit_session
def soak(session: nox.Session) -> None:
    """64 workers x 10,000 scans with clamd restarts: 0 wrong verdicts, flat fds and RSS (`-- --workers 8 --scans 500`: shorter)."""
    build(session)
    avkit(session, "soak", *session.posargs)


@avkit_session
def failover(session: nox.Session) -> None:
    """Two clamds in avir_clam's pool, one killed mid-run: scans/s and verdicts before, during, after; no FAILED after the first second (`-- --transport unix`: FILDES)."""
    build(session)
    avkit(session, "failover", *session.posargs)


@avkit_session
def lock(session: nox.Session) -> None:
    """Re-resolve Boost from the project's recipe index and rewrite conan.lock."""
    avkit(session, "build", "--werror", "--update-lock")
