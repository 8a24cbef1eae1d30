"""avir_clam.so against a real clamd (avkit.check.clamd) and a fake one (fake_clamd),
driven through the test host avhost exactly as Kerio's avserver drives it (the
tests where the architecture can matter run on i386 and x86_64: ON_BOTH_ARCHS).

Real clamd: Debian's clamav-daemon with its own configuration and signatures
(the EICAR string and the project's test signature, reported with ".UNOFFICIAL").
Fake clamd: only for the faults a real one will not produce on demand.
"""

import os
import re
import shutil
import socket
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from avkit.check import avhost as client
from avkit.facts import EICAR
from avkit.check.clamd import (
    EICAR_NAME,
    ENCRYPTED_NAME,
    TEST_SIGNATURE_NAME,
    Clamd,
    free_port,
    ipv6_loopback_available,
)
from clam_corpus import write_corpus, write_random, write_sparse
from conftest import ON_BOTH_ARCHS
from fake_clamd import FakeClamd

MiB = 1024 * 1024
STREAM_MAX = 1 * MiB  # the shared clamd's StreamMaxLength
FILDES_USED = "took a file descriptor (FILDES)"  # logged once a FILDES scan succeeded


# --- running avhost ---

#: the plugin of conftest's `plugin` fixture (`host` is conftest's too)
PLUGIN = "avir_clam.so"


def avhost(host, plugin, mode, options, *args, timeout=300):
    return client.run(host, mode, plugin, *args, options=options, timeout=timeout)


def scan(host, plugin, options, files, *args, timeout=300):
    run = avhost(host, plugin, "scan", options, *files, *args, timeout=timeout)
    assert run.violations() == [], run
    return run


def Server(host, plugin, options, *args):
    """`avhost serve`: one plugin instance kept alive across requests on stdin."""
    return client.Serve(host, plugin, *args, options=options)


# --- clamd and files ---


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    """One real clamd for the tests that do not stop or reconfigure it."""
    with Clamd(tmp_path_factory.mktemp("clamd"), stream_max_length=STREAM_MAX, ipv6=True) as c:
        yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    files = write_corpus(tmp_path_factory.mktemp("corpus"))
    files["huge.file"] = write_random(files["clean.exe"].parent / "huge.file", 2 * STREAM_MAX)
    return files


EXPECTED = {
    "clean.exe": ("OK", ""),
    "eicar.com": ("VIRUS_FOUND", EICAR_NAME),
    "eicar.tmp": ("VIRUS_FOUND", EICAR_NAME),
    "eicar.zip": ("VIRUS_FOUND", EICAR_NAME),
    "testsig.txt": ("VIRUS_FOUND", TEST_SIGNATURE_NAME),
    "empty.file": ("OK", ""),
}


def check_corpus(run, corpus):
    scans = run.scans()
    for name, (verdict, info) in EXPECTED.items():
        record = scans[str(corpus[name])]
        assert (record["verdict"], record["vir_info"]) == (verdict, info), record
    pwd = scans[str(corpus["eicarpwd.zip"])]
    assert pwd["verdict"] == "IMPOSSIBLE" and ENCRYPTED_NAME in pwd["vir_info"], pwd
    missing = scans[str(corpus["nonexisting.file"])]
    assert missing["verdict"] == "FAILED", missing
    assert str(corpus["nonexisting.file"]) in missing["vir_info"]
    assert "No such file" in missing["vir_info"]


# --- the vendor corpus over each transport ---


@ON_BOTH_ARCHS
def test_vendor_corpus_over_tcp(host, plugin, clamd, corpus, arch):
    run = scan(host, plugin, clamd.plugin_options(), corpus.values())
    check_corpus(run, corpus)
    huge = run.scans()[str(corpus["huge.file"])]
    assert huge["verdict"] == "IMPOSSIBLE", huge  # over StreamMaxLength: never an error
    assert "StreamMaxLength" in huge["vir_info"] and "huge.file" in huge["vir_info"]
    assert run.events("summary")[0]["ERROR"] == 0


@ON_BOTH_ARCHS
@pytest.mark.parametrize("fd_pass", ["off", "on"])
def test_vendor_corpus_over_unix_socket(host, plugin, clamd, corpus, fd_pass, arch):
    options = clamd.plugin_options(transport="unix", Port="1", FdPass=fd_pass)  # port unused
    run = scan(host, plugin, options, corpus.values())
    check_corpus(run, corpus)
    assert any(str(clamd.socket_path) in m for m in run.logs())
    huge = run.scans()[str(corpus["huge.file"])]
    assert huge["verdict"] == "IMPOSSIBLE", huge
    passed = any(FILDES_USED in m for m in run.logs())
    assert passed == (fd_pass == "on"), run.logs()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_ipv6_loopback(host, plugin, clamd, corpus):
    for address in ("::1", "[::1]"):
        run = scan(
            host,
            plugin,
            clamd.plugin_options(transport="tcp6", Address=address),
            [corpus["eicar.com"], corpus["clean.exe"]],
        )
        assert [r["verdict"] for r in run.events("scan")] == ["VIRUS_FOUND", "OK"]
        assert any(f"[::1]:{clamd.port}" in m for m in run.logs())


def test_address_as_host_name(host, plugin, clamd, corpus):
    run = scan(
        host,
        plugin,
        clamd.plugin_options(Address="localhost"),
        [corpus["eicar.com"], corpus["clean.exe"]],
    )
    assert [r["verdict"] for r in run.events("scan")] == ["VIRUS_FOUND", "OK"]


def test_options_are_listed_with_defaults(host, plugin):
    with FakeClamd("ok") as fake:  # lets plugin_init succeed at once
        run = avhost(
            host, plugin, "info", fake.plugin_options(ChunkSize=4096), "--cycles", "1", timeout=120
        )
    assert run.events("init")[0]["result"] == 1, run
    load = run.events("load")[0]
    after = {o["name"]: o["value"] for o in load["options_after"]}
    assert after["Port"] == str(fake.port) and after["ChunkSize"] == "4096"
    options = {o["name"]: o["value"] for o in load["options"]}
    assert options == {
        "Address": "127.0.0.1",
        "Port": "3310",
        "StartupTimeout": "90",
        "LocalSocket": "",
        "ScanTimeout": "120",
        "ChunkSize": "65536",
        "MaxFileSize": "0",
        "KeepAliveInterval": "10",
        "FdPass": "auto",
        "ClamdConf": "",
    }


@pytest.mark.parametrize("vi_size", [0, 1, 8])
def test_virus_name_truncated_to_vi_size(host, plugin, clamd, corpus, vi_size):
    run = scan(host, plugin, clamd.plugin_options(), [corpus["eicar.com"]], "--vi-size", vi_size)
    record = run.events("scan")[0]
    assert record["verdict"] == "VIRUS_FOUND"
    if vi_size:
        assert record["vir_info"] == EICAR_NAME[: vi_size - 1]


def test_option_values_are_trimmed_on_both_sides(host, plugin, clamd, corpus):
    """strtol forgave " 3407" but not "3407 "; every value now reads trimmed, while
    get_plugin_config still reports it exactly as set (avhost checks that)."""
    port = str(clamd.port)
    for name, value in (
        ("Port", f" {port}"),
        ("Port", f"{port} "),
        ("Port", f"  {port}  "),
        ("Address", " 127.0.0.1 "),
        ("Address", "  localhost"),
    ):
        run = scan(
            host,
            plugin,
            clamd.plugin_options(**{name: value}),
            [corpus["eicar.com"], corpus["clean.exe"]],
        )
        init = run.events("init")[0]
        assert init["result"] == 1, (name, value, run)
        assert [r["verdict"] for r in run.events("scan")] == ["VIRUS_FOUND", "OK"], run
        after = {o["name"]: o["value"] for o in run.events("load")[0]["options_after"]}
        assert after[name] == value, after
        assert any(f":{port}" in m and "connected to clamd" in m for m in run.logs()), run.logs()


# --- sizes ---


def test_100_mib_file_with_bounded_memory(host, plugin, tmp_path, corpus):
    big = write_random(tmp_path / "big.bin", 100 * MiB)
    with open(big, "ab") as f:
        f.write(EICAR)  # at the very end: found only if every chunk arrived
    with Clamd(tmp_path / "clamd", stream_max_length=200 * MiB) as c:
        run = scan(host, plugin, c.plugin_options(), [big, corpus["clean.exe"]])
    scans = run.scans()
    assert scans[str(big)]["verdict"] == "VIRUS_FOUND", scans[str(big)]
    peak_kb = run.events("close")[0]["peak_rss_kb"]
    # The file is 100 MiB; the plugin holds one 64 KiB chunk per worker.
    assert peak_kb < 32 * 1024, f"peak RSS {peak_kb} KiB: memory grows with the file size"


@ON_BOTH_ARCHS
def test_files_over_4_gib(host, plugin, clamd, tmp_path, arch):
    sparse = write_sparse(tmp_path / "sparse5g.bin", 5 * 1024 * MiB)
    # MaxFileSize above 4 GiB compares 64-bit sizes.
    run = scan(host, plugin, clamd.plugin_options(MaxFileSize=str(4 * 1024 * MiB + 1)), [sparse])
    record = run.events("scan")[0]
    assert record["verdict"] == "IMPOSSIBLE", record
    assert "5368709120 bytes" in record["vir_info"] and "MaxFileSize" in record["vir_info"]
    # Sent to clamd, which stops it at StreamMaxLength: the upload ends early.
    run = scan(host, plugin, clamd.plugin_options(), [sparse])
    record = run.events("scan")[0]
    assert record["verdict"] == "IMPOSSIBLE" and "StreamMaxLength" in record["vir_info"], record


# --- clamd's availability ---


def test_clamd_not_running_at_init(host, plugin):
    port = free_port()
    run = avhost(
        host,
        plugin,
        "scan",
        {"Port": str(port), "StartupTimeout": "1"},
        "/etc/hostname",
        timeout=120,
    )
    init = run.events("init")[0]
    assert init["result"] == 0
    assert init["error"].startswith(
        f"cannot connect to clamd at 127.0.0.1:{port}: connection refused"
    )
    assert "is clamav-daemon running" in init["error"]
    assert "StartupTimeout" in init["error"]  # and 1 was clamped up to 10 s


def test_missing_unix_socket_at_init(host, plugin, tmp_path):
    path = tmp_path / "absent.sock"
    run = avhost(
        host,
        plugin,
        "scan",
        {"LocalSocket": str(path), "StartupTimeout": "10"},
        "/etc/hostname",
        timeout=120,
    )
    init = run.events("init")[0]
    assert init["result"] == 0
    assert f"cannot connect to clamd at {path}" in init["error"]
    assert "LocalSocket" in init["error"]


@pytest.mark.parametrize("transport, fd_pass", [("tcp", "auto"), ("unix", "on")])
def test_clamd_restarted_between_scans(serve, tmp_path, corpus, transport, fd_pass):
    with Clamd(tmp_path / "clamd") as c:
        s = serve(c.plugin_options(transport, FdPass=fd_pass))
        assert s.scan(corpus["eicar.com"])["verdict"] == "VIRUS_FOUND"
        c.restart()
        for name in ("eicar.com", "clean.exe"):  # the first one reconnects
            record = s.scan(corpus[name])
            assert record["verdict"] == EXPECTED[name][0], record
        c.stop()
        down = s.scan(corpus["eicar.com"])
        assert down["verdict"] == "FAILED" and "cannot scan" in down["vir_info"], down
        c.start()
        assert s.scan(corpus["eicar.com"])["verdict"] == "VIRUS_FOUND"
    s.close()
    assert s.violations() == []


@pytest.mark.parametrize("transport, fd_pass", [("tcp", "auto"), ("unix", "on")])
def test_session_idle_past_clamd_timeout(serve, tmp_path, corpus, transport, fd_pass):
    with Clamd(tmp_path / "clamd", idle_timeout=2, read_timeout=2) as c:
        # No keep-alive: clamd drops the session.
        s = serve(c.plugin_options(transport, KeepAliveInterval=0, FdPass=fd_pass))
        assert s.scan(corpus["eicar.com"])["verdict"] == "VIRUS_FOUND"
        time.sleep(5)
        record = s.scan(corpus["eicar.com"])
        assert record["verdict"] == "VIRUS_FOUND", record
        assert any("closed the session" in m for m in s.logs()), s.logs()


def test_keepalive_keeps_the_session(serve, tmp_path, corpus):
    with Clamd(tmp_path / "clamd", idle_timeout=3, read_timeout=3) as c:
        s = serve(c.plugin_options(KeepAliveInterval=1))
        assert s.scan(corpus["eicar.com"])["verdict"] == "VIRUS_FOUND"
        time.sleep(7)
        assert s.scan(corpus["eicar.com"])["verdict"] == "VIRUS_FOUND"
        # Had the keep-alive not pinged, the scan would have found the session closed.
        assert not any("closed the session" in m for m in s.logs()), s.logs()
        assert not any("keep-alive" in m for m in s.logs()), s.logs()


# --- concurrency and life cycle ---


def test_eight_threads_concurrently(host, plugin, clamd, corpus):
    names = ["clean.exe", "eicar.com", "eicar.zip", "testsig.txt", "eicarpwd.zip", "empty.file"]
    run = scan(
        host,
        plugin,
        clamd.plugin_options(),
        [corpus[n] for n in names],
        "--threads",
        "8",
        "--repeat",
        "8",
    )
    by_path = {str(corpus[n]): n for n in names}
    scans = run.events("scan")
    assert len(scans) == 8 * len(names)
    for record in scans:
        name = by_path[record["file"]]
        if name == "eicarpwd.zip":
            assert record["verdict"] == "IMPOSSIBLE", record
        else:
            assert (record["verdict"], record["vir_info"]) == EXPECTED[name], record
    assert len({r["worker"] for r in scans}) > 1  # really concurrent contexts


def test_init_close_init_in_one_process(host, plugin, clamd, corpus):
    run = scan(
        host,
        plugin,
        clamd.plugin_options(),
        [corpus["eicar.com"], corpus["clean.exe"]],
        "--cycles",
        "3",
    )
    assert [r["result"] for r in run.events("init")] == [1, 1, 1]
    assert [r["result"] for r in run.events("close")] == [1, 1, 1]
    assert [r["verdict"] for r in run.events("scan")] == ["VIRUS_FOUND", "OK"]
    for close in run.events("close"):
        assert close["fds_after_close"] == close["fds_before_init"]  # sockets and threads gone


# --- faults only a fake clamd produces ---


def fake_scan(host, plugin, mode, files, **options):
    with FakeClamd(mode) as fake:
        run = scan(host, plugin, fake.plugin_options(**options), files, timeout=120)
        return run, fake


def test_fake_clamd_well_behaved(host, plugin, corpus):
    run, fake = fake_scan(host, plugin, "ok", [corpus["clean.exe"], corpus["eicar.com"]])
    assert [r["verdict"] for r in run.events("scan")] == ["OK", "OK"]
    assert fake.instreams == 2 and fake.connections == 2  # init probe + one session
    assert fake.probes == 2  # plugin_init's AlertEncrypted and AlertExceedsMax checks


def test_stall_past_scan_timeout(host, plugin, corpus):
    run, _ = fake_scan(host, plugin, "stall", [corpus["clean.exe"]], ScanTimeout=5)
    record = run.events("scan")[0]
    assert record["verdict"] == "FAILED", record
    assert "ScanTimeout=5 s" in record["vir_info"] and "clean.exe" in record["vir_info"]


@pytest.mark.parametrize("mode", ["overlong", "garbage", "wrong_id", "close_mid"])
def test_bad_replies_fail_the_file_only(host, plugin, corpus, mode):
    run, fake = fake_scan(
        host, plugin, mode, [corpus["clean.exe"], corpus["eicar.tmp"]], ScanTimeout=5
    )
    for record in run.events("scan"):
        assert record["verdict"] == "FAILED", record
        assert record["vir_info"].isascii()
        if mode == "garbage":  # clamd's printf directives come back as text: never a format
            assert "%s%n%x" in record["vir_info"], record
        assert "eicar.tmp" in record["vir_info"] or "clean.exe" in record["vir_info"]
    assert run.events("summary")[0]["ERROR"] == 0
    assert run.events("restart") == []


def test_dropped_session_is_reopened_once(host, plugin, corpus):
    files = [corpus["clean.exe"], corpus["eicar.com"], corpus["eicar.tmp"]]
    run, fake = fake_scan(host, plugin, "drop_after", files)
    assert [r["verdict"] for r in run.events("scan")] == ["OK", "OK", "OK"]
    # The init probe, then a fresh session for each scan: the dead one was reopened.
    assert fake.connections == 1 + 3 and fake.instreams == 3


def test_clamd_too_old(host, plugin):
    with FakeClamd("old") as fake:
        run = avhost(host, plugin, "scan", fake.plugin_options(), "/etc/hostname", timeout=120)
    init = run.events("init")[0]
    assert init["result"] == 0
    assert "ClamAV 0.94.2" in init["error"] and "0.95 or newer" in init["error"]


# --- descriptors: close-on-exec from creation ---

O_CLOEXEC = 0o2000000  # the bit in /proc/<pid>/fdinfo/<fd>'s octal "flags:" line


def open_descriptors(pid):
    """{fd: (what it points to, flags)} of a process; fds closed meanwhile are skipped."""
    out = {}
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
            with open(f"/proc/{pid}/fdinfo/{entry}") as f:
                info = f.read()
        except FileNotFoundError:
            continue
        flags = re.search(r"^flags:\s*([0-7]+)$", info, re.M)
        assert flags, info
        out[int(entry)] = (target, int(flags.group(1), 8))
    return out


def tcp_socket_inodes(pid, remote_port):
    """Inodes of the TCP sockets in pid's network namespace connected to remote_port."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                inodes.add(fields[9])
    return inodes


@ON_BOTH_ARCHS
@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("toolchain", ["zig", "gcc"])
def test_descriptors_are_close_on_exec(artifact, clamd, corpus, toolchain, transport, arch):
    """The products fork+exec helpers: a clamd socket (or Asio's epoll, eventfd,
    timerfd) inherited by a child outlives the plugin's use of it. Every socket and
    anonymous-inode descriptor of the plugin process, looked at while a clamd
    session is open, must carry O_CLOEXEC."""
    s = Server(
        artifact("avhost", toolchain=toolchain, arch=arch),
        artifact("avir_clam.so", toolchain=toolchain, arch=arch),
        clamd.plugin_options(transport=transport),
    )
    try:
        # After a scan the worker keeps its IDSESSION open for the next file.
        assert s.scan(corpus["eicar.com"])["verdict"] == "VIRUS_FOUND", s.records
        pid = next(r["pid"] for r in s.records if r["event"] == "load")
        fds = open_descriptors(pid)
        session = tcp_socket_inodes(pid, clamd.port) if transport == "tcp" else set()
    finally:
        s.close()
    assert s.violations() == []
    checked = {
        fd: target
        for fd, (target, _) in fds.items()
        if target.startswith(("socket:", "anon_inode:"))
    }
    leaking = {
        fd: target for fd, (target, flags) in fds.items() if fd in checked and not flags & O_CLOEXEC
    }
    assert leaking == {}, f"inherited by every child the product starts: {leaking}"
    # Positive controls, so that the check cannot pass by looking at nothing.
    sockets = [t for t in checked.values() if t.startswith("socket:")]
    if transport == "tcp":
        assert any(t[len("socket:[") : -1] in session for t in sockets), (checked, session)
    else:
        assert len(sockets) >= 2, checked  # avhost's own channel and the clamd session
    assert any("eventpoll" in t for t in checked.values()), checked  # Asio's reactor


# --- the administrator's journey: finding clamd, AlertEncrypted ---

ENCRYPTED_WARNING = "passes encrypted archives as clean: set AlertEncrypted yes in clamd.conf"
# The table of clam/src/discovery.cpp, in its order.
STOCK_SOCKETS = [
    "/var/run/clamav/clamd.ctl",
    "/run/clamav/clamd.ctl",
    "/run/clamd.scan/clamd.sock",
    "/var/run/clamd.scan/clamd.sock",
]


def test_alert_encrypted_yes_gives_no_warning(host, plugin, clamd, corpus):
    run = scan(host, plugin, clamd.plugin_options(), [corpus["eicarpwd.zip"]])
    assert run.events("scan")[0]["verdict"] == "IMPOSSIBLE"
    assert not any(ENCRYPTED_WARNING in m for m in run.logs()), run.logs()
    assert any("reports encrypted archives" in m for m in run.logs()), run.logs()


def test_alert_encrypted_no_is_warned_about_at_init(host, plugin, tmp_path, corpus):
    """clamd's default AlertEncrypted no passes a password-protected EICAR zip as
    clean: the plugin cannot change that, but plugin_init says so, naming the setting."""
    with Clamd(tmp_path / "clamd", alert_encrypted=False) as c:
        for transport in ("tcp", "unix"):
            run = scan(
                host,
                plugin,
                c.plugin_options(transport=transport),
                [corpus["eicarpwd.zip"], corpus["eicar.com"]],
            )
            assert run.events("init")[0]["result"] == 1, run  # a warning, not a failure
            warnings = [m for m in run.logs() if ENCRYPTED_WARNING in m]
            where = str(c.socket_path) if transport == "unix" else f"127.0.0.1:{c.port}"
            assert len(warnings) == 1 and f"clamd at {where} " in warnings[0], run.logs()
            # What the warning is about: the encrypted EICAR comes back clean.
            assert run.verdicts() == ["OK", "VIRUS_FOUND"]


LIMITS_WARNING = "reports a file over its limits as clean"


def test_alert_exceeds_max_yes_gives_no_warning(host, plugin, clamd, corpus):
    run = scan(host, plugin, clamd.plugin_options("unix"), [corpus["eicar.com"]])
    assert not any(LIMITS_WARNING in m for m in run.logs()), run.logs()
    assert any("reports files over its limits" in m and "MaxRecursion" in m for m in run.logs()), (
        run.logs()
    )


def test_alert_exceeds_max_no_is_warned_about_at_init(host, plugin, tmp_path, corpus):
    """Without AlertExceedsMax clamd calls a passed file over MaxFileSize clean where
    a stream over StreamMaxLength is IMPOSSIBLE: plugin_init says so, naming the setting,
    and (its clamd.conf read through ClamdConf) the passed file is IMPOSSIBLE too.
    tests/test_clam_limits.py has the stock Debian configuration's cases."""
    big = write_random(tmp_path / "big.bin", 2 * MiB)
    with Clamd(tmp_path / "clamd", alert_exceeds_max=False, stream_max_length=MiB) as c:
        run = scan(
            host, plugin, c.plugin_options("unix", FdPass="on", ClamdConf=c.conf_path), [big]
        )
        assert run.events("init")[0]["result"] == 1, run  # a warning, not a failure
        warnings = [m for m in run.logs() if LIMITS_WARNING in m]
        assert len(warnings) == 1 and "AlertExceedsMax no" in warnings[0], run.logs()
        assert any("set AlertExceedsMax yes in clamd.conf" in m for m in run.logs())
        assert f"clamd at {c.socket_path} " in warnings[0]
        assert f"1048576 bytes (MaxFileSize 1M in {c.conf_path})" in warnings[0], warnings
        assert run.verdicts() == ["IMPOSSIBLE"]
        streamed = scan(host, plugin, c.plugin_options("unix", FdPass="off"), [big])
        assert streamed.verdicts() == ["IMPOSSIBLE"]


def _listening(address) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(address)
            return True
        except OSError:
            return False


def test_discovery_finds_clamd_on_a_stock_socket(host, plugin, tmp_path, corpus):
    """No address set: the plugin finds a clamd that listens only on RHEL's stock
    socket, passing over the Debian places before it, and says so in the log.
    The test creates /run/clamd.scan only when it does not exist, and removes it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create /run/clamd.scan")
    taken = [p for p in STOCK_SOCKETS[:2] if os.path.lexists(p)]
    if taken:
        pytest.skip(f"{taken[0]} exists (a clamd of this machine?): it would be found first")
    folder = Path("/run/clamd.scan")
    try:
        folder.mkdir(mode=0o755)
    except FileExistsError:
        pytest.skip(f"{folder} exists (a clamd of this machine?): not touching it")
    try:
        with Clamd(tmp_path / "clamd", tcp=False, socket_path=folder / "clamd.sock"):
            run = scan(
                host,
                plugin,
                {"StartupTimeout": "10"},  # every address option at its default
                [corpus["eicar.com"], corpus["clean.exe"]],
            )
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    assert run.events("init")[0]["result"] == 1, run
    assert run.verdicts() == ["VIRUS_FOUND", "OK"]
    chosen = [m for m in run.logs() if "no clamd address set" in m]
    assert chosen and "using clamd at /run/clamd.scan/clamd.sock (RHEL" in chosen[0], run.logs()
    assert any("connected to clamd at /run/clamd.scan/clamd.sock" in m for m in run.logs())


def test_discovery_that_finds_nothing_names_every_place(host, plugin):
    if any(os.path.lexists(p) for p in STOCK_SOCKETS) or _listening(("127.0.0.1", 3310)):
        pytest.skip("a clamd (or something) is at one of the stock places on this machine")
    run = avhost(host, plugin, "scan", {"StartupTimeout": "10"}, "/etc/hostname", timeout=120)
    init = run.events("init")[0]
    assert init["result"] == 0, run
    error = init["error"]
    assert "no clamd address set" in error and "StartupTimeout=10 s" in error, error
    for place in [*STOCK_SOCKETS, "127.0.0.1:3310"]:
        assert place + ": " in error, error
    assert "no folder" in error and "connection refused" in error, error


def test_address_other_than_the_defaults_is_used_as_before(host, plugin, clamd, corpus):
    """Any Address or Port other than the defaults is used exactly as before: no search."""
    run = scan(host, plugin, clamd.plugin_options(), [corpus["eicar.com"]])
    assert not any("no clamd address set" in m for m in run.logs()), run.logs()
    assert any(f"connected to clamd at 127.0.0.1:{clamd.port}" in m for m in run.logs())


# --- FdPass: the open file passed to clamd (FILDES) or streamed (INSTREAM) ---

MODES = {
    "TCP INSTREAM": ("tcp", "auto"),
    "UNIX INSTREAM": ("unix", "off"),
    "UNIX FILDES": ("unix", "on"),
}


@pytest.fixture(scope="module")
def table_files(corpus, tmp_path_factory):
    """Every case of the verdict table, with the verdict all modes must give."""
    folder = tmp_path_factory.mktemp("table")
    inner = folder / "inner.zip"
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("eicar.com", EICAR)
    nested = folder / "eicar-nested.zip"
    with zipfile.ZipFile(nested, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(inner, "inner.zip")
    link = folder / "eicar-link.com"
    link.symlink_to(corpus["eicar.com"])
    unreadable = folder / "unreadable.dir"  # opens, but is no file: as root, mode 000 would read
    unreadable.mkdir()
    at_limit = folder / "eicar-at-limit.file"
    at_limit.write_bytes(b"\0" * (STREAM_MAX - len(EICAR)) + EICAR)
    over = write_random(folder / "just-over-limit.file", STREAM_MAX + 1)
    return {
        "clean.exe": (corpus["clean.exe"], "OK"),
        "eicar.com": (corpus["eicar.com"], "VIRUS_FOUND"),
        "eicar.zip": (corpus["eicar.zip"], "VIRUS_FOUND"),
        "eicar-nested.zip": (nested, "VIRUS_FOUND"),
        "eicarpwd.zip (encrypted)": (corpus["eicarpwd.zip"], "IMPOSSIBLE"),
        "testsig.txt": (corpus["testsig.txt"], "VIRUS_FOUND"),
        "empty.file": (corpus["empty.file"], "OK"),
        "nonexisting.file": (corpus["nonexisting.file"], "FAILED"),
        "symlink to eicar.com": (link, "VIRUS_FOUND"),
        "unreadable (a directory)": (unreadable, "FAILED"),
        "EICAR at the limit": (at_limit, "VIRUS_FOUND"),
        "limit + 1 byte": (over, "IMPOSSIBLE"),
        "huge (2 x limit)": (corpus["huge.file"], "IMPOSSIBLE"),
    }


@ON_BOTH_ARCHS
def test_verdict_table_is_the_same_in_both_modes(host, plugin, clamd, table_files, capsys, arch):
    """Case x mode against the real clamd (StreamMaxLength = MaxFileSize, AlertExceedsMax
    yes): streamed or passed, every file gets the same verdict and the same name."""
    table = {}
    for mode, (transport, fd_pass) in MODES.items():
        run = scan(
            host,
            plugin,
            clamd.plugin_options(transport, FdPass=fd_pass),
            [p for p, _ in table_files.values()],
        )
        assert any(FILDES_USED in m for m in run.logs()) == (fd_pass == "on"), (mode, run.logs())
        scans = run.scans()
        table[mode] = {case: scans[str(p)] for case, (p, _) in table_files.items()}
    with capsys.disabled():
        print(f"\n{arch:28}" + "".join(f"{m:>16}" for m in MODES))
        for case in table_files:
            print(f"{case:28}" + "".join(f"{table[m][case]['verdict']:>16}" for m in MODES))
    for case, (_, verdict) in table_files.items():
        got = {
            m: (
                table[m][case]["verdict"],
                table[m][case]["vir_info"] if verdict == "VIRUS_FOUND" else "",
            )
            for m in MODES
        }
        assert set(got.values()) == {got["UNIX FILDES"]}, (case, got)
        assert got["UNIX FILDES"][0] == verdict, (case, got)
    over = table["UNIX FILDES"]["limit + 1 byte"]["vir_info"]
    assert "Heuristics.Limits.Exceeded.MaxFileSize" in over and "MaxFileSize" in over, over


def test_max_file_size_option_applies_to_passed_files(host, plugin, clamd, table_files):
    """The plugin's own limit holds in both modes: an over-limit file is never handed over."""
    at_limit, _ = table_files["EICAR at the limit"]
    for fd_pass in ("off", "on"):
        run = scan(
            host,
            plugin,
            clamd.plugin_options("unix", FdPass=fd_pass, MaxFileSize=STREAM_MAX - 1),
            [at_limit],
        )
        record = run.events("scan")[0]
        assert record["verdict"] == "IMPOSSIBLE" and "over MaxFileSize" in record["vir_info"], (
            record
        )
        assert not any(FILDES_USED in m for m in run.logs())


def test_fd_pass_on_over_tcp_fails_init(host, plugin, clamd, corpus):
    run = avhost(
        host,
        plugin,
        "scan",
        clamd.plugin_options("tcp", FdPass="on"),
        corpus["eicar.com"],
        timeout=120,
    )
    init = run.events("init")[0]
    assert init["result"] == 0
    assert "FdPass=on needs clamd's UNIX socket" in init["error"], init


def test_fd_pass_bad_value_fails_init(host, plugin, clamd, corpus):
    run = avhost(
        host,
        plugin,
        "scan",
        clamd.plugin_options("unix", FdPass="yes"),
        corpus["eicar.com"],
        timeout=120,
    )
    init = run.events("init")[0]
    assert init["result"] == 0 and 'FdPass="yes" is not auto, on or off' in init["error"], init


@pytest.fixture
def short_socket_path():
    """A UNIX socket path well within sun_path's 108 bytes, whatever pytest's tmp_path
    is; its folder goes at the end."""
    folder = Path(tempfile.mkdtemp(prefix="avkit-fd-"))
    yield folder / "clamd.sock"
    shutil.rmtree(folder, ignore_errors=True)


@ON_BOTH_ARCHS
def test_fake_clamd_receives_the_open_file(host, plugin, corpus, short_socket_path, arch):
    """What arrives is the file the plugin opened: its size and first bytes."""
    path = short_socket_path
    with FakeClamd("ok", unix_path=path) as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(FdPass="on"),
            [corpus["eicar.com"], corpus["clean.exe"]],
        )
    assert [r["verdict"] for r in run.events("scan")] == ["OK", "OK"]
    assert fake.fildes == 2 and fake.instreams == 0
    for (size, head), name in zip(fake.passed, ["eicar.com", "clean.exe"]):
        data = corpus[name].read_bytes()
        assert (size, head) == (len(data), data[:64]), name


@pytest.mark.parametrize("mode", ["refuse_fd", "unknown_fd"])
def test_refused_descriptor_falls_back_to_instream_once(
    host, plugin, corpus, mode, short_socket_path
):
    """FdPass=auto: the refused file is streamed on a fresh session, so are the
    next ones, and the fallback is logged once."""
    path = short_socket_path
    files = [corpus["eicar.com"], corpus["clean.exe"], corpus["eicar.tmp"]]
    with FakeClamd(mode, unix_path=path) as fake:
        run = scan(host, plugin, fake.plugin_options(), files)
    assert [r["verdict"] for r in run.events("scan")] == ["OK", "OK", "OK"], run
    assert fake.instreams == 3 and fake.fildes == 0
    # The init probe, the refusing session, then one streaming session for all three.
    assert fake.connections == 3
    notes = [m for m in run.logs() if "does not take file descriptors" in m]
    assert len(notes) == 1 and "INSTREAM instead" in notes[0], run.logs()


def test_refused_descriptor_with_fd_pass_on_fails_the_file(host, plugin, corpus, short_socket_path):
    path = short_socket_path
    with FakeClamd("refuse_fd", unix_path=path) as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(FdPass="on"),
            [corpus["eicar.com"], corpus["clean.exe"]],
        )
    for record in run.events("scan"):
        assert record["verdict"] == "FAILED", record
        assert "refused the descriptor" in record["vir_info"] and "FdPass=on" in record["vir_info"]
    assert fake.instreams == 0  # never streamed instead
    assert run.events("summary")[0]["ERROR"] == 0


class Forwarder:
    """A UNIX socket relaying bytes to clamd's TCP port, as socat would: descriptors
    passed to it are lost on the way, so clamd sees FILDES without one."""

    def __init__(self, path, port):
        self.path, self.port = str(path), port
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
        os.unlink(self.path)

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.port))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_socket_forwarder_to_clamd_falls_back_to_instream(
    host, plugin, clamd, corpus, short_socket_path
):
    """The real clamd behind a forwarder answers FILDES with "No file descriptor
    received": FdPass=auto streams instead, with the verdicts of the direct socket."""
    path = short_socket_path
    with Forwarder(path, clamd.port):
        run = scan(
            host,
            plugin,
            clamd.plugin_options("unix", LocalSocket=str(path)),
            [corpus["eicar.com"], corpus["clean.exe"], corpus["eicarpwd.zip"]],
        )
    assert [r["verdict"] for r in run.events("scan")] == ["VIRUS_FOUND", "OK", "IMPOSSIBLE"], run
    notes = [m for m in run.logs() if "does not take file descriptors" in m]
    assert len(notes) == 1 and "No file descriptor received" in notes[0], run.logs()
    assert not any(FILDES_USED in m for m in run.logs())
