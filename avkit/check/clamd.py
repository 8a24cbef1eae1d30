"""A private, real clamd for the tests, the plugin test kit and the benchmark.

Starts Debian's clamav-daemon binary (/usr/sbin/clamd) with a clamd.conf and a
signature database of its own in a work folder, listening only on loopback and
on a UNIX socket in that folder; no freshclam, no system configuration touched.

    from avkit.check.clamd import Clamd

    with Clamd(tmp_path, idle_timeout=5, stream_max_length=1 << 20) as clamd:
        clamd.port              # TCP port on 127.0.0.1 (and ::1 when ipv6=True)
        clamd.socket_path       # the UNIX socket (clamd's LocalSocket)
        clamd.plugin_options()  # {"Address": "127.0.0.1", "Port": "...", ...} for avir_clam
        clamd.plugin_options(transport="unix")
        clamd.restart()         # stop, then start on the same port and socket
        clamd.stop(); clamd.start()
        clamd.ping()            # True when clamd answers PONG
        clamd.kill()            # SIGKILL: dies with sessions open, as in a crash
        clamd.freeze(); clamd.thaw()  # SIGSTOP/SIGCONT: accepts connections, never answers
        clamd.found_count(EICAR_NAME)  # scans that found it, from its log

A pool of two (avir_clam's Address or LocalSocket as a list):

    with Clamd(tmp_path / "a") as a, Clamd(tmp_path / "b") as b:
        pool_options([a, b])    # {"Address": "127.0.0.1:PA, 127.0.0.1:PB", ...}
        pool_options([a, b], transport="unix")  # {"LocalSocket": "A.sock, B.sock", ...}

Detections of the built-in database (clamd appends ".UNOFFICIAL" to names of
signatures that are not from ClamAV's own signed databases):
    EICAR                    -> "Kerio.Test.EICAR.UNOFFICIAL"     (anywhere in a file)
    TEST_SIGNATURE (bytes)   -> "Kerio.Test.Signature.UNOFFICIAL" (anywhere in a file)
    an encrypted zip         -> "Heuristics.Encrypted.Zip"        (AlertEncrypted yes)
    a file over MaxFileSize  -> "Heuristics.Limits.Exceeded.MaxFileSize" (AlertExceedsMax yes;
                                through FILDES; over INSTREAM StreamMaxLength comes first)

Limits: MaxFileSize equals StreamMaxLength and MaxScanSize is twice as large
(at least 100 MiB), so a file is over the limit in both of avir_clam's modes
(INSTREAM and FILDES) or in neither, and AlertExceedsMax makes clamd say so.

`start()` returns once clamd answers PING (its signatures are loaded); it
raises ClamdError with clamd's log when clamd exits or does not answer in time,
and names the package to install when /usr/sbin/clamd is missing.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from avkit.check import daemon
from avkit.facts import EICAR

CLAMD = os.environ.get("AVKIT_CLAMD", "/usr/sbin/clamd")
EICAR_NAME = "Kerio.Test.EICAR.UNOFFICIAL"
TEST_SIGNATURE = b"KERIO-AVIR-PROJECT-TEST-SIGNATURE-7f3a9c"
TEST_SIGNATURE_NAME = "Kerio.Test.Signature.UNOFFICIAL"
ENCRYPTED_NAME = "Heuristics.Encrypted.Zip"


class ClamdError(RuntimeError):
    """clamd is missing, would not start, or misbehaved."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (clamd binds it a moment later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def signature_database() -> str:
    """The .ndb lines: name:target(0 = any file):offset(* = anywhere):hex."""
    return (f"Kerio.Test.EICAR:0:*:{EICAR.hex()}\n"
            f"Kerio.Test.Signature:0:*:{TEST_SIGNATURE.hex()}\n")


class Clamd:
    """One clamd process with its own configuration, database and sockets under `workdir`.

    idle_timeout:      clamd's IdleTimeout, seconds an idle IDSESSION is kept.
    read_timeout:      clamd's ReadTimeout and CommandReadTimeout, seconds.
    stream_max_length: clamd's StreamMaxLength in bytes (INSTREAM size limit).
    ipv6:              also listen on ::1 (when the machine has IPv6 loopback).
    max_threads, max_queue: clamd's MaxThreads and MaxConnectionQueueLength.
    startup_timeout:   seconds start() waits for the first PONG.
    alert_encrypted:   clamd's AlertEncrypted (False: encrypted archives come back OK).
    tcp:               also listen on TCP (False: only on the UNIX socket).
    socket_path:       the UNIX socket (default: clamd.sock in workdir).
    alert_exceeds_max: clamd's AlertExceedsMax (False: files over a limit come back OK).
    """

    def __init__(self, workdir, *, idle_timeout: int = 30, read_timeout: int = 30,
                 stream_max_length: int = 25 * 1024 * 1024, ipv6: bool = False,
                 max_threads: int = 12, max_queue: int = 100, startup_timeout: float = 60.0,
                 port: int | None = None, alert_encrypted: bool = True, tcp: bool = True,
                 socket_path=None, alert_exceeds_max: bool = True):
        if not Path(CLAMD).exists():
            raise ClamdError(f"{CLAMD} not found: install the Debian package clamav-daemon "
                             f"(apt-get install clamav-daemon), or set AVKIT_CLAMD")
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.stream_max_length = stream_max_length
        self.ipv6 = ipv6 and ipv6_loopback_available()
        self.max_threads = max_threads
        self.max_queue = max_queue
        self.startup_timeout = startup_timeout
        self.alert_encrypted = alert_encrypted
        self.alert_exceeds_max = alert_exceeds_max
        self.tcp = tcp
        self.port = (port or free_port()) if tcp else None
        # sun_path holds 108 bytes: keep the socket short even in a deep work folder.
        self.socket_path = Path(socket_path) if socket_path else self.workdir / "clamd.sock"
        if len(str(self.socket_path)) > 100:
            raise ClamdError(f"work folder {self.workdir} is too deep for a UNIX socket path")
        self.db_dir = self.workdir / "db"
        self.tmp_dir = self.workdir / "tmp"
        self.conf_path = self.workdir / "clamd.conf"
        self.log_path = self.workdir / "clamd.log"
        self.pid_path = self.workdir / "clamd.pid"
        self._proc: subprocess.Popen | None = None
        self._write_files()

    # --- files ---

    def _write_files(self):
        self.db_dir.mkdir(exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        (self.db_dir / "kerio-test.ndb").write_text(signature_database())
        addrs = ["127.0.0.1"] + (["::1"] if self.ipv6 else [])
        lines = [
            "Foreground yes",
            f"LogFile {self.workdir / 'clamd.log'}",
            "LogTime yes",
            "LogVerbose no",
            f"PidFile {self.pid_path}",
            f"DatabaseDirectory {self.db_dir}",
            f"TemporaryDirectory {self.tmp_dir}",
            f"LocalSocket {self.socket_path}",
            "LocalSocketMode 600",
            *([f"TCPSocket {self.port}", *[f"TCPAddr {a}" for a in addrs]] if self.tcp else []),
            f"IdleTimeout {self.idle_timeout}",
            f"ReadTimeout {self.read_timeout}",
            f"CommandReadTimeout {self.read_timeout}",
            f"StreamMaxLength {self.stream_max_length}",
            # A file clamd reads itself (FILDES) meets MaxFileSize, a stream meets
            # StreamMaxLength first: the same number makes both modes agree, and
            # AlertExceedsMax turns "not scanned to the end" into a name instead
            # of OK. MaxScanSize (all data of a file, archives unpacked) above both.
            f"MaxFileSize {self.stream_max_length}",
            f"MaxScanSize {max(self.stream_max_length * 2, 100 * 1024 * 1024)}",
            f"AlertExceedsMax {'yes' if self.alert_exceeds_max else 'no'}",
            f"MaxThreads {self.max_threads}",
            f"MaxConnectionQueueLength {self.max_queue}",
            f"AlertEncrypted {'yes' if self.alert_encrypted else 'no'}",
            "Bytecode no",
            "SelfCheck 0",  # no database reloads in the middle of a test
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    # --- life cycle ---

    def start(self) -> "Clamd":
        if self.running:
            return self
        if self.socket_path.exists():
            self.socket_path.unlink()  # a stale socket from a killed clamd blocks the bind
        self._proc = daemon.start([CLAMD, "--foreground", f"--config-file={self.conf_path}"],
                                  self.workdir)
        try:
            if daemon.wait_ready(self._proc, self.startup_timeout, lambda: self.ping(timeout=1.0)):
                return self
        except daemon.Exited as e:
            self._proc = None
            raise ClamdError(f"clamd exited with status {e.code} while starting:\n"
                             f"{self.log_tail()}") from None
        self.stop()
        raise ClamdError(f"clamd did not answer PING within {self.startup_timeout} s:\n"
                         f"{self.log_tail()}")

    def stop(self):
        """Stops clamd (SIGTERM, then SIGKILL); the sockets go away with it."""
        proc, self._proc = self._proc, None
        if proc is None:
            if self.socket_path.exists():
                self.socket_path.unlink()  # left by kill()
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen clamd cannot act on SIGTERM
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.socket_path.exists():
            self.socket_path.unlink()

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL, as in a crash: open sessions break mid-scan; the socket file stays."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen clamd must be able to die too
            proc.kill()
            proc.wait()

    def freeze(self):
        """SIGSTOP: the kernel still accepts connections, clamd answers nothing."""
        if self.running:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        if self.running:
            self._proc.send_signal(signal.SIGCONT)

    def found_count(self, name: str = EICAR_NAME) -> int:
        """How many scans found `name`, from the log (clamd logs every detection)."""
        try:
            return self.log_path.read_text(errors="replace").count(f" {name} FOUND")
        except OSError:
            return 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    def __enter__(self) -> "Clamd":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- talking to it ---

    def command(self, cmd: bytes, transport: str | None = None, timeout: float = 10.0) -> bytes:
        """One zCOMMAND on a fresh connection (TCP unless clamd has only its UNIX
        socket); its NUL-terminated reply without the NUL."""
        if transport == "unix" or (transport is None and not self.tcp):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = str(self.socket_path)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = ("127.0.0.1", self.port)
        with s:
            s.settimeout(timeout)
            s.connect(addr)
            s.sendall(b"z" + cmd + b"\0")
            reply = b""
            while not reply.endswith(b"\0"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.rstrip(b"\0")

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            return self.command(b"PING", timeout=timeout) == b"PONG"
        except OSError:
            return False

    def version(self) -> str:
        return self.command(b"VERSION").decode("ascii", "replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no clamd log)"
        return "\n".join(text.splitlines()[-lines:])

    def plugin_options(self, transport: str = "tcp", **extra) -> dict:
        """avir_clam options that reach this clamd: transport "tcp", "tcp6" (::1) or "unix"."""
        opts = {"Address": "127.0.0.1", "Port": str(self.port or 3310), "LocalSocket": "",
                "StartupTimeout": "10"}
        if transport != "unix" and not self.tcp:
            raise ClamdError("this clamd was started with tcp=False: use transport=\"unix\"")
        if transport == "unix":
            opts["LocalSocket"] = str(self.socket_path)
        elif transport == "tcp6":
            if not self.ipv6:
                raise ClamdError("this clamd was started without ipv6=True (or ::1 is unavailable)")
            opts["Address"] = "::1"
        elif transport != "tcp":
            raise ValueError(f"transport must be tcp, tcp6 or unix, not {transport!r}")
        opts.update({k: str(v) for k, v in extra.items()})
        return opts



def pool_options(clamds, transport: str = "tcp", **extra) -> dict:
    """avir_clam options for a pool of these clamds: Address as a comma-separated list of
    127.0.0.1:port (transport "tcp"), or LocalSocket as a list of their sockets ("unix")."""
    opts = clamds[0].plugin_options(transport, **extra)
    if transport == "unix":
        opts["LocalSocket"] = ", ".join(str(c.socket_path) for c in clamds)
    elif transport == "tcp":
        opts["Address"] = ", ".join(f"127.0.0.1:{c.port}" for c in clamds)
    else:
        raise ValueError(f"a pool's transport is tcp or unix, not {transport!r}")
    return opts
