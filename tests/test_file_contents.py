"""Both network plugins read what a file really holds, not what its size said:
a file whose size reads 0 but yields data (/proc) and a file that grows while it
is streamed, against the real clamd and the real c-icap.

avir_clam.so streams such files to their end with INSTREAM (which needs no length
up front; FILDES would let clamd see st_size 0 and scan nothing). avir_icap.so
announces the length before the body (Content-Length, Preview), so a file whose
size reads 0 but holds data is IMPOSSIBLE, and a file found longer after a clean
answer is FAILED ("grew while it was being scanned").
"""

import os
import socket
import threading

import pytest

from avkit.check import avhost as client
from avkit.check.clamd import EICAR_NAME
from avkit.facts import EICAR
from clam_corpus import write_random

MiB = 1024 * 1024


def scan(under_test, name, options, *paths, env=None):
    run = client.run(
        under_test("avhost"),
        "scan",
        under_test(name),
        *paths,
        options=options,
        timeout=120,
        decode_files=True,
        env=env,
    )
    assert run.violations() == [], run
    assert run.events("crash") == [] and run.events("restart") == [], run
    scans = run.events("scan")
    assert len(scans) == len(paths), run
    assert all(s["verdict"] != "ERROR" for s in scans), run
    return scans


# --- sizes that read 0 ---


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_clam_scans_a_proc_file_whose_size_reads_0(under_test, clamd, transport):
    """/proc/self/environ of the plugin's process, holding EICAR in a variable: it
    was passed as clean unread; it is streamed to its end, even over the UNIX socket
    where FdPass=auto would pass the descriptor (clamd would see st_size 0)."""
    env = dict(os.environ, KERIO_TEST_PAYLOAD=EICAR.decode("ascii"))
    scans = scan(
        under_test,
        "avir_clam.so",
        clamd.plugin_options(transport=transport),
        "/proc/self/environ",
        "/proc/self/status",
        "/proc/self/mem",
        env=env,
    )
    by_file = {s["file"]: s for s in scans}
    assert by_file["/proc/self/environ"]["verdict"] == "VIRUS_FOUND", scans
    assert by_file["/proc/self/environ"]["vir_info"] == EICAR_NAME, scans
    assert by_file["/proc/self/status"]["verdict"] == "OK", scans
    mem = by_file["/proc/self/mem"]
    assert mem["verdict"] == "FAILED" and "/proc/self/mem" in mem["vir_info"], scans


def test_icap_refuses_a_proc_file_whose_size_reads_0(under_test, icap):
    env = dict(os.environ, KERIO_TEST_PAYLOAD=EICAR.decode("ascii"))
    scans = scan(
        under_test,
        "avir_icap.so",
        icap.plugin_options(),
        "/proc/self/environ",
        "/proc/self/mem",
        env=env,
    )
    environ, mem = scans
    assert environ["verdict"] == "IMPOSSIBLE", scans
    assert "size reads 0" in environ["vir_info"], scans
    assert mem["verdict"] == "FAILED" and "/proc/self/mem" in mem["vir_info"], scans


# --- a file that grows while it is sent ---


class PausingProxy:
    """TCP relay to `target` that holds a connection's upload once PAUSE_AFTER bytes
    of it went through (plugin_init's small requests never get there) until
    release(): the test changes the file while the plugin is in the middle of it."""

    PAUSE_AFTER = 256 * 1024

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.paused = threading.Event()
        self.released = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, src, dst, upload):
        passed = 0
        try:
            while not self.stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if upload and passed >= self.PAUSE_AFTER and not self.released.is_set():
                    self.paused.set()
                    self.released.wait(60)
                passed += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.released.set()
        self.sock.close()


def scan_while_growing(under_test, name, options, path, proxy):
    """Scans `path`; once the upload is held mid-file, appends EICAR, then releases it."""
    result = {}

    def grow():
        if proxy.paused.wait(60):
            with open(path, "ab") as f:
                f.write(b"\n" + EICAR + b"\n")
        proxy.released.set()

    grower = threading.Thread(target=grow, daemon=True)
    grower.start()
    try:
        result = scan(under_test, name, options, path)[0]
    finally:
        proxy.close()
        grower.join(5)
    assert proxy.paused.is_set(), "the upload was never held: the test proves nothing"
    return result


def test_clam_streams_a_growing_file_to_its_end(under_test, clamd, tmp_path):
    big = write_random(tmp_path / "growing.bin", 16 * MiB)
    proxy = PausingProxy(clamd.port)
    options = clamd.plugin_options(Port=proxy.port, FdPass="off")
    record = scan_while_growing(under_test, "avir_clam.so", options, big, proxy)
    # What was appended after the size was taken was read and scanned.
    assert record["verdict"] == "VIRUS_FOUND" and record["vir_info"] == EICAR_NAME, record


def test_icap_reports_a_file_that_grew_during_its_scan(under_test, icap, tmp_path):
    big = write_random(tmp_path / "growing.bin", 16 * MiB)
    proxy = PausingProxy(icap.port)
    options = icap.plugin_options(Port=proxy.port)
    record = scan_while_growing(under_test, "avir_icap.so", options, big, proxy)
    # Never a clean verdict for bytes the server did not see.
    assert record["verdict"] in ("FAILED", "VIRUS_FOUND"), record
    if record["verdict"] == "FAILED":
        assert "grew while it was being scanned" in record["vir_info"], record
