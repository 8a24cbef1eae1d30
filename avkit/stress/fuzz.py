"""Fuzzing: libFuzzer builds of the clamd reply parser and the option parsing (clang -m32).

Each target of fuzz/*_fuzz.{c,cpp} runs from its seed corpus fuzz/corpus/<target>/; new
inputs go to the build folder, not the source tree. Needs Debian's clang-14 and
libclang-rt-14-dev (libFuzzer's i386 runtime).
"""
import json
import re
import shutil
import subprocess
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
        print(f"fuzz {target}: {seconds} s", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=work / target,
                           timeout=seconds * 2 + 120)
        log = r.stdout + r.stderr
        if jobs > 1:
            for f in sorted((work / target).glob("fuzz-*.log")):
                log += f.read_text(errors="replace")
        execs = sum(int(m) for m in re.findall(r"stat::number_of_executed_units:\s*(\d+)", log))
        crashes = sorted(p.name for p in artifacts.iterdir())
        summary[target] = {"seconds": seconds, "executions": execs, "exit": r.returncode,
                           "crashes": crashes, "corpus_files": len(list(found.iterdir()))}
        print(f"  executions {execs:,}, corpus {summary[target]['corpus_files']} files, "
              f"exit {r.returncode}, crashes {len(crashes)} {crashes or ''}")
        if r.returncode != 0 and not crashes:
            print(log[-3000:])
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
    bad = [t for t, s in summary.items() if s["crashes"] or s["exit"] != 0]
    if bad:
        print(f"fuzz: failures in {', '.join(bad)}; reproduce with the file under "
              f"{work}/<target>/crashes/: {work}/<target>/<target>_fuzz FILE")
        return 1
    print("fuzz: 0 crashes")
    return 0
