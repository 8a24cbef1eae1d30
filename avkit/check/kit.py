"""The plugin test kit, driving a plugin through avhost (`avkit kit`).

    python -m avkit kit generate-test-data DIR [--seed N] [--stream-limit BYTES]
    python -m avkit kit scanning --plugin P --data DIR [-o Name=Value]... [--junit FILE]
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
for the engine named by --engine or by the plugin's info name. Each test prints
a summary, returns non-zero on any mismatch or contract violation.
"""
from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from avkit.check import avhost, kit_corpus as corpus
from avkit.errors import UserError

TESTS = ["generate-test-data", "scanning", "waiting", "server"]


# ---------- results ----------

class Report:
    """Cases of one test: printed as a table, optionally written as JUnit XML."""

    def __init__(self, test: str, engine: str):
        self.test, self.engine = test, engine
        self.cases: list[tuple[str, bool, str]] = []

    def add(self, name: str, ok: bool, detail: str):
        self.cases.append((name, ok, detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {name:36} {detail}", flush=True)

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.cases if not ok)

    def summary(self) -> int:
        passed = len(self.cases) - self.failed
        print(f"{self.test} [{self.engine}]: {passed} passed, {self.failed} failed")
        return 1 if self.failed else 0

    def junit(self, path):
        if not path:
            return
        suite = ET.Element("testsuite", name=f"avkit.kit.{self.test}", tests=str(len(self.cases)),
                           failures=str(self.failed))
        for name, ok, detail in self.cases:
            tc = ET.SubElement(suite, "testcase", classname=f"kit.{self.test}.{self.engine}",
                               name=name)
            if not ok:
                ET.SubElement(tc, "failure", message=detail).text = detail
            else:
                ET.SubElement(tc, "system-out").text = detail
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def check_scan(report: Report, case: dict, record: dict | None, engine: str, label=None):
    name = label or case["name"]
    expected = case["expect"].get(engine, case["expect"]["default"])
    if record is None:
        report.add(name, False, f"no answer (expected {'/'.join(expected)})")
        return
    verdict = record.get("verdict")
    violations = record.get("violations") or []
    ok = verdict in expected and not violations
    detail = f"{verdict:12} expected {'/'.join(expected)}"
    if record.get("vir_info"):
        detail += f"  [{record['vir_info']}]"
    if violations:
        detail += "  VIOLATIONS: " + "; ".join(violations)
    report.add(name, ok, detail)


def close_report(report: Report, events: list[dict], code: int, label: str,
                 restarts: int) -> Report:
    """The end of a serve test: no violation anywhere, the exit status, the restarts."""
    check_records(report, events, "contract")
    summary = next((r for r in events if r["event"] == "summary"), {})
    report.add(label, code == 0 and summary.get("restarts") == restarts,
               f"exit {code}, restarts {summary.get('restarts')} ({restarts} requested)")
    return report


def check_records(report: Report, records: list[dict], label: str):
    """Every violation outside scan records fails the test, named by its event."""
    bad = [f"{r['event']}: {v}" for r in records if r.get("event") != "scan"
           for v in (r.get("violations") or [])]
    report.add(label, not bad, "; ".join(bad) if bad else "no contract violation")


# ---------- the tests ----------

def test_scanning(ctx) -> Report:
    report = Report("scanning", ctx.engine)
    cases = ctx.manifest["files"]
    r = avhost.run(ctx.avhost, "scan", ctx.plugin, "--no-logs", "--scan-timeout",
                   ctx.scan_timeout, *[c["path"] for c in cases], options=ctx.options,
                   decode_files=True)
    code, records, err = r.returncode, r.records, r.stderr
    for load in r.events("load")[:1]:
        if load.get("unknown_options"):
            print(f"  WARN  -o {load['unknown_options']}: not an option of this plugin, ignored "
                  f"(its options: {', '.join(o['name'] for o in load.get('options', []))})")
    scans = r.scans()
    for c in cases:
        check_scan(report, c, scans.get(c["path"]), ctx.engine)
    check_records(report, records, "contract (load, init, close)")
    summary = next((r for r in records if r["event"] == "summary"), {})
    report.add("host exit status", code == 0 and summary.get("restarts", 1) == 0,
               f"exit {code}, restarts {summary.get('restarts')}" + (f": {err.strip()}" if code and err.strip() else ""))
    check_reloads(ctx, report, next(c for c in cases if c["name"] == "eicar.com"))
    if ctx.fildes_options:
        check_fildes(ctx, report, cases, scans)
    return report


FILDES_LOG = "took a file descriptor (FILDES)"


def check_fildes(ctx, report: Report, cases, streamed: dict):
    """The corpus again, each file's descriptor passed over the UNIX socket: the
    verdicts of the manifest, the same as streamed, and the plugin's log says so."""
    r = avhost.run(ctx.avhost, "scan", ctx.plugin, "--scan-timeout", ctx.scan_timeout,
                   *[c["path"] for c in cases], options=ctx.fildes_options, decode_files=True)
    passed = r.scans()
    for c in cases:
        record = passed.get(c["path"])
        check_scan(report, c, record, ctx.engine, label=f"FILDES: {c['name']}")
        before = (streamed.get(c["path"]) or {}).get("verdict")
        after = (record or {}).get("verdict")
        report.add(f"same in both modes: {c['name']}", before is not None and before == after,
                   f"INSTREAM {before} / FILDES {after}")
    used = any(FILDES_LOG in line for line in r.logs())
    report.add("FILDES used over the UNIX socket", used and r.returncode == 0,
               f"exit {r.returncode}; " + ("the plugin logged it" if used else
                                           f"no log line with {FILDES_LOG!r}"))


RELOADS = 5


def check_reloads(ctx, report: Report, case: dict):
    """As the products do on a plugin switch: load, scan, plugin_close, dlclose, again and
    again in one process, then exit(). A destructor or thread the plugin leaves behind
    crashes there; a descriptor it keeps grows with every round."""
    run = avhost.run(ctx.avhost, "scan", ctx.plugin, "--no-logs", "--reloads", RELOADS,
                     "--scan-timeout", ctx.scan_timeout, case["path"], options=ctx.options)
    code, records = run.returncode, run.records
    rounds = run.events("unload")
    bad = [f"{r['event']}: {v}" for r in records for v in (r.get("violations") or [])]
    scans = run.events("scan")
    expected = case["expect"].get(ctx.engine, case["expect"]["default"])
    ok = code == 0 and not bad and len(rounds) == RELOADS and len(scans) == RELOADS and all(
        s["verdict"] in expected for s in scans)
    detail = (f"{len(rounds)}/{RELOADS} rounds, verdicts {sorted({s['verdict'] for s in scans})}, "
              f"exit {code}" + (f": {'; '.join(bad)}" if bad else ""))
    report.add(f"unload and load again x{RELOADS}, then exit()", ok, detail)


def scan_all(serve: avhost.SocketServe, cases) -> dict:
    answers = serve.request([f"SCAN {c['path']}" for c in cases])
    return {a.get("file"): a for a in answers if a.get("event") == "scan"}


def test_waiting(ctx) -> Report:
    report = Report("waiting", ctx.engine)
    cases = ctx.manifest["files"]
    # Workers must outlive the wait, so the plugin's contexts (its connections) are reused.
    serve = avhost.SocketServe(ctx.avhost, ctx.plugin, "--no-logs", "--idle-timeout",
                               ctx.wait * 4 + 60, "--scan-timeout", ctx.scan_timeout,
                               options=ctx.options)
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
            report.add(f"same:   {c['name']}", a["verdict"] == b["verdict"]
                       and b["verdict"] != "ERROR", f"{a['verdict']} -> {b['verdict']}")
    return close_report(report, serve.records, code, "no restart, clean exit", restarts=0)


def test_server(ctx) -> Report:
    report = Report("server", ctx.engine)
    cases = ctx.manifest["files"]
    idle = 1.0
    serve = avhost.SocketServe(ctx.avhost, ctx.plugin, "--no-logs", "--idle-timeout", idle,
                               "--max-workers", 8, "--scan-timeout", ctx.scan_timeout,
                               options=ctx.options)
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
            report.add(f"4 clients: {c['name']}", len(good) == 4,
                       f"{len(good)}/4 answered {'/'.join(expected)}: "
                       f"{sorted({a['verdict'] for a in answers if a})}")
        stats = serve.request(["STATS"])[0]
        report.add("pool grew and is capped", 1 <= stats.get("peak_workers", 0) <= 8,
                   f"peak {stats.get('peak_workers')} workers for 4 concurrent clients (cap 8)")
        # 2. Idle workers end.
        time.sleep(idle * 2 + 1)
        stats = serve.request(["STATS"])[0]
        report.add("idle workers closed", stats.get("workers") == 0
                   and stats.get("closed_idle", 0) >= 1,
                   f"{stats.get('workers')} workers left, {stats.get('closed_idle')} closed idle")
        # 3. A forced restart: a fresh process, and it scans again.
        old_pid = stats.get("pid")
        serve.request(["RESTART"])
        stats = serve.request(["STATS"])[0]
        eicar = next(c for c in cases if c["name"] == "eicar.com")
        after = scan_all(serve, [eicar]).get(eicar["path"])
        report.add("restart", stats.get("pid") not in (None, old_pid),
                   f"plugin process {old_pid} -> {stats.get('pid')}")
        check_scan(report, eicar, after, ctx.engine, label="after restart: eicar.com")
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
        from avkit.build.plugin import build_command
        raise UserError(f"{ctx.plugin} does not exist: build it ({build_command(ctx.plugin)})")
    ctx.avhost = avhost.find(ctx.plugin, args.avhost)
    ctx.wait = args.wait
    ctx.scan_timeout = args.scan_timeout
    ctx.options = {}
    ctx.fildes_options = None
    with contextlib.ExitStack() as stack:
        data = Path(args.data) if args.data else kit_data_folder(ctx.plugin, stack)
        if not (data / "manifest.json").exists():
            print(f"generating the corpus into {data}")
            corpus.generate(data, seed=args.seed, stream_limit=args.stream_limit)
        ctx.manifest = corpus.load(data)
        if args.with_clamd:
            from avkit.check.clamd import Clamd
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="kit-clamd-"))
            clamd = stack.enter_context(Clamd(work, idle_timeout=max(1, int(args.wait) - 1 or 1),
                                              stream_max_length=ctx.manifest["stream_limit"]))
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
        ctx.engine = args.engine or corpus.engine_for(name)
        if not args.engine:
            print(engine_note(name, ctx.engine))
        yield ctx


def kit_data_folder(plugin: Path, stack: contextlib.ExitStack) -> Path:
    """Where the corpus goes when --data is not given: an author's own build/ folder
    (FOLDER/build/kit-data for FOLDER/dist/ARCH/avir_x.so, kept for the next run), or a
    temporary folder removed at the end; never this clone's build/."""
    from avkit import paths
    from avkit.build.plugin import author_folder
    owner = author_folder(plugin)
    if owner is not None and owner != paths.ROOT:
        return owner / "build" / "kit-data"
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="avkit-kit-data-")))


def start_cicap(stack: contextlib.ExitStack, stream_limit: int, wait: float) -> dict:
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
        return f"engine {engine} ({ENGINE_NOTES[engine]}): chosen by the plugin's name {plugin_name}"
    return (f"engine default ({ENGINE_NOTES['default']}): {plugin_name} is not a plugin the kit "
            f"knows; for one still built on sample/'s EICAR search, pass --engine sample")


RUNNERS = {"scanning": test_scanning, "waiting": test_waiting, "server": test_server}


def run_test(name, args) -> int:
    if name == "generate-test-data":
        m = corpus.generate(args.dir, seed=args.seed, stream_limit=args.stream_limit)
        print(f"generate-test-data: {len(m['files'])} cases in {Path(args.dir).resolve()} "
              f"(seed {m['seed']}, stream limit {m['stream_limit']} bytes)")
        return 0
    with make_context(args) as ctx:
        print(f"{name}: {ctx.plugin.name} via {ctx.avhost} (engine {ctx.engine})")
        report = RUNNERS[name](ctx)
        report.junit(args.junit)
        return report.summary()
