"""The failover run: W workers scan the mixed workload through one `avhost serve` whose
avir_clam has a pool of two private clamds; one clamd is killed (SIGKILL) mid-run.

Every scan is recorded with its time and verdict, then counted in three phases: before
the kill, the failover second (the first second after it) and after. The table gives
scans per second and verdicts per phase; the JSON (build/failover/failover.json unless
--json says otherwise) has the same and the run's settings. Nothing is asked again: a
FAILED is counted as it came.

The run is good when nothing was wrong, crashed or ERROR anywhere, and no scan FAILED
after the failover second. Its speeds are figures, not verdicts.

    from avkit.stress.failover import run_failover
    run_failover(workers=8, seconds=6)      # kill at the middle; 0 when good
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.check import avhost
from avkit.check.clamd import Clamd, pool_options
from avkit.stress.workload import expected_verdict, mixed_files
from avkit.workdir import Scratch

PHASES = ("before", "during", "after")
FAILOVER_SECOND = 1.0  # "during": this long from the kill on
VERDICTS = ("OK", "VIRUS_FOUND", "FAILED", "IMPOSSIBLE", "ERROR", "CRASHED", "other")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def client(
    sock: Path,
    files: list,
    n: int,
    deadline: float,
    t0: float,
    out: list,
    lock: threading.Lock,
    limit: int,
):
    """One worker: scans until the deadline or `limit` scans; (t, verdict, right) each."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock))
        f = c.makefile("rw", buffering=1)
        for i in range(limit):
            if time.monotonic() >= deadline:
                return
            path = str(files[(n + i) % len(files)])
            f.write(f"SCAN {path}\n")
            f.flush()
            line = f.readline()
            t = time.monotonic() - t0
            record = (avhost.parse_records(line) or [{}])[0]
            verdict = record.get("verdict") or "other"
            with lock:
                out.append(
                    (
                        t,
                        verdict if verdict in VERDICTS else "other",
                        verdict == expected_verdict(path),
                        record.get("vir_info") or "",
                    )
                )
            if not line:
                return


def phase_of(t: float, kill_t: float) -> str:
    if t < kill_t:
        return "before"
    return "during" if t < kill_t + FAILOVER_SECOND else "after"


def tally(scans: list, kill_t: float, end_t: float) -> dict[str, dict[str, Any]]:
    """Per phase: its length, scans, scans/s, verdict counts and wrong verdicts."""
    spans = {
        "before": kill_t,
        "during": min(FAILOVER_SECOND, end_t - kill_t),
        "after": max(end_t - kill_t - FAILOVER_SECOND, 0.0),
    }
    out: dict[str, dict[str, Any]] = {
        p: {
            "seconds": round(spans[p], 2),
            "scans": 0,
            "wrong": 0,
            "verdicts": {v: 0 for v in VERDICTS},
            "failed_examples": [],
        }
        for p in PHASES
    }
    for t, verdict, right, info in scans:
        ph = out[phase_of(t, kill_t)]
        ph["scans"] += 1
        ph["verdicts"][verdict] += 1
        if not right and verdict != "FAILED":
            ph["wrong"] += 1
        if verdict == "FAILED" and len(ph["failed_examples"]) < 3:
            ph["failed_examples"].append(info)
    for p in PHASES:
        s = out[p]["seconds"]
        out[p]["per_second"] = round(out[p]["scans"] / s, 1) if s > 0 else 0.0
    return out


def problems(phases: dict) -> list[str]:
    """What makes the run fail: a FAILED after the failover second, anything wrong anywhere."""
    found = []
    for p in PHASES:
        v = phases[p]["verdicts"]
        for key in ("ERROR", "CRASHED", "other"):
            if v[key]:
                found.append(
                    f"{v[key]} {key} {p} the kill"
                    if p != "during"
                    else f"{v[key]} {key} in the failover second"
                )
        if phases[p]["wrong"]:
            found.append(f"{phases[p]['wrong']} wrong verdicts ({p})")
    if phases["before"]["verdicts"]["FAILED"]:
        found.append(f"{phases['before']['verdicts']['FAILED']} FAILED before the kill")
    if phases["after"]["verdicts"]["FAILED"]:
        found.append(f"{phases['after']['verdicts']['FAILED']} FAILED after the failover second")
    if phases["after"]["scans"] == 0:
        found.append("no scan after the failover second (run longer)")
    return found


def table(report: dict) -> str:
    phases = report["phases"]
    head = (
        f"{'phase':<8} {'seconds':>7} {'scans':>7} {'scans/s':>8} "
        + " ".join(f"{v:>11}" for v in VERDICTS[:5])
        + f" {'wrong':>6}"
    )
    lines = [
        f"failover: {report['workers']} workers, pool of 2 clamds ({report['transport']}), "
        f"clamd {report['killed']} killed at {report['kill_at']:.1f} s of "
        f"{report['seconds']:.1f} s",
        head,
    ]
    for p in PHASES:
        ph = phases[p]
        lines.append(
            f"{p:<8} {ph['seconds']:>7.2f} {ph['scans']:>7,} {ph['per_second']:>8,.1f} "
            + " ".join(f"{ph['verdicts'][v]:>11,}" for v in VERDICTS[:5])
            + f" {ph['wrong']:>6}"
        )
    for p in PHASES:
        for example in phases[p]["failed_examples"]:
            lines.append(f"  FAILED ({p}): {example}")
    found = report["problems"]
    lines.append("failover: ok" if not found else f"failover: FAIL: {'; '.join(found)}")
    return "\n".join(lines)


def failover(
    work: Path,
    plugin: Path,
    host: Path,
    workers: int,
    seconds: float,
    kill_at: float,
    transport: str,
    limit: int,
) -> dict[str, Any]:
    """The run itself, in a work folder: its report."""
    files = mixed_files(work / "files", count=20)
    scans: list[tuple[float, str, bool, Any]] = []
    lock = threading.Lock()
    with (
        Clamd(work / "a", max_threads=16, max_queue=200, stream_max_length=8 << 20) as a,
        Clamd(work / "b", max_threads=16, max_queue=200, stream_max_length=8 << 20) as b,
    ):
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
                options=pool_options([a, b], transport),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            json.loads(proc.stdout.readline())  # ready: the plugin is loaded
            t0 = time.monotonic()
            threads = [
                threading.Thread(
                    target=client,
                    daemon=True,
                    args=(sock, files, n, t0 + seconds, t0, scans, lock, limit),
                )
                for n in range(workers)
            ]
            for th in threads:
                th.start()
            log(
                f"failover: {workers} workers for {seconds:.1f} s through {plugin.name} with "
                f"two clamds ({transport}); killing one at {kill_at:.1f} s"
            )
            time.sleep(max(kill_at - (time.monotonic() - t0), 0))
            kill_t = time.monotonic() - t0
            a.kill()
            for th in threads:
                th.join(timeout=seconds + 300)
            end_t = time.monotonic() - t0
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    phases = tally(scans, kill_t, end_t)
    return {
        "workers": workers,
        "transport": transport,
        "seconds": round(end_t, 2),
        "kill_at": round(kill_t, 2),
        "killed": "a (SIGKILL)",
        "scans": len(scans),
        "phases": phases,
        "problems": problems(phases),
    }


def run_failover(
    plugin: str = None,
    workers: int = 8,
    seconds: float = 10.0,
    kill_at: float = None,
    transport: str = "tcp",
    limit: int = 1_000_000,
    json_path: str = None,
    keep: bool = False,
) -> int:
    so = Path(plugin) if plugin else paths.dist_dir("zig") / "avir_clam.so"
    host = so.parent / "avhost"
    kill_at = seconds / 2 if kill_at is None else kill_at
    out = Path(json_path) if json_path else paths.BUILD / "failover" / "failover.json"
    with Scratch("avkit-failover-", keep=keep, drop_when_kept=["files"]) as scratch:
        report = failover(scratch.path, so, host, workers, seconds, kill_at, transport, limit)
        print(table(report), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        log(f"failover: report in {out}")
        if report["problems"]:
            scratch.keep_because("the failover run failed (the clamds' logs are in a/ and b/)")
    return 0 if not report["problems"] else 1
