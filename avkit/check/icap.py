"""A private, real c-icap with the virus_scan service for the ICAP plugin's tests.

Starts Debian's c-icap (/usr/bin/c-icap, package c-icap) with a configuration of
its own in a work folder: loopback only, its own port, pid file, command socket,
logs and temporary folder; virus_scan (package libc-icap-mod-virus-scan) scans
through its clamd_mod module with a private clamd (avkit.check.clamd), so the
detections are the test signature database's. Nothing of the system's c-icap
(its service, /etc/c-icap, /var/run/c-icap) is touched.

    from avkit.check.clamd import Clamd
    from avkit.check.icap import CIcap

    with Clamd(tmp / "clamd") as clamd, CIcap(tmp / "icap", clamd) as icap:
        icap.port                 # ICAP port on 127.0.0.1
        icap.plugin_options()     # {"Server": "127.0.0.1", "Port": "...", "Service": "avscan", ...}
        icap.restart()            # stop, then start on the same port
        icap.kill()               # SIGKILL to all of it (a crash)
        icap.pause(); icap.resume()  # SIGSTOP/SIGCONT: a server that accepts and says nothing
        icap.options()            # the raw OPTIONS response of a service

Why clamd_mod and not clamav_mod: clamd_mod asks a running clamd (here the private
one, over its UNIX socket), so the signatures, AlertEncrypted and the limits are
the ones the clamd fixture sets; clamav_mod would load libclamav's databases
into c-icap itself.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from avkit.check import daemon
from avkit.check.clamd import Clamd, free_port

CICAP = os.environ.get("AVKIT_CICAP", "/usr/bin/c-icap")
# The service alias Debian's virus_scan.conf defines: 204 answers allowed, no size limit.
AVSCAN = "virus_scan?allow204=on&sizelimit=off&mode=simple"
# Debian's own virus_scan configuration (package libc-icap-mod-virus-scan), used unchanged
# by CIcap(stock=True).
STOCK_VIRUS_SCAN_CONF = "/etc/c-icap/virus_scan.conf"


class CIcapError(RuntimeError):
    """c-icap is missing, would not start, or misbehaved."""


def modules_dir() -> Path | None:
    """Where Debian installs c-icap's modules (its multiarch folder), if virus_scan is there."""
    found = sorted(glob.glob("/usr/lib/*/c_icap/virus_scan.so"))
    return Path(found[0]).parent if found else None


def missing_packages() -> list[str]:
    out = []
    if not Path(CICAP).exists():
        out.append("c-icap")
    if modules_dir() is None:
        out.append("libc-icap-mod-virus-scan")
    return out


def config_lines(
    *,
    port: int,
    modules,
    clamd_socket,
    tmp_dir,
    run_dir,
    log_path,
    max_object_size: str = "5M",
    keepalive_timeout: int = 600,
    max_keepalive_requests: int = 100,
    address: str = "127.0.0.1",
    stock: bool = False,
) -> list[str]:
    """c-icap.conf of a c-icap with virus_scan (and its avscan alias) over clamd_mod: the
    tests' and the kit's private one, and the smoke test's guest (other paths, same lines).

    stock: virus_scan as Debian ships it, by including /etc/c-icap/virus_scan.conf
    unchanged (its MaxObjectSize 5M, SendPercentData 5 after 2M...) instead of the
    tests' own virus_scan lines; only the engine module and its socket are ours."""
    lines = [
        f"PidFile {run_dir}/c-icap.pid",
        f"CommandsSocket {run_dir}/c-icap.ctl",
        "Timeout 60",
        f"MaxKeepAliveRequests {max_keepalive_requests}",
        f"KeepAliveTimeout {keepalive_timeout}",
        "StartServers 1",
        "MaxServers 1",  # one child: SIGSTOP and restarts hit all of it
        "MinSpareThreads 4",
        "MaxSpareThreads 20",
        "ThreadsPerChild 40",
        "MaxRequestsPerChild 0",
        # Anonymous shared memory: the default (posix) leaves /dev/shm files behind
        # a killed c-icap. Its lock files (/tmp/icap_lock_*, a fixed place) are
        # removed by CIcap.stop().
        "InterProcessSharedMemScheme mmap",
        f"Port {address}:{port}",
        f"TmpDir {tmp_dir}",
        "MaxMemObject 131072",
        "DebugLevel 1",
        f"ModulesDir {modules}",
        f"ServicesDir {modules}",
        "TemplateDir /usr/share/c_icap/templates/",
        "TemplateDefaultLanguage en",
        "LoadMagicFile /etc/c-icap/c-icap.magic",
        f"ServerLog {log_path}",
        f"AccessLog {run_dir}/access.log",
        "Service echo srv_echo.so",
        # virus_scan as Debian's virus_scan.conf loads it, with clamd_mod on our clamd.
        "Module common clamd_mod.so",
        f"clamd_mod.ClamdSocket {clamd_socket}",
    ]
    if stock:
        return lines + [f"Include {STOCK_VIRUS_SCAN_CONF}"]
    return lines + [
        "Service antivirus_module virus_scan.so",
        f"ServiceAlias avscan {AVSCAN}",
        "virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE",
        "virus_scan.SendPercentData 0",
        f"virus_scan.MaxObjectSize {max_object_size}",
    ]


class ClamdForIcap(Clamd):
    """The private clamd, with limits that are reported instead of passed as clean.

    max_file_size: clamd's MaxFileSize (and MaxScanSize); with AlertExceedsMax yes a
    larger file is "Heuristics.Limits.Exceeded.MaxFileSize" instead of clean.
    """

    def __init__(self, workdir, *, max_file_size: int | None = None, **kw):
        self.limit = max_file_size
        super().__init__(workdir, **kw)

    def _write_files(self):
        super()._write_files()
        if self.limit is None:
            return
        lines = [
            line
            for line in self.conf_path.read_text().splitlines()
            if not line.startswith(("MaxFileSize ", "MaxScanSize "))
        ]
        lines += [f"MaxFileSize {self.limit}", f"MaxScanSize {self.limit}", "AlertExceedsMax yes"]
        self.conf_path.write_text("\n".join(lines) + "\n")


class CIcap:
    """One c-icap process with its own configuration under `workdir`, scanning with `clamd`.

    max_object_size:  virus_scan.MaxObjectSize (the plain virus_scan service passes
                      larger objects unscanned; the avscan alias has no limit).
    keepalive_timeout, max_keepalive_requests: c-icap's KeepAliveTimeout and
                      MaxKeepAliveRequests (how long and how often a connection is kept).
    startup_timeout:  seconds start() waits for an OPTIONS answer.
    stock:            virus_scan configured by Debian's /etc/c-icap/virus_scan.conf,
                      unchanged (max_object_size is then ignored: the stock 5M holds).
    """

    def __init__(
        self,
        workdir,
        clamd: Clamd,
        *,
        port: int | None = None,
        max_object_size: str = "5M",
        keepalive_timeout: int = 600,
        max_keepalive_requests: int = 100,
        startup_timeout: float = 30.0,
        stock: bool = False,
    ):
        lacking = missing_packages()
        if lacking:
            raise CIcapError(
                f"c-icap with virus_scan is missing: install the Debian packages "
                f"{' '.join(lacking)} (apt-get install {' '.join(lacking)})"
            )
        if stock and not Path(STOCK_VIRUS_SCAN_CONF).is_file():
            raise CIcapError(
                f"{STOCK_VIRUS_SCAN_CONF} is missing: it comes with the Debian "
                f"package libc-icap-mod-virus-scan (apt-get install --reinstall "
                f"libc-icap-mod-virus-scan)"
            )
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clamd = clamd
        self.port = port or free_port()
        self.max_object_size = max_object_size
        self.keepalive_timeout = keepalive_timeout
        self.max_keepalive_requests = max_keepalive_requests
        self.startup_timeout = startup_timeout
        self.stock = stock
        self.conf_path = self.workdir / "c-icap.conf"
        self.log_path = self.workdir / "server.log"
        self.tmp_dir = self.workdir / "tmp"
        self._proc: subprocess.Popen | None = None
        self._lock_files: set[str] = set()
        self._write_files()

    def _write_files(self):
        self.tmp_dir.mkdir(exist_ok=True)
        lines = config_lines(
            port=self.port,
            modules=modules_dir(),
            clamd_socket=self.clamd.socket_path,
            tmp_dir=self.tmp_dir,
            run_dir=self.workdir,
            log_path=self.log_path,
            max_object_size=self.max_object_size,
            keepalive_timeout=self.keepalive_timeout,
            max_keepalive_requests=self.max_keepalive_requests,
            stock=self.stock,
        )
        self.conf_path.write_text("\n".join(lines) + "\n")

    # --- life cycle ---

    def start(self) -> "CIcap":
        if self.running:
            return self
        # -N: stay in the foreground; the children are in its process group (a new session).
        self._proc = daemon.start([CICAP, "-N", "-f", str(self.conf_path)], self.workdir)
        try:
            if daemon.wait_ready(self._proc, self.startup_timeout, self._answers_options):
                self._note_lock_files()
                return self
        except daemon.Exited as e:
            self._proc = None
            raise CIcapError(
                f"c-icap exited with status {e.code} while starting:\n{self.log_tail()}"
            ) from None
        self.stop()
        raise CIcapError(
            f"c-icap did not answer OPTIONS within {self.startup_timeout} s:\n{self.log_tail()}"
        )

    def _answers_options(self) -> bool:
        try:
            return self.options().startswith(b"ICAP/1.0 200")
        except OSError:
            return False  # not listening yet

    def _note_lock_files(self):
        """The lock files this c-icap made in /tmp, from its descriptors."""
        fd_dir = Path(f"/proc/{self._proc.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("/tmp/icap_lock_"):
                self._lock_files.add(target)

    def _remove_lock_files(self):
        """A c-icap that was killed (or cut short by stop()) leaves its lock files."""
        for path in self._lock_files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._lock_files.clear()

    def stop(self):
        """Stops c-icap and its children (SIGTERM to the group, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None:
            self._remove_lock_files()
            return
        try:
            os.killpg(proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)  # c-icap waits ~10 s for kept connections; a restart need not
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the main process
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait()
        self._wait_port_free()
        self._remove_lock_files()

    def _wait_port_free(self, timeout: float = 15.0) -> None:
        """Until no process of the stopped c-icap listens on the port any more. The main
        process has ended, but its children, killed with it, may still hold the
        listening socket for a moment under load: a start() then could not bind it
        ("Error binding", 2 runs in 84 of test_cicap_restarted_between_scans)."""
        end = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as c-icap binds
                try:
                    probe.bind(("127.0.0.1", self.port))
                    return
                except OSError:
                    if time.monotonic() > end:
                        raise CIcapError(
                            f"port {self.port} is still taken {timeout:.0f} s after c-icap "
                            f"was stopped"
                        ) from None
            time.sleep(0.05)

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL to every c-icap process (a crash); stop() or restart() clean up after it."""
        os.killpg(self._proc.pid, signal.SIGKILL)

    def pause(self):
        """SIGSTOP to every c-icap process: connections are accepted by the kernel, nothing answers."""
        os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self._proc.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "CIcap":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- talking to it ---

    def options(self, service: str = "avscan", timeout: float = 5.0) -> bytes:
        """The raw response head to OPTIONS icap://127.0.0.1:port/service."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(
                f"OPTIONS icap://127.0.0.1:{self.port}/{service} ICAP/1.0\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nEncapsulated: null-body=0\r\n\r\n".encode()
            )
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no c-icap log)"
        return "\n".join(text.splitlines()[-lines:])

    def plugin_options(self, **extra) -> dict[str, str]:
        """avir_icap options that reach this c-icap with the plugin's default Service
        (virus_scan, every type and size handed to clamd)."""
        opts = {"Server": "127.0.0.1", "Port": str(self.port), "StartupTimeout": "10"}
        opts.update({k: str(v) for k, v in extra.items()})
        return opts
