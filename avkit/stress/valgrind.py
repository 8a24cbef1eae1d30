"""Valgrind memcheck of avhost + each server plugin (avir_clam.so against a private clamd,
avir_icap.so against a private c-icap over one): plugin_init, N scans of the mixed
workload, plugin_close, dlclose; no definite leak and no error allowed."""

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.check import avhost
from avkit.check.clamd import Clamd
from avkit.check.icap import CIcap
from avkit.errors import UserError
from avkit.stress.workload import mixed_files
from avkit.workdir import Scratch


@contextlib.contextmanager
def clamd_server(work: Path):
    with Clamd(work / "clamd") as clamd:
        yield clamd.plugin_options()


@contextlib.contextmanager
def cicap_server(work: Path):
    with Clamd(work / "clamd") as clamd, CIcap(work / "icap", clamd) as icap:
        yield icap.plugin_options()


#: the plugins memcheck runs, each with the server it scans through (its options)
PLUGINS = {"avir_clam.so": clamd_server, "avir_icap.so": cicap_server}


def run_valgrind(scans: int = 1000, toolchain: str = "gcc", keep: bool = False) -> int:
    if not shutil.which("valgrind"):
        raise UserError("valgrind not found: apt-get install valgrind")
    dist = paths.dist_dir(toolchain)
    host = dist / "avhost"
    bad = False
    for name, server in PLUGINS.items():
        # memcheck's logs, the files and the servers' folders: removed, or kept when
        # memcheck complains.
        with Scratch(f"avkit-valgrind-{name[5:-3]}-", keep=keep) as scratch:
            if memcheck(scratch.path, host, dist / name, scans, server):
                bad = True
                scratch.keep_because("memcheck found errors or leaks (memcheck.*.log)")
    return 1 if bad else 0


def memcheck(work: Path, host: Path, plugin: Path, scans: int, server=clamd_server) -> bool:
    """The run in a work folder; True when memcheck found something."""
    files = mixed_files(work / "files", count=10)
    per = max(1, scans // len(files))
    with server(work) as opts:
        log = work / "memcheck.%p.log"
        cmd = [
            "valgrind",
            "--tool=memcheck",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--trace-children=yes",
            "--error-exitcode=99",
            f"--log-file={log}",
            # valgrind's own log file and pipes would be inherited by the exec probe and
            # reported as the plugin's; the close-on-exec check runs in the tests instead.
            *avhost.command(
                host,
                "scan",
                plugin,
                "--repeat",
                per,
                "--no-logs",
                "--no-exec-check",
                *files,
                options=opts,
            ),
        ]
        print(
            f"+ valgrind ... avhost scan {plugin.name} x {per * len(files)} scans",
            file=sys.stderr,
            flush=True,
        )
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        took = time.monotonic() - t
    records = avhost.parse_records(r.stdout)
    summary = next((x for x in records if x["event"] == "summary"), {})
    scans = sum(1 for x in records if x["event"] == "scan")
    result: dict[str, Any] = {
        "scans": scans,
        "seconds": round(took, 1),
        "exit": r.returncode,
        "logs": {},
    }
    bad = r.returncode not in (0,)
    for f in sorted(work.glob("memcheck.*.log")):
        text = f.read_text(errors="replace")
        m = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", text)
        e = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        lost = int(m.group(1).replace(",", "")) if m else 0
        errors = int(e.group(1)) if e else -1
        result["logs"][f.name] = {"definitely_lost": lost, "errors": errors}
        if lost or errors > 0:
            bad = True
            print(text[-6000:])
    print(json.dumps(result, indent=2))
    print(
        f"valgrind {plugin.name}: {scans} scans, summary {summary.get('exit')}, "
        f"{'FAILED' if bad else '0 bytes definitely lost, 0 errors'}"
    )
    return bad
