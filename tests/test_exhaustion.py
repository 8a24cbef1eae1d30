"""Both network plugins when the host runs out of descriptors or address space:
every scan that cannot get what it needs is FAILED with a sentence saying so, the
host never crashes, and the same worker context scans again once the resources
are back. Driven through `avhost serve` (one plugin process across requests)
whose plugin process gets a lower RLIMIT_NOFILE or RLIMIT_AS with prlimit while
it runs, against the real clamd and the real c-icap.
"""

import os
import resource
from pathlib import Path

import pytest

from avkit.check import avhost as client
from avkit.facts import EICAR
from clam_corpus import write_random

PLUGINS = ["avir_clam.so", "avir_icap.so"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "eicar.com").write_bytes(EICAR)
    write_random(d / "clean.bin", 200 * 1024)
    return d


def engine_options(request, name, transport):
    if name == "avir_clam.so":
        return request.getfixturevalue("clamd").plugin_options(transport=transport)
    return request.getfixturevalue("icap").plugin_options()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def vm_size(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


LIMITS = {"nofile": resource.RLIMIT_NOFILE, "as": resource.RLIMIT_AS}


def lower(pid: int, name: str, soft: int):
    """Lowers the soft limit of `name` in process `pid`; returns the limits to restore."""
    before = resource.prlimit(pid, LIMITS[name])
    resource.prlimit(pid, LIMITS[name], (soft, before[1]))
    return before


def restore(pid: int, name: str, limits) -> None:
    resource.prlimit(pid, LIMITS[name], limits)


def child_pid(server) -> int:
    return server.next_record("serving", 30)["child_pid"]


def scan(server, path, timeout=60):
    record = server.scan(path, timeout)
    assert record["verdict"] not in ("ERROR", "CRASHED", "HUNG"), server.records
    assert not server.events("restart") and not server.events("crash"), server.records
    return record


def exhaust(pid: int, name: str):
    """Returns the limits to restore."""
    if name == "nofile":
        return lower(pid, "nofile", open_fds(pid))  # not one descriptor more
    # Room for the host's worker thread (an 8 MiB stack), not for the plugin's
    # 1 MiB upload buffer (ChunkSize=1048576).
    return lower(pid, "as", vm_size(pid) + THREAD_STACK + 700 * 1024)


THREAD_STACK = 8 * 1024 * 1024


@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("limit", ["nofile", "as"])
@pytest.mark.parametrize("name", PLUGINS)
def test_scans_fail_cleanly_without_resources_and_recover(
    request, under_test, files, name, limit, transport
):
    if name == "avir_icap.so" and transport == "unix":
        pytest.skip("ICAP is TCP only")
    if name == "avir_icap.so" and limit == "as":
        # Its largest allocation is a 64 KiB buffer: no address-space limit starves
        # it without starving the host's own threads first.
        pytest.skip("no allocation of avir_icap.so alone can be starved")
    host, plugin = under_test("avhost"), under_test(name)
    options = engine_options(request, name, transport)
    if limit == "as":
        # Streamed with 1 MiB chunks: the upload buffer is what cannot be had.
        options.update(ChunkSize=str(1024 * 1024), FdPass="off")
    # ICAP: a file past the preview, so that the upload buffer is needed.
    victim = files / ("clean.bin" if name == "avir_icap.so" else "eicar.com")
    # One worker kept for the whole test: its context must survive the exhaustion.
    server = client.Serve(host, plugin, "--idle-timeout", "0", options=options)
    try:
        pid = child_pid(server)
        assert server.next_record("init", 60)["result"] == 1, server.records
        limits = exhaust(pid, limit)
        starved = [scan(server, victim) for _ in range(3)]
        restore(pid, limit, limits)
        # Resources back: the same context scans again (a few tries: it may rebuild).
        after = [scan(server, files / f) for f in ("eicar.com", "clean.bin", "eicar.com")]
    finally:
        server.close()
    for record in starved:
        # Without resources the truth is "could not scan this file", never a verdict made up.
        assert record["verdict"] in ("FAILED", "VIRUS_FOUND"), record
        if record["verdict"] == "FAILED":
            text = record["vir_info"]
            assert victim.name in text and "internal error" not in text, record
            assert ("ulimit -n" if limit == "nofile" else "out of memory") in text, record
    assert any(r["verdict"] == "FAILED" for r in starved), starved  # the test starved it
    assert [r["verdict"] for r in after] == ["VIRUS_FOUND", "OK", "VIRUS_FOUND"], after
    assert server.returncode == 0, server.records
    assert not server.events("restart") and not server.events("crash"), server.records
    assert server.violations() == [], server.records
