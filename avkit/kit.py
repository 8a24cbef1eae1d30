"""`avkit kit`: the plugin test kit, driving a plugin through avhost.

    python -m avkit kit generate-test-data DIR [--seed N] [--stream-limit BYTES]
    python -m avkit kit scanning --plugin P --data DIR [-o Name=Value]... [--junit FILE]
    python -m avkit kit waiting  --plugin P --data DIR [--wait SECONDS]
    python -m avkit kit server   --plugin P --data DIR
    python -m avkit kit                      (the vendor kit's numbered menu)

`--with-clamd` starts a private clamd (avkit.clamd) for the run and passes its
address to the plugin with -o. Expected verdicts come from the corpus manifest,
for the engine named by --engine or by the plugin's info name. Each test prints
a summary, returns non-zero on any mismatch or contract violation.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from avkit import corpus, paths, prereqs
from avkit.errors import UserError

TESTS = ["generate-test-data", "scanning", "waiting", "server"]


# ---------- avhost ----------

def find_avhost(plugin: Path, explicit: str | None = None) -> Path:
    prereqs.require_i386_runtime()
    if explicit:
        return Path(explicit)
    for candidate in (plugin.parent / "avhost", paths.dist_dir("zig") / "avhost"):
        if candidate.exists():
            return candidate
    raise UserError(f"avhost not found beside {plugin} nor in {paths.dist_dir('zig')}: "
                    f"build it (python -m avkit build) or pass --avhost")


def raw_text(s: str) -> str:
    """avhost writes every byte >= 0x80 as \\u00XX: this gives back the UTF-8 text."""
    return s.encode("latin-1", "replace").decode("utf-8", "replace")


def parse_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            if isinstance(record.get("file"), str):
                record["file"] = raw_text(record["file"])
            out.append(record)
    return out


def option_args(options: dict) -> list[str]:
    args = []
    for k, v in options.items():
        args += ["-o", f"{k}={v}"]
    return args


def avhost_run(avhost, mode, plugin, *args, timeout=600) -> tuple[int, list[dict], str]:
    cmd = [str(avhost), mode, str(plugin), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return r.returncode, parse_lines(r.stdout.decode("utf-8", "replace")), \
        r.stderr.decode("utf-8", "replace")


def plugin_name(avhost, plugin, options) -> str:
    _, records, err = avhost_run(avhost, "info", plugin, "--cycles", "1", "--no-logs",
                                 *option_args(options))
    for r in records:
        if r["event"] == "load" and r.get("name"):
            return r["name"]
    raise UserError(f"avhost could not load {plugin}: {err.strip() or records}")


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


def check_records(report: Report, records: list[dict], label: str):
    """Every violation outside scan records fails the test, named by its event."""
    bad = [f"{r['event']}: {v}" for r in records if r.get("event") != "scan"
           for v in (r.get("violations") or [])]
    report.add(label, not bad, "; ".join(bad) if bad else "no contract violation")


# ---------- the tests ----------

def test_scanning(ctx) -> Report:
    report = Report("scanning", ctx.engine)
    cases = ctx.manifest["files"]
    code, records, err = avhost_run(ctx.avhost, "scan", ctx.plugin, "--no-logs",
                                    *option_args(ctx.options), *[c["path"] for c in cases])
    scans = {r["file"]: r for r in records if r["event"] == "scan"}
    for c in cases:
        check_scan(report, c, scans.get(c["path"]), ctx.engine)
    check_records(report, records, "contract (load, init, close)")
    summary = next((r for r in records if r["event"] == "summary"), {})
    report.add("host exit status", code == 0 and summary.get("restarts", 1) == 0,
               f"exit {code}, restarts {summary.get('restarts')}" + (f": {err.strip()}" if code and err.strip() else ""))
    check_reloads(ctx, report, next(c for c in cases if c["name"] == "eicar.com"))
    return report


RELOADS = 5


def check_reloads(ctx, report: Report, case: dict):
    """As the products do on a plugin switch: load, scan, plugin_close, dlclose, again and
    again in one process, then exit(). A destructor or thread the plugin leaves behind
    crashes there; a descriptor it keeps grows with every round."""
    code, records, err = avhost_run(ctx.avhost, "scan", ctx.plugin, "--no-logs", "--reloads",
                                    RELOADS, *option_args(ctx.options), case["path"])
    rounds = [r for r in records if r["event"] == "unload"]
    bad = [f"{r['event']}: {v}" for r in records for v in (r.get("violations") or [])]
    scans = [r for r in records if r["event"] == "scan"]
    expected = case["expect"].get(ctx.engine, case["expect"]["default"])
    ok = code == 0 and not bad and len(rounds) == RELOADS and len(scans) == RELOADS and all(
        s["verdict"] in expected for s in scans)
    detail = (f"{len(rounds)}/{RELOADS} rounds, verdicts {sorted({s['verdict'] for s in scans})}, "
              f"exit {code}" + (f": {'; '.join(bad)}" if bad else ""))
    report.add(f"unload and load again x{RELOADS}, then exit()", ok, detail)


class Serve:
    """avhost serve on a UNIX socket, in its own process."""

    def __init__(self, ctx, *extra):
        self.dir = tempfile.mkdtemp(prefix="avkit-kit-")
        self.sock = os.path.join(self.dir, "avhost.sock")
        self.out = open(os.path.join(self.dir, "stdout.jsonl"), "w+b")
        self.proc = subprocess.Popen(
            [str(ctx.avhost), "serve", str(ctx.plugin), "--socket", self.sock, "--no-logs",
             *map(str, extra), *option_args(ctx.options)], stdout=self.out,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"avhost serve did not start: {self.events()}")
            time.sleep(0.05)

    def request(self, lines: list[str], timeout=300) -> list[dict]:
        """Sends the lines on one connection; returns one answer per line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall("".join(l + "\n" for l in lines).encode())
            buf = b""
            answers = []
            while len(answers) < len(lines):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    answers += parse_lines(line.decode("ascii", "replace"))
            return answers

    def events(self) -> list[dict]:
        self.out.flush()
        return parse_lines(Path(self.out.name).read_text("utf-8", "replace"))

    def close(self, timeout=60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


def scan_all(serve: Serve, cases) -> dict:
    answers = serve.request([f"SCAN {c['path']}" for c in cases])
    return {a.get("file"): a for a in answers if a.get("event") == "scan"}


def test_waiting(ctx) -> Report:
    report = Report("waiting", ctx.engine)
    cases = ctx.manifest["files"]
    # Workers must outlive the wait, so the plugin's contexts (its connections) are reused.
    serve = Serve(ctx, "--idle-timeout", ctx.wait * 4 + 60)
    try:
        first = scan_all(serve, cases)
        print(f"  ... idle for {ctx.wait} s", flush=True)
        time.sleep(ctx.wait)
        second = scan_all(serve, cases)
        serve.request(["SHUTDOWN"])
        code = serve.close()
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
    for c in cases:
        a, b = first.get(c["path"]), second.get(c["path"])
        check_scan(report, c, a, ctx.engine, label=f"before: {c['name']}")
        check_scan(report, c, b, ctx.engine, label=f"after:  {c['name']}")
        if a and b:
            report.add(f"same:   {c['name']}", a["verdict"] == b["verdict"]
                       and b["verdict"] != "ERROR", f"{a['verdict']} -> {b['verdict']}")
    events = serve.events()
    check_records(report, events, "contract")
    summary = next((r for r in events if r["event"] == "summary"), {})
    report.add("no restart, clean exit", code == 0 and summary.get("restarts") == 0,
               f"exit {code}, restarts {summary.get('restarts')}")
    return report


def test_server(ctx) -> Report:
    report = Report("server", ctx.engine)
    cases = ctx.manifest["files"]
    idle = 1.0
    serve = Serve(ctx, "--idle-timeout", idle, "--max-workers", 8)
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
        if serve.proc.poll() is None:
            serve.proc.kill()
    events = serve.events()
    check_records(report, events, "contract")
    summary = next((r for r in events if r["event"] == "summary"), {})
    report.add("clean shutdown", code == 0 and summary.get("restarts") == 1,
               f"exit {code}, restarts {summary.get('restarts')} (1 requested)")
    return report


# ---------- CLI ----------

class Context:
    pass


@contextlib.contextmanager
def make_context(args):
    ctx = Context()
    ctx.plugin = Path(args.plugin).resolve()
    if not ctx.plugin.exists():
        raise UserError(f"{ctx.plugin} does not exist: build it (python -m avkit build)")
    ctx.avhost = find_avhost(ctx.plugin, args.avhost)
    ctx.wait = args.wait
    ctx.options = {}
    data = Path(args.data)
    if not (data / "manifest.json").exists():
        print(f"generating the corpus into {data}")
        corpus.generate(data)
    ctx.manifest = corpus.load(data)
    with contextlib.ExitStack() as stack:
        if args.with_clamd:
            from avkit.clamd import Clamd
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="kit-clamd-"))
            clamd = stack.enter_context(Clamd(work, idle_timeout=max(1, int(args.wait) - 1 or 1),
                                              stream_max_length=ctx.manifest["stream_limit"]))
            ctx.options.update(clamd.plugin_options())
        for item in args.option or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"-o {item}: want NAME=VALUE")
            ctx.options[name] = value
        ctx.engine = args.engine or corpus.engine_for(plugin_name(ctx.avhost, ctx.plugin,
                                                                  ctx.options))
        yield ctx


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


def menu(args) -> int:
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
        args.dir = args.data
    return run_test(name, args)


def _common(p):
    p.add_argument("--plugin", default=str(paths.dist_dir("zig") / "avir_sample.so"),
                   help="the avir_*.so to test (default: dist/i386/avir_sample.so)")
    p.add_argument("--avhost", help="avhost to use (default: beside the plugin)")
    p.add_argument("--data", default=str(paths.BUILD / "kit-data"),
                   help="corpus folder (generated there when missing)")
    p.add_argument("--engine", choices=corpus.ENGINES,
                   help="expectations to use (default: from the plugin's name)")
    p.add_argument("-o", dest="option", action="append", metavar="NAME=VALUE",
                   help="plugin option (repeatable)")
    p.add_argument("--with-clamd", action="store_true",
                   help="start a private clamd for the run and point the plugin at it")
    p.add_argument("--wait", type=float, default=5.0,
                   help="waiting: seconds idle between the two scans (default 5)")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED)
    p.add_argument("--stream-limit", type=int, default=corpus.DEFAULT_STREAM_LIMIT)


def register(subparsers):
    p = subparsers.add_parser("kit", help="the plugin test kit (no test named: the menu)")
    _common(p)
    sub = p.add_subparsers(dest="kit_test", metavar="TEST")
    g = sub.add_parser("generate-test-data", help="write the corpus and its manifest")
    g.add_argument("dir")
    _common(g)
    for name, doc in (("scanning", "scan the corpus once and compare with the manifest"),
                      ("waiting", "scan, stay idle, scan again: nothing may change"),
                      ("server", "drive `avhost serve` like the product")):
        _common(sub.add_parser(name, help=doc))
    p.set_defaults(func=run)


def run(args) -> int:
    if not args.kit_test:
        return menu(args)
    return run_test(args.kit_test, args)
