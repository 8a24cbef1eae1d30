"""avir_clam.so and clamd's size limits with Debian's UNCHANGED stock clamd.conf, and
plugin_init's waits for clamd.

The clamd here is avkit.check.clamd's stock mode: /etc/clamav/clamd.conf exactly as
clamav-daemon's postinst writes it (MaxFileSize 25M, MaxScanSize 100M, StreamMaxLength
25M, AlertExceedsMax unset = no, LocalSocketMode 666), with only these lines changed, each
because a private test instance must (see STOCK_CHANGES there): LocalSocket and LogFile
(the system's paths are the system clamd's), DatabaseDirectory (the test signature
database), Foreground (clamd is the test's child), User removed (as clamav it could not
read the test's folders). The TCP case adds TCPSocket/TCPAddr 127.0.0.1 (stock clamd
listens on its UNIX socket only); the trusted case adds AlertExceedsMax yes.

Every row of docs/admin.md's "Files over the engine's limits" table names its test here.
"""

import io
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from avkit.check import avhost as client
from avkit.check.clamd import EICAR_NAME, Clamd, free_port, pool_options
from avkit.facts import EICAR

MiB = 1024 * 1024
STOCK_LIMIT = 25 * MiB  # Debian's MaxFileSize and StreamMaxLength
MODES = {
    "UNIX FILDES": ("unix", "auto"),
    "UNIX INSTREAM": ("unix", "off"),
    "TCP INSTREAM": ("tcp", "auto"),
}
TOOLCHAINS = ["zig", "gcc"]


def eicar_at_end(path: Path, size: int) -> Path:
    """`size` bytes: a hole, then the EICAR string as the file's last bytes."""
    with open(path, "wb") as f:
        f.truncate(size - len(EICAR))
        f.seek(size - len(EICAR))
        f.write(EICAR)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("limits")
    return {
        "over": eicar_at_end(folder / "eicar-at-end-30M.bin", 30 * MiB),
        "at_limit": eicar_at_end(folder / "eicar-at-end-25M.bin", STOCK_LIMIT),
        "small": eicar_at_end(folder / "eicar.com", len(EICAR)),
        "deep_zip": nested_zip(folder / "eicar-nested-20.zip", 20),
    }


def nested_zip(path: Path, depth: int) -> Path:
    """EICAR in a zip in a zip... `depth` deep: past the stock MaxRecursion 16."""
    data, name = EICAR, "eicar.com"
    for level in range(depth):
        buffer = io.BytesIO()
        # deflated: the EICAR bytes must not be visible to a scan of the outer file
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name, data)
        data, name = buffer.getvalue(), f"level{level}.zip"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    """clamd with Debian's stock clamd.conf (AlertExceedsMax unset), plus loopback TCP."""
    with Clamd(tmp_path_factory.mktemp("stock"), stock=True, alert_exceeds_max=False) as c:
        conf = c.conf_path.read_text()
        for line in (
            "MaxFileSize 25M",
            "StreamMaxLength 25M",
            "MaxScanSize 100M",
            "LocalSocketMode 666",
        ):
            assert f"\n{line}\n" in conf, conf  # the stock limits, unchanged
        assert "\nAlertExceedsMax" not in conf
        yield c


@pytest.fixture(scope="module")
def stock_alerting(tmp_path_factory):
    """The same with the one line AlertExceedsMax yes added."""
    with Clamd(
        tmp_path_factory.mktemp("stock-alert"), stock=True, tcp=False, alert_exceeds_max=True
    ) as c:
        yield c


def scan(toolchain, artifact, options, paths):
    run = client.run(
        artifact("avhost", toolchain=toolchain),
        "scan",
        artifact("avir_clam.so", toolchain=toolchain),
        *paths,
        options=options,
        timeout=300,
    )
    assert run.violations() == [], run
    assert run.events("init")[0]["result"] == 1, run
    return run


# --- Debian's stock clamd.conf: AlertExceedsMax no ---


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("mode", MODES)
def test_stock_clamd_file_over_the_limit_is_impossible(artifact, stock, files, mode, toolchain):
    """30 MB with EICAR at its end: clamd skips it for MaxFileSize and calls it clean.
    The plugin must not: IMPOSSIBLE, naming the setting that fixes it. EICAR alone, and
    EICAR at the end of a file exactly at the limit, are still found (the plugin's own
    limit is not below clamd's)."""
    transport, fd_pass = MODES[mode]
    run = scan(
        toolchain,
        artifact,
        stock.plugin_options(transport, FdPass=fd_pass),
        [files["over"], files["small"], files["at_limit"]],
    )
    scans = run.scans()
    over = scans[str(files["over"])]
    assert over["verdict"] == "IMPOSSIBLE", (mode, over)
    if fd_pass == "off" or transport == "tcp":
        # Streamed: clamd itself stops at StreamMaxLength, or the plugin first.
        assert "StreamMaxLength" in over["vir_info"], over
    else:
        assert "AlertExceedsMax yes" in over["vir_info"] and "MaxFileSize" in over["vir_info"], over
    assert scans[str(files["small"])]["verdict"] == "VIRUS_FOUND"
    at_limit = scans[str(files["at_limit"])]
    assert (at_limit["verdict"], at_limit["vir_info"]) == ("VIRUS_FOUND", EICAR_NAME), at_limit
    # Logged once at init: what the plugin does, and what it cannot tell.
    warnings = [m for m in run.logs() if "reports a file over its limits as clean" in m]
    assert len(warnings) == 1 and "26214400 bytes (MaxFileSize 25M" in warnings[0], run.logs()
    cannot_tell = [m for m in run.logs() if "MaxScanSize, MaxFiles, MaxRecursion" in m]
    assert len(cannot_tell) == 1 and "AlertExceedsMax yes" in cannot_tell[0], run.logs()


def _run_folder_of_the_test(folder: Path):
    """Creates a stock socket folder for the test, then removes it with what it holds; a
    folder that exists already belongs to this machine's clamd: the test is skipped."""
    try:
        folder.mkdir(mode=0o755)
    except FileExistsError:
        pytest.skip(f"{folder} exists (a clamd of this machine?): not touching it")
    try:
        yield folder
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


@pytest.fixture
def debian_socket_folder():
    """/run/clamav, created for the test only when it does not exist, then removed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create /run/clamav")
    _stock_places_free()
    if "LocalSocket /var/run/clamav/clamd.ctl" not in Path("/etc/clamav/clamd.conf").read_text():
        pytest.skip("/etc/clamav/clamd.conf is not Debian's stock one")
    yield from _run_folder_of_the_test(Path("/run/clamav"))


def test_no_options_and_debian_stock_socket(artifact, files, tmp_path, debian_socket_folder):
    """The issue's case exactly: the plugin with no option set finds clamd on Debian's
    stock socket, reads the limit from /etc/clamav/clamd.conf (whose LocalSocket that
    is), and the 30 MB file passed by descriptor is IMPOSSIBLE, not OK."""
    with Clamd(
        tmp_path / "clamd",
        stock=True,
        tcp=False,
        alert_exceeds_max=False,
        socket_path=debian_socket_folder / "clamd.ctl",
    ):
        run = scan("zig", artifact, {"StartupTimeout": "10"}, [files["over"], files["at_limit"]])
    over, at_limit = run.events("scan")
    assert over["verdict"] == "IMPOSSIBLE", over
    assert "MaxFileSize 25M in /etc/clamav/clamd.conf" in over["vir_info"], over
    assert at_limit["verdict"] == "VIRUS_FOUND", at_limit
    assert any("using clamd at /var/run/clamav/clamd.ctl" in m for m in run.logs()), run.logs()


def test_stock_limit_read_from_the_named_clamd_conf(artifact, stock, files):
    """ClamdConf names the clamd.conf: the reason says where the limit came from."""
    run = scan(
        "zig",
        artifact,
        stock.plugin_options("unix", ClamdConf=stock.conf_path),
        [files["over"], files["at_limit"]],
    )
    over, at_limit = run.events("scan")
    assert over["verdict"] == "IMPOSSIBLE", over
    assert f"MaxFileSize 25M in {stock.conf_path}" in over["vir_info"], over
    assert at_limit["verdict"] == "VIRUS_FOUND", at_limit


def test_limit_below_stock_is_read_from_clamd_conf(artifact, tmp_path):
    """A clamd whose MaxFileSize (1 MiB) is below the stock 25M: learnt from its
    clamd.conf (ClamdConf), a passed file over it is IMPOSSIBLE instead of clean."""
    big = eicar_at_end(tmp_path / "eicar-at-end-2M.bin", 2 * MiB)
    with Clamd(tmp_path / "clamd", alert_exceeds_max=False, stream_max_length=MiB) as c:
        run = scan(
            "zig", artifact, c.plugin_options("unix", FdPass="on", ClamdConf=c.conf_path), [big]
        )
    record = run.events("scan")[0]
    assert record["verdict"] == "IMPOSSIBLE", record
    assert f"MaxFileSize 1M in {c.conf_path}" in record["vir_info"], record


def test_file_grown_past_the_limit_during_the_scan_is_not_clean(artifact, tmp_path):
    """A real clamd cannot be made to lose this race on cue, so a fake one wins it: the
    file grows past MaxFileSize after the plugin's fstat and before clamd's, and clamd
    (AlertExceedsMax no) skips it and answers OK. That OK must not reach the product."""
    from fake_clamd import FakeClamd

    small = tmp_path / "growing.bin"
    small.write_bytes(b"x" * 4096)
    with FakeClamd("ok", unix_path=tmp_path / "clamd.sock", grow_to=2 * MiB, alerts=False) as fake:
        conf = tmp_path / "clamd.conf"
        conf.write_text(f"LocalSocket {fake.unix_path}\nMaxFileSize 1M\n")
        run = scan("zig", artifact, fake.plugin_options(FdPass="on", ClamdConf=conf), [small])
        assert fake.fildes == 1, "the file was not passed by descriptor"
    record = run.events("scan")[0]
    assert record["verdict"] == "FAILED", record
    assert "grew to 2097152 bytes" in record["vir_info"] and "MaxFileSize 1M" in record["vir_info"]


def test_stock_clamd_archive_over_max_recursion_is_not_detected(artifact, stock, files):
    """What the plugin cannot tell (README says so, and plugin_init warns): with
    AlertExceedsMax no, EICAR past MaxRecursion comes back OK from clamd, the same
    answer as a clean archive. test_alert_exceeds_max_yes_is_trusted has the fix."""
    run = scan("zig", artifact, stock.plugin_options("unix"), [files["deep_zip"]])
    assert run.verdicts() == ["OK"], run
    assert any(
        "MaxScanSize, MaxFiles, MaxRecursion" in m and "AlertExceedsMax yes" in m
        for m in run.logs()
    ), run.logs()


# --- AlertExceedsMax yes: clamd's answer is trusted ---


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_alert_exceeds_max_yes_is_trusted(artifact, stock_alerting, files, toolchain):
    """clamd reports the file itself (Heuristics.Limits.Exceeded.MaxFileSize): the
    plugin passes it the file (no cap of its own) and reports clamd's answer."""
    run = scan(
        toolchain,
        artifact,
        stock_alerting.plugin_options("unix"),
        [files["over"], files["at_limit"], files["deep_zip"]],
    )
    over, at_limit, deep = run.events("scan")
    assert deep["verdict"] == "IMPOSSIBLE", deep
    assert "Heuristics.Limits.Exceeded.MaxRecursion" in deep["vir_info"], deep
    assert over["verdict"] == "IMPOSSIBLE", over
    assert "Heuristics.Limits.Exceeded.MaxFileSize" in over["vir_info"], over
    assert "would call it clean" not in over["vir_info"], over
    assert at_limit["verdict"] == "VIRUS_FOUND", at_limit
    assert not any("reports a file over its limits as clean" in m for m in run.logs())


def test_pool_decides_per_instance(artifact, stock, stock_alerting, files):
    """A pool of a stock clamd and one with AlertExceedsMax yes: each scan of the
    30 MB file is IMPOSSIBLE, from the plugin's limit on the first and from clamd's
    own answer on the second (round robin: both are used)."""
    run = scan(
        "zig",
        artifact,
        pool_options([stock, stock_alerting], "unix"),
        [files["over"], files["over"], files["small"], files["small"]],
    )
    over = [r for r in run.events("scan") if r["file"] == str(files["over"])]
    assert [r["verdict"] for r in over] == ["IMPOSSIBLE", "IMPOSSIBLE"], over
    reasons = sorted("Heuristics.Limits.Exceeded" in r["vir_info"] for r in over)
    assert reasons == [False, True], over
    assert run.verdicts()[2:] == ["VIRUS_FOUND", "VIRUS_FOUND"]


# --- every wait speaks ---


def serve_until_init(artifact, options, prefix=()):
    """`avhost serve` (under `prefix`, e.g. setpriv) to the end of plugin_init: the init
    record, each log line with the seconds since avhost started when it arrived, and the
    seconds until the init record came."""
    records = client.timed_records(
        artifact("avhost"), "serve", artifact("avir_clam.so"), options=options, prefix=prefix
    )
    logs = [(t, r["message"]) for t, r in records if r["event"] == "log"]
    ended, init = records[-1]
    return init, logs, ended


def report_waits(capsys, case, logs, ended):
    """Prints the figures (pytest -s): when each 'waiting for' line came, and the end."""
    waits = [f"{t:.1f}" for t, m in logs if "waiting for" in m]
    with capsys.disabled():
        print(
            f"\n{case}: 'waiting for' lines at {', '.join(waits)} s; plugin_init ended "
            f"after {ended:.2f} s"
        )


def check_waits_speak(logs, ended, timeout):
    """The first line at once, then no silence of more than 10 s (with slack for a loaded
    machine), until plugin_init ended about StartupTimeout later."""
    waits = [t for t, m in logs if "waiting for" in m]
    assert waits and waits[0] < 3.0, logs
    gaps = [b - a for a, b in zip(waits + [ended], waits[1:] + [ended])]
    assert max(gaps) <= 10.0 + 2.0, (gaps, logs)
    assert timeout - 0.5 <= ended <= timeout + 10, (ended, logs)


def test_clamd_down_at_a_configured_address_speaks(artifact, capsys):
    port = free_port()
    init, logs, ended = serve_until_init(artifact, {"Port": str(port), "StartupTimeout": "10"})
    assert init["result"] == 0, init
    check_waits_speak(logs, ended, 10)
    first = next(m for _, m in logs if "waiting for" in m)
    assert f"clamd at 127.0.0.1:{port}: " in first and "connection refused" in first, logs
    assert "(tried for 10 s, StartupTimeout=10 s)" in init["error"], init
    assert "connection refused" in init["error"], init
    report_waits(capsys, f"clamd down (TCP {port}, StartupTimeout=10)", logs, ended)


def test_clamd_down_at_a_configured_socket_speaks(artifact, tmp_path, capsys):
    path = tmp_path / "clamd.sock"  # the folder exists: clamd may yet create it
    init, logs, ended = serve_until_init(
        artifact, {"LocalSocket": str(path), "StartupTimeout": "10"}
    )
    assert init["result"] == 0, init
    check_waits_speak(logs, ended, 10)
    report_waits(capsys, "clamd down (LocalSocket, StartupTimeout=10)", logs, ended)


def test_clamd_that_never_accepts_speaks(artifact, capsys):
    """A listener whose backlog is full drops the plugin's SYNs (as a firewall would
    for a remote clamd): each connection attempt is bounded, so the wait still speaks."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # never accepted: the queue stays full
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                fillers.append(c)
            time.sleep(0.2)
            init, logs, ended = serve_until_init(
                artifact, {"Port": str(port), "StartupTimeout": "10"}
            )
        finally:
            for c in fillers:
                c.close()
    assert init["result"] == 0, init
    waits = [t for t, m in logs if "waiting for" in m]
    assert waits and waits[0] <= 5.0 + 3.0, logs
    gaps = [b - a for a, b in zip([0.0] + waits, waits + [ended])]
    assert max(gaps) <= 10.0 + 2.0, (gaps, logs)
    assert ended <= 10 + 10, (ended, logs)
    report_waits(capsys, "clamd never accepting (full backlog, StartupTimeout=10)", logs, ended)


def test_pool_all_down_speaks(artifact, capsys):
    ports = [free_port(), free_port()]
    init, logs, ended = serve_until_init(
        artifact, {"Address": ", ".join(f"127.0.0.1:{p}" for p in ports), "StartupTimeout": "10"}
    )
    assert init["result"] == 0, init
    check_waits_speak(logs, ended, 10)
    first = next(m for _, m in logs if "waiting for" in m)
    assert all(f"127.0.0.1:{p}: " in first for p in ports), first
    assert "(tried for 10 s)" in init["error"], init
    assert "connection refused" in init["error"] and "timed out" not in init["error"], init
    report_waits(capsys, "pool of two, both down (StartupTimeout=10)", logs, ended)


def test_pool_instance_unusable_for_good_is_explained_at_once(artifact, stock):
    """In a pool, an instance that can never work (not a socket) is not waited for,
    and its whole hint is logged; the pool starts on the instance that answers."""
    # Short: the two paths share one option value of at most 127 characters.
    with tempfile.TemporaryDirectory(prefix="avk") as short:
        bogus = Path(short) / "not-a-socket"
        bogus.write_text("x\n")
        records = client.timed_records(
            artifact("avhost"),
            "serve",
            artifact("avir_clam.so"),
            options={"LocalSocket": f"{bogus}, {stock.socket_path}", "StartupTimeout": "10"},
        )
    ended, init = records[-1]
    assert init["result"] == 1 and ended < 5, (ended, init)
    hints = [
        r["message"]
        for _, r in records
        if r["event"] == "log" and "of the pool cannot be used" in r["message"]
    ]
    assert len(hints) == 1 and f"{bogus} is not a socket" in hints[0], records


# The stock sockets of clam/src/discovery.cpp, in its order.
STOCK_SOCKETS = [
    "/var/run/clamav/clamd.ctl",
    "/run/clamav/clamd.ctl",
    "/run/clamd.scan/clamd.sock",
    "/var/run/clamd.scan/clamd.sock",
]


def _stock_places_free():
    if any(os.path.lexists(p) for p in STOCK_SOCKETS):
        pytest.skip("a clamd (or something) is at one of the stock sockets on this machine")
    import socket

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 3310)) == 0:
            pytest.skip("something listens on 127.0.0.1:3310")


def test_discovery_that_finds_nothing_speaks(artifact, capsys):
    _stock_places_free()
    init, logs, ended = serve_until_init(artifact, {"StartupTimeout": "10"})
    assert init["result"] == 0, init
    check_waits_speak(logs, ended, 10)
    first = next(m for _, m in logs if "waiting for" in m)
    assert "stock places" in first and "127.0.0.1:3310: connection refused" in first, logs
    assert "tried for 10 s" in init["error"], init
    # The last try, at the deadline, still says what is at each place.
    assert "127.0.0.1:3310: connection refused" in init["error"], init
    report_waits(capsys, "no clamd anywhere (discovery, StartupTimeout=10)", logs, ended)


@pytest.fixture
def rhel_socket_folder():
    """/run/clamd.scan, created for the test only when it does not exist, then removed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create /run/clamd.scan")
    _stock_places_free()
    yield from _run_folder_of_the_test(Path("/run/clamd.scan"))


def test_discovery_ends_at_once_on_a_stock_path_that_is_no_socket(artifact, rhel_socket_folder):
    (rhel_socket_folder / "clamd.sock").write_text("not a socket\n")
    init, logs, ended = serve_until_init(artifact, {"StartupTimeout": "30"})
    assert init["result"] == 0, init
    assert ended < 10, (ended, logs)  # not StartupTimeout=30 s
    assert "/run/clamd.scan/clamd.sock: not a socket" in init["error"], init


def test_discovery_ends_at_once_on_permission_denied(
    artifact, rhel_socket_folder, tmp_path, capsys
):
    """Debian's clamd socket, as the stock clamd.conf makes it but mode 660 (group
    clamav), and the product running as nobody: the hint at once, and the end of
    plugin_init at once, not after StartupTimeout."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) missing")
    for name in ("avhost", "avir_clam.so"):
        path = artifact(name)
        if not all(os.stat(p).st_mode & 0o005 for p in [path, *path.parents][:-1]):
            pytest.skip(f"{path} is not readable by nobody")
    with Clamd(tmp_path / "clamd", tcp=False, socket_path=rhel_socket_folder / "clamd.sock"):
        init, logs, ended = serve_until_init(
            artifact,
            {"StartupTimeout": "30"},
            prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
        )
    assert init["result"] == 0, init
    assert ended < 10, (ended, logs)
    assert any("permission denied" in m and "add that user to the group" in m for _, m in logs), (
        logs
    )
    assert "permission denied" in init["error"], init
    with capsys.disabled():
        print(
            f"\npermission denied on a stock socket (StartupTimeout=30): plugin_init ended "
            f"after {ended:.2f} s"
        )
