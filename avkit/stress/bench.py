"""The benchmark: avir_clam.so and avir_icap.so (through `avhost bench`) against raw
clamd, one real clamd.

    python -m avkit bench [--quick] [--plugin PATH]... [--threads 1,2,4]
                          [--transport tcp,unix,icap] [--reps 3] [--json FILE] [--png FILE]
                          [--arch x86_64]

--arch picks whose avhost and plugins run (dist/i386/ by default, dist/x86_64/): the
same cells, one row set per run; x86_64's figures go to bench-x86_64.json/.png.

Raw clamd is the upper bound: a minimal client written here keeps one IDSESSION per
thread and sends each file as INSTREAM in the plugin's chunk size (64 KiB), the end
marker in the same write as the last chunk, TCP_NODELAY set; over the UNIX socket a
second raw client passes each file's descriptor with FILDES instead. The plugin runs
in both of its modes there (FdPass=off: INSTREAM; FdPass=on: FILDES), over TCP it
streams. The "icap" cells put avir_icap.so through a private c-icap (virus_scan as
the plugin's default Service asks it, asking the same clamd over its UNIX socket) beside avir_clam.so straight to
that clamd, streamed over TCP (the base of their ratio) and passed with FILDES: what
the ICAP hop costs. Every runner scans the same files with the same number of threads.
Workloads: 2,000 x 4 KiB, 50 x 8 MiB and a mix; each cell is run --reps times:
median and spread (min..max) are reported, with the client's CPU time per file
(the raw clients' Python process; the plugin's avhost process, start-up included).
"""

from __future__ import annotations

import array
import contextlib
import functools
import hashlib
import json
import os
import resource
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from avkit import facts, paths
from avkit.check import avhost
from avkit.check.clamd import Clamd
from avkit.check.icap import CIcap
from avkit.errors import UserError
from avkit.stress import failover
from avkit.workdir import Scratch

KiB, MiB = 1024, 1024 * 1024
CHUNK = 64 * KiB


# ---------- workloads ----------


def workloads(folder: Path, quick: bool) -> dict[str, list[Path]]:
    small_n, large_n = (200, 6) if quick else (2000, 50)
    folder.mkdir(parents=True, exist_ok=True)
    seed = os.urandom(8 * MiB + 4 * KiB)
    small = []
    for i in range(small_n):
        p = folder / f"s{i:05d}.bin"
        p.write_bytes(seed[i * 7 % (4 * MiB) : i * 7 % (4 * MiB) + 4 * KiB])
        small.append(p)
    large = []
    for i in range(large_n):
        p = folder / f"l{i:03d}.bin"
        off = (i * 4099) % (4 * KiB)
        p.write_bytes(seed[off : off + 8 * MiB])
        large.append(p)
    mix = small[: len(small) // 2] + large[: max(1, len(large) // 5)]
    # A fixed interleaving (hash() of a str changes per process): the same mix every run.
    mix.sort(key=lambda p: hashlib.sha256(p.name.encode()).digest())
    return {"4KiB": small, "8MiB": large, "mix": mix}


# ---------- the raw clamd client ----------


def _connect(clamd, transport):
    if transport == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(clamd.socket_path))
    else:
        s = socket.create_connection(("127.0.0.1", clamd.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_reply(s, buf: bytearray) -> bytes:
    while b"\0" not in buf:
        got = s.recv(4096)
        if not got:
            raise ConnectionError("clamd closed the session")
        buf += got
    line, _, rest = bytes(buf).partition(b"\0")
    buf[:] = rest
    return line


def _send_instream(s, path: Path):
    with open(path, "rb") as f:
        out = [b"zINSTREAM\0"]
        while True:
            data = f.read(CHUNK)
            if not data:
                break
            out.append(struct.pack("!I", len(data)))
            out.append(data)
            if sum(map(len, out)) >= CHUNK:
                s.sendall(b"".join(out))
                out = []
        out.append(b"\0\0\0\0")
        s.sendall(b"".join(out))


def _send_fildes(s, path: Path):
    """The command, then one byte carrying the open file (clamd wants them apart)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        s.sendall(b"zFILDES\0")
        s.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    finally:
        os.close(fd)


RAW_METHODS = {"INSTREAM": _send_instream, "FILDES": _send_fildes}


def raw_clamd(
    clamd, transport: str, files: list[Path], threads: int, method: str = "INSTREAM"
) -> dict[str, Any]:
    """Scans every file once over `threads` persistent IDSESSIONs; returns the rates."""
    parts = [files[i::threads] for i in range(threads)]
    errors = []
    send = RAW_METHODS[method]

    def worker(mine):
        try:
            s = _connect(clamd, transport)
            buf = bytearray()
            s.sendall(b"zIDSESSION\0")
            for path in mine:
                send(s, path)
                reply = _read_reply(s, buf)
                if not reply.endswith(b"OK"):
                    errors.append(reply)
            s.sendall(b"zEND\0")
            s.close()
        except OSError as exc:
            errors.append(str(exc).encode())

    cpu = time.process_time()
    start = time.monotonic()
    ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - start
    cpu = time.process_time() - cpu
    if errors:
        raise UserError(f"raw clamd client ({method}): {errors[0][:200]!r} ({len(errors)} errors)")
    total = sum(p.stat().st_size for p in files)
    return {
        "files_per_s": len(files) / took,
        "mb_per_s": total / MiB / took,
        "seconds": took,
        "cpu_ms_per_file": cpu * 1000 / len(files),
        "peak_rss_kb": None,
        "open_fds": None,
    }


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---------- a plugin through avhost bench ----------


def plugin_bench(
    host: Path, plugin: Path, options: dict, files: list[Path], threads: int
) -> dict[str, Any]:
    cpu = _children_cpu()
    r = avhost.run(
        host,
        "bench",
        plugin,
        "--threads",
        threads,
        "--count",
        len(files),
        "--no-logs",
        *files,
        options=options,
        timeout=1800,
    )
    cpu = _children_cpu() - cpu
    bench = next(iter(r.events("bench")), None)
    if bench is None:
        raise UserError(
            f"avhost bench gave no bench record (exit {r.returncode}):\n"
            f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        )
    bad = [x for x in r.events("scan") if x.get("verdict") != "OK"]
    return {
        "files_per_s": bench["files_per_s"],
        "mb_per_s": bench["bytes_per_s"] / MiB,
        "seconds": bench["seconds"],
        "cpu_ms_per_file": cpu * 1000 / len(files),
        "peak_rss_kb": bench.get("peak_rss_kb"),
        "open_fds": bench.get("open_fds"),
        "restarts": bench.get("restarts"),
        "not_ok": len(bad),
        "scanned": bench.get("files"),
    }


# ---------- run ----------


def _median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


RAW_INSTREAM, RAW_FILDES = "raw INSTREAM", "raw FILDES"
METRICS = ("files_per_s", "mb_per_s", "cpu_ms_per_file", "peak_rss_kb", "open_fds")


def runner_names(transport: str, plugins, clam) -> list[str]:
    """Rows of a cell: the raw clients, then each plugin in each mode the transport allows."""
    modes = ["INSTREAM", "FILDES"] if transport == "unix" else ["INSTREAM"]
    names = [RAW_INSTREAM] + ([RAW_FILDES] if transport == "unix" else [])
    for p in plugins:
        names += [f"{p.name if p == clam else p} {m}" for m in modes]
    return names


ICAP = "icap"  # the transport name of the ICAP cells

#: the ICAP cells' rows: row name -> (plugin file in dist/, its options from the bench's
#: servers). avir_clam.so goes straight to the clamd that c-icap asks; its INSTREAM row
#: (over TCP, like the ICAP hop) is the base of the cells' ratios.
#: The pool row (avir_icap.so over several c-icaps, from the pools' failover module)
#: is one more entry here: its name, "avir_icap.so", and a function of the servers.
ICAP_BASE = "avir_clam.so INSTREAM"
ICAP_ROWS = {
    ICAP_BASE: ("avir_clam.so", lambda srv: {**srv.clamd.plugin_options("tcp"), "FdPass": "off"}),
    "avir_clam.so FILDES": (
        "avir_clam.so",
        lambda srv: {**srv.clamd.plugin_options("unix"), "FdPass": "on"},
    ),
    "avir_icap.so": ("avir_icap.so", lambda srv: srv.icap.plugin_options()),
}


class Servers:
    """What a cell's runners scan through: the clamd, and the c-icap in front of it."""

    def __init__(self, clamd, icap=None):
        self.clamd, self.icap = clamd, icap


def clamd_runners(
    clamd, transport, files, n, plugins, clam, host, options
) -> list[tuple[str, Callable[[], Any]]]:
    """The raw clients, then each plugin in each mode the transport allows."""
    runners: list[tuple[str, Callable[[], Any]]] = [
        (RAW_INSTREAM, lambda: raw_clamd(clamd, transport, files, n, "INSTREAM"))
    ]
    if transport == "unix":
        runners.append((RAW_FILDES, lambda: raw_clamd(clamd, transport, files, n, "FILDES")))
    names = iter(runner_names(transport, plugins, clam)[len(runners) :])
    for p in plugins:
        for fd_pass in ["off", "on"] if transport == "unix" else ["off"]:
            runners.append(
                (
                    next(names),
                    functools.partial(
                        plugin_bench, host, p, {**options, "FdPass": fd_pass}, files, n
                    ),
                )
            )
    return runners


def icap_runners(servers, files, n, host) -> list[tuple[str, Callable[..., Any]]]:
    return [
        (
            name,
            lambda so=so, opts=opts: plugin_bench(host, host.parent / so, opts(servers), files, n),
        )
        for name, (so, opts) in ICAP_ROWS.items()
    ]


def measure_cell(
    clamd, transport, wname, files, n, plugins, clam, host, options, reps, servers=None
) -> dict[str, Any]:
    """One workload at one N: every runner of the transport, interleaved reps times."""
    cell = {
        "transport": transport,
        "workload": wname,
        "threads": n,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "runs": {},
        "base": ICAP_BASE if transport == ICAP else RAW_INSTREAM,
    }
    if transport == ICAP:
        runners = icap_runners(servers, files, n, host)
    else:
        runners = clamd_runners(clamd, transport, files, n, plugins, clam, host, options)
    for _ in range(reps):  # interleaved, so drift hits every runner alike
        for name, fn in runners:
            cell["runs"].setdefault(name, []).append(fn())
    summary = {name: {k: _median(rows, k) for k in METRICS} for name, rows in cell["runs"].items()}
    base = summary[cell["base"]]["files_per_s"][0]
    raw_fd = summary.get(RAW_FILDES, {}).get("files_per_s", (None,))[0]
    for s in summary.values():
        s["ratio"] = s["files_per_s"][0] / base if base else None
        s["ratio_fildes"] = s["files_per_s"][0] / raw_fd if raw_fd else None
    cell["summary"] = summary
    return cell


@contextlib.contextmanager
def servers_for(work: Path, transports):
    """The bench's clamd, and a c-icap asking it when an ICAP cell is wanted."""
    with Clamd(work / "clamd", stream_max_length=16 * MiB, max_threads=8, max_queue=200) as clamd:
        if ICAP not in transports:
            yield Servers(clamd)
            return
        # Kept connections as long as the run: the plugins' sessions to clamd are too.
        with CIcap(work / "icap", clamd, max_keepalive_requests=100000) as icap:
            yield Servers(clamd, icap)


def measure_all(work: Path, threads, transports, reps, quick, plugins, clam, host):
    """Every cell, in a work folder: (cells, clamd's version)."""
    loads = workloads(work / "files", quick)
    results = []
    with servers_for(work, transports) as servers:
        clamd = servers.clamd
        version = clamd.version()
        print(f"clamd {version}; files in {work / 'files'}", file=sys.stderr, flush=True)
        for transport in transports:
            options = clamd.plugin_options(transport=transport) if transport != ICAP else {}
            for wname, files in loads.items():
                for n in threads:
                    cell = measure_cell(
                        clamd,
                        transport,
                        wname,
                        files,
                        n,
                        plugins,
                        clam,
                        host,
                        options,
                        reps,
                        servers,
                    )
                    results.append(cell)
                    _print_cell(cell)
    return results, version


def run_bench(
    threads: list[int],
    transports: list[str],
    reps: int,
    quick: bool,
    extra_plugins: list[str],
    json_path: Path,
    png_path: Path,
    keep: bool = False,
    arch: str = None,
) -> int:
    """arch: whose avhost and plugins run (the default architecture's unless given)."""
    if quick:
        threads, reps = [t for t in threads if t <= 2] or [1], 1
    arch = arch or facts.default_arch()
    dist = paths.dist_dir("zig", arch=arch)
    clam = dist / "avir_clam.so"
    plugins = [clam, *[Path(p).resolve() for p in extra_plugins]]
    host = dist / "avhost"
    needed = plugins + (
        [host.parent / so for so, _ in ICAP_ROWS.values()] if ICAP in transports else []
    )
    for p in needed:
        if not p.exists():
            raise UserError(
                f"{p} not found: build it (python -m avkit build --arch {arch}) or fix --plugin"
            )
    # The work folder (the workloads, about 400 MB, and clamd's folder) goes at the end;
    # on a failure clamd's folder stays for its log, the workloads go anyway.
    with Scratch("avkit-bench-", keep=keep, drop_when_kept=["files"]) as scratch:
        results, clamd_version = measure_all(
            scratch.path, threads, transports, reps, quick, plugins, clam, host
        )
        pool = pool_row(scratch.path / "pool", clam, host, quick)
    meta = {
        **machine(),
        "clamd": clamd_version,
        "reps": reps,
        "quick": quick,
        "chunk": CHUNK,
        "arch": arch,
    }
    out = {
        "arch": arch,
        "reps": reps,
        "quick": quick,
        "chunk": CHUNK,
        "clamd_threads": 8,
        "clamd": clamd_version,
        "cells": results,
        "pool": pool,
        "machine": machine(),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=1, default=str))
    print(f"JSON: {json_path}")
    _chart(results, png_path, meta)
    print(targets_text(results))
    print(icap_text(results))
    print(failover.table(pool))
    return 0


#: The pool row: avir_clam.so over two clamds, one killed halfway (avkit/stress/failover.py,
#: whose `nox -s failover` runs longer). Its figure is the scans/s in each phase; a FAILED
#: after the failover second is listed under the table, not a bench failure.
POOL_RUN: dict[str, Any] = {"workers": 4, "transport": "tcp", "limit": 1_000_000}


def pool_row(work: Path, clam: Path, host: Path, quick: bool) -> dict[str, Any]:
    seconds = 4.0 if quick else 10.0
    return failover.failover(work, clam, host, seconds=seconds, kill_at=seconds / 2, **POOL_RUN)


# The targets of FdPass, as ratios within one run (never pass/fail: the machine is shared).
FILDES_TARGETS = {"4KiB": 1.15, "8MiB": 1.10}


def targets_text(results) -> str:
    """Plugin FILDES against raw INSTREAM (the speed-up) and raw FILDES (the overhead)."""
    lines = [
        "ratios of files/s, plugin with FILDES over the UNIX socket:",
        f"  {'cell':14} {'vs raw INSTREAM':>16} {'target':>7} {'vs raw FILDES':>14} "
        f"{'target':>7}  {'plugin INSTREAM vs raw INSTREAM':>32}",
    ]
    for c in results:
        if c["transport"] != "unix":
            continue
        fildes = next(
            (s for n, s in c["summary"].items() if n.endswith(" FILDES") and n != RAW_FILDES), None
        )
        streamed = next(
            (s for n, s in c["summary"].items() if n.endswith(" INSTREAM") and n != RAW_INSTREAM),
            None,
        )
        if not fildes:
            continue
        want = FILDES_TARGETS.get(c["workload"])
        lines.append(
            f"  {c['workload']:5} N={c['threads']:<6} {fildes['ratio']:16.3f} "
            f"{('>= %.2f' % want) if want else '-':>7} {fildes['ratio_fildes']:14.3f} "
            f"{'>= 0.95':>7}  {streamed['ratio'] if streamed else float('nan'):32.3f}"
        )
    return "\n".join(lines)


def icap_text(results) -> str:
    """Each ICAP cell's rows as ratios of files/s to avir_clam.so streaming to clamd."""
    cells = [c for c in results if c["transport"] == ICAP]
    if not cells:
        return ""
    names = list(cells[0]["summary"])
    lines = [
        f"ratios of files/s in the ICAP cells, to {ICAP_BASE} (straight to clamd, TCP):",
        f"  {'cell':14} " + " ".join(f"{n:>22}" for n in names),
    ]
    for c in cells:
        lines.append(
            f"  {c['workload']:5} N={c['threads']:<6} "
            + " ".join(f"{c['summary'][n]['ratio']:22.3f}" for n in names)
        )
    return "\n".join(lines)


def _fmt(t, digits=0):
    med, lo, hi = t
    if med is None:
        return "-"
    if lo == hi:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({lo:.{digits}f}..{hi:.{digits}f})"


def _print_cell(cell):
    print(
        f"\n{cell['transport']:4} {cell['workload']:5} N={cell['threads']}  "
        f"({cell['files']} files, {cell['bytes'] / MiB:.0f} MiB; ratio to "
        f"{cell.get('base', RAW_INSTREAM)})"
    )
    print(
        f"  {'runner':22} {'files/s':>24} {'MB/s':>22} {'ratio':>6} {'CPU ms/file':>12} "
        f"{'peak RSS KiB':>14} {'fds':>5}"
    )
    unknown = (None, None, None)  # a figure a runner did not report
    for name, s in cell["summary"].items():
        print(
            f"  {Path(name).name:22} {_fmt(s['files_per_s']):>24} {_fmt(s['mb_per_s'], 1):>22} "
            f"{s['ratio']:6.3f} {_fmt(s.get('cpu_ms_per_file', unknown), 3):>12} "
            f"{_fmt(s['peak_rss_kb']):>14} {_fmt(s['open_fds']):>5}",
            flush=True,
        )


def machine() -> dict[str, Any]:
    """What the numbers were measured on: cores and the CPU model (from /proc/cpuinfo)."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model or "unknown CPU"}


WORKLOAD_TITLES = {"4KiB": "4 KiB files", "8MiB": "8 MiB files", "mix": "mixed files"}
TRANSPORT_TITLES = {"tcp": "TCP (127.0.0.1)", "unix": "UNIX socket", ICAP: "ICAP (c-icap)"}


def _metric(workload: str):
    return ("mb_per_s", "MB/s") if workload == "8MiB" else ("files_per_s", "files/s")


def chart_figure(results, meta: dict):
    """The chart as a matplotlib Figure, readable on its own: a title, the machine and
    clamd, one shared legend, and a caption that says what N and the error bars are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transports = list(dict.fromkeys(c["transport"] for c in results))  # in the run's order
    wl = list(dict.fromkeys(c["workload"] for c in results))
    fig, axes = plt.subplots(
        len(transports),
        len(wl),
        squeeze=False,
        layout="constrained",
        figsize=(4.2 * len(wl), 3.0 * len(transports) + 1.9),
    )
    handles: dict[str, Any] = {}
    colours: dict[
        str, Any
    ] = {}  # one colour per runner in every panel; the fullest cell sets the order
    for c in sorted(results, key=lambda c: -len(c["summary"])):
        for name in c["summary"]:
            colours.setdefault(Path(name).name, f"C{len(colours)}")
    for i, t in enumerate(transports):
        for j, w in enumerate(wl):
            ax = axes[i][j]
            key, unit = _metric(w)
            cells = [c for c in results if c["transport"] == t and c["workload"] == w]
            names = list(cells[0]["summary"]) if cells else []
            width = 0.8 / max(1, len(names))
            xs = [c["threads"] for c in cells]
            for k, name in enumerate(names):
                pos = [x_i + k * width for x_i in range(len(xs))]
                med = [c["summary"][name][key][0] for c in cells]
                lo = [m - c["summary"][name][key][1] for m, c in zip(med, cells)]
                hi = [c["summary"][name][key][2] - m for m, c in zip(med, cells)]
                spread = [lo, hi] if any(lo) or any(hi) else None  # none with one rep
                bars = ax.bar(
                    pos,
                    med,
                    width,
                    yerr=spread,
                    capsize=3,
                    label=Path(name).name,
                    color=colours[Path(name).name],
                )
                handles.setdefault(Path(name).name, bars)
            ax.set_xticks([x_i + width * (len(names) - 1) / 2 for x_i in range(len(xs))])
            ax.set_xticklabels([f"N={x}" for x in xs])
            files = cells[0]["files"] if cells else 0
            ax.set_title(
                f"{WORKLOAD_TITLES.get(w, w)} ({files:,}) over {TRANSPORT_TITLES.get(t, t)}",
                fontsize=9,
            )
            ax.set_ylabel(f"{unit} (higher is better)", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(axis="y", alpha=0.3)
    reps = meta.get("reps", 1)
    # The title heads the shared legend: constrained layout puts the two in one box
    # above the panels (a suptitle and an outside legend would overlap).
    title = (
        "avir_clam.so (through avhost; FdPass=off: INSTREAM, on: FILDES) against raw "
        "clamd clients, and avir_icap.so through c-icap: throughput\n"
        f"plugins and avhost: {meta.get('arch', facts.default_arch())}; "
        f"{meta.get('cpus')} cores, {meta.get('cpu_model')}; clamd "
        f"{meta.get('clamd', '?')}; {meta.get('chunk', CHUNK) // KiB} KiB chunks"
        + ("; quick run" if meta.get("quick") else "")
    )
    order = [n for n in colours if n in handles]
    fig.legend(
        [handles[n] for n in order],
        order,
        loc="outside upper center",
        ncols=len(handles),
        fontsize=9,
        frameon=False,
        title=title,
        title_fontsize=10,
    )
    bars_note = (
        f"error bars: min..max over the {reps} repetitions"
        if reps > 1
        else "one repetition, so no error bars"
    )
    fig.supxlabel(
        f"N: concurrent scans (avhost worker threads; raw clamd: client threads, "
        f"one IDSESSION each). Bars: median of {reps} repetition"
        f"{'s' if reps > 1 else ''}; {bars_note}.\n"
        "Raw INSTREAM / raw FILDES: minimal clients with persistent sessions (the same "
        "chunk size; FILDES passes each open file's descriptor over the UNIX socket): "
        "the upper bounds. ICAP: avir_icap.so -> c-icap (virus_scan) -> the same clamd.",
        fontsize=7.5,
    )
    return fig


def _chart(results, png: Path, meta: dict):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no PNG: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return
    fig = chart_figure(results, meta)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"PNG: {png}")
