"""The soak run: W threads x N scans of the mixed workload through one `avhost serve`
with clamd restarted a few times: wrong verdicts, crashes, descriptors and RSS over time."""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from avkit import paths
from avkit.check import avhost
from avkit.check.clamd import Clamd
from avkit.stress.workload import expected_verdict, mixed_files

RETRIES = 200  # a scan FAILED while clamd restarts is asked again, this often at most


def proc_sample(pid: int) -> dict:
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


def watch(threads, child: int, clamd, restart_at: list, tally: Tally, t0: float) -> tuple:
    """Samples the plugin process every half second and restarts clamd on schedule."""
    samples, restarts = [], 0
    while any(th.is_alive() for th in threads):
        time.sleep(0.5)
        sample = proc_sample(child)
        sample.update(t=round(time.monotonic() - t0, 1), scans=tally.done)
        samples.append(sample)
        if restarts < len(restart_at) and tally.done >= restart_at[restarts]:
            clamd.restart()
            restarts += 1
            print(f"  clamd restarted at {tally.done} scans", flush=True)
        if len(samples) % 20 == 1:
            print(f"  {sample}", flush=True)
    return samples, restarts


def verdict(report: dict) -> bool:
    """Good when nothing was wrong, nothing crashed, and descriptors and memory stayed flat."""
    first, last, results = report["first_sample"], report["last_sample"], report["results"]
    grow_fds = last.get("fds", 0) - first.get("fds", 0)
    grow_rss = last.get("VmRSS", 0) - first.get("VmRSS", 0)
    return not (results["wrong"] or results["ERROR"] or results["CRASHED"] or results["other"]
                or grow_fds > 4 or grow_rss > 16 * 1024)


def run_soak(plugin: str = None, workers: int = 64, scans: int = 10000, restarts: int = 3,
             seconds: float = 3600, json_path: str = None) -> int:
    plugin = Path(plugin) if plugin else paths.dist_dir("zig") / "avir_clam.so"
    host = plugin.parent / "avhost"
    work = Path(tempfile.mkdtemp(prefix="avkit-soak-"))
    files = mixed_files(work / "files", count=20)
    tally = Tally()
    t0 = time.monotonic()
    with Clamd(work / "clamd", max_threads=32, max_queue=400, stream_max_length=8 << 20) as clamd:
        sock = work / "avhost.sock"
        proc = subprocess.Popen(avhost.command(host, "serve", plugin, "--socket", sock,
                                               "--max-workers", workers, "--no-logs",
                                               options=clamd.plugin_options()),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        child = json.loads(proc.stdout.readline()).get("child_pid")
        threads = [threading.Thread(target=client, daemon=True,
                                    args=(sock, files, n, scans, t0 + seconds, tally))
                   for n in range(workers)]
        for th in threads:
            th.start()
        restart_at = [workers * scans * (k + 1) // (restarts + 1) for k in range(restarts)]
        samples, restarts_done = watch(threads, child, clamd, restart_at, tally, t0)
        final = proc_sample(child)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    took = time.monotonic() - t0
    steady = [s for s in samples if "fds" in s]
    report = {"workers": workers, "scans_per_worker": scans, "scans": tally.done,
              "seconds": round(took, 1), "restarts": restarts_done, "results": tally.results,
              "first_sample": steady[1] if len(steady) > 1 else steady[0],
              "last_sample": steady[-1], "final": final, "wrong_examples": tally.wrong_examples}
    print(json.dumps(report, indent=2))
    if json_path:
        Path(json_path).write_text(json.dumps(dict(report, samples=samples), indent=2))
    good = verdict(report)
    first, last, results = report["first_sample"], report["last_sample"], tally.results
    print(f"soak: {tally.done} scans in {took:.0f} s, {results['wrong']} wrong, "
          f"{results['CRASHED']} crashed, {results['FAILED']} failed (during restarts), "
          f"fds {first.get('fds')} -> {last.get('fds')}, RSS {first.get('VmRSS')} -> "
          f"{last.get('VmRSS')} KiB: {'ok' if good else 'FAIL'}")
    return 0 if good else 1
