"""Fuzzing: libFuzzer builds of the clamd reply parser, the ICAP response parser and the
option parsing (clang -m32).

Each target of fuzz/*_fuzz.{c,cpp} runs from its seed corpus fuzz/corpus/<target>/; new
inputs go to the build folder, not the source tree. Needs Debian's clang-14 and
libclang-rt-14-dev (libFuzzer's i386 runtime).

libFuzzer's output is read as it comes (and kept in build/fuzz/<target>/fuzz.log): every
10 s a line on stderr says how far the target is (executions, corpus size, coverage).
libFuzzer reports its execution count only now and then (at powers of two, and on new
coverage), so between two of its reports the count is estimated from its last rate ("~").
"""
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.errors import UserError

FUZZ_DIR = paths.ROOT / "fuzz"
FUZZ_TARGETS = {
    # target: (sources, include folders)
    "reply_parser": (["fuzz/reply_parser_fuzz.cpp", "clam/src/reply_parser.cpp"],
                     ["clam/src", "netplugin/src"]),
    "icap_parser": (["fuzz/icap_parser_fuzz.cpp", "icap/src/icap_parser.cpp"],
                    ["icap/src", "netplugin/src"]),
    "options": (["fuzz/options_fuzz.c", "api/avCommon.c"], ["api"]),
}
CLANG_CANDIDATES = ["clang-14", "clang"]


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


PROGRESS_EVERY = 10.0  # seconds between two progress lines
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s*(.*)$")
_FIELDS = re.compile(r"\b(cov|ft|corp|exec/s|rss): (\S+)")


def parse_status(line: str):
    """libFuzzer's status line ("#4096\tpulse  cov: 91 ft: 180 corp: 30/1022b exec/s: 2048
    rss: 31Mb") as a dict: execs, event, cov, corp_units, exec_per_s; None for other lines."""
    m = _STATUS.match(line.strip())
    if not m:
        return None
    fields = dict(_FIELDS.findall(m.group(3)))
    out = {"execs": int(m.group(1)), "event": m.group(2)}
    if "cov" in fields:
        out["cov"] = int(fields["cov"])
    if "corp" in fields:
        out["corp_units"] = int(fields["corp"].split("/")[0])
    if "exec/s" in fields:
        out["exec_per_s"] = int(fields["exec/s"])
    return out


class Progress:
    """The last status of each libFuzzer process (one, or one per job), and the line
    that sums them up."""

    def __init__(self, target: str, seconds: int, corpus: Path):
        self.target, self.seconds, self.corpus = target, seconds, corpus
        self.lock = threading.Lock()
        self.last: dict[str, tuple[dict[str, Any], float]] = {}  # source -> (status, when)

    def feed(self, line: str, source: str = "main") -> None:
        status = parse_status(line)
        if status:
            with self.lock:
                self.last[source] = (status, time.monotonic())

    def line(self, elapsed: float) -> str:
        now = time.monotonic()
        with self.lock:
            last = list(self.last.values())
        execs, rate, estimated, cov, units = 0, 0, False, None, None
        for status, when in last:
            per_s = status.get("exec_per_s", 0)
            extra = int(per_s * (now - when)) if status["event"] != "DONE" else 0
            execs += status["execs"] + extra
            estimated |= extra > 0
            rate += per_s
            cov = max(cov or 0, status.get("cov", 0))
            if "corp_units" in status:
                units = (units or 0) + status["corp_units"]
        try:
            files = sum(1 for _ in self.corpus.iterdir())
        except OSError:
            files = 0
        counted = f"{'~' if estimated else ''}{execs:,} executions" if last else "starting"
        return (f"fuzz {self.target}: {elapsed:.0f}/{self.seconds} s, {counted}"
                + (f" ({rate:,}/s)" if rate else "")
                + (f", corpus {units:,} inputs" if units is not None else ", corpus")
                + f" ({files:,} new files)"
                + (f", coverage {cov:,} edges" if cov is not None else ""))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_target(cmd: list, cwd: Path, progress: Progress, log_file: Path, timeout: float,
               every: float = PROGRESS_EVERY) -> tuple:
    """Runs one libFuzzer command, reading its output as it comes and printing a progress
    line every `every` seconds; (exit code, the whole output). With -jobs, libFuzzer's
    workers write fuzz-<n>.log in cwd: those are followed as well."""
    started = time.monotonic()
    with open(log_file, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")

        def pump():
            for line in proc.stdout:
                out.write(line)
                progress.feed(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        offsets: dict[str, int] = {}
        next_line = started + every
        while True:
            try:
                proc.wait(timeout=min(1.0, max(0.05, next_line - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                pass
            _follow_job_logs(cwd, offsets, progress)
            now = time.monotonic()
            if now - started > timeout:
                proc.kill()
                proc.wait()
                log(f"fuzz {progress.target}: killed after {timeout:.0f} s")
                break
            if now >= next_line:
                log(progress.line(now - started))
                next_line = now + every
        reader.join(timeout=10)
    _follow_job_logs(cwd, offsets, progress)
    return proc.returncode, log_file.read_text(errors="replace")


def _follow_job_logs(cwd: Path, offsets: dict, progress: Progress) -> None:
    for f in sorted(Path(cwd).glob("fuzz-*.log")):
        try:
            with open(f, errors="replace") as fh:
                fh.seek(offsets.get(f.name, 0))
                text = fh.read()
                offsets[f.name] = fh.tell()
        except OSError:
            continue
        for line in text.splitlines():
            progress.feed(line, source=f.name)


def run_fuzz(seconds: int, targets: list = None, jobs: int = 1, json_path: str = None) -> int:
    targets = targets or sorted(FUZZ_TARGETS)
    work = paths.BUILD / "fuzz"
    summary = {}
    for target in targets:
        exe = build_fuzzer(target, work / target)
        seeds = FUZZ_DIR / "corpus" / target
        found = work / target / "corpus"  # new inputs stay out of the source tree
        artifacts = work / target / "crashes"
        found.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        cmd = [str(exe), str(found), str(seeds), f"-max_total_time={seconds}",
               "-max_len=4096", "-timeout=10", "-rss_limit_mb=1024", "-print_final_stats=1",
               f"-artifact_prefix={artifacts}/"]
        if jobs > 1:
            cmd += [f"-jobs={jobs}", f"-workers={jobs}"]
        for old in (work / target).glob("fuzz-*.log"):
            old.unlink()  # a previous run's job logs would be counted again
        log(f"fuzz {target}: {seconds} s (a progress line every {PROGRESS_EVERY:.0f} s; "
            f"libFuzzer's output in {work / target / 'fuzz.log'})")
        progress = Progress(target, seconds, found)
        code, output = run_target(cmd, work / target, progress, work / target / "fuzz.log",
                                  timeout=seconds * 2 + 120)
        if jobs > 1:
            for f in sorted((work / target).glob("fuzz-*.log")):
                output += f.read_text(errors="replace")
        execs = sum(int(m) for m in re.findall(r"stat::number_of_executed_units:\s*(\d+)",
                                               output))
        crashes = sorted(p.name for p in artifacts.iterdir())
        summary[target] = {"seconds": seconds, "executions": execs, "exit": code,
                           "crashes": crashes, "corpus_files": len(list(found.iterdir()))}
        print(f"fuzz {target}: {execs:,} executions in {seconds} s, corpus "
              f"{summary[target]['corpus_files']} files, exit {code}, crashes {len(crashes)} "
              f"{crashes or ''}".rstrip(), flush=True)
        if code != 0:
            print(output[-3000:])  # libFuzzer's report: the sanitizer's stack, the input
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
    bad = [t for t, s in summary.items() if s["crashes"] or s["exit"] != 0]
    if bad:
        print(f"fuzz: failures in {', '.join(bad)}; reproduce with the file under "
              f"{work}/<target>/crashes/: {work}/<target>/<target>_fuzz FILE")
        return 1
    print("fuzz: 0 crashes")
    return 0
