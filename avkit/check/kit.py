"""The plugin test kit, driving a plugin through avhost (`avkit kit`).

    python -m avkit kit generate-test-data DIR [--seed N] [--stream-limit BYTES]
    python -m avkit kit scanning --plugin P [--data DIR] [--samples MANIFEST] [-o Name=Value]...
                                 [--junit FILE]
    python -m avkit kit waiting  --plugin P --data DIR [--wait SECONDS]
    python -m avkit kit server   --plugin P --data DIR
    python -m avkit kit                      (the vendor kit's numbered menu)

`--with-clamd` starts a private clamd (avkit.check.clamd) for the run and passes its
address to the plugin with -o; `scanning` then scans the corpus a second time
through clamd's UNIX socket with FdPass=on (the file's descriptor passed with
FILDES) and checks that both modes give the same verdicts and that FILDES was used.
`--with-cicap` starts a private c-icap with virus_scan (avkit.check.icap) over a
private clamd of its own and passes its address to the plugin (avir_icap); its
KeepAliveTimeout, like that clamd's IdleTimeout, ends during the waiting test's
idle time, so the plugin must reopen its connection. Expected verdicts come from the corpus manifest,
for the engine named by --engine or by the plugin's info name; with --samples, from the
author's own manifest (kit_corpus.load_samples), the corpus built around each sample.
Each test prints a summary, returns non-zero on any mismatch or contract violation.
Beyond the verdicts, scanning fails what the product would suffer (unknown return
codes, realname NULL or "", crashes with their symbolized frames, hangs: one full timeout,
then 5 s per file) and warns of ERR lines logged during a scan that answered OK.
"""

from __future__ import annotations

import contextlib
import sys
import re
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from avkit.check import avhost, kit_corpus as corpus
from avkit.errors import UserError

TESTS = ["generate-test-data", "scanning", "waiting", "server"]


# ---------- results ----------


class Report:
    """Cases of one test: printed as a table, optionally written as JUnit XML."""

    def __init__(self, test: str, engine: str):
        self.test, self.engine = test, engine
        self.cases: list[tuple[str, bool, str]] = []
        self.warnings: list[tuple[str, str]] = []

    def add(self, name: str, ok: bool, detail: str):
        self.cases.append((name, ok, detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {name:36} {detail}", flush=True)

    def warn(self, name: str, detail: str) -> None:
        """Not a failure, but something the author must read."""
        self.warnings.append((name, detail))
        print(f"  WARN  {name:36} {detail}", flush=True)

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.cases if not ok)

    def summary(self) -> int:
        passed = len(self.cases) - self.failed
        warned = f", {len(self.warnings)} warnings" if self.warnings else ""
        print(f"{self.test} [{self.engine}]: {passed} passed, {self.failed} failed{warned}")
        return 1 if self.failed else 0

    def junit(self, path):
        if not path:
            return
        suite = ET.Element(
            "testsuite",
            name=f"avkit.kit.{self.test}",
            tests=str(len(self.cases)),
            failures=str(self.failed),
        )
        for name, ok, detail in self.cases:
            tc = ET.SubElement(
                suite, "testcase", classname=f"kit.{self.test}.{self.engine}", name=name
            )
            if not ok:
                ET.SubElement(tc, "failure", message=detail).text = detail
            else:
                ET.SubElement(tc, "system-out").text = detail
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def check_scan(
    report: Report, case: dict, record: dict | None, engine: str, label: str | None = None
) -> None:
    name = label or case["name"]
    expected = case["expect"].get(engine, case["expect"]["default"])
    if record is None:
        report.add(name, False, f"no answer (expected {'/'.join(expected)})")
        return
    verdict = record.get("verdict")
    violations = list(record.get("violations") or []) + scan_problems(record)
    pattern = case.get("vir_name")
    name_ok = (
        not pattern
        or verdict != "VIRUS_FOUND"
        or re.search(pattern, record.get("vir_info") or "") is not None
    )
    ok = verdict in expected and not violations and name_ok
    wanted = "/".join(expected) + (f" named /{pattern}/" if pattern else "")
    detail = f"{verdict:12} expected {wanted}"
    if case.get("sample"):
        detail += ": met" if ok else ": NOT met"
    if record.get("vir_info"):
        detail += f"  [{record['vir_info']}]"
    if verdict == "CRASHED" and record.get("frames"):
        detail += "  " + crash_where(record["frames"])
    if not name_ok:
        detail += f"  the virus name {record.get('vir_info')!r} does not match /{pattern}/"
    if violations:
        detail += "  VIOLATIONS: " + "; ".join(violations)
    report.add(name, ok, detail)


def scan_problems(record: dict) -> list[str]:
    """What the product would suffer from a scan that the record's verdict may hide."""
    problems = []
    logged = [m for m in map(UNKNOWN_CODE_LOG.search, record.get("err_logs") or []) if m]
    if "unknown_code" in record or record.get("verdict") == "INVALID" or logged:
        code = record.get("unknown_code", logged[0].group(1) if logged else record.get("code"))
        problems.append(
            f"plugin_thread_test_file returned {code}, not one of the ABI's codes "
            f"0..5 (the product treats it as an error; AVCHK_FAILED is the code "
            f"for a file the plugin cannot read)"
        )
    return problems


def close_report(
    report: Report, events: list[dict], code: int, label: str, restarts: int
) -> Report:
    """The end of a serve test: no violation anywhere, the exit status, the restarts."""
    check_records(report, events, "contract")
    summary = next((r for r in events if r["event"] == "summary"), {})
    report.add(
        label,
        code == 0 and summary.get("restarts") == restarts,
        f"exit {code}, restarts {summary.get('restarts')} ({restarts} requested)",
    )
    return report


def check_records(report: Report, records: list[dict], label: str):
    """Every violation outside scan records fails the test, named by its event."""
    bad = [
        f"{r['event']}: {v}"
        for r in records
        if r.get("event") != "scan"
        for v in (r.get("violations") or [])
    ]
    report.add(label, not bad, "; ".join(bad) if bad else "no contract violation")


# ---------- the tests ----------


def run_scanning(ctx) -> Report:
    report = Report("scanning", ctx.engine)
    cases = ctx.manifest["files"]
    r = scan_once_per_hang(ctx, [c["path"] for c in cases], options=ctx.options)
    code, records, err = r.returncode, r.records, r.stderr
    attach_error_logs(records)
    for file, messages in errors_logged_in_ok_scans(records):
        report.warn(
            Path(file).name,
            "answered OK, but the plugin logged ERR during the scan: " + " | ".join(messages),
        )
    for load in r.events("load")[:1]:
        if load.get("unknown_options"):
            print(
                f"  WARN  -o {load['unknown_options']}: not an option of this plugin, ignored "
                f"(its options: {', '.join(o['name'] for o in load.get('options', []))})"
            )
    scans = r.scans()
    for c in cases:
        check_scan(report, c, scans.get(c["path"]), ctx.engine)
    check_records(report, records, "contract (load, init, close)")
    summary: dict[str, Any] = next((r for r in records if r["event"] == "summary"), {})
    report.add(
        "host exit status",
        code == 0 and summary.get("restarts", 1) == 0,
        f"exit {code}, restarts {summary.get('restarts')}"
        + (f": {err.strip()}" if code and err.strip() else ""),
    )
    check_reloads(ctx, report, probe_case(ctx))
    check_realnames(ctx, report, cases)
    if ctx.fildes_options:
        check_fildes(ctx, report, cases, scans)
    return report


def rehang_timeout(scan_timeout: float) -> float:
    """After a first hang, what a later scan gets: enough for a slow file, far less than
    a full timeout per file of a plugin that hangs on them all."""
    return min(float(scan_timeout), REHANG_TIMEOUT)


REHANG_TIMEOUT = 5.0


def timeout_args(ctx) -> list[Any]:
    """--scan-timeout, and --rehang-timeout where this avhost has it; once the plugin has
    hung, every later run waits only the short timeout."""
    if getattr(ctx, "hung", False):
        return ["--scan-timeout", rehang_timeout(ctx.scan_timeout)]
    return [
        "--scan-timeout",
        ctx.scan_timeout,
        "--rehang-timeout",
        rehang_timeout(ctx.scan_timeout),
    ]


def scan_once_per_hang(ctx, files: list[str], options: dict[str, str]) -> avhost.Run:
    """avhost scan of the files, a hang costing one full timeout: after the first HUNG,
    avhost waits only --rehang-timeout for the files after it."""
    return avhost.run(
        ctx.avhost,
        "scan",
        ctx.plugin,
        *timeout_args(ctx),
        *files,
        options=options,
        decode_files=True,
        on_record=Progress(ctx),
    )


class Progress:
    """What a person watching the kit needs while avhost runs: a line every few seconds
    while a scan waits, and a hang said at once, with what to do."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __call__(self, record: dict) -> None:
        event = record.get("event")
        if event == "waiting":
            where = record.get("path") or record.get("file") or "?"
            print(
                f"  ...   {Path(str(where)).name}: no answer yet after "
                f"{record.get('seconds')} s (HUNG after {record.get('timeout')} s)",
                flush=True,
            )
        elif event == "scan" and record.get("verdict") == "HUNG":
            self.hung(record)

    def hung(self, record: dict) -> None:
        name = Path(str(record.get("file"))).name
        self.ctx.hung_files.add(str(record.get("file")))  # decoded: records come decode_files
        # After the first hang every scan gets the short timeout: avhost's --rehang-timeout
        # (its records say short_timeout), or the kit's own second run (scan_once_per_hang).
        if record.get("short_timeout") or self.ctx.hung:
            print(
                f"  HUNG  {name}: hung again (waited only "
                f"{rehang_timeout(self.ctx.scan_timeout):g} s, as the plugin hung before)",
                flush=True,
            )
            return
        self.ctx.hung = True
        print(
            f"  HUNG  {name}: no answer within {self.ctx.scan_timeout:g} s; the plugin process "
            f"was killed and started again, as the product does. Later files get "
            f"{rehang_timeout(self.ctx.scan_timeout):g} s each. Fix: every call your scan makes "
            f"(read, a connection to the engine) needs a deadline, and the scan returns "
            f"AVCHK_FAILED or AVCHK_IMPOSSIBLE when it passes",
            flush=True,
        )


def attach_error_logs(records: list[dict]) -> None:
    """Gives each scan record the ERR messages the plugin logged during it ("err_logs").
    avhost passes a worker's log records through before that worker's scan record."""
    pending: list[str] = []
    for r in records:
        if r.get("event") == "log" and r.get("kind") == "ERR":
            pending.append(r.get("message", ""))
        elif r.get("event") == "scan":
            r["err_logs"], pending = pending, []


def not_hung(ctx, cases: list[dict]) -> list[dict]:
    """The cases worth scanning again: a file the plugin hung on would hang again, each
    costing a timeout, and tell nothing new."""
    return [c for c in cases if c["path"] not in ctx.hung_files]


def errors_logged_in_ok_scans(records: list[dict]) -> list[tuple[str, list[str]]]:
    """(file, its ERR messages) for each scan that answered OK after the plugin logged an
    error: the product shows the file clean while its log says something failed."""
    return [
        (r["file"], r["err_logs"])
        for r in records
        if r.get("event") == "scan" and r.get("verdict") == "OK" and r.get("err_logs")
    ]


#: what api/avCommon.c logs when avp_test_file returns a code outside 0..5 (it then
#: answers AVCHK_FAILED, so only the log tells)
UNKNOWN_CODE_LOG = re.compile(r"returned the unknown code (-?\d+)")


REALNAMES = {"null": "realname NULL", "empty": 'realname ""'}


def check_realnames(ctx, report: Report, cases: list[dict]) -> None:
    """docs/ABI.md: realname may be NULL or "", as the products pass for some files; the
    corpus again with each, the same verdicts expected."""
    if not avhost.supports(ctx.avhost, "--realname"):
        report.warn(
            'realname NULL and ""',
            f"not checked: {ctx.avhost} has no --realname (rebuild it: {avhost_build_hint(ctx)})",
        )
        return
    skipped = len(cases) - len(not_hung(ctx, cases))
    cases = not_hung(ctx, cases)
    if skipped:
        print(f'  ...   realname NULL and "": the {skipped} files the plugin hung on are left out')
    for mode, label in REALNAMES.items():
        r = avhost.run(
            ctx.avhost,
            "scan",
            ctx.plugin,
            "--no-logs",
            "--realname",
            mode,
            *timeout_args(ctx),
            *[c["path"] for c in cases],
            options=ctx.options,
            decode_files=True,
            on_record=Progress(ctx),
        )
        scans = r.scans()
        bad = []
        for c in cases:
            rec = scans.get(c["path"])
            expected = c["expect"].get(ctx.engine, c["expect"]["default"])
            if rec is None or rec.get("verdict") not in expected or rec.get("violations"):
                verdict = rec.get("verdict") if rec else "no answer"
                why = "; ".join((rec or {}).get("violations") or []) or crash_text(rec)
                bad.append(
                    f"{c['name']}: {verdict} (expected {'/'.join(expected)})"
                    + (f" {why}" if why else "")
                )
        report.add(
            f"{label}: {len(cases)} files",
            not bad and r.returncode in (0, 1),
            "as with the base name"
            if not bad
            else "; ".join(bad[:4]) + (f" (and {len(bad) - 4} more)" if len(bad) > 4 else ""),
        )


def crash_text(record: dict | None) -> str:
    if not record or record.get("verdict") != "CRASHED":
        return ""
    return "(the plugin crashed" + (
        f" {crash_where(record['frames'])})" if record.get("frames") else ")"
    )


MAX_FRAMES = 6


def crash_where(frames: list[dict]) -> str:
    """The crash's frames, innermost first, as function (file:line) where the object's
    debug file (beside it, by build-id, as the build stages it) says, else object+offset."""
    shown = [symbolize(f, innermost=(i == 0)) for i, f in enumerate(frames[:MAX_FRAMES])]
    more = f" ... {len(frames) - MAX_FRAMES} more" if len(frames) > MAX_FRAMES else ""
    return "backtrace: " + " <- ".join(shown) + more


def symbolize(frame: dict, innermost: bool) -> str:
    obj = Path(str(frame.get("object", "?")))
    offset = str(frame.get("offset", "0x0"))
    raw = f"{obj.name}+{offset}"
    debug = debug_file_of(obj, frame.get("build_id"))
    if debug is None:
        return raw
    try:
        # A return address points after the call: look up the call itself.
        pc = int(offset, 16) - (0 if innermost else 1)
    except ValueError:
        return raw
    found = addr2line(debug, pc)
    return f"{found} [{raw}]" if found else raw


def debug_file_of(obj: Path, build_id: str | None) -> Path | None:
    """obj's debug file in debug/.build-id/ beside it (the layout of dist/ and of an
    author's FOLDER/dist/ARCH/), when there is one."""
    from avkit import elf, facts

    if not build_id:
        try:
            build_id = elf.build_id(obj) if obj.is_file() and elf.is_elf(obj) else ""
        except Exception:  # a file being replaced, or not ELF after all: no symbols then
            build_id = ""
    if not build_id:
        return None
    debug = Path(facts.debug_file(build_id, obj.parent / "debug"))
    return debug if debug.is_file() else None


def addr2line(debug: Path, pc: int) -> str:
    """'function (file:line)' from binutils' addr2line, or "" when it cannot tell; a
    function the compiler inlined is named with the one it was inlined into (-i), since
    that is where the author finds the call."""
    import shutil
    import subprocess

    tool = shutil.which("addr2line")
    if tool is None or pc < 0:
        return ""
    r = subprocess.run(
        [tool, "-f", "-i", "-C", "-e", str(debug), hex(pc)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = r.stdout.splitlines()
    if r.returncode != 0 or len(lines) < 2 or lines[0] == "??":
        return ""
    named = []
    for function, where in zip(lines[0::2], lines[1::2]):
        where = where.split(" (discriminator")[0]
        named.append(function + ("" if where.startswith("??") else f" ({where})"))
    return " inlined in ".join(named)


def avhost_build_hint(ctx) -> str:
    from avkit.hints import avhost_command

    return avhost_command(facts_arch(ctx.plugin))


def facts_arch(plugin: Path) -> str | None:
    from avkit import elf, facts

    return facts.arch_of(elf.header(plugin)) if elf.is_elf(plugin) else None


FILDES_LOG = "took a file descriptor (FILDES)"


def check_fildes(ctx, report: Report, cases, streamed: dict):
    """The corpus again, each file's descriptor passed over the UNIX socket: the
    verdicts of the manifest, the same as streamed, and the plugin's log says so."""
    r = avhost.run(
        ctx.avhost,
        "scan",
        ctx.plugin,
        *timeout_args(ctx),
        *[c["path"] for c in cases],
        options=ctx.fildes_options,
        decode_files=True,
        on_record=Progress(ctx),
    )
    passed = r.scans()
    for c in cases:
        record = passed.get(c["path"])
        check_scan(report, c, record, ctx.engine, label=f"FILDES: {c['name']}")
        before = (streamed.get(c["path"]) or {}).get("verdict")
        after = (record or {}).get("verdict")
        report.add(
            f"same in both modes: {c['name']}",
            before is not None and before == after,
            f"INSTREAM {before} / FILDES {after}",
        )
    used = any(FILDES_LOG in line for line in r.logs())
    report.add(
        "FILDES used over the UNIX socket",
        used and r.returncode == 0,
        f"exit {r.returncode}; "
        + ("the plugin logged it" if used else f"no log line with {FILDES_LOG!r}"),
    )


RELOADS = 5


def probe_case(ctx) -> dict[str, Any]:
    """The file scanned again after reloads and restarts: eicar.com, or the author's
    first sample."""
    name = ctx.manifest.get("probe") or "eicar.com"
    return next(c for c in ctx.manifest["files"] if c["name"] == name)


def check_reloads(ctx, report: Report, case: dict):
    """As the products do on a plugin switch: load, scan, plugin_close, dlclose, again and
    again in one process, then exit(). A destructor or thread the plugin leaves behind
    crashes there; a descriptor it keeps grows with every round."""
    if case["path"] in ctx.hung_files:
        report.add(
            f"unload and load again x{RELOADS}, then exit()",
            False,
            f"not run: the plugin hung on {case['name']}",
        )
        return
    run = avhost.run(
        ctx.avhost,
        "scan",
        ctx.plugin,
        "--no-logs",
        "--reloads",
        RELOADS,
        *timeout_args(ctx),
        case["path"],
        options=ctx.options,
        on_record=Progress(ctx),
    )
    code, records = run.returncode, run.records
    rounds = run.events("unload")
    bad = [f"{r['event']}: {v}" for r in records for v in (r.get("violations") or [])]
    scans = run.events("scan")
    expected = case["expect"].get(ctx.engine, case["expect"]["default"])
    ok = (
        code == 0
        and not bad
        and len(rounds) == RELOADS
        and len(scans) == RELOADS
        and all(s["verdict"] in expected for s in scans)
    )
    detail = (
        f"{len(rounds)}/{RELOADS} rounds, verdicts {sorted({s['verdict'] for s in scans})}, "
        f"exit {code}" + (f": {'; '.join(bad)}" if bad else "")
    )
    report.add(f"unload and load again x{RELOADS}, then exit()", ok, detail)


def scan_all(serve: avhost.SocketServe, cases) -> dict[str, dict[str, Any]]:
    answers = serve.request([f"SCAN {c['path']}" for c in cases])
    return {a.get("file"): a for a in answers if a.get("event") == "scan"}


def run_waiting(ctx) -> Report:
    report = Report("waiting", ctx.engine)
    cases = ctx.manifest["files"]
    # Workers must outlive the wait, so the plugin's contexts (its connections) are reused.
    serve = avhost.SocketServe(
        ctx.avhost,
        ctx.plugin,
        "--no-logs",
        "--idle-timeout",
        ctx.wait * 4 + 60,
        "--scan-timeout",
        ctx.scan_timeout,
        options=ctx.options,
    )
    try:
        first = scan_all(serve, cases)
        print(f"  ... idle for {ctx.wait} s", flush=True)
        time.sleep(ctx.wait)
        second = scan_all(serve, cases)
        serve.request(["SHUTDOWN"])
        code = serve.close()
    finally:
        serve.kill()
    for c in cases:
        a, b = first.get(c["path"]), second.get(c["path"])
        check_scan(report, c, a, ctx.engine, label=f"before: {c['name']}")
        check_scan(report, c, b, ctx.engine, label=f"after:  {c['name']}")
        if a and b:
            report.add(
                f"same:   {c['name']}",
                a["verdict"] == b["verdict"] and b["verdict"] != "ERROR",
                f"{a['verdict']} -> {b['verdict']}",
            )
    return close_report(report, serve.records, code, "no restart, clean exit", restarts=0)


def run_server(ctx) -> Report:
    report = Report("server", ctx.engine)
    cases = ctx.manifest["files"]
    idle = 1.0
    serve = avhost.SocketServe(
        ctx.avhost,
        ctx.plugin,
        "--no-logs",
        "--idle-timeout",
        idle,
        "--max-workers",
        8,
        "--scan-timeout",
        ctx.scan_timeout,
        options=ctx.options,
    )
    try:
        # 1. Concurrent clients, more requests than there are workers.
        results: list[dict] = []
        lock = threading.Lock()

        def client():
            got = scan_all(serve, cases)
            with lock:
                results.append(got)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in cases:
            answers = [r.get(c["path"]) for r in results]
            expected = c["expect"].get(ctx.engine, c["expect"]["default"])
            good = [a for a in answers if a and a["verdict"] in expected and not a["violations"]]
            report.add(
                f"4 clients: {c['name']}",
                len(good) == 4,
                f"{len(good)}/4 answered {'/'.join(expected)}: "
                f"{sorted({a['verdict'] for a in answers if a})}",
            )
        stats = serve.request(["STATS"])[0]
        report.add(
            "pool grew and is capped",
            1 <= stats.get("peak_workers", 0) <= 8,
            f"peak {stats.get('peak_workers')} workers for 4 concurrent clients (cap 8)",
        )
        # 2. Idle workers end.
        time.sleep(idle * 2 + 1)
        stats = serve.request(["STATS"])[0]
        report.add(
            "idle workers closed",
            stats.get("workers") == 0 and stats.get("closed_idle", 0) >= 1,
            f"{stats.get('workers')} workers left, {stats.get('closed_idle')} closed idle",
        )
        # 3. A forced restart: a fresh process, and it scans again.
        old_pid = stats.get("pid")
        serve.request(["RESTART"])
        stats = serve.request(["STATS"])[0]
        probe = probe_case(ctx)
        after = scan_all(serve, [probe]).get(probe["path"])
        report.add(
            "restart",
            stats.get("pid") not in (None, old_pid),
            f"plugin process {old_pid} -> {stats.get('pid')}",
        )
        check_scan(report, probe, after, ctx.engine, label=f"after restart: {probe['name']}")
        # 4. Clean shutdown.
        serve.request(["SHUTDOWN"])
        code = serve.close()
    finally:
        serve.kill()
    return close_report(report, serve.records, code, "clean shutdown", restarts=1)


# ---------- CLI ----------


class Context:
    pass


@contextlib.contextmanager
def make_context(args):
    ctx = Context()
    ctx.plugin = Path(args.plugin).resolve()
    if not ctx.plugin.exists():
        from avkit.hints import build_command

        raise UserError(f"{ctx.plugin} does not exist: build it ({build_command(ctx.plugin)})")
    ctx.avhost = avhost.find(ctx.plugin, args.avhost)
    ctx.wait = args.wait
    ctx.scan_timeout = args.scan_timeout
    ctx.hung = False
    ctx.hung_files = set()
    ctx.samples = None
    ctx.options = {}
    ctx.fildes_options = None
    with contextlib.ExitStack() as stack:
        data = Path(args.data) if args.data else kit_data_folder(ctx.plugin, stack)
        samples = corpus.load_samples(args.samples) if getattr(args, "samples", None) else None
        if samples:
            data = data / "with-samples"
            print(
                f"generating the corpus around {len(samples['samples'])} samples of "
                f"{samples['source']} into {data}"
            )
            corpus.generate_with_samples(
                data, samples, seed=args.seed, stream_limit=args.stream_limit
            )
        elif not (data / "manifest.json").exists():
            print(f"generating the corpus into {data}")
            corpus.generate(data, seed=args.seed, stream_limit=args.stream_limit)
        ctx.manifest = corpus.load(data)
        ctx.samples = samples
        if args.with_clamd:
            from avkit.check.clamd import Clamd

            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="kit-clamd-"))
            clamd = stack.enter_context(
                Clamd(
                    work,
                    idle_timeout=max(1, int(args.wait) - 1 or 1),
                    stream_max_length=ctx.manifest["stream_limit"],
                )
            )
            ctx.options.update(clamd.plugin_options())
            ctx.fildes_options = clamd.plugin_options("unix", FdPass="on")
        if args.with_cicap:
            ctx.options.update(start_cicap(stack, ctx.manifest["stream_limit"], args.wait))
        for item in args.option or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"-o {item}: want NAME=VALUE")
            ctx.options[name] = value
            if ctx.fildes_options is not None:
                ctx.fildes_options[name] = value
        name = avhost.plugin_name(ctx.avhost, ctx.plugin, ctx.options)
        if samples:
            ctx.engine = "default"  # every verdict is the author's, the same for all engines
            print(
                f"expectations: {samples['source']} for its samples; the kit's own for "
                f"the files without EICAR (clean, empty, over the limit, missing, unreadable)"
            )
        else:
            ctx.engine = args.engine or corpus.engine_for(name)
            if not args.engine:
                print(engine_note(name, ctx.engine))
        yield ctx


def kit_data_folder(plugin: Path, stack: contextlib.ExitStack) -> Path:
    """Where the corpus goes when --data is not given: an author's own build/ folder
    (FOLDER/build/kit-data for FOLDER/dist/ARCH/avir_x.so, kept for the next run), or a
    temporary folder removed at the end; never this clone's build/."""
    from avkit import paths
    from avkit.hints import author_folder

    owner = author_folder(plugin)
    if owner is not None and owner != paths.ROOT:
        return owner / "build" / "kit-data"
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="avkit-kit-data-")))


def start_cicap(stack: contextlib.ExitStack, stream_limit: int, wait: float) -> dict[str, str]:
    """A private c-icap (virus_scan over its own private clamd) for the run: the
    avir_icap options that reach it. clamd's MaxFileSize is the corpus's stream limit
    (AlertExceedsMax: a larger file is IMPOSSIBLE, as with avir_clam); the service is
    the plugin's default (virus_scan with no size limit of its own and every type:
    plain virus_scan would pass a large file unscanned with a 204)."""
    from avkit.check.clamd import Clamd
    from avkit.check.icap import CIcap

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kit-cicap-")))
    clamd = stack.enter_context(Clamd(work / "clamd", stream_max_length=stream_limit))
    idle = max(1, int(wait) - 1)
    icap = stack.enter_context(CIcap(work / "icap", clamd, keepalive_timeout=idle))
    return icap.plugin_options()


ENGINE_NOTES = {
    "default": "a full antivirus engine: EICAR found in plain files and in zips, encrypted "
    "archives IMPOSSIBLE",
    "sample": "the sample plugin: EICAR found in plain files only (it does not open archives)",
    "clam": "ClamAV through clamd, with the kit's clamd configuration",
    "icap": "an ICAP server: c-icap's virus_scan over ClamAV, with the kit's clamd configuration",
}


def engine_note(plugin_name: str, engine: str) -> str:
    """Which verdicts the kit expects and why, so a renamed sample is not a mystery."""
    if corpus.engine_for(plugin_name) != "default":
        return (
            f"engine {engine} ({ENGINE_NOTES[engine]}): chosen by the plugin's name {plugin_name}"
        )
    return (
        f"engine default ({ENGINE_NOTES['default']}): {plugin_name} is not a plugin the kit "
        f"knows; for one still built on sample/'s EICAR search, pass --engine sample"
    )


RUNNERS = {"scanning": run_scanning, "waiting": run_waiting, "server": run_server}


def run_test(name, args) -> int:
    if name == "generate-test-data":
        m = corpus.generate(args.dir, seed=args.seed, stream_limit=args.stream_limit)
        print(
            f"generate-test-data: {len(m['files'])} cases in {Path(args.dir).resolve()} "
            f"(seed {m['seed']}, stream limit {m['stream_limit']} bytes)"
        )
        return 0
    with make_context(args) as ctx:
        print(f"{name}: {ctx.plugin.name} via {ctx.avhost} (engine {ctx.engine})")
        report = RUNNERS[name](ctx)
        report.junit(args.junit)
        code = report.summary()
        if code and not ctx.samples and eicar_never_found(report):
            print(
                "  hint: the plugin found EICAR nowhere; if your engine does not detect "
                "EICAR, give the kit your own samples and expectations: --samples "
                'MANIFEST (docs/author.md, "Your own engine\'s samples")'
            )
        return code


def eicar_never_found(report: Report) -> bool:
    """Every EICAR case failed by answering OK: an engine that does not know EICAR."""
    eicar = [(ok, detail) for name, ok, detail in report.cases if "eicar" in name.lower()]
    return bool(eicar) and all(
        not ok and detail.startswith("OK")
        for ok, detail in eicar
        if "expected VIRUS_FOUND" in detail
    )


def menu(args) -> int:
    """`avkit kit` with no test named: the vendor kit's numbered menu on stdin."""
    print("Kerio antivirus plugin test kit")
    for i, name in enumerate(TESTS, 1):
        print(f"  {i}) avplugins_{name.replace('-', '_')}{'_test' if i > 1 else ''}")
    print("  0) quit")
    print("Choose a test: ", end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        print("\nno choice (end of input); nothing run")
        return 0
    choice = line.strip()
    if choice in ("0", "q", ""):
        return 0
    if not choice.isdigit() or not 1 <= int(choice) <= len(TESTS):
        print(f"no such test: {choice}")
        return 2
    name = TESTS[int(choice) - 1]
    if name == "generate-test-data":
        args.dir = args.data or "kit-data"
    return run_test(name, args)
