"""ScanTimeout bounds the whole scan, whatever the peer does: both network plugins
against fake servers that keep an upload or an answer going for ever without ever
being silent for ScanTimeout (a real clamd or c-icap cannot be made to do that).

The bound each test checks is the one the READMEs state: a scan of a file of S bytes
ends within ConnectTimeout + ScanTimeout x (3 + ceil(S / 1 MiB)) (for avir_clam.so,
ConnectTimeout is min(StartupTimeout, ScanTimeout)). The machine is loaded: the
assertions keep generous slack on top of the bound, never under it.
"""

import math
import os
import subprocess

import pytest

from avkit.check import avhost as client
from clam_corpus import write_random
from fake_clamd import FakeClamd
from fake_icap import FakeIcap

MiB = 1024 * 1024
SCAN_TIMEOUT = 5
SLACK_MS = 15000
SANITIZED = os.environ.get("AVKIT_SANITIZED", "") not in ("", "0")
SLOW = 3 if SANITIZED else 1


def bound_ms(size: int, connect_timeout: int) -> int:
    return 1000 * (connect_timeout + SCAN_TIMEOUT * (3 + math.ceil(size / MiB)))


def scan_one(under_test, name, options, path, timeout=300):
    """One scan through avhost; the host must survive it and the verdict be FAILED."""
    run = client.run(
        under_test("avhost"),
        "scan",
        under_test(name),
        path,
        options=options,
        timeout=timeout * SLOW,
        decode_files=True,
    )
    assert run.violations() == [], run
    assert run.events("crash") == [] and run.events("restart") == [], run
    scans = run.events("scan")
    assert len(scans) == 1, run
    return scans[0]


@pytest.fixture
def sparse_64m(tmp_path):
    path = tmp_path / "stalled.bin"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)  # far more than the kernel buffers between us and the fake
    return path


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_clam_upload_stopped_while_reply_drips(under_test, sparse_64m, tmp_path, transport):
    """clamd stops taking the file and drips reply bytes: before, each byte restarted
    the silence timer until the 1,024-byte reply cap (34 min at one byte per 2 s)."""
    unix = tmp_path / "fake.sock" if transport == "unix" else None
    with FakeClamd("stop_and_drip", unix_path=unix) as fake:
        options = fake.plugin_options(ScanTimeout=SCAN_TIMEOUT, FdPass="off")
        record = scan_one(under_test, "avir_clam.so", options, sparse_64m)
    assert record["verdict"] == "FAILED", record
    assert "stalled.bin" in record["vir_info"], record
    assert f"ScanTimeout={SCAN_TIMEOUT} s" in record["vir_info"], record
    # The upload made no progress for ScanTimeout: that alone ends it.
    assert record["ms"] <= SCAN_TIMEOUT * 1000 + SLACK_MS * SLOW, record


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_clam_upload_that_trickles_for_ever_ends_at_the_bound(under_test, tmp_path, transport):
    """clamd takes 53 KiB/s for ever: never silent, never done. The upload may take
    ScanTimeout per started MiB, no more. Over UNIX the sender sees that steady
    progress and only the deadline ends it (before: no end; avhost called it HUNG
    at 60 s). Over TCP the kernel wakes a sender only once half its send queue has
    drained, so the sender sees no progress for ScanTimeout and the silence rule
    ends it first: the bound holds all the same."""
    size = 3 * MiB
    big = write_random(tmp_path / "trickled.bin", size)
    unix = tmp_path / "fake.sock" if transport == "unix" else None
    with FakeClamd("slow_drain", unix_path=unix) as fake:
        options = fake.plugin_options(ScanTimeout=SCAN_TIMEOUT, FdPass="off")
        record = scan_one(under_test, "avir_clam.so", options, big)
    assert record["verdict"] == "FAILED", record
    assert "trickled.bin" in record["vir_info"], record
    assert "ScanTimeout" in record["vir_info"], record
    assert SCAN_TIMEOUT * 1000 <= record["ms"] <= bound_ms(size, SCAN_TIMEOUT) + SLACK_MS * SLOW, (
        record
    )


def test_clam_fildes_reply_drip_ends_at_scan_timeout(under_test, tmp_path):
    """FILDES: clamd has the descriptor and drips its reply."""
    small = write_random(tmp_path / "small.bin", 1000)
    with FakeClamd("drip", unix_path=tmp_path / "fake.sock") as fake:
        options = fake.plugin_options(ScanTimeout=SCAN_TIMEOUT, FdPass="on")
        record = scan_one(under_test, "avir_clam.so", options, small)
    assert record["verdict"] == "FAILED", record
    assert fake.fildes == 1, fake.fildes
    assert record["ms"] <= SCAN_TIMEOUT * 1000 + SLACK_MS * SLOW, record


def test_icap_upload_that_trickles_for_ever_ends_at_the_bound(under_test, tmp_path):
    """After 100 Continue the server takes 53 KiB/s for ever: each write progresses,
    none is silent for ScanTimeout, and before the upload had no end."""
    size = 3 * MiB
    big = write_random(tmp_path / "trickled.bin", size)
    with FakeIcap("slow_drain") as fake:
        options = fake.plugin_options(ScanTimeout=SCAN_TIMEOUT, ConnectTimeout=2)
        record = scan_one(under_test, "avir_icap.so", options, big)
    assert record["verdict"] == "FAILED", record
    assert "trickled.bin" in record["vir_info"], record
    assert "ScanTimeout" in record["vir_info"], record
    assert SCAN_TIMEOUT * 1000 <= record["ms"] <= bound_ms(size, 2) + SLACK_MS * SLOW, record


def test_icap_answer_that_drips_ends_at_scan_timeout(under_test, tmp_path):
    """The answer comes a byte a second, never complete (the head is 100 KB long)."""
    small = write_random(tmp_path / "small.bin", 1000)
    with FakeIcap("drip_answer") as fake:
        options = fake.plugin_options(ScanTimeout=SCAN_TIMEOUT, ConnectTimeout=2)
        record = scan_one(under_test, "avir_icap.so", options, small)
    assert record["verdict"] == "FAILED", record
    assert "small.bin" in record["vir_info"], record
    assert record["ms"] <= bound_ms(1000, 2) + SLACK_MS * SLOW, record


def test_scan_deadline_unit_tests(tmp_path):
    """netplugin::scan_deadline computes the formula above (deadline_test.cpp)."""
    from test_clam_parser import NETPLUGIN, _build

    program = _build(tmp_path / "deadline_test", [NETPLUGIN / "tests" / "deadline_test.cpp"])
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout
