"""avhost's contract checks, against deliberately broken plugins built here.

Each plugin of tests/broken_plugins/broken.c breaks one rule; avhost must name
the breach precisely in "violations", exit 1, and survive (a summary record).
"""
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "broken_plugins" / "broken.c"
API = Path(__file__).parent.parent / "api"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture(scope="session")
def broken(tmp_path_factory):
    """broken("crash3") -> path of avir_crash3.so built with gcc -m32."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: apt-get install gcc-multilib")
    out = tmp_path_factory.mktemp("broken")
    built = {}

    def build(variant):
        if variant not in built:
            so = out / f"avir_{variant}.so"
            subprocess.run(["gcc", "-m32", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall",
                            "-Wextra", "-Werror", f"-I{API}", f"-DBROKEN_{variant.upper()}",
                            f'-DPLUGIN_NAME="avir_{variant}"', "-o", str(so), str(SOURCE)],
                           check=True)
            built[variant] = so
        return built[variant]
    return build


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "eicar.com").write_bytes(EICAR)
    (d / "clean.txt").write_bytes(b"nothing to see\n" * 100)
    (d / "empty.file").write_bytes(b"")
    (d / "error.txt").write_bytes(b"makes BROKEN_ERROR return AVCHK_ERROR")
    return d


def run(avhost, mode, plugin, *args, timeout=60):
    r = subprocess.run([str(avhost), mode, str(plugin), *map(str, args)], capture_output=True,
                       timeout=timeout)
    records = [json.loads(l) for l in r.stdout.decode().splitlines() if l.startswith("{")]
    return r.returncode, records


def violations(records, event=None):
    return [v for r in records if event in (None, r["event"]) for v in r.get("violations", [])]


def summary(records):
    s = [r for r in records if r["event"] == "summary"]
    assert len(s) == 1, "avhost must end with one summary record (it must survive)"
    return s[0]


@pytest.fixture(params=["zig", "gcc"])
def avhost(request, artifact):
    return artifact("avhost", toolchain=request.param)


def scan_files(files, *names):
    return [files / n for n in names]


def test_correct_plugin_has_no_violation(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("none"), *scan_files(files, "eicar.com", "clean.txt"),
                     "--threads", 2)
    assert code == 0 and violations(recs) == []
    assert [r["verdict"] for r in recs if r["event"] == "scan"].count("VIRUS_FOUND") == 1


def test_write_past_vi_size(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("overflow"), files / "clean.txt", "--vi-size", 100)
    assert code == 1
    assert ("wrote past vi_size=100 into vir_info: 8 of the 64 guard bytes after the buffer "
            "changed, the first at offset 100") in violations(recs, "scan")
    assert "vir_info has no NUL within vi_size=100" in violations(recs, "scan")
    assert summary(recs)["violation_count"] == 2


def test_return_code_7(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("code7"), files / "eicar.com")
    assert code == 1
    assert violations(recs, "scan") == [
        f"plugin_thread_test_file returned 7 for {files / 'eicar.com'} (valid: 0..5)"]
    assert summary(recs)["INVALID"] == 1


def test_crash_on_third_file_restarts(avhost, broken, files):
    names = ["eicar.com", "clean.txt", "empty.file", "eicar.com", "clean.txt"]
    code, recs = run(avhost, "scan", broken("crash3"), *scan_files(files, *names))
    assert code == 1
    scans = [r for r in recs if r["event"] == "scan"]
    assert [r["verdict"] for r in scans] == ["VIRUS_FOUND", "OK", "CRASHED", "VIRUS_FOUND", "OK"]
    assert violations(recs, "scan") == [
        f"plugin crashed with signal 11 (SIGSEGV) while scanning {files / 'empty.file'}"]
    restarts = [r for r in recs if r["event"] == "restart"]
    assert len(restarts) == 1 and "SIGSEGV" in restarts[0]["reason"]
    assert restarts[0]["pid"] != restarts[0]["old_pid"]
    assert summary(recs)["restarts"] == 1


def test_avchk_error_restarts_in_fresh_process(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("error"),
                     *scan_files(files, "eicar.com", "error.txt", "eicar.com"))
    assert code == 0  # AVCHK_ERROR is allowed; the restart is the product's answer to it
    scans = [r for r in recs if r["event"] == "scan"]
    assert [r["verdict"] for r in scans] == ["VIRUS_FOUND", "ERROR", "VIRUS_FOUND"]
    restart = [r for r in recs if r["event"] == "restart"]
    assert len(restart) == 1
    assert restart[0]["reason"] == f"plugin returned AVCHK_ERROR for {files / 'error.txt'}"
    loads = [r["pid"] for r in recs if r["event"] == "load"]
    assert len(set(loads)) == 2, "the plugin must be loaded again in a new process"


def test_non_ascii_virus_name(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("nonascii"), files / "eicar.com")
    assert code == 1
    assert violations(recs, "scan") == ["vir_info has a non-ASCII byte 0xC3 at offset 6"]
    scan = next(r for r in recs if r["event"] == "scan")
    assert scan["vir_info"].encode("latin-1") == b"Eicar-\xc3\x9cnicode"


def test_extra_exports(avhost, broken):
    code, recs = run(avhost, "info", broken("exports"))
    assert code == 1
    (v,) = violations(recs, "load")
    assert v.startswith("exports 5 symbol(s) besides get_plugin_extended_iface: ")
    for name in ("get_info", "get_error", "set_config", "get_config", "free_config"):
        assert name in v


def test_fd_leak_over_cycles(avhost, broken):
    code, recs = run(avhost, "info", broken("fdleak"), "--cycles", 3)
    assert code == 1
    leaks = violations(recs, "close")
    assert len(leaks) == 3  # one more descriptor after each plugin_init/plugin_close cycle
    assert "left open after plugin_close (cycle 1)" in leaks[0] and "-> /dev/null" in leaks[0]


def test_wrong_info(avhost, broken):
    code, recs = run(avhost, "info", broken("info"))
    assert code == 1
    assert violations(recs, "load") == [
        'get_plugin_info: name "avir_somethingelse" differs from the file name "avir_info"',
        "get_plugin_info: reserved is not zeroed (byte 0 is 0x78)"]


def test_bad_log_messages(avhost, broken):
    code, recs = run(avhost, "info", broken("log"), "--cycles", 1)
    assert code == 1
    logs = [r for r in recs if r["event"] == "log"]
    assert logs[0]["kind"] == "WRN" and logs[0]["violations"] == ["log message ends with a newline"]
    assert logs[1]["kind"] == "debug"
    assert logs[1]["violations"] == ["log message has a non-ASCII byte 0xC3 at offset 3"]


def test_plugin_close_hangs(avhost, broken):
    code, recs = run(avhost, "info", broken("hangclose"), "--close-timeout", 1, timeout=30)
    assert code == 1
    assert violations(recs, "close") == ["plugin_close did not return within 1 s"]


def test_same_context_for_two_workers(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("samectx"),
                     *scan_files(files, "eicar.com", "clean.txt", "eicar.com", "clean.txt"),
                     "--threads", 2)
    assert code == 1
    inits = [r for r in recs if r["event"] == "thread_init"]
    assert len(inits) == 2, "two concurrent requests must start a second worker"
    assert any("which worker 1 already owns" in v for v in violations(recs, "thread_init"))
    assert any("is in use by workers" in v for v in violations(recs, "scan"))


def test_unloadable_file(avhost, tmp_path):
    bogus = tmp_path / "avir_bogus.so"
    bogus.write_bytes(b"not an ELF file")
    code, recs = run(avhost, "info", bogus)
    assert code == 3
    load = next(r for r in recs if r["event"] == "load")
    assert load["error"]


def test_pool_reuses_free_worker_and_closes_idle_ones(avhost, broken, files):
    p = subprocess.Popen([str(avhost), "serve", str(broken("none")), "--idle-timeout", "0.5",
                          "--no-logs"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    seen = []

    def ask(line, event):
        p.stdin.write(line.encode() + b"\n")
        p.stdin.flush()
        while True:
            rec = json.loads(p.stdout.readline())
            seen.append(rec)
            if rec["event"] == event:
                return rec

    try:
        for _ in range(3):  # one request at a time: the free worker is reused
            assert ask(f"SCAN {files / 'eicar.com'}", "scan")["verdict"] == "VIRUS_FOUND"
        busy = ask("STATS", "stats")
        time.sleep(1.5)
        idle = ask("STATS", "stats")
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert busy["started"] == 1 and busy["workers"] == 1
    assert idle["workers"] == 0 and idle["closed_idle"] == 1
    assert [r["reason"] for r in seen if r["event"] == "thread_close"] == ["idle"]
