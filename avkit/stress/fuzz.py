"""Fuzzing: libFuzzer builds of the clamd reply parser, the ICAP response parser and the
option parsing (clang -m32), built by CMake (fuzz/CMakeLists.txt, -DKERIO_FUZZ=ON) in
build/fuzz/.

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

from avkit import facts, paths
from avkit.build import cmake as cmake_build
from avkit.build import tools
from avkit.errors import UserError

FUZZ_DIR = paths.ROOT / "fuzz"
#: the libFuzzer targets: fuzz/<target>_fuzz.{c,cpp}, built by fuzz/CMakeLists.txt as <target>_fuzz
FUZZ_TARGETS = sorted(p.name.split("_fuzz.")[0] for p in FUZZ_DIR.glob("*_fuzz.c*"))
CLANG_CANDIDATES = ["clang-14", "clang"]
#: the fuzz build folder: CMake with -DKERIO_FUZZ=ON and clang, the fuzz targets alone
BUILD_DIR = paths.BUILD / "fuzz"


def find_clang() -> str:
    for name in CLANG_CANDIDATES:
        exe = shutil.which(name)
        if exe:
            return exe
    raise UserError(
        "clang not found: install the Debian packages clang-14 and "
        "libclang-rt-14-dev (libFuzzer's i386 runtime)"
    )


def build_fuzzers(targets: list[str]) -> dict[str, Path]:
    """Configures build/fuzz/ (once) and builds the targets; their programs by name."""
    clang = find_clang()
    env = tools.environment()
    arch_flag = facts.architecture(facts.default_arch())["gcc_flag"]
    cmake_build.drop_stale_cmake_cache(BUILD_DIR)
    tools.run_logged(
        [
            "cmake",
            "-S",
            paths.ROOT,
            "-B",
            BUILD_DIR,
            "-G",
            "Ninja",
            "-DKERIO_FUZZ=ON",
            f"-DKERIO_ARCH={facts.default_arch()}",
            f"-DCMAKE_C_COMPILER={clang}",
            f"-DCMAKE_CXX_COMPILER={clang.replace('clang', 'clang++')}",
            f"-DCMAKE_C_FLAGS={arch_flag}",
            f"-DCMAKE_CXX_FLAGS={arch_flag}",
        ],
        env,
        BUILD_DIR / "build.log",
        what="configuring the fuzz targets",
    )
    tools.run_logged(
        ["cmake", "--build", BUILD_DIR, "--target", *(f"{t}_fuzz" for t in targets)],
        env,
        BUILD_DIR / "build.log",
        what="building the fuzz targets",
        hint="is libclang-rt-14-dev installed? it carries libFuzzer for i386",
    )
    return {t: BUILD_DIR / t / f"{t}_fuzz" for t in targets}


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
        return (
            f"fuzz {self.target}: {elapsed:.0f}/{self.seconds} s, {counted}"
            + (f" ({rate:,}/s)" if rate else "")
            + (f", corpus {units:,} inputs" if units is not None else ", corpus")
            + f" ({files:,} new files)"
            + (f", coverage {cov:,} edges" if cov is not None else "")
        )


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_target(
    cmd: list,
    cwd: Path,
    progress: Progress,
    log_file: Path,
    timeout: float,
    every: float = PROGRESS_EVERY,
) -> tuple:
    """Runs one libFuzzer command, reading its output as it comes and printing a progress
    line every `every` seconds; (exit code, the whole output). With -jobs, libFuzzer's
    workers write fuzz-<n>.log in cwd: those are followed as well."""
    started = time.monotonic()
    with open(log_file, "w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )

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
    targets = targets or FUZZ_TARGETS
    work = paths.BUILD / "fuzz"
    programs = build_fuzzers(targets)
    summary = {}
    for target in targets:
        exe = programs[target]
        seeds = FUZZ_DIR / "corpus" / target
        found = work / target / "corpus"  # new inputs stay out of the source tree
        artifacts = work / target / "crashes"
        found.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(exe),
            str(found),
            str(seeds),
            f"-max_total_time={seconds}",
            "-max_len=4096",
            "-timeout=10",
            "-rss_limit_mb=1024",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
        ]
        if jobs > 1:
            cmd += [f"-jobs={jobs}", f"-workers={jobs}"]
        for old in (work / target).glob("fuzz-*.log"):
            old.unlink()  # a previous run's job logs would be counted again
        log(
            f"fuzz {target}: {seconds} s (a progress line every {PROGRESS_EVERY:.0f} s; "
            f"libFuzzer's output in {work / target / 'fuzz.log'})"
        )
        progress = Progress(target, seconds, found)
        code, output = run_target(
            cmd, work / target, progress, work / target / "fuzz.log", timeout=seconds * 2 + 120
        )
        if jobs > 1:
            for f in sorted((work / target).glob("fuzz-*.log")):
                output += f.read_text(errors="replace")
        execs = sum(int(m) for m in re.findall(r"stat::number_of_executed_units:\s*(\d+)", output))
        crashes = sorted(p.name for p in artifacts.iterdir())
        summary[target] = {
            "seconds": seconds,
            "executions": execs,
            "exit": code,
            "crashes": crashes,
            "corpus_files": len(list(found.iterdir())),
        }
        print(
            f"fuzz {target}: {execs:,} executions in {seconds} s, corpus "
            f"{summary[target]['corpus_files']} files, exit {code}, crashes {len(crashes)} "
            f"{crashes or ''}".rstrip(),
            flush=True,
        )
        if code != 0:
            print(output[-3000:])  # libFuzzer's report: the sanitizer's stack, the input
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
    bad = [t for t, s in summary.items() if s["crashes"] or s["exit"] != 0]
    if bad:
        print(
            f"fuzz: failures in {', '.join(bad)}; reproduce with the file under "
            f"{work}/<target>/crashes/: {work}/<target>/<target>_fuzz FILE"
        )
        return 1
    print("fuzz: 0 crashes")
    return 0
