"""avir_icap.so against a real c-icap with virus_scan (avkit.check.icap) scanning
through a private clamd, and against a fake ICAP server (fake_icap) for the answers
c-icap cannot be made to give; driven through avhost exactly as Kerio's avserver
drives a plugin, lifecycle checks included.

Real c-icap: Debian's c-icap and libc-icap-mod-virus-scan with their own
configuration on loopback; virus_scan asks the private clamd (clamd_mod), whose
signatures are the project's test ones, with AlertEncrypted yes and, here,
AlertExceedsMax yes over a 1 MiB MaxFileSize (so a file over the engine's limit is
"cannot tell" instead of clean).
"""
import socket
import time
from pathlib import Path

import pytest

from avkit.check import avhost as client
from avkit.check import kit_corpus
from avkit.check.clamd import (EICAR_NAME, ENCRYPTED_NAME, TEST_SIGNATURE, TEST_SIGNATURE_NAME,
                               free_port)
from avkit.check.clamd import ipv6_loopback_available
from avkit.check.icap import CIcap, ClamdForIcap
from avkit.facts import EICAR
from clam_corpus import write_random
from conftest import ON_BOTH_ARCHS
from fake_icap import PREVIEW, FakeIcap

MiB = 1024 * 1024
ENGINE_LIMIT = 1 * MiB  # the private clamd's MaxFileSize behind c-icap
LIMIT_NAME = "Heuristics.Limits.Exceeded.MaxFileSize"


# --- avhost ---

# AVKIT_SANITIZED=1 (conftest.under_test): the same cases against the ASan+UBSan build.
@pytest.fixture
def host(under_test):  # of each architecture for a test marked ON_BOTH_ARCHS
    return under_test("avhost")


@pytest.fixture
def plugin(under_test):
    return under_test("avir_icap.so")


def avhost(host, plugin, mode, options, *args, timeout=300):
    return client.run(host, mode, plugin, *args, options=options, timeout=timeout,
                      decode_files=True)


def assert_survived(run):
    """No crash, reload, contract violation or AVCHK_ERROR; descriptors back where they were."""
    assert run.violations() == [], run
    assert run.events("restart") == [] and run.events("crash") == [], run
    summary = run.summary()
    assert summary and summary["ERROR"] == 0 and summary.get("CRASHED", 0) == 0, run
    assert run.returncode == 0, run
    for close in run.events("close"):
        assert close["fds_after_close"] == close["fds_before_init"], close


def scan(host, plugin, options, files, *args, timeout=300):
    run = avhost(host, plugin, "scan", options, *files, *args, timeout=timeout)
    assert_survived(run)
    return run


# --- the real c-icap and the files ---

@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    with ClamdForIcap(tmp_path_factory.mktemp("clamd"), max_file_size=ENGINE_LIMIT) as c:
        yield c


@pytest.fixture(scope="module")
def icap(tmp_path_factory, clamd):
    with CIcap(tmp_path_factory.mktemp("icap"), clamd) as i:
        yield i


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The plugin test kit's corpus, with the engine's limit as its stream limit."""
    folder = tmp_path_factory.mktemp("kit")
    manifest = kit_corpus.generate(folder, stream_limit=ENGINE_LIMIT)
    return {case["name"]: case for case in manifest["files"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "eicar.com").write_bytes(EICAR)
    (d / "testsig.txt").write_bytes(b"text " + TEST_SIGNATURE + b" more")
    write_random(d / "clean.bin", 64 * 1024)
    write_random(d / "small.bin", 100)
    (d / "empty.file").write_bytes(b"")
    big = write_random(d / "big-eicar.bin", 3 * MiB)
    with open(big, "ab") as f:
        f.write(EICAR)
    return {p.name: p for p in d.iterdir()}


# What avir_icap.so must answer through c-icap for each file of the kit (exact
# names where the engine gives one); the kit's own table allows more.
KIT_EXPECTED = {
    "clean.exe": ("OK", None),
    "eicar.com": ("VIRUS_FOUND", EICAR_NAME),
    "eicar.tmp": ("VIRUS_FOUND", EICAR_NAME),
    "eicar.zip": ("VIRUS_FOUND", EICAR_NAME),
    "eicarpwd.zip": ("IMPOSSIBLE", ENCRYPTED_NAME),
    "empty.file": ("OK", None),
    "huge.file": ("IMPOSSIBLE", LIMIT_NAME),
    "nonexisting.file": ("FAILED", "No such file"),
    "eicar-nested.zip": ("VIRUS_FOUND", EICAR_NAME),
    kit_corpus.UTF8_NAME: ("VIRUS_FOUND", EICAR_NAME),
    kit_corpus.FORMAT_NAME: ("VIRUS_FOUND", EICAR_NAME),
    "unreadable.dir": ("FAILED", "is not a regular file"),
    "eicar-link.com": ("VIRUS_FOUND", EICAR_NAME),
    "just-over-limit.file": ("IMPOSSIBLE", LIMIT_NAME),
    "eicar-at-limit.file": ("VIRUS_FOUND", EICAR_NAME),
}


@ON_BOTH_ARCHS
def test_kit_corpus_through_real_cicap(host, plugin, icap, kit, arch):
    run = scan(host, plugin, icap.plugin_options(), [case["path"] for case in kit.values()])
    scans = run.scans()
    table = {}
    for name, case in kit.items():
        record = scans[case["path"]]
        table[name] = record["verdict"]
        assert record["verdict"] in case["expect"]["default"], (name, record)
        verdict, text = KIT_EXPECTED[name]
        assert record["verdict"] == verdict, (name, record)
        if text:
            assert text in record["vir_info"], (name, record)
        if verdict == "FAILED":
            assert case["path"] in record["vir_info"], record
    assert set(table) == set(KIT_EXPECTED), "the kit has cases this test does not know"
    assert any("C-ICAP" in m and f"icap://127.0.0.1:{icap.port}/avscan" in m for m in run.logs())


def test_test_signature(host, plugin, icap, files):
    run = scan(host, plugin, icap.plugin_options(), [files["testsig.txt"], files["clean.bin"]])
    assert [(r["verdict"], r["vir_info"]) for r in run.events("scan")] == [
        ("VIRUS_FOUND", TEST_SIGNATURE_NAME), ("OK", "")]


def test_large_file_is_sent_whole(host, plugin, tmp_path, files):
    """EICAR at the end of a 3 MiB file (under this clamd's limits): found only when the
    whole file went through the preview, 100 Continue and the rest of the chunks."""
    with ClamdForIcap(tmp_path / "clamd") as c, CIcap(tmp_path / "icap", c) as i:
        run = scan(host, plugin, i.plugin_options(), [files["big-eicar.bin"], files["clean.bin"]])
    assert [(r["verdict"], r["vir_info"]) for r in run.events("scan")] == [
        ("VIRUS_FOUND", EICAR_NAME), ("OK", "")]


def test_eight_threads_concurrently(host, plugin, icap, kit):
    names = ["clean.exe", "eicar.com", "eicar.zip", "eicarpwd.zip", "empty.file", "eicar-nested.zip"]
    run = scan(host, plugin, icap.plugin_options(), [kit[n]["path"] for n in names],
               "--threads", 8, "--repeat", 6)
    by_path = {kit[n]["path"]: n for n in names}
    scans = run.events("scan")
    assert len(scans) == 6 * len(names)
    for record in scans:
        assert record["verdict"] == KIT_EXPECTED[by_path[record["file"]]][0], record
    assert len({r["worker"] for r in scans}) > 1


@ON_BOTH_ARCHS
@pytest.mark.parametrize("toolchain", ["zig", "gcc"])
def test_reloads_and_exit(artifact, icap, kit, toolchain, arch):
    """Load, init, 4 workers, scans, close, dlclose, 10 times in one process, then
    exit(): avhost reports any thread, descriptor (or one without close-on-exec,
    caught by a program each worker executes) or destructor left behind."""
    names = ["eicar.com", "clean.exe", "eicarpwd.zip"]
    run = client.run(artifact("avhost", toolchain=toolchain, arch=arch), "scan",
                     artifact("avir_icap.so", toolchain=toolchain, arch=arch),
                     *[kit[n]["path"] for n in names], "--threads", 4, "--reloads", 10,
                     options=icap.plugin_options(), timeout=600)
    assert run.violations() == [], run
    assert run.returncode == 0, run
    unloads = run.events("unload")
    assert [u["round"] for u in unloads] == list(range(1, 11))
    assert {(u["threads_before_load"], u["threads_after_unload"]) for u in unloads} == {(1, 1)}
    assert len({(u["fds_before_load"], u["fds_after_unload"]) for u in unloads}) == 1
    verdicts = {(Path(r["file"]).name, r["verdict"]) for r in run.events("scan")}
    assert verdicts == {("eicar.com", "VIRUS_FOUND"), ("clean.exe", "OK"),
                        ("eicarpwd.zip", "IMPOSSIBLE")}


def test_init_close_cycles(host, plugin, icap, files):
    run = scan(host, plugin, icap.plugin_options(), [files["eicar.com"], files["clean.bin"]],
               "--cycles", 3)
    assert [r["result"] for r in run.events("init")] == [1, 1, 1]
    assert run.verdicts() == ["VIRUS_FOUND", "OK"]


def test_options_are_listed_with_defaults(host, plugin):
    with FakeIcap() as fake:
        run = avhost(host, plugin, "info", fake.plugin_options(), "--cycles", "1", timeout=120)
    assert run.events("init")[0]["result"] == 1, run
    options = {o["name"]: o["value"] for o in run.events("load")[0]["options"]}
    assert options == {"Server": "127.0.0.1", "Port": "1344", "Service": "avscan",
                       "PreviewSize": "", "ConnectTimeout": "10", "StartupTimeout": "90",
                       "ScanTimeout": "120", "MaxFileSize": "0"}


# --- the protocol, as a server sees it ---

def test_preview_ieof_and_one_persistent_connection(host, plugin, files):
    with FakeIcap() as fake:
        run = scan(host, plugin, fake.plugin_options(),
                   [files["small.bin"], files["clean.bin"], files["eicar.com"]])
    assert run.verdicts() == ["OK", "OK", "OK"]
    # The whole 100-byte file in the preview, with ieof; 64 KiB: preview, then the rest.
    assert fake.bodies == [(str(100), True, 100), (str(PREVIEW), False, 64 * 1024),
                           (str(len(EICAR)), True, len(EICAR))]
    assert fake.options == 1 and fake.connections == 2  # plugin_init's OPTIONS, then one kept


def test_preview_size_option_and_server_without_preview(host, plugin, files):
    with FakeIcap() as fake:
        scan(host, plugin, fake.plugin_options(PreviewSize=100), [files["clean.bin"]])
    assert fake.bodies == [("100", False, 64 * 1024)]
    with FakeIcap("no_preview") as fake:
        scan(host, plugin, fake.plugin_options(PreviewSize=100), [files["clean.bin"]])
    assert fake.bodies == [(None, False, 64 * 1024)]  # no Preview offered: none sent


def test_max_file_size_is_impossible_without_sending(host, plugin, files):
    with FakeIcap() as fake:
        run = scan(host, plugin, fake.plugin_options(MaxFileSize=1000), [files["clean.bin"]])
    record = run.events("scan")[0]
    assert record["verdict"] == "IMPOSSIBLE" and "MaxFileSize" in record["vir_info"], record
    assert fake.respmods == 0


@pytest.mark.parametrize("mode, verdict, text", [
    ("violations", "VIRUS_FOUND", "Fake.Violation.Name"),
    ("folded", "VIRUS_FOUND", "Fake.Folded.Name"),
    ("virus_id", "VIRUS_FOUND", "Fake.VirusID.Name"),
    ("blocked", "VIRUS_FOUND", "blocked by the ICAP server (HTTP 403)"),
    ("preview_virus", "VIRUS_FOUND", "Fake.In.Preview"),
    ("error500", "FAILED", "could not scan"),
    ("garbage", "FAILED", "not an ICAP response"),
    ("close", "FAILED", "closed the connection"),
])
def test_fake_answers(host, plugin, files, mode, verdict, text):
    with FakeIcap(mode) as fake:
        run = scan(host, plugin, fake.plugin_options(ScanTimeout=5),
                   [files["clean.bin"], files["clean.bin"]], timeout=120)
    for record in run.events("scan"):
        assert record["verdict"] == verdict, record
        if verdict == "VIRUS_FOUND":
            assert record["vir_info"] == text, record
        else:
            assert text in record["vir_info"] and "clean.bin" in record["vir_info"], record
            assert f"icap://127.0.0.1:{fake.port}/avscan" in record["vir_info"], record
    if mode == "preview_virus":
        assert fake.bodies[0] == (str(PREVIEW), False, PREVIEW)  # the rest was never sent
        assert fake.connections == 2  # a final answer to a preview keeps the connection


def test_hostile_virus_name_is_ascii_and_bounded(host, plugin, files):
    with FakeIcap("hostile") as fake:
        run = scan(host, plugin, fake.plugin_options(), [files["clean.bin"]])
    info = run.events("scan")[0]["vir_info"]
    assert run.verdicts() == ["VIRUS_FOUND"]
    assert info.startswith("Caf??\x3f%s%n%x") or info.startswith("Caf???%s%n%x"), info
    assert info.isascii() and info.isprintable() and len(info) <= 255, info


def test_dropped_connection_is_reopened_once(host, plugin, files):
    with FakeIcap("drop_after") as fake:
        run = scan(host, plugin, fake.plugin_options(),
                   [files["clean.bin"], files["eicar.com"], files["small.bin"]])
    assert run.verdicts() == ["OK", "OK", "OK"]
    assert fake.respmods == 3 and fake.connections == 1 + 3


# --- plugin_init: the server, the port and the service named; permanent errors at once ---

def test_server_down_at_init(host, plugin):
    port = free_port()
    run = avhost(host, plugin, "scan", {"Port": port, "StartupTimeout": 2}, "/etc/hostname",
                 timeout=120)
    init = run.events("init")[0]
    assert init["result"] == 0, run
    error = init["error"]
    assert f"cannot connect to the ICAP server icap://127.0.0.1:{port}/avscan: " in error, error
    assert "refused" in error.lower() and "StartupTimeout" in error, error


@pytest.mark.parametrize("mode, text", [
    ("options_404", "answered OPTIONS with ICAP 404"),
    ("reqmod_only", "does not offer RESPMOD"),
    ("options_garbage", "did not answer OPTIONS in ICAP"),
])
def test_permanent_init_errors_fail_at_once(host, plugin, mode, text):
    with FakeIcap(mode) as fake:
        run = avhost(host, plugin, "scan", fake.plugin_options(StartupTimeout=60),
                     "/etc/hostname", timeout=120)
    init = run.events("init")[0]
    assert init["result"] == 0, run
    assert text in init["error"] and f"icap://127.0.0.1:{fake.port}/avscan" in init["error"], init
    # Asked once, not again and again for StartupTimeout=60.
    assert fake.options == 1 and "StartupTimeout" not in init["error"], (fake.options, init)


def test_unknown_service_on_real_cicap(host, plugin, icap):
    run = avhost(host, plugin, "scan", icap.plugin_options(Service="nosuchservice",
                                                          StartupTimeout=60),
                 "/etc/hostname", timeout=120)
    init = run.events("init")[0]
    assert init["result"] == 0, run
    assert f"icap://127.0.0.1:{icap.port}/nosuchservice" in init["error"], init
    assert "Service option" in init["error"], init
    assert "StartupTimeout" not in init["error"], init  # failed at once, not retried


# --- faults of the real server ---

def test_cicap_restarted_between_scans(serve, tmp_path, files, clamd):
    with CIcap(tmp_path / "icap", clamd) as i:
        s = serve(i.plugin_options(ScanTimeout=10))
        assert s.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
        i.restart()
        for name, verdict in (("eicar.com", "VIRUS_FOUND"), ("clean.bin", "OK")):
            record = s.scan(files[name])  # the first reconnects
            assert record["verdict"] == verdict, record
        i.stop()
        down = s.scan(files["eicar.com"])
        assert down["verdict"] == "FAILED" and "cannot scan" in down["vir_info"], down
        i.start()
        assert s.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
    s.close()
    assert s.violations() == [] and s.returncode == 0
    assert any("closed the kept connection" in m for m in s.logs()), s.logs()


def test_cicap_max_keepalive_requests(host, plugin, tmp_path, files, clamd):
    """c-icap closes a connection after MaxKeepAliveRequests: the next scan reconnects."""
    with CIcap(tmp_path / "icap", clamd, max_keepalive_requests=2) as i:
        run = scan(host, plugin, i.plugin_options(),
                   [files["eicar.com"], files["clean.bin"]] * 4)
    assert run.verdicts() == ["VIRUS_FOUND", "OK"] * 4


def test_stalled_cicap_fails_within_scan_timeout(serve, tmp_path, files, clamd):
    with CIcap(tmp_path / "icap", clamd) as i:
        s = serve(i.plugin_options(ScanTimeout=5))
        assert s.scan(files["clean.bin"])["verdict"] == "OK"
        i.pause()
        try:
            record = s.scan(files["eicar.com"], timeout=60)
        finally:
            i.resume()
        assert record["verdict"] == "FAILED", record
        assert "ScanTimeout=5 s" in record["vir_info"] and "eicar.com" in record["vir_info"], record
        assert s.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
    s.close()
    assert s.violations() == [] and s.returncode == 0


def test_cicap_killed_during_a_large_scan(serve, tmp_path, clamd, files):
    big = write_random(tmp_path / "big.bin", 96 * MiB)
    with CIcap(tmp_path / "icap", clamd) as i:
        s = serve(i.plugin_options(ScanTimeout=10))
        assert s.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
        s.send(f"SCAN {big}")
        # c-icap spools a body over MaxMemObject to its TmpDir: kill it once the
        # upload has started arriving, so the kill lands mid-transfer.
        deadline = time.monotonic() + 30
        while not any(i.tmp_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.002)
        assert any(i.tmp_dir.iterdir()), "the upload never reached c-icap"
        i.kill()
        record = s.next_record("scan", 60)
        assert record["verdict"] == "FAILED", record
        assert "big.bin" in record["vir_info"] and f"icap://127.0.0.1:{i.port}/avscan" in \
            record["vir_info"], record
        i.restart()
        for name, verdict in (("eicar.com", "VIRUS_FOUND"), ("clean.bin", "OK")):
            assert s.scan(files[name])["verdict"] == verdict
    s.close()
    assert s.violations() == [] and s.returncode == 0
    assert not [r for r in s.events("scan") if r["verdict"] in ("ERROR", "CRASHED")]


def test_engine_down_behind_cicap(host, plugin, tmp_path, files):
    """clamd stopped behind a running c-icap: virus_scan cannot scan, the file FAILED."""
    with ClamdForIcap(tmp_path / "clamd") as c, CIcap(tmp_path / "icap", c) as i:
        c.stop()
        run = scan(host, plugin, i.plugin_options(ScanTimeout=10), [files["clean.bin"]])
    record = run.events("scan")[0]
    assert record["verdict"] == "FAILED", record
    assert "clean.bin" in record["vir_info"], record


def test_plain_virus_scan_passes_objects_over_max_object_size(host, plugin, tmp_path, files):
    """Why the default Service is avscan: c-icap's plain virus_scan answers 204 for an
    object over virus_scan.MaxObjectSize without scanning it, and nothing in the
    answer says so. The avscan alias (sizelimit=off) scans it."""
    with ClamdForIcap(tmp_path / "clamd") as c, \
            CIcap(tmp_path / "icap", c, max_object_size="1M") as i:
        plain = scan(host, plugin, i.plugin_options(Service="virus_scan"), [files["big-eicar.bin"]])
        alias = scan(host, plugin, i.plugin_options(), [files["big-eicar.bin"]])
    assert plain.verdicts() == ["OK"]
    assert alias.verdicts() == ["VIRUS_FOUND"]


def test_stalled_upload_fails_after_scan_timeout_of_silence(host, plugin, tmp_path):
    """The send deadline: a server that stops taking the body (after 100 Continue)."""
    sparse = tmp_path / "stalled.bin"
    with open(sparse, "wb") as f:
        f.truncate(64 * MiB)  # far more than the kernel buffers between us and the fake
    with FakeIcap("stop_reading") as fake:
        run = scan(host, plugin, fake.plugin_options(ScanTimeout=5), [sparse], timeout=120)
    record = run.events("scan")[0]
    assert record["verdict"] == "FAILED", record
    assert "made no progress for ScanTimeout=5 s while" in record["vir_info"], record
    assert "stalled.bin" in record["vir_info"], record


def test_stalled_server_fails_every_thread_within_scan_timeout(host, plugin, files):
    with FakeIcap("stall") as fake:
        run = scan(host, plugin, fake.plugin_options(ScanTimeout=5),
                   [files["clean.bin"], files["eicar.com"], files["small.bin"],
                    files["big-eicar.bin"]], "--threads", 4, timeout=120)
    scans = run.events("scan")
    assert len(scans) == 4 and len({r["worker"] for r in scans}) > 1
    for record in scans:
        assert record["verdict"] == "FAILED", record
        assert "did not answer within ScanTimeout=5 s" in record["vir_info"], record


def test_connect_deadline_at_init(host, plugin):
    """The connect deadline: a listener whose queue is full drops our SYNs, so the
    connection neither succeeds nor fails; plugin_init gives up at StartupTimeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue; nobody accepts
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                fillers.append(c)
            time.sleep(0.2)
            run = avhost(host, plugin, "scan", {"Port": port, "StartupTimeout": 3,
                                                "ConnectTimeout": 1}, "/etc/hostname",
                         timeout=120)
        finally:
            for c in fillers:
                c.close()
    init = run.events("init")[0]
    assert init["result"] == 0, run
    assert f"cannot connect to the ICAP server icap://127.0.0.1:{port}/avscan: timed out" in \
        init["error"], init


def test_server_as_host_name(host, plugin, icap, files):
    run = scan(host, plugin, icap.plugin_options(Server="localhost"),
               [files["eicar.com"], files["clean.bin"]])
    assert run.verdicts() == ["VIRUS_FOUND", "OK"]


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("address", ["::1", "[::1]"])
def test_ipv6_server(host, plugin, files, address):
    with FakeIcap("virus_id", host="::1") as fake:
        run = scan(host, plugin, fake.plugin_options(Server=address), [files["clean.bin"]])
    assert run.verdicts() == ["VIRUS_FOUND"]
    assert any(f"icap://[::1]:{fake.port}/avscan" in m for m in run.logs()), run.logs()


# --- prerequisites ---

def test_missing_cicap_is_named_with_its_packages(monkeypatch, tmp_path):
    from avkit import prereqs
    from avkit.check import icap as icap_module
    monkeypatch.setenv("AVKIT_CICAP", "/nonexistent/c-icap")
    with pytest.raises(prereqs.UserError) as e:
        prereqs.require_for_session("tests")
    assert "c-icap with virus_scan" in str(e.value), e.value
    assert "c-icap libc-icap-mod-virus-scan" in str(e.value) or \
        ("c-icap" in str(e.value) and "libc-icap-mod-virus-scan" in str(e.value)), e.value
    monkeypatch.setattr(icap_module, "CICAP", "/nonexistent/c-icap")
    with pytest.raises(icap_module.CIcapError, match="apt-get install c-icap"):
        CIcap(tmp_path, clamd=None)


# --- a pool of two c-icaps (Server as a list) ---

@pytest.fixture
def two_icaps(tmp_path, clamd):
    """Two real c-icaps on their own ports, both scanning through the module's clamd."""
    a = CIcap(tmp_path / "ia", clamd)
    b = CIcap(tmp_path / "ib", clamd)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def pool_options(icaps, **extra):
    opts = icaps[0].plugin_options(**extra)
    opts["Server"] = ", ".join(f"127.0.0.1:{i.port}" for i in icaps)
    return opts


def respmods(icap, at_least=0, wait=5.0):
    """RESPMOD requests in this c-icap's access log (written a moment after the answer)."""
    log = icap.workdir / "access.log"
    deadline = time.monotonic() + wait
    while True:
        count = log.read_text(errors="replace").count("RESPMOD") if log.exists() else 0
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


@ON_BOTH_ARCHS
def test_pool_spreads_and_fails_over(two_icaps, files, serve, arch):
    a, b = two_icaps
    server = serve(pool_options([a, b]))
    first = [server.scan(files["eicar.com"]) for _ in range(6)]
    assert [(r["verdict"], r["vir_info"]) for r in first] == [("VIRUS_FOUND", EICAR_NAME)] * 6
    assert respmods(a, 3) >= 2 and respmods(b, 3) >= 2, (respmods(a), respmods(b))

    a.kill()  # kept connections break: the scan that meets one goes to b
    b_before = respmods(b)
    after = [server.scan(files["eicar.com"])["verdict"] for _ in range(8)]
    assert after == ["VIRUS_FOUND"] * 8, server.records[-20:]
    assert respmods(b, b_before + 8) - b_before == 8
    assert any(f"127.0.0.1:{a.port}" in m and "skipped until it answers again" in m
               for m in server.logs()), server.logs()

    a.restart()  # the next scans ask it OPTIONS a second after it failed, then use it again
    deadline = time.monotonic() + 30
    while not any("answers again" in m and "skipped" not in m for m in server.logs()) \
            and time.monotonic() < deadline:
        server.scan(files["clean.bin"])
        time.sleep(0.2)
    a_before = respmods(a)
    for _ in range(6):
        assert server.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
    assert respmods(a, a_before + 1) > a_before, "the restarted c-icap was not used again"


def test_pool_all_down_is_failed_naming_every_server(two_icaps, files, serve):
    a, b = two_icaps
    server = serve(pool_options([a, b]))
    assert server.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
    a.stop()
    b.stop()
    for _ in range(3):
        record = server.scan(files["eicar.com"])
        assert record["verdict"] == "FAILED", record
        assert f"127.0.0.1:{a.port}" in record["vir_info"], record
        assert f"127.0.0.1:{b.port}" in record["vir_info"], record


def test_pool_stalled_server_times_out_and_the_scan_goes_elsewhere(two_icaps, files, serve):
    a, b = two_icaps
    server = serve(pool_options([a, b], ScanTimeout=5))
    assert server.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
    a.pause()
    try:
        verdicts = [server.scan(files["eicar.com"], timeout=60)["verdict"] for _ in range(4)]
        assert verdicts == ["VIRUS_FOUND"] * 4, server.records[-20:]
        assert any("no answer within ScanTimeout=5 s" in m for m in server.logs()), server.logs()
    finally:
        a.resume()


def test_pool_starts_with_one_server_down(two_icaps, files, serve, host, plugin):
    a, b = two_icaps
    a.stop()
    server = serve(pool_options([a, b]))
    assert server.scan(files["eicar.com"])["verdict"] == "VIRUS_FOUND"
    assert any(f"127.0.0.1:{a.port}" in m and "skipped until it answers" in m
               for m in server.logs()), server.logs()
    b.stop()
    run = avhost(host, plugin, "scan", pool_options([a, b]), files["eicar.com"], timeout=120)
    text = run.stdout + run.stderr
    assert "no ICAP server of the pool answered OPTIONS" in text, text
    assert f"127.0.0.1:{a.port}" in text and f"127.0.0.1:{b.port}" in text, text
