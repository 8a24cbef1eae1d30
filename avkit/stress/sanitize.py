"""The ASan+UBSan build (gcc -m32) through the kit (every plugin; clam with a private
clamd, icap with a private c-icap and clamd) and the pytest files that exercise the
plugins; any sanitizer report fails it."""

import os
import subprocess
import sys
from pathlib import Path

from avkit import paths
from avkit.build import build
from avkit.errors import UserError
from avkit.workdir import Scratch


def sanitizer_env(report_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    report_dir.mkdir(parents=True, exist_ok=True)
    # Reports go to files: a test may swallow stderr, a file is found afterwards.
    # detect_leaks: LeakSanitizer does not support i386, so it is off (valgrind covers it).
    env["ASAN_OPTIONS"] = (
        f"log_path={report_dir}/asan:detect_leaks=0:abort_on_error=1:"
        "strict_string_checks=1:detect_stack_use_after_return=1:"
        "check_initialization_order=1"
    )
    env["UBSAN_OPTIONS"] = f"log_path={report_dir}/ubsan:print_stacktrace=1:halt_on_error=1"
    env["AVKIT_SANITIZED"] = "1"
    return env


def reports(report_dir: Path) -> list[Path]:
    return sorted(p for p in report_dir.iterdir() if p.is_file() and p.stat().st_size > 0)


#: every plugin the kit runs, with the servers it needs (the kit starts them)
KIT_PLUGINS: tuple[tuple[str, list[str]], ...] = (
    ("avir_sample.so", []),
    ("avir_clam.so", ["--with-clamd"]),
    ("avir_icap.so", ["--with-cicap"]),
)


def kit_runs(asan: Path, env: dict) -> list[str]:
    """The kit's three tests on every plugin; the failed ones."""
    failures = []
    py = sys.executable
    data = paths.BUILD / "kit-data-asan"
    subprocess.run(
        [py, "-m", "avkit", "kit", "generate-test-data", str(data)],
        env=env,
        cwd=paths.ROOT,
        check=True,
        capture_output=True,
    )
    for plugin, extra in KIT_PLUGINS:
        for test in ("scanning", "waiting", "server"):
            cmd = [
                py,
                "-m",
                "avkit",
                "kit",
                test,
                "--plugin",
                str(asan / plugin),
                "--avhost",
                str(asan / "avhost"),
                "--data",
                str(data),
                *extra,
            ]
            print("+ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
            r = subprocess.run(
                cmd, env=env, cwd=paths.ROOT, capture_output=True, text=True, timeout=1800
            )
            last = (r.stdout.strip().splitlines() or [""])[-1]
            print(f"  exit {r.returncode}: {last}")
            if r.returncode != 0:
                failures.append(f"kit {test} {plugin}")
                print(r.stdout[-2000:], r.stderr[-2000:])
    return failures


def pytest_run(asan: Path, env: dict, tests, root: Path) -> list[str]:
    """pytest with every dist folder the tests read pointed at the ASan build (links in
    `root`, an empty folder)."""
    root.chmod(0o755)  # test_unreadable_file runs avhost as nobody
    for toolchain in ("zig", "gcc"):
        (root / paths.folder(toolchain)).symlink_to(asan)
    (root / (paths.folder("gcc") + paths.SANITIZE_SUFFIX)).symlink_to(asan)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    print("+ AVKIT_SANITIZED=1 " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, env=dict(env, AVKIT_DIST_ROOT=str(root)), cwd=paths.ROOT, timeout=3600)
    return ["pytest"] if r.returncode != 0 else []


def run_sanitize(skip_build=False, skip_kit=False, skip_tests=False, tests=(), keep=False) -> int:
    asan = paths.dist_dir("gcc", sanitize=True)
    if not skip_build:
        build("gcc", werror=True, sanitize=True)
    for name in ("avhost", *[plugin for plugin, _ in KIT_PLUGINS]):
        if not (asan / name).exists():
            raise UserError(
                f"{asan / name} is missing: python -m avkit build --toolchain gcc --sanitize"
            )
    # reports/: the sanitizers' reports, kept when there are any; dist/: links for pytest.
    with Scratch("avkit-sanitize-", keep=keep) as scratch:
        scratch.path.chmod(0o755)  # test_unreadable_file runs avhost as nobody, through dist/
        report_dir = scratch.path / "reports"
        env = sanitizer_env(report_dir)
        failures = [] if skip_kit else kit_runs(asan, env)
        if not skip_tests:
            (scratch.path / "dist").mkdir()
            failures += pytest_run(asan, env, tests, scratch.path / "dist")
        found = reports(report_dir)
        for f in found:
            print(f"--- sanitizer report {f}:\n{f.read_text(errors='replace')[:4000]}")
        print(
            f"sanitize: {len(found)} sanitizer report(s); failures: {', '.join(failures) or 'none'}"
        )
        if found:
            scratch.keep_because(f"the sanitizers reported {len(found)} problem(s): {report_dir}")
    return 1 if found or failures else 0
