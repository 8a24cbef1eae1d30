"""Every job of the project is a session here; `nox -l` is the table of contents.

Sessions install their tools from PyPI, pinned in ci/tools.txt, and call the
project's CLI (`python -m avkit ...`); no logic lives here.
"""
import nox

nox.options.sessions = ["build-i386"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PINS = ["-c", "ci/tools.txt"]
BUILD_TOOLS = ["conan", "cmake", "ninja", "ziglang", "pyelftools"]
TEST_TOOLS = ["pytest", "pytest-timeout"]


def avkit(session, *args):
    session.run("python", "-m", "avkit", *args)


@nox.session(name="build-i386")
def build_i386(session):
    """Build the 32-bit plugins and avhost into dist/i386/ (`-- --toolchain gcc`: gcc -m32 into dist/i386-gcc/)."""
    session.install(*BUILD_TOOLS, *PINS)
    avkit(session, "build", *session.posargs)


@nox.session
def tests(session):
    """Build with both toolchains (warnings are errors), then run the whole test suite."""
    session.install(*BUILD_TOOLS, *TEST_TOOLS, *PINS)
    avkit(session, "build", "--toolchain", "zig", "--werror")
    avkit(session, "build", "--toolchain", "gcc", "--werror")
    session.run("pytest", *session.posargs)


@nox.session
def kit(session):
    """Plugin test kit (scanning, waiting, server) against avir_sample.so, and avir_clam.so with a private clamd."""
    session.install(*BUILD_TOOLS, *PINS)
    avkit(session, "build", "--werror")
    data = "build/kit-data"
    avkit(session, "kit", "generate-test-data", data)
    for plugin, extra in (("avir_sample.so", []), ("avir_clam.so", ["--with-clamd"])):
        for test in ("scanning", "waiting", "server"):
            avkit(session, "kit", test, "--plugin", f"dist/i386/{plugin}", "--data", data,
                  "--junit", f"build/kit-junit/{plugin[5:-3]}-{test}.xml", *extra)


@nox.session
def lock(session):
    """Re-resolve Boost from the project's recipe index and rewrite conan.lock."""
    session.install(*BUILD_TOOLS, *PINS)
    avkit(session, "build", "--update-lock")
