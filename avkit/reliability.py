"""Reliability jobs of issue 7: fuzzing, sanitizers, valgrind and the soak run.

    python -m avkit fuzz [--seconds N] [--target reply_parser|options] [--jobs N]
    python -m avkit sanitize [--skip-build] [--skip-kit] [--skip-tests]
    python -m avkit valgrind [--scans N]
    python -m avkit soak [--workers 64] [--scans 10000] [--restarts 3] [--seconds S]

fuzz: builds fuzz/*_fuzz.{c,cpp} with clang -m32 and libFuzzer (Debian: clang-14,
libclang-rt-14-dev), runs each target from its seed corpus fuzz/corpus/<target>/ (new
inputs go to the build folder, not the source tree) and reports executions and crashes.
sanitize: the ASan+UBSan build (gcc -m32) through the kit (both plugins; clam with a
private clamd) and the fault tests; sanitizer reports go to files and any file fails it.
valgrind: memcheck of avhost + avir_clam.so (gcc build): init, N scans, close.
soak: W threads x N scans of the mixed corpus through one avhost with clamd restarted
a few times: wrong verdicts, crashes, descriptors and RSS sampled over time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from avkit import paths
from avkit.errors import UserError

FUZZ_DIR = paths.ROOT / "fuzz"
FUZZ_TARGETS = {
    # target: (sources, include folders)
    "reply_parser": (["fuzz/reply_parser_fuzz.cpp", "clam/src/reply_parser.cpp"], ["clam/src"]),
    "options": (["fuzz/options_fuzz.c", "api/avCommon.c"], ["api"]),
}
CLANG_CANDIDATES = ["clang-14", "clang"]


def register(subparsers):
    p = subparsers.add_parser("fuzz", help="libFuzzer runs of the reply parser and option parsing")
    p.add_argument("--seconds", type=int, default=60, help="time budget per target (60)")
    p.add_argument("--target", action="append", choices=sorted(FUZZ_TARGETS),
                   help="only this target (repeatable; default: all)")
    p.add_argument("--jobs", type=int, default=1, help="parallel fuzzing processes per target")
    p.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    p.set_defaults(func=run_fuzz)

    p = subparsers.add_parser("sanitize", help="kit and fault tests against the ASan+UBSan build")
    p.add_argument("--skip-build", action="store_true", help="use dist/i386-gcc-asan as it is")
    p.add_argument("--skip-kit", action="store_true")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--tests", nargs="*", default=["tests/test_faults.py", "tests/test_clam_plugin.py"],
                   help="pytest files run against the sanitized build")
    p.set_defaults(func=run_sanitize)

    p = subparsers.add_parser("valgrind", help="memcheck: init, N scans, close of avir_clam.so")
    p.add_argument("--scans", type=int, default=1000)
    p.add_argument("--toolchain", default="gcc", choices=["gcc", "zig"])
    p.set_defaults(func=run_valgrind)

    p = subparsers.add_parser("soak", help="many threads x many scans with clamd restarts")
    p.add_argument("--plugin", help="plugin to soak (default: dist/i386/avir_clam.so)")
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--scans", type=int, default=10000, help="scans per worker")
    p.add_argument("--restarts", type=int, default=3, help="clamd restarts during the run")
    p.add_argument("--seconds", type=float, default=3600, help="stop after this long anyway")
    p.add_argument("--json", metavar="FILE", help="write samples and totals as JSON")
    p.set_defaults(func=run_soak)


# ---------------- fuzz ----------------

def find_clang() -> str:
    for name in CLANG_CANDIDATES:
        exe = shutil.which(name)
        if exe:
            return exe
    raise UserError("clang not found: install the Debian packages clang-14 and "
                    "libclang-rt-14-dev (libFuzzer's i386 runtime)")


def build_fuzzer(target: str, out: Path) -> Path:
    clang = find_clang()
    clangxx = clang.replace("clang", "clang++")
    sources, includes = FUZZ_TARGETS[target]
    flags = ["-m32", "-g", "-O1", "-fno-omit-frame-pointer",
             "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined"]
    incs = [f"-I{paths.ROOT / i}" for i in includes]
    out.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in sources:
        src_path = paths.ROOT / src
        obj = out / (Path(src).name + ".o")
        if src.endswith(".c"):
            cmd = [clang, "-std=c11", "-D_GNU_SOURCE"]
        else:
            cmd = [clangxx, "-std=c++17"]
        r = subprocess.run([*cmd, *flags, *incs, "-c", str(src_path), "-o", str(obj)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise UserError(f"compiling {src} for fuzzing failed:\n{r.stderr}\n"
                            f"(is libclang-rt-14-dev installed? it carries libFuzzer for i386)")
        objs.append(str(obj))
    exe = out / f"{target}_fuzz"
    r = subprocess.run([clangxx, *flags, *objs, "-lpthread", "-o", str(exe)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"linking {exe.name} failed:\n{r.stderr}")
    return exe


def run_fuzz(args) -> int:
    targets = args.target or sorted(FUZZ_TARGETS)
    work = paths.BUILD / "fuzz"
    summary = {}
    for target in targets:
        exe = build_fuzzer(target, work / target)
        seeds = FUZZ_DIR / "corpus" / target
        found = work / target / "corpus"  # new inputs stay out of the source tree
        artifacts = work / target / "crashes"
        found.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        cmd = [str(exe), str(found), str(seeds), f"-max_total_time={args.seconds}",
               "-max_len=4096", "-timeout=10", "-rss_limit_mb=1024", "-print_final_stats=1",
               f"-artifact_prefix={artifacts}/"]
        if args.jobs > 1:
            cmd += [f"-jobs={args.jobs}", f"-workers={args.jobs}"]
        print(f"fuzz {target}: {args.seconds} s", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=work / target,
                           timeout=args.seconds * 2 + 120)
        log = r.stdout + r.stderr
        if args.jobs > 1:
            for f in sorted((work / target).glob("fuzz-*.log")):
                log += f.read_text(errors="replace")
        execs = sum(int(m) for m in re.findall(r"stat::number_of_executed_units:\s*(\d+)", log))
        crashes = sorted(p.name for p in artifacts.iterdir())
        summary[target] = {"seconds": args.seconds, "executions": execs, "exit": r.returncode,
                           "crashes": crashes, "corpus_files": len(list(found.iterdir()))}
        print(f"  executions {execs:,}, corpus {summary[target]['corpus_files']} files, "
              f"exit {r.returncode}, crashes {len(crashes)} {crashes or ''}")
        if r.returncode != 0 and not crashes:
            print(log[-3000:])
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    bad = [t for t, s in summary.items() if s["crashes"] or s["exit"] != 0]
    if bad:
        print(f"fuzz: failures in {', '.join(bad)}; reproduce with the file under "
              f"{work}/<target>/crashes/: {work}/<target>/<target>_fuzz FILE")
        return 1
    print("fuzz: 0 crashes")
    return 0


# ---------------- sanitize ----------------

def sanitizer_env(report_dir: Path) -> dict:
    env = dict(os.environ)
    report_dir.mkdir(parents=True, exist_ok=True)
    # Reports go to files: a test may swallow stderr, a file is found afterwards.
    # detect_leaks: LeakSanitizer does not support i386, so it is off (valgrind covers it).
    env["ASAN_OPTIONS"] = (f"log_path={report_dir}/asan:detect_leaks=0:abort_on_error=1:"
                           "strict_string_checks=1:detect_stack_use_after_return=1:"
                           "check_initialization_order=1")
    env["UBSAN_OPTIONS"] = f"log_path={report_dir}/ubsan:print_stacktrace=1:halt_on_error=1"
    env["AVKIT_SANITIZED"] = "1"
    return env


def reports(report_dir: Path) -> list[Path]:
    return sorted(p for p in report_dir.iterdir() if p.is_file() and p.stat().st_size > 0)


def run_sanitize(args) -> int:
    asan = paths.dist_dir("gcc", sanitize=True)
    if not args.skip_build:
        from avkit import build
        build.build("gcc", werror=True, sanitize=True)
    for name in ("avhost", "avir_clam.so", "avir_sample.so"):
        if not (asan / name).exists():
            raise UserError(f"{asan / name} is missing: python -m avkit build --toolchain gcc --sanitize")
    report_dir = Path(tempfile.mkdtemp(prefix="avkit-sanitize-"))
    env = sanitizer_env(report_dir)
    failures = []
    py = sys.executable
    if not args.skip_kit:
        data = paths.BUILD / "kit-data-asan"
        subprocess.run([py, "-m", "avkit", "kit", "generate-test-data", str(data)], env=env,
                       cwd=paths.ROOT, check=True, capture_output=True)
        for plugin, extra in (("avir_sample.so", []), ("avir_clam.so", ["--with-clamd"])):
            for test in ("scanning", "waiting", "server"):
                cmd = [py, "-m", "avkit", "kit", test, "--plugin", str(asan / plugin),
                       "--avhost", str(asan / "avhost"), "--data", str(data), *extra]
                print("+ " + " ".join(cmd[2:]), flush=True)
                r = subprocess.run(cmd, env=env, cwd=paths.ROOT, capture_output=True, text=True,
                                   timeout=1800)
                last = (r.stdout.strip().splitlines() or [""])[-1]
                print(f"  exit {r.returncode}: {last}")
                if r.returncode != 0:
                    failures.append(f"kit {test} {plugin}")
                    print(r.stdout[-2000:], r.stderr[-2000:])
    if not args.skip_tests:
        # The tests read dist/i386/: point a private dist root's i386 at the ASan build.
        root = Path(tempfile.mkdtemp(prefix="avkit-asan-dist-"))
        root.chmod(0o755)  # test_unreadable_file runs avhost as nobody
        (root / paths.TOOLCHAINS["zig"]).symlink_to(asan)
        (root / (paths.TOOLCHAINS["gcc"] + paths.SANITIZE_SUFFIX)).symlink_to(asan)
        tenv = dict(env, AVKIT_DIST_ROOT=str(root))
        cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests]
        print("+ AVKIT_SANITIZED=1 " + " ".join(cmd[2:]), flush=True)
        r = subprocess.run(cmd, env=tenv, cwd=paths.ROOT, timeout=3600)
        if r.returncode != 0:
            failures.append("pytest")
    found = reports(report_dir)
    for f in found:
        print(f"--- sanitizer report {f}:\n{f.read_text(errors='replace')[:4000]}")
    print(f"sanitize: {len(found)} sanitizer report(s) in {report_dir}; "
          f"failures: {', '.join(failures) or 'none'}")
    return 1 if found or failures else 0


# ---------------- valgrind ----------------

def run_valgrind(args) -> int:
    from avkit.clamd import Clamd
    if not shutil.which("valgrind"):
        raise UserError("valgrind not found: apt-get install valgrind")
    dist = paths.dist_dir(args.toolchain)
    host, plugin = dist / "avhost", dist / "avir_clam.so"
    work = Path(tempfile.mkdtemp(prefix="avkit-valgrind-"))
    files = _mixed_files(work / "files", count=10)
    per = max(1, args.scans // len(files))
    with Clamd(work / "clamd") as clamd:
        opts = clamd.plugin_options()
        log = work / "memcheck.%p.log"
        cmd = ["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite",
               "--show-leak-kinds=definite", "--trace-children=yes", "--error-exitcode=99",
               f"--log-file={log}", str(host), "scan", str(plugin), *_opt_args(opts),
               "--repeat", str(per), "--no-logs", *map(str, files)]
        print(f"+ valgrind ... avhost scan avir_clam.so x {per * len(files)} scans", flush=True)
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        took = time.monotonic() - t
    records = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    summary = next((x for x in records if x["event"] == "summary"), {})
    scans = sum(1 for x in records if x["event"] == "scan")
    result = {"scans": scans, "seconds": round(took, 1), "exit": r.returncode, "logs": {}}
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
    print(f"valgrind: {scans} scans, summary {summary.get('exit')}, "
          f"{'FAILED' if bad else '0 bytes definitely lost, 0 errors'}")
    return 1 if bad else 0


def _opt_args(options: dict) -> list[str]:
    out = []
    for k, v in options.items():
        out += ["-o", f"{k}={v}"]
    return out


def _mixed_files(folder: Path, count: int = 20) -> list[Path]:
    """The mixed corpus: clean random files of several sizes, EICAR, a test-signature file."""
    from avkit.clamd import EICAR, TEST_SIGNATURE
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    sizes = [100, 4096, 65536, 300_000, 1 << 20]
    for i in range(count):
        kind = i % 4
        p = folder / f"f{i:03d}.{['clean', 'eicar', 'sig', 'clean'][kind]}"
        if kind == 1:
            data = os.urandom(sizes[i % len(sizes)] // 2) + EICAR
        elif kind == 2:
            data = b"text " * 50 + TEST_SIGNATURE + os.urandom(sizes[i % len(sizes)] // 3)
        else:
            data = os.urandom(sizes[i % len(sizes)])
        p.write_bytes(data)
        out.append(p)
    return out


def _expected(path: str) -> str:
    return "OK" if path.endswith(".clean") else "VIRUS_FOUND"


# ---------------- soak ----------------

def _proc_sample(pid: int) -> dict:
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


def run_soak(args) -> int:
    from avkit.clamd import Clamd
    plugin = Path(args.plugin) if args.plugin else paths.dist_dir("zig") / "avir_clam.so"
    host = plugin.parent / "avhost"
    work = Path(tempfile.mkdtemp(prefix="avkit-soak-"))
    files = _mixed_files(work / "files", count=20)
    total_wanted = args.workers * args.scans
    results = {"OK": 0, "wrong": 0, "FAILED": 0, "ERROR": 0, "CRASHED": 0, "other": 0}
    wrong_examples, samples = [], []
    t0 = time.monotonic()
    with Clamd(work / "clamd", max_threads=32, max_queue=400, stream_max_length=8 << 20) as clamd:
        sock = work / "avhost.sock"
        proc = subprocess.Popen([str(host), "serve", str(plugin), *_opt_args(clamd.plugin_options()),
                                 "--socket", str(sock), "--max-workers", str(args.workers),
                                 "--no-logs"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        serving = json.loads(proc.stdout.readline())
        child = serving.get("child_pid")
        deadline = t0 + args.seconds
        done = [0]
        lock = threading.Lock()

        def worker(n):
            import socket as s_
            c = s_.socket(s_.AF_UNIX, s_.SOCK_STREAM)
            c.connect(str(sock))
            f = c.makefile("rw", buffering=1)
            for i in range(args.scans):
                if time.monotonic() > deadline:
                    break
                path = str(files[(n + i) % len(files)])
                for _ in range(200):  # FAILED while clamd restarts: retry, bounded
                    f.write(f"SCAN {path}\n")
                    f.flush()
                    line = f.readline()
                    if not line:
                        break
                    rec = json.loads(line)
                    v = rec.get("verdict")
                    if v != "FAILED" or time.monotonic() > deadline:
                        break
                    with lock:
                        results["FAILED"] += 1  # retried; counted, not a wrong verdict
                    time.sleep(0.05)
                if not line:
                    with lock:
                        results["other"] += 1
                    break
                with lock:
                    done[0] += 1
                    if v == _expected(path):
                        results["OK"] += 1
                    elif v == "FAILED":
                        results["wrong"] += 1  # still failing after the retries
                    elif v in ("ERROR", "CRASHED"):
                        results[v] += 1
                    else:
                        results["wrong"] += 1
                        if len(wrong_examples) < 5:
                            wrong_examples.append(rec)
            c.close()

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(args.workers)]
        for th in threads:
            th.start()
        restart_at = [total_wanted * (k + 1) // (args.restarts + 1) for k in range(args.restarts)]
        restarts_done = 0
        while any(th.is_alive() for th in threads):
            time.sleep(0.5)
            with lock:
                n = done[0]
            s = _proc_sample(child)
            s.update(t=round(time.monotonic() - t0, 1), scans=n)
            samples.append(s)
            if restarts_done < len(restart_at) and n >= restart_at[restarts_done]:
                clamd.restart()
                restarts_done += 1
                print(f"  clamd restarted at {n} scans", flush=True)
            if len(samples) % 20 == 1:
                print(f"  {s}", flush=True)
        final = _proc_sample(child)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    took = time.monotonic() - t0
    steady = [s for s in samples if "fds" in s]
    first, last = (steady[1] if len(steady) > 1 else steady[0]), steady[-1]
    report = {"workers": args.workers, "scans_per_worker": args.scans, "scans": done[0],
              "seconds": round(took, 1), "restarts": restarts_done, "results": results,
              "first_sample": first, "last_sample": last, "final": final,
              "wrong_examples": wrong_examples}
    print(json.dumps({k: v for k, v in report.items()}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(report, samples=samples), indent=2))
    grow_fds = last.get("fds", 0) - first.get("fds", 0)
    grow_rss = last.get("VmRSS", 0) - first.get("VmRSS", 0)
    bad = results["wrong"] or results["ERROR"] or results["CRASHED"] or results["other"] \
        or grow_fds > 4 or grow_rss > 16 * 1024
    print(f"soak: {done[0]} scans in {took:.0f} s, {results['wrong']} wrong, "
          f"{results['CRASHED']} crashed, {results['FAILED']} failed (during restarts), "
          f"fds {first.get('fds')} -> {last.get('fds')}, RSS {first.get('VmRSS')} -> "
          f"{last.get('VmRSS')} KiB: {'FAIL' if bad else 'ok'}")
    return 1 if bad else 0
