"""The one client of avhost: its command lines, its runs and its JSON records.

Everything that drives a plugin through avhost (the kit, the benchmark, the stress
jobs, the smoke report, the tests) builds its command here and reads the records
with these helpers; host/README.md describes the records.

    run = avhost.run(host, "scan", plugin, file, options={"Port": "3310"})
    run.returncode, run.events("scan"), run.scans()[str(file)], run.violations()

    with avhost.Serve(host, plugin, options=opts) as serve:      # requests on stdin
        serve.scan(path)["verdict"]

    with avhost.SocketServe(host, plugin, options=opts) as serve: # a UNIX socket
        serve.request(["SCAN /x", "STATS"])
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from avkit import facts, paths, prereqs, workdir
from avkit.errors import UserError


def option_args(options: Optional[Mapping] = None) -> list[str]:
    """-o NAME=VALUE for each plugin option, as set_plugin_config will receive them."""
    args = []
    for name, value in (options or {}).items():
        args += ["-o", f"{name}={value}"]
    return args


def command(host, mode: str, plugin, *args, options: Optional[Mapping] = None) -> list[str]:
    return [str(host), mode, str(plugin), *option_args(options), *map(str, args)]


def raw_text(s):
    """avhost writes every byte >= 0x80 as \\u00XX: this gives back the UTF-8 text."""
    return s.encode("latin-1", "replace").decode("utf-8", "replace") if isinstance(s, str) else s


def parse_records(text: str, decode_files: bool = False) -> list[dict]:
    """The JSON records among the lines of text (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            if decode_files and isinstance(record.get("file"), str):
                record["file"] = raw_text(record["file"])
            out.append(record)
    return out


class Records:
    """Questions asked of a list of records."""

    records: list

    def events(self, kind: str) -> list[dict]:
        return [r for r in self.records if r.get("event") == kind]

    def scans(self) -> dict[str, dict[str, Any]]:
        """{file: its last scan record}."""
        return {r["file"]: r for r in self.events("scan")}

    def verdicts(self) -> list[str]:
        return [r["verdict"] for r in self.events("scan")]

    def violations(self, event: Optional[str] = None) -> list[str]:
        return [
            v
            for r in self.records
            if event in (None, r.get("event"))
            for v in (r.get("violations") or [])
        ]

    def logs(self) -> list[str]:
        return [r["message"] for r in self.events("log")]

    def summary(self) -> dict[str, Any]:
        found = self.events("summary")
        return found[-1] if found else {}


@dataclass
class Run(Records):
    """The outcome of one avhost process."""

    returncode: int
    records: list = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    def __repr__(self):
        return f"exit {self.returncode}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"


def run(
    host,
    mode: str,
    plugin,
    *args,
    options: Optional[Mapping] = None,
    timeout: float = 600,
    decode_files: bool = False,
    prefix: tuple = (),
    on_record: Optional[Callable[[dict], Optional[bool]]] = None,
    **popen,
) -> Run:
    """One avhost process to its end. prefix: a command to run it under (setpriv, valgrind).
    on_record: called with each record as it comes (progress for people); when it returns
    True, avhost is ended (the records so far are the run's)."""
    if on_record is not None:
        return _run_streaming(
            host,
            mode,
            plugin,
            *args,
            options=options,
            timeout=timeout,
            decode_files=decode_files,
            prefix=prefix,
            on_record=on_record,
        )
    start = time.monotonic()
    proc = subprocess.run(
        [*map(str, prefix), *command(host, mode, plugin, *args, options=options)],
        capture_output=True,
        timeout=timeout,
        **popen,
    )
    out = proc.stdout.decode("utf-8", "replace")
    return Run(
        proc.returncode,
        parse_records(out, decode_files),
        out,
        proc.stderr.decode("utf-8", "replace"),
        time.monotonic() - start,
    )


def _run_streaming(
    host,
    mode: str,
    plugin,
    *args,
    options: Optional[Mapping],
    timeout: float,
    decode_files: bool,
    prefix: tuple,
    on_record: Callable[[dict], Optional[bool]],
) -> Run:
    """run(), reading the records as avhost writes them: its results on stdout, and its
    progress ("waiting" records) on stderr, which is read alongside."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [*map(str, prefix), *command(host, mode, plugin, *args, options=options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[str] = []
    err_lines: list[str] = []
    lock = threading.Lock()  # on_record is called from both readers

    def seen(line: str) -> None:
        with lock:
            if any(on_record(r) is True for r in parse_records(line, decode_files)):
                proc.kill()  # the caller has seen enough

    def read_stderr() -> None:
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            err_lines.append(line)
            if '"event":"waiting"' in line.replace(" ", ""):
                seen(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    killer = threading.Timer(timeout, proc.kill)  # a bound, whatever the plugin does
    killer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            seen(line)
    finally:
        killer.cancel()
        code = proc.wait()
        reader.join()
    out = "".join(lines)
    return Run(
        code, parse_records(out, decode_files), out, "".join(err_lines), time.monotonic() - start
    )


def timed_records(
    host,
    mode: str,
    plugin,
    *args,
    options: Optional[Mapping] = None,
    prefix: tuple = (),
    until: str = "init",
    timeout: float = 150,
) -> list[tuple[float, dict[str, Any]]]:
    """Runs avhost (under `prefix`, e.g. setpriv) until a record of the event `until`
    arrives, then ends it: [(seconds since the start when the record came, record)],
    for tests that measure when the plugin said something."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [*map(str, prefix), *command(host, mode, plugin, *args, options=options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    out = []
    try:
        while time.monotonic() - start < timeout:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"avhost ended before a {until} record: {proc.stderr.read()}")
            record = json.loads(line)
            out.append((time.monotonic() - start, record))
            if record.get("event") == until:
                return out
        raise AssertionError(f"no {until} record within {timeout} s: {out}")
    finally:
        try:
            proc.communicate(timeout=30)  # closes stdin: for serve, the end of requests
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


class Serve(Records):
    """`avhost serve` with requests on its stdin: one plugin instance across requests."""

    def __init__(self, host, plugin, *args, options: Optional[Mapping] = None):
        self.proc = subprocess.Popen(
            command(host, "serve", plugin, *args, options=options),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.records = []
        self.returncode: Optional[int] = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_record(self, event: str, timeout: float = 120) -> dict[str, Any]:
        """Reads records until one of this event comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"avhost serve ended: {self.proc.stderr.read()}")
            record = json.loads(line)
            self.records.append(record)
            if record["event"] == event:
                return record
        raise AssertionError(f"no {event} record within {timeout} s")

    def scan(self, path, timeout: float = 120) -> dict[str, Any]:
        self.send(f"SCAN {path}")
        return self.next_record("scan", timeout)

    def close(self, timeout: float = 60) -> Optional[int]:
        if self.proc.poll() is None and not self.proc.stdin.closed:
            try:
                self.send("SHUTDOWN")
            except OSError:
                pass
            try:
                rest, _ = self.proc.communicate(timeout=timeout)
                self.records += parse_records(rest)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        self.returncode = self.proc.wait()
        return self.returncode


class SocketServe(Records):
    """`avhost serve --socket`: any number of clients, as the products' avserver has."""

    def __init__(
        self, host, plugin, *args, options: Optional[Mapping] = None, start_timeout: float = 30
    ):
        self.dir = str(workdir.new_folder("avkit-serve-"))
        self.sock = os.path.join(self.dir, "avhost.sock")
        self.out = open(os.path.join(self.dir, "stdout.jsonl"), "w+b")
        self._final: Optional[list[dict[str, Any]]] = (
            None  # the records, kept once the folder is gone
        )
        self.proc = subprocess.Popen(
            command(host, "serve", plugin, "--socket", self.sock, *args, options=options),
            stdout=self.out,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + start_timeout
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise UserError(f"avhost serve did not start: {self.records}")
            time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    @property  # the records, read-only once the run is over (Run's is a plain list)
    def records(self) -> list[dict]:  # type: ignore[override]
        if self._final is not None:
            return self._final
        self.out.flush()
        return parse_records(Path(self.out.name).read_text("utf-8", "replace"), decode_files=True)

    def request(self, lines: list[str], timeout: float = 300) -> list[dict]:
        """Sends the lines on one connection; returns one answer per line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall("".join(line + "\n" for line in lines).encode())
            buf = b""
            answers: list[Any] = []
            while len(answers) < len(lines):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    answers += parse_records(line.decode("ascii", "replace"), decode_files=True)
            return answers

    def close(self, timeout: float = 60) -> int:
        """Waits for the end (after a SHUTDOWN request); kills it past timeout (-9)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = -9
        self.remove()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.remove()

    def remove(self) -> None:
        """Its folder (socket, saved stdout) goes; the records stay readable."""
        if self._final is None:
            self._final = self.records
            self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def find(plugin: Path, explicit: Optional[str] = None) -> Path:
    """The avhost to load plugin with: the given one, the one beside it, or the release one
    of the plugin's architecture (an avhost loads only plugins of its own ELF class)."""
    from avkit import elf  # pyelftools: not for `avkit prereqs`, which runs before it is installed

    arch = (
        facts.arch_of(elf.header(plugin)) if Path(plugin).is_file() and elf.is_elf(plugin) else None
    )
    if facts.architecture(arch)["elf_class"] == 32:
        prereqs.require_i386_runtime()
    if explicit:
        return Path(explicit)
    release = paths.dist_dir("zig", arch=arch)
    for candidate in (plugin.parent / "avhost", release / "avhost"):
        if candidate.exists():
            return candidate
    from avkit.hints import avhost_command

    raise UserError(
        f"avhost not found beside {plugin} nor in {release}: build it "
        f"({avhost_command(arch)}) or pass --avhost"
    )


_HELP: dict[str, str] = {}


def supports(host, option: str) -> bool:
    """Whether this avhost knows an option (its --help names it): the kit works with an
    avhost older than itself and says what it could not check."""
    key = str(host)
    if key not in _HELP:
        r = subprocess.run([key, "--help"], capture_output=True, text=True, timeout=30)
        _HELP[key] = r.stdout + r.stderr
    return option in _HELP[key]


def plugin_name(host, plugin, options: Optional[Mapping] = None) -> str:
    """The name the plugin reports in get_plugin_info."""
    r = run(host, "info", plugin, "--cycles", "1", "--no-logs", options=options)
    for record in r.events("load"):
        if record.get("name"):
            return record["name"]
    why = [f"{rec['event']}: {rec['error']}" for rec in r.records if rec.get("error")]
    why += r.violations() + [line for line in r.stderr.splitlines() if line.strip()][-2:]
    raise UserError(f"avhost could not load {plugin}: {'; '.join(why) or 'no reason given'}")
