"""avir_clam.so with a pool of two real clamds (Address or LocalSocket as a list):
scans spread over both, one killed or stalled is skipped and the scan in flight goes to
the other, a restarted one is used again, all down is FAILED naming every instance.

Each clamd is a private one (avkit.check.clamd); which one scanned a file is read from
its own log (clamd logs every detection, so the tests scan the EICAR file).
"""

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from avkit.check import avhost as client
from avkit.check.clamd import EICAR_NAME, Clamd, pool_options
from avkit.facts import EICAR
from avkit.stress import failover
from conftest import ON_BOTH_ARCHS


# AVKIT_SANITIZED=1 (conftest.under_test): the same cases against the ASan+UBSan
# build: the shared health is where workers meet.
#: the plugin of conftest's `plugin` fixture (`host` is conftest's too)
PLUGIN = "avir_clam.so"


@pytest.fixture
def short_folder():
    """A folder in /tmp with a short name: a pool's socket paths share LocalSocket's 127
    characters, whatever pytest's tmp_path is. Removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="avkit-pool-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def two_clamds(tmp_path, short_folder):
    a = Clamd(tmp_path / "a", idle_timeout=60, socket_path=short_folder / "a.sock")
    b = Clamd(tmp_path / "b", idle_timeout=60, socket_path=short_folder / "b.sock")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def eicar(tmp_path):
    path = tmp_path / "eicar.com"
    path.write_bytes(EICAR)
    return path


def scan_virus(server, path, times):
    """`times` scans of the EICAR file: their records."""
    records = [server.scan(path) for _ in range(times)]
    return records


def found(clamd, at_least, wait=5.0):
    """clamd's count of EICAR detections, once it reaches `at_least` or `wait` ran out:
    clamd writes its log line after its reply, a moment after the scan's record."""
    deadline = time.monotonic() + wait
    while clamd.found_count() < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return clamd.found_count()


def assert_all_found(records):
    assert [(r["verdict"], r["vir_info"]) for r in records] == [("VIRUS_FOUND", EICAR_NAME)] * len(
        records
    ), records


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_scans_spread_over_both(two_clamds, eicar, serve, transport):
    a, b = two_clamds
    server = serve(pool_options([a, b], transport))
    records = scan_virus(server, eicar, 10)
    assert_all_found(records)
    # Round robin: each clamd scanned about half of them (each logs its detections).
    assert found(a, 5) >= 3 and found(b, 5) >= 3, (a.found_count(), b.found_count())
    assert found(a, 10 - b.found_count()) + b.found_count() == 10
    if transport == "unix":  # FdPass=auto works per instance: descriptors, not streams
        assert any("took a file descriptor (FILDES)" in m for m in server.logs()), server.logs()


@ON_BOTH_ARCHS
@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_killed_instance_is_skipped_then_used_again(two_clamds, eicar, serve, transport, arch):
    a, b = two_clamds
    server = serve(pool_options([a, b], transport))
    assert_all_found(scan_virus(server, eicar, 4))  # sessions open on both
    # b's count must include its share of those 4 before it is the base of the 10 below
    # (clamd logs a detection a moment after its reply).
    deadline = time.monotonic() + 5
    while a.found_count() + b.found_count() < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    a.kill()  # sessions to it break: the scan that meets one goes to b
    b_before = b.found_count()
    after_kill = scan_virus(server, eicar, 10)
    assert_all_found(after_kill)  # not one FAILED: the dead one is retried elsewhere, then skipped
    assert found(b, b_before + 10) - b_before == 10
    assert any(
        f"127.0.0.1:{a.port}" in m or str(a.socket_path) in m
        for m in server.logs()
        if "skipped until it answers again" in m
    ), server.logs()

    a.start()
    # The background probe finds it within a second or two; bounded wait, no timing verdict.
    deadline = time.monotonic() + 30
    while (
        not any("answers again: scans use it" in m for m in server.logs())
        and time.monotonic() < deadline
    ):
        server.scan(eicar)
        time.sleep(0.2)
    a_before = a.found_count()
    assert_all_found(scan_virus(server, eicar, 6))
    assert found(a, a_before + 1) > a_before, "the restarted clamd was not used again"


def test_all_down_is_failed_naming_every_instance(two_clamds, eicar, serve):
    a, b = two_clamds
    server = serve(pool_options([a, b]))
    assert_all_found(scan_virus(server, eicar, 2))
    a.kill()
    b.kill()
    for _ in range(3):  # the first meets both failing; the next find both marked down
        record = server.scan(eicar)
        assert record["verdict"] == "FAILED", record
        assert f"127.0.0.1:{a.port}" in record["vir_info"], record
        assert f"127.0.0.1:{b.port}" in record["vir_info"], record
    b.start()  # one back: scans go on without a new plugin_init
    deadline = time.monotonic() + 30
    while server.scan(eicar)["verdict"] != "VIRUS_FOUND" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_all_found(scan_virus(server, eicar, 3))


def test_stalled_instance_times_out_and_the_scan_goes_elsewhere(two_clamds, eicar, serve):
    a, b = two_clamds
    server = serve(pool_options([a, b], ScanTimeout=5))
    assert_all_found(scan_virus(server, eicar, 2))
    a.freeze()
    try:
        records = scan_virus(server, eicar, 6)
        assert_all_found(records)  # the one that met the frozen clamd was scanned by b
        assert any(
            "no answer within ScanTimeout=5 s" in m and "skipped" in m for m in server.logs()
        ), server.logs()
    finally:
        a.thaw()


def test_init_with_one_instance_down_uses_the_other(two_clamds, eicar, serve):
    a, b = two_clamds
    a.stop()
    server = serve(pool_options([a, b]))
    assert_all_found(scan_virus(server, eicar, 4))
    assert found(b, 4) == 4
    assert any(f"127.0.0.1:{a.port}" in m and "does not answer" in m for m in server.logs()), (
        server.logs()
    )


def test_init_fails_when_no_instance_answers(two_clamds, host, plugin, eicar):
    a, b = two_clamds
    a.stop()
    b.stop()
    run = client.run(host, "scan", plugin, eicar, options=pool_options([a, b]), timeout=120)
    text = run.stdout + run.stderr
    assert run.events("scan") == [] or all(r["verdict"] != "OK" for r in run.events("scan"))
    assert "no clamd instance of the pool answered" in text, text
    assert f"127.0.0.1:{a.port}" in text and f"127.0.0.1:{b.port}" in text, text


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1:3310, host:", "is not host, host:port"),
        ("[::1:3310", "is not host, host:port"),
        (" , ", "lists no host"),
    ],
)
def test_bad_pool_entries_are_named_at_init(host, plugin, eicar, address, why):
    run = client.run(
        host,
        "scan",
        plugin,
        eicar,
        options={"Address": address, "StartupTimeout": "10"},
        timeout=120,
    )
    text = run.stdout + run.stderr
    assert why in text, text


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_failover_run_has_no_failed_after_the_failover_second(
    host, plugin, short_folder, transport
):
    """The failover run (avkit/stress/failover.py), short: one clamd killed under load."""
    report = failover.failover(
        short_folder,
        plugin,
        host,
        workers=4,
        seconds=4.0,
        kill_at=1.5,
        transport=transport,
        limit=100_000,
    )
    phases = report["phases"]
    assert phases["before"]["scans"] > 0 and phases["after"]["scans"] > 0, report
    assert phases["after"]["verdicts"]["FAILED"] == 0, report
    for p in failover.PHASES:
        assert phases[p]["wrong"] == 0 and phases[p]["verdicts"]["ERROR"] == 0, report
        assert phases[p]["verdicts"]["CRASHED"] == 0, report
    assert report["problems"] == [], report
    assert "failover: ok" in failover.table(report), failover.table(report)


@ON_BOTH_ARCHS
def test_reloads_with_a_pool_leave_no_thread_or_descriptor(two_clamds, host, plugin, eicar, arch):
    """A pool starts the background thread (keep-alive and probes) in every plugin_init, one
    instance down the whole time: it ends with plugin_close, and 20 load/use/unload rounds
    on 4 threads leave the descriptors and threads they started with."""
    a, b = two_clamds
    a.stop()
    run = client.run(
        host,
        "scan",
        plugin,
        eicar,
        eicar,
        "--threads",
        4,
        "--reloads",
        20,
        options=pool_options([a, b]),
        timeout=300,
    )
    assert run.violations() == [], run
    assert run.returncode == 0, run
    unloads = run.events("unload")
    assert len(unloads) == 20
    assert {(u["fds_before_load"], u["fds_after_unload"]) for u in unloads} == {
        (unloads[0]["fds_before_load"],) * 2
    }
    assert {(u["threads_before_load"], u["threads_after_unload"]) for u in unloads} == {(1, 1)}
    assert set(run.verdicts()) == {"VIRUS_FOUND"}, run
