"""The soak run: W threads x N scans of the mixed workload through one `avhost serve`
with clamd restarted a few times: wrong verdicts, crashes, descriptors and RSS over time.

Every 10 s a line on stderr (scans done, verdicts, the plugin process's descriptors, RSS
and threads); at the end a summary on stdout and the verdict. Defaults: 64 workers x
10,000 scans (640,000 scans), 3 clamd restarts, 3600 s at most.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.check import avhost
from avkit.check.clamd import Clamd
from avkit.stress.workload import expected_verdict, mixed_files
from avkit.workdir import Scratch

RETRIES = 200  # a scan FAILED while clamd restarts is asked again, this often at most
PROGRESS_EVERY = 10.0  # seconds between two progress lines
FD_GROWTH_LIMIT = 4  # descriptors the plugin process may gain over the run
RSS_GROWTH_LIMIT_KB = 16 * 1024  # and memory


def proc_sample(pid: int) -> dict[str, Any]:
    """Descriptors and RSS of the avhost child that holds the plugin."""
    out = {"pid": pid}
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM", "Threads")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    except OSError:
        out["gone"] = True
    return out


class Tally:
    """Verdicts of all client threads, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.results = {"OK": 0, "wrong": 0, "FAILED": 0, "ERROR": 0, "CRASHED": 0, "other": 0}
        self.done = 0
        self.wrong_examples = []

    def snapshot(self) -> tuple:
        with self.lock:
            return self.done, dict(self.results)

    def add(self, key: str, record: dict = None, done: bool = False):
        with self.lock:
            self.results[key] += 1
            self.done += done
            if key == "wrong" and record and len(self.wrong_examples) < 5:
                self.wrong_examples.append(record)


def ask(f, path: str, deadline: float, tally: Tally):
    """One scan, asked again while it is FAILED (clamd restarting): its record or None."""
    for _ in range(RETRIES):
        f.write(f"SCAN {path}\n")
        f.flush()
        line = f.readline()
        if not line:
            return None
        record = (avhost.parse_records(line) or [{}])[0]
        if record.get("verdict") != "FAILED" or time.monotonic() > deadline:
            return record
        tally.add("FAILED")  # retried; counted, not a wrong verdict
        time.sleep(0.05)
    return record


def client(sock: Path, files: list, n: int, scans: int, deadline: float, tally: Tally):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock))
        f = c.makefile("rw", buffering=1)
        for i in range(scans):
            if time.monotonic() > deadline:
                break
            path = str(files[(n + i) % len(files)])
            record = ask(f, path, deadline, tally)
            if record is None:
                tally.add("other")
                break
            verdict = record.get("verdict")
            if verdict == expected_verdict(path):
                tally.add("OK", done=True)
            elif verdict in ("ERROR", "CRASHED"):
                tally.add(verdict, done=True)
            else:
                tally.add("wrong", record, done=True)  # still FAILED after the retries, or worse


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _mib(kb) -> str:
    return "?" if kb is None else f"{kb / 1024:.1f} MiB"


def progress_line(
    elapsed: float,
    done: int,
    total: int,
    results: dict,
    sample: dict,
    restarts: int,
    restarts_planned: int,
) -> str:
    """One readable line: where the run is, the verdicts so far, the plugin process."""
    rate = done / elapsed if elapsed > 0 else 0.0
    proc = (
        "plugin process gone"
        if sample.get("gone")
        else f"plugin process {sample.get('fds', '?')} fds, RSS {_mib(sample.get('VmRSS'))}, "
        f"{sample.get('Threads', '?')} threads"
    )
    return (
        f"soak {elapsed:6.0f} s: {done:,}/{total:,} scans ({rate:,.0f}/s); "
        f"right {results['OK']:,}, wrong {results['wrong']}, crashed {results['CRASHED']}, "
        f"errors {results['ERROR']}, no answer {results['other']}, asked again "
        f"{results['FAILED']:,}; {proc}; clamd restarts {restarts}/{restarts_planned}"
    )


def watch(
    threads,
    child: int,
    clamd,
    restart_at: list,
    tally: Tally,
    t0: float,
    total: int = 0,
    every: float = PROGRESS_EVERY,
    sample_every: float = 0.5,
) -> tuple:
    """Samples the plugin process every half second, restarts clamd on schedule and
    prints a progress line every `every` seconds (on stderr)."""
    samples, restarts = [], 0
    last_line = time.monotonic()
    while any(th.is_alive() for th in threads):
        time.sleep(sample_every)
        done, results = tally.snapshot()
        sample = proc_sample(child)
        sample.update(t=round(time.monotonic() - t0, 1), scans=done)
        samples.append(sample)
        if restarts < len(restart_at) and done >= restart_at[restarts]:
            clamd.restart()
            restarts += 1
            log(f"soak: clamd restarted at {done:,} scans")
        if time.monotonic() - last_line >= every:
            last_line = time.monotonic()
            log(
                progress_line(
                    time.monotonic() - t0, done, total, results, sample, restarts, len(restart_at)
                )
            )
    return samples, restarts


def problems(report: dict) -> list[str]:
    """What makes the run fail: wrong verdicts, crashes, growing descriptors or memory."""
    first, last, results = report["first_sample"], report["last_sample"], report["results"]
    out = [
        f"{results[k]} {name}"
        for k, name in (
            ("wrong", "wrong verdicts"),
            ("CRASHED", "crashed scans"),
            ("ERROR", "ERROR verdicts"),
            ("other", "scans without an answer"),
        )
        if results[k]
    ]
    grow_fds = last.get("fds", 0) - first.get("fds", 0)
    grow_rss = last.get("VmRSS", 0) - first.get("VmRSS", 0)
    if grow_fds > FD_GROWTH_LIMIT:
        out.append(f"descriptors grew by {grow_fds} (limit {FD_GROWTH_LIMIT})")
    if grow_rss > RSS_GROWTH_LIMIT_KB:
        out.append(f"RSS grew by {_mib(grow_rss)} (limit {_mib(RSS_GROWTH_LIMIT_KB)})")
    return out


def verdict(report: dict) -> bool:
    """Good when nothing was wrong, nothing crashed, and descriptors and memory stayed flat."""
    return not problems(report)


def summary_text(report: dict) -> str:
    """The end of a run, for people (--json FILE has the samples for machines)."""
    first, last, results = report["first_sample"], report["last_sample"], report["results"]
    seconds = report["seconds"]
    rate = report["scans"] / seconds if seconds else 0.0
    planned = report["workers"] * report["scans_per_worker"]
    lines = [
        f"soak: {report['scans']:,} of {planned:,} scans ({report['workers']} workers x "
        f"{report['scans_per_worker']:,}) in {seconds:,.0f} s ({rate:,.0f} scans/s); clamd "
        f"restarted {report['restarts']} times",
        f"  verdicts: {results['OK']:,} right, {results['wrong']} wrong, {results['CRASHED']} "
        f"crashed, {results['ERROR']} ERROR, {results['other']} without an answer; "
        f"{results['FAILED']:,} FAILED answers during the restarts, asked again",
        f"  plugin process: descriptors {first.get('fds', '?')} -> {last.get('fds', '?')} "
        f"(may grow by {FD_GROWTH_LIMIT}), RSS {_mib(first.get('VmRSS'))} -> "
        f"{_mib(last.get('VmRSS'))} (may grow by {_mib(RSS_GROWTH_LIMIT_KB)}), threads "
        f"{first.get('Threads', '?')} -> {last.get('Threads', '?')}",
    ]
    for example in report.get("wrong_examples", []):
        lines.append(
            f"  wrong: {example.get('file', '?')}: {example.get('verdict')} "
            f"{example.get('vir_info') or ''}".rstrip()
        )
    found = problems(report)
    lines.append("soak: ok" if not found else f"soak: FAIL: {'; '.join(found)}")
    return "\n".join(lines)


def run_soak(
    plugin: str = None,
    workers: int = 64,
    scans: int = 10000,
    restarts: int = 3,
    seconds: float = 3600,
    json_path: str = None,
    keep: bool = False,
) -> int:
    so = Path(plugin) if plugin else paths.dist_dir("zig") / "avir_clam.so"
    host = so.parent / "avhost"
    # The files and clamd's folder (its log): removed at the end, kept when the soak fails.
    with Scratch("avkit-soak-", keep=keep) as scratch:
        report, samples = soak(scratch.path, so, host, workers, scans, restarts, seconds)
        print(summary_text(report), flush=True)
        if json_path:
            Path(json_path).write_text(json.dumps(dict(report, samples=samples), indent=2))
        good = verdict(report)
        if not good:
            scratch.keep_because("the soak failed (clamd's log is in clamd/)")
    return 0 if good else 1


def soak(
    work: Path, plugin: Path, host: Path, workers: int, scans: int, restarts: int, seconds: float
) -> tuple:
    """The run itself, in a work folder: (report, samples)."""
    files = mixed_files(work / "files", count=20)
    tally = Tally()
    t0 = time.monotonic()
    with Clamd(work / "clamd", max_threads=32, max_queue=400, stream_max_length=8 << 20) as clamd:
        sock = work / "avhost.sock"
        proc = subprocess.Popen(
            avhost.command(
                host,
                "serve",
                plugin,
                "--socket",
                sock,
                "--max-workers",
                workers,
                "--no-logs",
                options=clamd.plugin_options(),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        child = json.loads(proc.stdout.readline()).get("child_pid")
        threads = [
            threading.Thread(
                target=client, daemon=True, args=(sock, files, n, scans, t0 + seconds, tally)
            )
            for n in range(workers)
        ]
        for th in threads:
            th.start()
        restart_at = [workers * scans * (k + 1) // (restarts + 1) for k in range(restarts)]
        log(
            f"soak: {workers} workers x {scans:,} scans of {len(files)} files through "
            f"{plugin.name}, clamd restarted {restarts} times, at most {seconds:,.0f} s; "
            f"a line every {PROGRESS_EVERY:.0f} s"
        )
        samples, restarts_done = watch(
            threads, child, clamd, restart_at, tally, t0, total=workers * scans
        )
        final = proc_sample(child)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    took = time.monotonic() - t0
    steady = [s for s in samples if "fds" in s] or [final]
    report = {
        "workers": workers,
        "scans_per_worker": scans,
        "scans": tally.done,
        "seconds": round(took, 1),
        "restarts": restarts_done,
        "results": tally.results,
        "first_sample": steady[1] if len(steady) > 1 else steady[0],
        "last_sample": steady[-1],
        "final": final,
        "wrong_examples": tally.wrong_examples,
    }
    return report, samples
