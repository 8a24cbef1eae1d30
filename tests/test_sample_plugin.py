"""The sample plugin's ABI and verdicts, through avhost, for both toolchains."""

import os

import pytest

from avkit.check import avhost as client
from avkit.facts import EICAR


@pytest.fixture(params=["zig", "gcc"])
def host(request, artifact):
    """(avhost, avir_sample.so) of one toolchain."""
    return artifact("avhost", toolchain=request.param), artifact(
        "avir_sample.so", toolchain=request.param
    )


def run(host, mode, *args):
    avhost, plugin = host
    r = client.run(avhost, mode, plugin, *args, timeout=120)
    return r.returncode, r.records


def first(recs, event):
    return next(r for r in recs if r["event"] == event)


def scans(recs):
    return {r["file"]: r for r in recs if r["event"] == "scan"}


def all_violations(recs):
    return [v for r in recs for v in r.get("violations", [])]


def test_abi(host):
    code, recs = run(host, "info")
    load = first(recs, "load")
    assert code == 0 and all_violations(recs) == []
    assert load["version"] == 2 and load["slots"] == 14  # avhost checks reserved slots are NULL
    assert load["name"] == "avir_sample" == host[1].name[:-3]
    assert load["options"] == [
        {"name": "VirusName", "value": "EICAR-Test-File"},
        {"name": "MaxScanSize", "value": "0"},
    ]
    assert [r["result"] for r in recs if r["event"] == "init"] == [1, 1]  # two init/close cycles
    assert all(r["fds_after_close"] == r["fds_before_init"] for r in recs if r["event"] == "close")


def test_option_round_trip(host):
    code, recs = run(
        host,
        "info",
        "--raw-config",
        "-o",
        "virusname=Custom-Name",
        "-o",
        "Bogus=1",
        "-o",
        "MAXSCANSIZE=5",
        "--cycles",
        1,
    )
    load = first(recs, "load")
    assert code == 0, all_violations(recs)
    assert load["given"] == 3 and load["accepted"] == 2  # unknown names are not counted
    assert load["options_after"] == [
        {"name": "VirusName", "value": "Custom-Name"},
        {"name": "MaxScanSize", "value": "5"},
    ]


def test_verdicts(host, tmp_path):
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "clean.bin").write_bytes(bytes(range(256)) * 100)
    (tmp_path / "empty.file").write_bytes(b"")
    missing = tmp_path / "missing.file"
    code, recs = run(
        host,
        "scan",
        tmp_path / "eicar.com",
        tmp_path / "clean.bin",
        tmp_path / "empty.file",
        missing,
        "-o",
        "VirusName=Found-It",
    )
    s = scans(recs)
    assert code == 0 and all_violations(recs) == []
    assert s[str(tmp_path / "eicar.com")]["verdict"] == "VIRUS_FOUND"
    assert s[str(tmp_path / "eicar.com")]["vir_info"] == "Found-It"
    assert s[str(tmp_path / "clean.bin")]["verdict"] == "OK"
    assert s[str(tmp_path / "empty.file")]["verdict"] == "OK"
    assert s[str(missing)]["verdict"] == "FAILED"
    assert str(missing) in s[str(missing)]["vir_info"]
    assert [r["kind"] for r in recs if r["event"] == "log"].count("SEC") == 1


def test_100_mib_file_in_bounded_memory(host, tmp_path):
    big = tmp_path / "big.file"
    with open(big, "wb") as f:
        f.truncate(100 * 1024 * 1024 - len(EICAR))
        f.seek(0, 2)
        f.write(EICAR)  # at the very end: the whole file is read
    code, recs = run(host, "scan", big)
    assert code == 0
    assert scans(recs)[str(big)]["verdict"] == "VIRUS_FOUND"
    # The plugin reads in 64 KiB chunks: far below the file's 100 MiB.
    assert 0 < first(recs, "summary")["peak_rss_kb"] < 16 * 1024


@pytest.mark.parametrize("vi_size", [1, 0])
def test_tiny_vir_info(host, tmp_path, vi_size):
    (tmp_path / "eicar.com").write_bytes(EICAR)
    code, recs = run(
        host, "scan", tmp_path / "eicar.com", tmp_path / "nothere", "--vi-size", vi_size
    )
    s = scans(recs)
    assert code == 0 and all_violations(recs) == []  # guard bytes intact, terminated
    assert s[str(tmp_path / "eicar.com")]["verdict"] == "VIRUS_FOUND"
    assert s[str(tmp_path / "nothere")]["verdict"] == "FAILED"
    assert s[str(tmp_path / "eicar.com")]["vir_info"] == ("" if vi_size == 1 else None)


def test_concurrent_scans_and_bench(host, tmp_path):
    (tmp_path / "eicar.com").write_bytes(EICAR)
    code, recs = run(host, "scan", tmp_path / "eicar.com", "--repeat", 40, "--threads", 4)
    assert code == 0 and all_violations(recs) == []
    assert first(recs, "summary")["VIRUS_FOUND"] == 40
    code, recs = run(host, "bench", tmp_path / "eicar.com", "--threads", 2, "--count", 200)
    bench = first(recs, "bench")
    assert code == 0 and bench["files"] == 200 and bench["bytes"] == 200 * len(EICAR)
    assert bench["files_per_s"] > 0 and bench["open_fds"] > 0 and bench["peak_rss_kb"] > 0


def test_fifo_is_refused_without_blocking(host, tmp_path):
    """A FIFO with no writer would block open(2) for ever; the sample must answer FAILED."""
    fifo = tmp_path / "pipe.com"
    os.mkfifo(fifo)
    code, recs = run(host, "scan", fifo)  # run() times out (and fails) if the worker hangs
    scan = scans(recs)[str(fifo)]
    assert scan["verdict"] == "FAILED" and "not a file that can be scanned" in scan["vir_info"]


def test_option_values_are_trimmed(host, tmp_path):
    """Blanks around a value do not count, on either side; the stored value is kept as set."""
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "clean.bin").write_bytes(b"x" * 200)
    code, recs = run(
        host,
        "scan",
        tmp_path / "eicar.com",
        tmp_path / "clean.bin",
        "-o",
        "VirusName=  Found-It ",
        "-o",
        "MaxScanSize=100  ",
    )
    s = scans(recs)
    assert code == 0 and all_violations(recs) == []
    assert s[str(tmp_path / "eicar.com")]["vir_info"] == "Found-It"
    # "100  " is the number 100, not a bad value replaced by the default 0 (no limit).
    assert s[str(tmp_path / "clean.bin")]["verdict"] == "IMPOSSIBLE"
    assert not [r for r in recs if r["event"] == "log" and r["kind"] == "WRN"]
    after = {o["name"]: o["value"] for o in first(recs, "load")["options_after"]}
    assert after == {"VirusName": "  Found-It ", "MaxScanSize": "100  "}
