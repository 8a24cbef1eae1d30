"""The smoke test: install the packages in a booted i386 Debian and scan through its
clamd and c-icap.

1. rootfs.py: a cached i386 Debian 12 root filesystem image, kernel and initrd.
2. stage (here): a second, read-only disk with the packages under test, avhost, the
   test corpus, clamd.conf + signatures, c-icap.conf, the guest script and its plan (plan.py).
3. vm.py: qemu-system-i386 (TCG, no network, snapshot root, hard time limit).
4. report.py: the guest's AVSMOKE console lines -> one checked row per check.
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avkit import prereqs
from avkit.errors import UserError
from avkit.smoke import guest_files, plan as planmod, report, rootfs, vm

GUEST_SCRIPT = Path(__file__).with_name("guest") / "guest.sh"
DEFAULT_TIMEOUT = 300  # a full run (three plugins, .deb and .rpm) takes about 95 s


def log(msg: str) -> None:
    print(f"smoke: {msg}", file=sys.stderr, flush=True)  # progress; the table goes to stdout


def stage(folder: Path, packages, avhost: Path, the_plan: planmod.Plan,
          guest_script: Path = GUEST_SCRIPT) -> None:
    """Fills `folder`, the root of the staging disk (the guest's /smoke)."""
    (folder / "pkgs").mkdir(parents=True)
    for pkg in packages:
        shutil.copy2(pkg.path, folder / "pkgs" / pkg.path.name)
    (folder / "bin").mkdir()
    shutil.copy2(avhost, folder / "bin" / "avhost")
    (folder / "bin" / "avhost").chmod(0o755)
    guest_files.write_corpus(folder / "corpus")
    guest_files.write_clamd(folder)
    guest_files.write_cicap(folder)
    shutil.copy2(guest_script, folder / "guest.sh")
    (folder / "plan").write_text(the_plan.text())


def make_disk(folder: Path, image: Path) -> None:
    r = subprocess.run(["du", "-sm", "--apparent-size", str(folder)], capture_output=True,
                       text=True, check=True)
    size = int(r.stdout.split()[0]) * 2 + 16
    prereqs.run_quiet(["mkfs.ext4", "-q", "-F", "-L", "avsmoke-stage", "-d", folder, image,
                       f"{size}M"])


def smoke(fs: rootfs.Rootfs, packages_dir: Path, avhost: Path, out: Path,
          timeout: float = DEFAULT_TIMEOUT, memory_mb: int = 768, qemu: str = "qemu-system-i386",
          guest_script: Path = GUEST_SCRIPT):
    """Stage, boot, judge. Returns a dict with results, table, failed, message, console_log."""
    avhost = Path(avhost)
    if not avhost.is_file():
        raise UserError(f"{avhost} is missing: build it first (./nox -s build-i386), "
                        f"or pass --avhost PATH")
    packages, debug = planmod.find_packages(packages_dir)
    the_plan = planmod.make_plan(packages)
    log(f"{len(packages)} packages: " + ", ".join(p.path.name for p in packages))
    if debug:
        log("not installed (debug symbols): " + ", ".join(p.path.name for p in debug))
    out.mkdir(parents=True, exist_ok=True)
    console_log = out / "console.log"
    with tempfile.TemporaryDirectory(prefix="avkit-smoke-") as tmp:
        tmp = Path(tmp)
        stage(tmp / "stage", packages, avhost, the_plan, guest_script)
        (out / "plan.txt").write_text(the_plan.text())
        make_disk(tmp / "stage", tmp / "stage.ext4")
        cmd = vm.qemu_command(fs.kernel, fs.initrd, fs.image, tmp / "stage.ext4",
                              memory_mb=memory_mb, qemu=qemu)
        log(f"booting qemu-system-i386 (TCG, limit {timeout:.0f} s), "
            f"{len(the_plan.checks)} checks")
        progress = Progress(the_plan)
        booted = vm.boot(cmd, timeout, console_log, progress.line)
    hint = None
    hung_in = report.running(booted.console)
    if booted.timed_out:
        hint = f"the VM was killed at the time limit ({timeout:.0f} s)"
    results = report.judge(the_plan, booted.console, finished_hint=hint)
    if booted.timed_out and hung_in:
        for r in results:
            if r.check.id == hung_in and r.state == "not run":
                r.detail, r.state = f"hung here: {hint}", "HUNG"
    bad = report.failures(results)
    finished = report.parse(booted.console)[1]
    message = ""
    if booted.timed_out:
        message = (f"the smoke VM hung{f' in {hung_in}' if hung_in else ''}: killed after "
                   f"{timeout:.0f} s; its last console lines:\n{booted.last_lines()}\n")
    elif not finished:
        message = (f"the smoke VM stopped before the end of its plan (qemu exit "
                   f"{booted.exit_code}); its last console lines:\n{booted.last_lines()}\n")
    if bad:
        message += (f"{len(bad)} of {len(results)} smoke checks failed: "
                    + ", ".join(r.check.id for r in bad))
    message += f"\nconsole log: {console_log}"
    (out / "results.json").write_text(json.dumps({
        "vm_seconds": round(booted.seconds, 1), "timed_out": booted.timed_out,
        "boot_seconds": progress.boot_seconds and round(progress.boot_seconds, 1),
        "checks": [{"id": r.check.id, "what": r.check.what, "result": r.state,
                    "detail": r.detail} for r in results]}, indent=1))
    return {"results": results, "table": report.table(results),
            "failed": bool(bad) or booted.timed_out or not finished, "message": message.strip(), "console_log": console_log,
            "vm_seconds": booted.seconds, "boot_seconds": progress.boot_seconds, "boot": booted}


class Progress:
    """One terminal line per finished check, with the time since boot."""

    def __init__(self, the_plan):
        self.t0 = time.monotonic()
        self.total = len(the_plan.checks)
        self.done = 0
        self.boot_seconds = None  # until the guest script's first line

    def line(self, text: str) -> None:
        m = report.LINE.match(text[text.find("AVSMOKE "):]) if "AVSMOKE " in text else None
        if m and self.boot_seconds is None:
            self.boot_seconds = time.monotonic() - self.t0
        if m and m["status"] in ("PASS", "FAIL", "SCAN"):
            self.done += 1
            print(f"  [{time.monotonic() - self.t0:6.1f} s] {self.done:3}/{self.total} "
                  f"{m['id']} {m['status'] if m['status'] != 'SCAN' else 'scanned'}",
                  file=sys.stderr, flush=True)
