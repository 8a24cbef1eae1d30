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
import subprocess
import time
from pathlib import Path

import pytest

from avkit.check import avhost as client
from avkit.check import kit_corpus
from avkit.check.clamd import (
    EICAR_NAME,
    ENCRYPTED_NAME,
    TEST_SIGNATURE,
    TEST_SIGNATURE_NAME,
    Clamd,
    free_port,
)
from avkit.check.clamd import ipv6_loopback_available
from avkit.check.icap import CIcap, ClamdForIcap
from avkit.facts import EICAR
from clam_corpus import write_random
from conftest import ON_BOTH_ARCHS
from fake_icap import PREVIEW, FakeIcap

MiB = 1024 * 1024
ENGINE_LIMIT = 1 * MiB  # the private clamd's MaxFileSize behind c-icap
LIMIT_NAME = "Heuristics.Limits.Exceeded.MaxFileSize"

# The plugin's default Service: virus_scan asked with the arguments its avscan alias
# has, and force=on (files outside virus_scan.ScanFileTypes scanned too).
SCAN_EVERYTHING = "virus_scan?allow204=on&sizelimit=off&mode=simple&force=on"


# --- avhost ---

# AVKIT_SANITIZED=1 (conftest.under_test): the same cases against the ASan+UBSan build.
#: the plugin of conftest's `plugin` fixture (`host` is conftest's too)
PLUGIN = "avir_icap.so"


def avhost(host, plugin, mode, options, *args, timeout=300):
    return client.run(
        host, mode, plugin, *args, options=options, timeout=timeout, decode_files=True
    )


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
    assert any(
        "C-ICAP" in m and f"icap://127.0.0.1:{icap.port}/{SCAN_EVERYTHING}" in m for m in run.logs()
    )


def test_test_signature(host, plugin, icap, files):
    run = scan(host, plugin, icap.plugin_options(), [files["testsig.txt"], files["clean.bin"]])
    assert [(r["verdict"], r["vir_info"]) for r in run.events("scan")] == [
        ("VIRUS_FOUND", TEST_SIGNATURE_NAME),
        ("OK", ""),
    ]


def test_large_file_is_sent_whole(host, plugin, tmp_path, files):
    """EICAR at the end of a 3 MiB file (under this clamd's limits): found only when the
    whole file went through the preview, 100 Continue and the rest of the chunks."""
    with ClamdForIcap(tmp_path / "clamd") as c, CIcap(tmp_path / "icap", c) as i:
        run = scan(host, plugin, i.plugin_options(), [files["big-eicar.bin"], files["clean.bin"]])
    assert [(r["verdict"], r["vir_info"]) for r in run.events("scan")] == [
        ("VIRUS_FOUND", EICAR_NAME),
        ("OK", ""),
    ]


def test_eight_threads_concurrently(host, plugin, icap, kit):
    names = [
        "clean.exe",
        "eicar.com",
        "eicar.zip",
        "eicarpwd.zip",
        "empty.file",
        "eicar-nested.zip",
    ]
    run = scan(
        host,
        plugin,
        icap.plugin_options(),
        [kit[n]["path"] for n in names],
        "--threads",
        8,
        "--repeat",
        6,
    )
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
    run = client.run(
        artifact("avhost", toolchain=toolchain, arch=arch),
        "scan",
        artifact("avir_icap.so", toolchain=toolchain, arch=arch),
        *[kit[n]["path"] for n in names],
        "--threads",
        4,
        "--reloads",
        10,
        options=icap.plugin_options(),
        timeout=600,
    )
    assert run.violations() == [], run
    assert run.returncode == 0, run
    unloads = run.events("unload")
    assert [u["round"] for u in unloads] == list(range(1, 11))
    assert {(u["threads_before_load"], u["threads_after_unload"]) for u in unloads} == {(1, 1)}
    assert len({(u["fds_before_load"], u["fds_after_unload"]) for u in unloads}) == 1
    verdicts = {(Path(r["file"]).name, r["verdict"]) for r in run.events("scan")}
    assert verdicts == {
        ("eicar.com", "VIRUS_FOUND"),
        ("clean.exe", "OK"),
        ("eicarpwd.zip", "IMPOSSIBLE"),
    }


def test_init_close_cycles(host, plugin, icap, files):
    run = scan(
        host, plugin, icap.plugin_options(), [files["eicar.com"], files["clean.bin"]], "--cycles", 3
    )
    assert [r["result"] for r in run.events("init")] == [1, 1, 1]
    assert run.verdicts() == ["VIRUS_FOUND", "OK"]


def test_options_are_listed_with_defaults(host, plugin):
    with FakeIcap() as fake:
        run = avhost(host, plugin, "info", fake.plugin_options(), "--cycles", "1", timeout=120)
    assert run.events("init")[0]["result"] == 1, run
    options = {o["name"]: o["value"] for o in run.events("load")[0]["options"]}
    assert options == {
        "Server": "127.0.0.1",
        "Port": "1344",
        "Service": SCAN_EVERYTHING,
        "PreviewSize": "",
        "ConnectTimeout": "10",
        "StartupTimeout": "90",
        "ScanTimeout": "120",
        "MaxFileSize": "0",
        "ServiceMaxSize": "auto",
    }


# --- the protocol, as a server sees it ---


def test_preview_ieof_and_one_persistent_connection(host, plugin, files):
    with FakeIcap() as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(),
            [files["small.bin"], files["clean.bin"], files["eicar.com"]],
        )
    assert run.verdicts() == ["OK", "OK", "OK"]
    # The whole 100-byte file in the preview, with ieof; 64 KiB: preview, then the rest.
    assert fake.bodies == [
        (str(100), True, 100),
        (str(PREVIEW), False, 64 * 1024),
        (str(len(EICAR)), True, len(EICAR)),
    ]
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


@pytest.mark.parametrize(
    "mode, verdict, text",
    [
        ("violations", "VIRUS_FOUND", "Fake.Violation.Name"),
        ("folded", "VIRUS_FOUND", "Fake.Folded.Name"),
        ("virus_id", "VIRUS_FOUND", "Fake.VirusID.Name"),
        ("blocked", "VIRUS_FOUND", "blocked by the ICAP server (HTTP 403)"),
        ("preview_virus", "VIRUS_FOUND", "Fake.In.Preview"),
        ("error500", "FAILED", "could not scan"),
        # Answers that were OK before: an infection header that cannot be read, or contradicts.
        ("violations_abc", "VIRUS_FOUND", 'unnamed threat (unreadable X-Violations-Found: "abc")'),
        ("violations_neg", "VIRUS_FOUND", 'unnamed threat (unreadable X-Violations-Found: "-1")'),
        ("infected_204", "VIRUS_FOUND", "Fake.In.204"),
        ("bad_http", "FAILED", "unreadable HTTP status line"),
        # c-icap's virus_scan (SendPercentData) blocks an infected file it began to pass so.
        (
            "partial",
            "VIRUS_FOUND",
            "content changed by the ICAP server (32768 of 65536 bytes returned)",
        ),
        ("garbage", "FAILED", "not an ICAP response"),
        ("close", "FAILED", "closed the connection"),
    ],
)
def test_fake_answers(host, plugin, files, mode, verdict, text):
    with FakeIcap(mode) as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(ScanTimeout=5),
            [files["clean.bin"], files["clean.bin"]],
            timeout=120,
        )
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


def test_content_returned_whole_is_clean(host, plugin, files):
    """A 200 that returns the content unchanged and whole (no 204) is a clean answer,
    twice on one connection: a body that came in with its head was cut down to 1 KiB
    when the chunk-size line was read (the second file waited for ScanTimeout)."""
    with FakeIcap("echo") as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(ScanTimeout=5),
            [files["clean.bin"], files["clean.bin"], files["small.bin"]],
            timeout=120,
        )
    assert run.verdicts() == ["OK", "OK", "OK"]
    assert fake.connections == 2


def test_content_returned_during_the_upload_is_failed_at_once(host, plugin, tmp_path, files):
    """A 200 that starts returning the content while the file is still being sent
    cannot be a verdict on it: FAILED at once, naming SendPercentData, not after
    ScanTimeout; the next file gets a fresh connection."""
    big = write_random(tmp_path / "big.bin", 16 * MiB)
    with FakeIcap("early_pass") as fake:
        start = time.monotonic()
        run = scan(
            host,
            plugin,
            fake.plugin_options(ScanTimeout=60),
            [big, files["small.bin"]],
            timeout=120,
        )
        seconds = time.monotonic() - start
    first, second = run.events("scan")
    assert first["verdict"] == "FAILED", first
    assert "before it had all of it" in first["vir_info"], first
    assert "SendPercentData" in first["vir_info"] and "big.bin" in first["vir_info"], first
    assert second["verdict"] == "OK", second  # its own answer, on a new connection
    assert seconds < 30, seconds  # not ScanTimeout=60
    assert fake.connections == 3  # OPTIONS, the early answer's (closed), the next file's


@pytest.mark.parametrize("mode", ["trailers", "endless_trailers", "smuggle"])
def test_unread_answer_never_lands_on_the_next_file(host, plugin, files, mode):
    """A server that sends more than the plugin reads (trailer lines past 64, without
    end, a second answer nobody asked for): the connection is dropped, so every file
    gets its own answer. Before, the verdicts shifted (an infected file OK, a clean
    one VIRUS_FOUND) or the next file was FAILED "not an ICAP response"."""
    order = ["eicar.com", "clean.bin", "eicar.com", "small.bin", "clean.bin"]
    with FakeIcap(mode) as fake:
        run = scan(
            host, plugin, fake.plugin_options(ScanTimeout=5), [files[n] for n in order], timeout=120
        )
    infected = "VIRUS_FOUND" if mode == "smuggle" else "FAILED"
    assert run.verdicts() == [infected if n == "eicar.com" else "OK" for n in order], run.events(
        "scan"
    )
    for record in run.events("scan"):
        if record["verdict"] == "FAILED":
            assert "more than 64 trailer lines" in record["vir_info"], record
            assert "eicar.com" in record["vir_info"], record
        if record["verdict"] == "VIRUS_FOUND":
            assert record["vir_info"] == "Fake.By.Content", record
    assert fake.respmods == len(order)
    if mode == "smuggle":
        assert fake.connections == 1 + len(order)  # OPTIONS, then one per answer not ours


def test_hostile_virus_name_is_ascii_and_bounded(host, plugin, files):
    with FakeIcap("hostile") as fake:
        run = scan(host, plugin, fake.plugin_options(), [files["clean.bin"]])
    info = run.events("scan")[0]["vir_info"]
    assert run.verdicts() == ["VIRUS_FOUND"]
    assert info.startswith("Caf??\x3f%s%n%x") or info.startswith("Caf???%s%n%x"), info
    assert info.isascii() and info.isprintable() and len(info) <= 255, info


def test_dropped_connection_is_reopened_once(host, plugin, files):
    with FakeIcap("drop_after") as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(),
            [files["clean.bin"], files["eicar.com"], files["small.bin"]],
        )
    assert run.verdicts() == ["OK", "OK", "OK"]
    assert fake.respmods == 3 and fake.connections == 1 + 3


# --- plugin_init: the server, the port and the service named; permanent errors at once ---


def test_server_down_at_init(host, plugin):
    port = free_port()
    run = avhost(
        host, plugin, "scan", {"Port": port, "StartupTimeout": 2}, "/etc/hostname", timeout=120
    )
    init = run.events("init")[0]
    assert init["result"] == 0, run
    error = init["error"]
    assert (
        f"cannot connect to the ICAP server icap://127.0.0.1:{port}/{SCAN_EVERYTHING}: " in error
    ), error
    assert "refused" in error.lower() and "StartupTimeout" in error, error


def timed_records(command, timeout):
    """avhost's JSON records as they come, each with "t": seconds since the start."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    records = []
    try:
        for line in proc.stdout:
            if time.monotonic() - start > timeout:
                break
            for record in client.parse_records(line):
                record["t"] = time.monotonic() - start
                records.append(record)
    finally:
        proc.kill()
        proc.wait()
    return records


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_startup_wait_speaks_every_10_s(host, plugin, server):
    """plugin_init waiting for its server logs what it waits for at its first failure
    and then at least every 10 s (before: nothing until StartupTimeout ended), and
    the error says how long it really tried. "silent": a listener that never
    answers (the kernel accepts, nobody reads)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        if server == "silent":
            listener.listen(8)
        else:
            listener.close()  # nobody listens: refused
        records = timed_records(
            client.command(
                host, "info", plugin, "--cycles", 1, options={"Port": port, "StartupTimeout": 22}
            ),
            timeout=90,
        )
    waits = [
        r
        for r in records
        if r.get("event") == "log" and "waiting for the ICAP server" in r.get("message", "")
    ]
    init = [r for r in records if r.get("event") == "init"]
    assert init and init[0]["result"] == 0, records
    assert waits, records
    assert all(f"icap://127.0.0.1:{port}/{SCAN_EVERYTHING}" in r["message"] for r in waits), waits
    # The first line at the first failure (a refused connection at once, a silent
    # server after one 8 s attempt); then one at least every 10 s; slack for a busy machine.
    assert waits[0]["t"] < (3 if server == "refused" else 11), waits
    times = [r["t"] for r in waits] + [init[0]["t"]]
    assert max(b - a for a, b in zip(times, times[1:])) < 12.5, times
    assert 18 < init[0]["t"] < 40, init
    assert "(tried for 2" in init[0]["error"] and "of StartupTimeout=22 s)" in init[0]["error"], (
        init
    )


@pytest.mark.parametrize(
    "mode, text",
    [
        ("options_404", "answered OPTIONS with ICAP 404"),
        ("reqmod_only", "does not offer RESPMOD"),
        ("options_garbage", "did not answer OPTIONS in ICAP"),
    ],
)
def test_permanent_init_errors_fail_at_once(host, plugin, mode, text):
    with FakeIcap(mode) as fake:
        run = avhost(
            host,
            plugin,
            "scan",
            fake.plugin_options(StartupTimeout=60),
            "/etc/hostname",
            timeout=120,
        )
    init = run.events("init")[0]
    assert init["result"] == 0, run
    assert text in init["error"] and f"icap://127.0.0.1:{fake.port}/avscan" in init["error"], init
    # Asked once, not again and again for StartupTimeout=60.
    assert fake.options == 1 and "StartupTimeout" not in init["error"], (fake.options, init)


def test_unknown_service_on_real_cicap(host, plugin, icap):
    run = avhost(
        host,
        plugin,
        "scan",
        icap.plugin_options(Service="nosuchservice", StartupTimeout=60),
        "/etc/hostname",
        timeout=120,
    )
    init = run.events("init")[0]
    assert init["result"] == 0, run
    assert f"icap://127.0.0.1:{icap.port}/nosuchservice" in init["error"], init
    assert "Service option" in init["error"], init
    assert "StartupTimeout" not in init["error"], init  # failed at once, not retried


# --- faults of the real server ---


def test_cicap_restarted_between_scans(serve, tmp_path, files, clamd):
    """A kept connection to a c-icap that was restarted: the next scan reconnects. Under
    load this failed when the restart could not bind the port the stopped c-icap's
    children still held (CIcap.stop now waits for it); a failure names the step with the
    plugin's and c-icap's last log lines."""

    def seen(step: str, record: dict) -> str:
        return f"{step}: {record}\nplugin: {s.logs()[-8:]}\nc-icap:\n{i.log_tail(15)}"

    with CIcap(tmp_path / "icap", clamd) as i:
        s = serve(i.plugin_options(ScanTimeout=10))
        first = s.scan(files["eicar.com"])
        assert first["verdict"] == "VIRUS_FOUND", seen("before the restart", first)
        i.restart()
        for name, verdict in (("eicar.com", "VIRUS_FOUND"), ("clean.bin", "OK")):
            record = s.scan(files[name])  # the first reconnects
            assert record["verdict"] == verdict, seen(f"after the restart, {name}", record)
        i.stop()
        down = s.scan(files["eicar.com"])
        assert down["verdict"] == "FAILED" and "cannot scan" in down["vir_info"], seen("down", down)
        i.start()
        again = s.scan(files["eicar.com"])
        assert again["verdict"] == "VIRUS_FOUND", seen("started again", again)
    s.close()
    assert s.violations() == [] and s.returncode == 0
    assert any("closed the kept connection" in m for m in s.logs()), s.logs()


def test_cicap_max_keepalive_requests(host, plugin, tmp_path, files, clamd):
    """c-icap closes a connection after MaxKeepAliveRequests: the next scan reconnects."""
    with CIcap(tmp_path / "icap", clamd, max_keepalive_requests=2) as i:
        run = scan(host, plugin, i.plugin_options(), [files["eicar.com"], files["clean.bin"]] * 4)
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
        assert (
            "big.bin" in record["vir_info"]
            and f"icap://127.0.0.1:{i.port}/{SCAN_EVERYTHING}" in record["vir_info"]
        ), record
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


# --- c-icap's stock virus_scan: Debian's /etc/c-icap/virus_scan.conf, unchanged ---


@pytest.fixture(scope="module")
def stock_icap(tmp_path_factory):
    """c-icap including Debian's virus_scan.conf unchanged (MaxObjectSize 5M,
    SendPercentData 5 above StartSendPercentDataAfter 2M, ScanFileTypes TEXT DATA
    EXECUTABLE ARCHIVE GIF JPEG MSOFFICE), over a clamd with Debian's stock limits
    (MaxFileSize 25M, MaxScanSize 100M, AlertExceedsMax no)."""
    with (
        Clamd(tmp_path_factory.mktemp("stock-clamd"), alert_exceeds_max=False) as c,
        CIcap(tmp_path_factory.mktemp("stock-icap"), c, stock=True) as i,
    ):
        yield i


@pytest.fixture(scope="module")
def sized(tmp_path_factory):
    """30 MiB (over clamd's stock MaxFileSize), 6 MiB (over virus_scan's stock
    MaxObjectSize) and 3 MiB (in its SendPercentData range) files, with EICAR at the
    end or without; a PDF (a type virus_scan skips) with EICAR."""
    d = tmp_path_factory.mktemp("sized")
    out = {}
    for name, size in (("huge", 30 * MiB), ("over", 6 * MiB), ("mid", 3 * MiB)):
        out[f"{name}-clean.bin"] = write_random(d / f"{name}-clean.bin", size)
        infected = write_random(d / f"{name}-eicar.bin", size)
        with open(infected, "ab") as f:
            f.write(EICAR)
        out[f"{name}-eicar.bin"] = infected
    (d / "eicar.pdf").write_bytes(b"%PDF-1.4\n" + EICAR)
    out["eicar.pdf"] = d / "eicar.pdf"
    return out


@pytest.mark.parametrize("service", ["virus_scan", "srv_clamav"])
def test_stock_virus_scan_over_max_object_size_is_impossible(
    host, plugin, stock_icap, sized, files, service
):
    """The stock virus_scan (and Debian's srv_clamav alias of it) answers 204 for a file
    over virus_scan.MaxObjectSize (5M) without scanning it, and nothing in its OPTIONS
    or its answer says so (checked: the same headers as for a clean file). Such a
    "clean" is IMPOSSIBLE, naming ServiceMaxSize; before, OK."""
    run = scan(
        host,
        plugin,
        stock_icap.plugin_options(Service=service),
        [sized["over-eicar.bin"], sized["over-clean.bin"], files["eicar.com"], files["clean.bin"]],
    )
    assert run.verdicts() == ["IMPOSSIBLE", "IMPOSSIBLE", "VIRUS_FOUND", "OK"], run
    for record in run.events("scan")[:2]:
        assert "over the 5242880 bytes the ICAP service" in record["vir_info"], record
        assert "ServiceMaxSize" in record["vir_info"], record
        assert "MaxObjectSize" in record["vir_info"], record


def test_stock_virus_scan_passes_unscanned_without_service_max_size(
    host, plugin, stock_icap, sized
):
    """Why ServiceMaxSize=auto knows virus_scan: told there is no limit (0), the stock
    service's answer for an infected file over 5M is taken for what it says, clean."""
    run = scan(
        host,
        plugin,
        stock_icap.plugin_options(Service="virus_scan", ServiceMaxSize=0),
        [sized["over-eicar.bin"]],
    )
    assert run.verdicts() == ["OK"]


@pytest.mark.parametrize("service", ["avscan", SCAN_EVERYTHING])
def test_stock_avscan_scans_over_max_object_size(host, plugin, stock_icap, sized, service):
    run = scan(
        host,
        plugin,
        stock_icap.plugin_options(Service=service),
        [
            sized["over-eicar.bin"],
            sized["over-clean.bin"],
            sized["mid-eicar.bin"],
            sized["mid-clean.bin"],
        ],
    )
    assert [(r["verdict"], r["vir_info"]) for r in run.events("scan")] == [
        ("VIRUS_FOUND", EICAR_NAME),
        ("OK", ""),
        ("VIRUS_FOUND", EICAR_NAME),
        ("OK", ""),
    ]


@pytest.mark.parametrize("service", ["avscan", SCAN_EVERYTHING])
def test_stock_clamd_behind_cicap_over_max_file_size_is_impossible(
    host, plugin, stock_icap, sized, service
):
    """Behind c-icap, clamd with Debian's MaxFileSize 25M and AlertExceedsMax no reports
    a larger file as clean, and c-icap answers 204: ServiceMaxSize=auto knows c-icap's
    antivirus service (its OPTIONS) and makes that IMPOSSIBLE; told 0, the plugin takes
    the 204 for what it says (the false clean). Before: OK."""
    run = scan(
        host,
        plugin,
        stock_icap.plugin_options(Service=service),
        [sized["huge-eicar.bin"], sized["huge-clean.bin"], sized["over-eicar.bin"]],
    )
    assert run.verdicts() == ["IMPOSSIBLE", "IMPOSSIBLE", "VIRUS_FOUND"], run
    for record in run.events("scan")[:2]:
        assert "over the 26214400 bytes the ICAP service" in record["vir_info"], record
        assert "ServiceMaxSize=auto: clamd's MaxFileSize" in record["vir_info"], record
    told = scan(
        host,
        plugin,
        stock_icap.plugin_options(Service=service, ServiceMaxSize=0),
        [sized["huge-eicar.bin"]],
    )
    assert told.verdicts() == ["OK"]


def test_stock_virus_scan_send_percent_data(host, plugin, stock_icap, sized):
    """Between StartSendPercentDataAfter (2M) and MaxObjectSize the stock virus_scan
    begins returning the content before it has scanned it; finding a virus, it ends
    the content early, with HTTP 200 and no infection header. A content that does not
    come back whole is VIRUS_FOUND; a whole one (the clean file) OK."""
    run = scan(
        host,
        plugin,
        stock_icap.plugin_options(Service="virus_scan", ScanTimeout=20),
        [sized["mid-eicar.bin"], sized["mid-clean.bin"]] * 2,
        timeout=300,
    )
    records = run.events("scan")
    for record in records[0::2]:
        assert record["verdict"] in ("VIRUS_FOUND", "FAILED"), record
        if record["verdict"] == "VIRUS_FOUND":
            assert record["vir_info"].startswith("content changed by the ICAP server ("), record
        else:  # it began answering while the file was still being sent
            assert "before it had all of it" in record["vir_info"], record
    for record in records[1::2]:
        assert record["verdict"] in ("OK", "FAILED"), record


def test_stock_types_outside_scan_file_types(host, plugin, stock_icap, sized):
    """A limit of c-icap's virus_scan that no client can detect: a type outside
    virus_scan.ScanFileTypes (a PDF, PNG, MP3...) is answered 204 unscanned, by the
    avscan alias too. The plugin's default Service asks with force=on: scanned."""
    skipped = scan(host, plugin, stock_icap.plugin_options(Service="avscan"), [sized["eicar.pdf"]])
    forced = scan(host, plugin, stock_icap.plugin_options(), [sized["eicar.pdf"]])
    assert skipped.verdicts() == ["OK"]
    assert [(r["verdict"], r["vir_info"]) for r in forced.events("scan")] == [
        ("VIRUS_FOUND", EICAR_NAME)
    ]


def test_service_max_size_option(host, plugin, files):
    """ServiceMaxSize given: a clean answer for a larger file is IMPOSSIBLE naming it;
    a virus is still a virus; a bad value fails plugin_init naming the option."""
    with FakeIcap() as fake:
        run = scan(
            host,
            plugin,
            fake.plugin_options(ServiceMaxSize="1K"),
            [files["clean.bin"], files["small.bin"]],
        )
    assert run.verdicts() == ["IMPOSSIBLE", "OK"]
    assert (
        "over the 1024 bytes the ICAP service avscan is known to scan (ServiceMaxSize=1K)"
        in run.events("scan")[0]["vir_info"]
    )
    with FakeIcap("virus_id") as fake:
        run = scan(host, plugin, fake.plugin_options(ServiceMaxSize="1K"), [files["clean.bin"]])
    assert run.verdicts() == ["VIRUS_FOUND"]
    with FakeIcap() as fake:
        run = avhost(
            host,
            plugin,
            "scan",
            fake.plugin_options(ServiceMaxSize="5X"),
            "/etc/hostname",
            timeout=60,
        )
    init = run.events("init")[0]
    assert init["result"] == 0 and 'option ServiceMaxSize="5X"' in init["error"], init


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
        run = scan(
            host,
            plugin,
            fake.plugin_options(ScanTimeout=5),
            [files["clean.bin"], files["eicar.com"], files["small.bin"], files["big-eicar.bin"]],
            "--threads",
            4,
            timeout=120,
        )
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
            run = avhost(
                host,
                plugin,
                "scan",
                {"Port": port, "StartupTimeout": 3, "ConnectTimeout": 1},
                "/etc/hostname",
                timeout=120,
            )
        finally:
            for c in fillers:
                c.close()
    init = run.events("init")[0]
    assert init["result"] == 0, run
    assert (
        f"cannot connect to the ICAP server icap://127.0.0.1:{port}/{SCAN_EVERYTHING}: timed out"
        in init["error"]
    ), init


def test_server_as_host_name(host, plugin, icap, files):
    run = scan(
        host,
        plugin,
        icap.plugin_options(Server="localhost"),
        [files["eicar.com"], files["clean.bin"]],
    )
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
    assert "c-icap libc-icap-mod-virus-scan" in str(e.value) or (
        "c-icap" in str(e.value) and "libc-icap-mod-virus-scan" in str(e.value)
    ), e.value
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
    assert any(
        f"127.0.0.1:{a.port}" in m and "skipped until it answers again" in m for m in server.logs()
    ), server.logs()

    a.restart()  # the next scans ask it OPTIONS a second after it failed, then use it again
    deadline = time.monotonic() + 30
    while (
        not any("answers again" in m and "skipped" not in m for m in server.logs())
        and time.monotonic() < deadline
    ):
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
    assert any(
        f"127.0.0.1:{a.port}" in m and "skipped until it answers" in m for m in server.logs()
    ), server.logs()
    b.stop()
    run = avhost(host, plugin, "scan", pool_options([a, b]), files["eicar.com"], timeout=120)
    text = run.stdout + run.stderr
    assert "no ICAP server of the pool answered OPTIONS" in text, text
    assert f"127.0.0.1:{a.port}" in text and f"127.0.0.1:{b.port}" in text, text
