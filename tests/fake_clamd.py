"""A fake clamd on 127.0.0.1 for the faults a real clamd will not produce on demand.

It speaks enough of clamd's protocol (z-commands, IDSESSION, PING, VERSION,
INSTREAM chunks, END) for avir_clam to start and scan, and then answers each
INSTREAM as `mode` says:

    "ok"          "N: stream: OK" (a well-behaved clamd)
    "stall"       reads the whole stream, then never answers (past ScanTimeout)
    "overlong"    an endless line with no terminator (64 KiB, then silence)
    "overlong_1m" the same with 1 MiB
    "overlong_ping", "overlong_version"
                  PING or VERSION answered with 1 MiB and no terminator
    "drip"        a plausible reply, one byte every DRIP_INTERVAL s, never finished
    "slow_reader" takes the first SLOW_BYTES of a stream at SLOW_RATE bytes/s,
                  the rest at full speed, then answers OK (an upload that makes
                  progress for long)
    "stop_reading" takes 1 MiB of a stream, then reads nothing more (an upload
                  that stalls)
    "stop_and_drip" as stop_reading, then drips a reply as "drip" does while the
                  upload is still pending (each byte looked like progress)
    "slow_drain"  takes the stream at TRICKLE_BYTES per TRICKLE_INTERVAL for ever,
                  never answers (an upload never silent for long, never finished)
    "garbage"     binary bytes, printf directives and no request id, NUL-terminated
    "wrong_id"    a clean verdict for another request number
    "close_mid"   half a reply, then closes the connection
    "drop_after"  answers OK, then closes the session (like a clamd restart)
    "old"         answers VERSION as ClamAV 0.94.2 (too old for the plugin)

With `unix_path`, it listens on that UNIX socket instead of TCP and takes
FILDES too (the descriptor arrives as SCM_RIGHTS with the byte after the
command); "ok" answers "N: fd[M]: OK", "stall" never answers, and two modes
refuse as clamd does when no descriptor arrives (clamd behind a forwarder) or
as a clamd without FILDES, then close the session:

    "refuse_fd"   "N: No file descriptor received. ERROR"
    "unknown_fd"  "UNKNOWN COMMAND"

`fildes` counts the FILDES requests and `passed` holds (size, first 64 bytes)
of each file received.

plugin_init's probes (two INSTREAMs after VERSION on the same connection: an
encrypted zip, a zip nested past MaxRecursion) are answered in every mode as a
clamd with AlertEncrypted and AlertExceedsMax yes answers them, and counted
apart: `instreams` counts only the scans.

    with FakeClamd("stall") as fake:
        fake.plugin_options(ScanTimeout=5)   # options for avhost -o
        fake.instreams                        # INSTREAM commands received so far
        fake.probes                           # plugin_init's probes
        fake.connections                      # connections accepted so far
"""

import array
import itertools
import os
import socket
import struct
import threading
import time

from fake_server import FakeServer


class FakeClamd(FakeServer):
    DRIP_INTERVAL = 2.0  # seconds between two bytes: well under ScanTimeout's minimum of 5
    SLOW_BYTES = 8 * 1024 * 1024
    SLOW_RATE = 1024 * 1024
    # 8 KiB per 0.15 s (53 KiB/s), steadily: the sender sees progress well within
    # ScanTimeout=5, yet 3 MiB take a minute.
    TRICKLE_BYTES = 8 * 1024
    TRICKLE_INTERVAL = 0.15

    def __init__(self, mode: str = "ok", unix_path=None, grow_to=None, alerts=True):
        """grow_to: every file passed by descriptor grows to this size before the
        reply; alerts=False: answers plugin_init's probes as a clamd with
        AlertExceedsMax no (the nested archive comes back OK)."""
        super().__init__()
        self.mode = mode
        self.grow_to = grow_to
        self.alerts = alerts
        self.unix_path = str(unix_path) if unix_path else None
        self.fildes = 0
        self.passed: list[tuple[int, bytes]] = []
        self.instreams = 0
        self.probes = 0
        self._lock = threading.Lock()
        family = socket.AF_UNIX if self.unix_path else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        if not self.unix_path:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen(
            sock,
            self.unix_path or ("127.0.0.1", 0),
            small_window=mode in ("slow_reader", "stop_reading", "stop_and_drip"),
        )
        self.port = None if self.unix_path else self._sock.getsockname()[1]

    def _closed(self):
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    def plugin_options(self, **extra) -> dict:
        opts = {
            "Address": "127.0.0.1",
            "Port": str(self.port or 3310),
            "StartupTimeout": "10",
            "LocalSocket": self.unix_path or "",
        }
        opts.update({k: str(v) for k, v in extra.items()})
        return opts

    # --- server ---

    def _recv(self, conn, n, fds):
        """recv that keeps descriptors passed with the bytes (a plain recv closes them)."""
        if not self.unix_path:
            return conn.recv(n)
        data, ancillary, _, _ = conn.recvmsg(n, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
        return data

    def _take_descriptor(self, conn, buf, fds):
        """FILDES: the byte after the command carries the descriptor. Returns it."""
        while not fds:
            chunk = self._recv(conn, 1, fds)
            if not chunk:
                raise ConnectionError("client went away")
            buf[0] += chunk
        buf[0] = buf[0][1:]  # the carrier byte
        fd = fds.pop(0)
        try:
            if self.grow_to is not None:
                # the file grows after the plugin's fstat, before clamd's own
                os.truncate(os.readlink(f"/proc/self/fd/{fd}"), self.grow_to)
            size = os.fstat(fd).st_size
            head = os.pread(fd, 64, 0)
        finally:
            os.close(fd)
        with self._lock:
            self.fildes += 1
            self.passed.append((size, head))
        return fd

    def _read_command(self, conn, buf, fds=None):
        while b"\0" not in buf[0]:
            chunk = self._recv(conn, 4096, fds if fds is not None else [])
            if not chunk:
                raise ConnectionError("client went away")
            buf[0] += chunk
        cmd, _, buf[0] = buf[0].partition(b"\0")
        return cmd

    def _read_stream(self, conn, buf, recv=None):
        """Consumes INSTREAM chunks up to the zero-length end marker."""
        recv = recv or conn.recv
        while True:
            while len(buf[0]) < 4:
                chunk = recv(65536)
                if not chunk:
                    raise ConnectionError("client went away")
                buf[0] += chunk
            (length,) = struct.unpack("!I", buf[0][:4])
            buf[0] = buf[0][4:]
            if length == 0:
                return
            while len(buf[0]) < length:
                chunk = recv(65536)
                if not chunk:
                    raise ConnectionError("client went away")
                buf[0] += chunk
            buf[0] = buf[0][length:]

    def _throttled_recv(self, conn):
        """conn.recv that takes the first SLOW_BYTES at SLOW_RATE bytes/s."""
        taken = 0
        started = time.monotonic()

        def recv(n):
            nonlocal taken
            if taken < self.SLOW_BYTES:
                ahead = taken / self.SLOW_RATE - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                n = min(n, 16384)
            data = conn.recv(n)
            taken += len(data)
            return data

        return recv

    def _client(self, conn):
        buf = [b""]
        fds: list[int] = []
        session = False
        probe_answers: list[bytes] = []
        request = 0
        try:
            with conn:
                while not self._stop.is_set():
                    cmd = self._read_command(conn, buf, fds)
                    if cmd == b"zIDSESSION":
                        session = True
                        continue
                    if cmd == b"zEND":
                        return
                    request += 1
                    prefix = f"{request}: ".encode() if session else b""
                    if cmd == b"zPING" and self.mode == "overlong_ping":
                        conn.sendall(prefix + b"PONG" + b"G" * (1 << 20))
                        self._stop.wait()
                        return
                    elif cmd == b"zPING":
                        conn.sendall(prefix + b"PONG\0")
                    elif cmd == b"zVERSION" and self.mode == "overlong_version":
                        conn.sendall(prefix + b"ClamAV 1.4.3/" + b"7" * (1 << 20))
                        self._stop.wait()
                        return
                    elif cmd == b"zVERSION":
                        # plugin_init's probes follow: an encrypted zip, a deeply nested one
                        probe_answers = [
                            b"stream: Heuristics.Encrypted.Zip FOUND\0",
                            b"stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND\0"
                            if self.alerts
                            else b"stream: OK\0",
                        ]
                        version = b"0.94.2" if self.mode == "old" else b"1.4.3"
                        conn.sendall(prefix + b"ClamAV " + version + b"/27000/fake\0")
                    elif cmd == b"zFILDES" and self.mode == "unknown_fd":
                        conn.sendall(b"UNKNOWN COMMAND\0")
                        return
                    elif cmd == b"zFILDES" and self.mode == "refuse_fd":
                        conn.sendall(prefix + b"No file descriptor received. ERROR\0")
                        return
                    elif cmd == b"zFILDES":
                        fd = self._take_descriptor(conn, buf, fds)
                        if not self._answer(conn, prefix, request, f"fd[{fd}]: ".encode()):
                            return
                    elif cmd == b"zINSTREAM" and probe_answers:
                        FakeClamd._read_stream(self, conn, buf)
                        with self._lock:
                            self.probes += 1
                        conn.sendall(prefix + probe_answers.pop(0))
                    elif cmd == b"zINSTREAM" and self.mode == "slow_reader":
                        self._read_stream(conn, buf, self._throttled_recv(conn))
                        with self._lock:
                            self.instreams += 1
                        conn.sendall(prefix + b"stream: OK\0")
                    elif cmd == b"zINSTREAM" and self.mode in ("stop_reading", "stop_and_drip"):
                        taken = len(buf[0])
                        while taken < 1 << 20:
                            chunk = conn.recv(65536)
                            if not chunk:
                                return
                            taken += len(chunk)
                        if self.mode == "stop_and_drip":
                            self._drip(conn, prefix)
                        self._stop.wait()
                        return
                    elif cmd == b"zINSTREAM" and self.mode == "slow_drain":
                        with self._lock:
                            self.instreams += 1
                        self._trickle(conn)
                        return
                    elif cmd == b"zINSTREAM":
                        self._read_stream(conn, buf)
                        with self._lock:
                            self.instreams += 1
                        if not self._answer(conn, prefix, request):
                            return
                    else:
                        conn.sendall(prefix + b"UNKNOWN COMMAND\0")
                    if not session:
                        return
        except (ConnectionError, OSError):
            pass

    def _drip(self, conn, prefix):
        """A reply byte every DRIP_INTERVAL: each is progress to a silence timer; the
        line never ends (before kMaxReplyLine, 1,024 bytes, it would take 34 min)."""
        reply = itertools.chain(prefix + b"stream: ", itertools.cycle(b"Slow.Drip."))
        while not self._stop.wait(self.DRIP_INTERVAL):
            conn.sendall(bytes([next(reply)]))

    def _trickle(self, conn):
        """Takes the upload at TRICKLE_RATE, well under any plausible link, and never
        stops taking it: no silence ever reaches ScanTimeout; it never answers."""
        while not self._stop.wait(self.TRICKLE_INTERVAL):
            if not conn.recv(self.TRICKLE_BYTES):
                return

    def _answer(self, conn, prefix, request, named=b"stream: ") -> bool:
        """Sends the mode's answer; False when the connection must end."""
        mode = self.mode
        if mode in ("ok", "old", "refuse_fd", "unknown_fd"):
            conn.sendall(prefix + named + b"OK\0")
        elif mode == "drop_after":
            conn.sendall(prefix + b"stream: OK\0")
            return False
        elif mode == "stall":
            self._stop.wait()  # never answers while the test runs
            return False
        elif mode in ("overlong", "overlong_1m"):
            conn.sendall(prefix + b"stream: " + b"A" * (65536 if mode == "overlong" else 1 << 20))
            self._stop.wait()
            return False
        elif mode == "drip":
            self._drip(conn, prefix)
            return False
        elif mode == "garbage":
            conn.sendall(b"\x01\xff\xfe%s%n%x\x1b[31m garbage\0")
        elif mode == "wrong_id":
            conn.sendall(f"{request + 41}: stream: OK\0".encode())
        elif mode == "close_mid":
            conn.sendall(prefix + b"stream: Kerio.Te")
            return False
        else:
            raise ValueError(mode)
        return True
