"""A private daemon for the checks (clamd, c-icap): started the same way, waited for
the same way, so that both fail alike and say why."""

from __future__ import annotations

import subprocess
import time
from typing import Callable, Sequence


class Exited(Exception):
    """The daemon ended before it answered: `code` is its exit status."""

    def __init__(self, code: int):
        super().__init__(f"exited with status {code}")
        self.code = code


def start(argv: Sequence[str], cwd) -> subprocess.Popen:
    """In a session of its own, so that stopping it reaches the children it forks;
    its output goes to its own log file, not ours."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,
    )


def wait_ready(proc: subprocess.Popen, timeout: float, ready: Callable[[], bool]) -> bool:
    """True as soon as ready() is; False when `timeout` seconds pass first (the caller
    stops the daemon). Raises Exited when the daemon ends meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Exited(proc.returncode)
        if ready():
            return True
        time.sleep(0.1)
    return False
