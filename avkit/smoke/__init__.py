"""The smoke test: install the packages in a booted Debian of one release architecture
(i386 or x86_64) and scan through its clamd and c-icap.

The architecture is a parameter of every step; its facts (debootstrap arch, kernel, qemu
binary, multiarch folder, package file names) are data: the smoke block and the package
names of cmake/architectures.json.

1. rootfs.py: a cached Debian 12 root filesystem image, kernel and initrd, per architecture.
2. stage (here): a second, read-only disk with the architecture's packages under test, its
   avhost, the test corpus, clamd.conf + signatures, c-icap.conf, the guest script and its
   plan (plan.py).
3. vm.py: qemu-system-i386 or qemu-system-x86_64 (TCG, no network, snapshot root, hard
   time limit).
4. report.py: the guest's AVSMOKE console lines -> one checked row per check.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avkit import facts, prereqs
from avkit.errors import UserError
from avkit.smoke import guest_files, plan as planmod, report, rootfs, vm

GUEST_SCRIPT = Path(__file__).with_name("guest") / "guest.sh"
DEFAULT_TIMEOUT = 300  # a full run (three plugins, .deb and .rpm) takes about 95 s


def log(msg: str) -> None:
    print(f"smoke: {msg}", file=sys.stderr, flush=True)  # progress; the table goes to stdout


def stage(
    folder: Path,
    packages,
    avhost: Path,
    the_plan: planmod.Plan,
    guest_script: Path = GUEST_SCRIPT,
    arch: str = None,
) -> None:
    """Fills `folder`, the root of the staging disk (the guest's /smoke)."""
    (folder / "pkgs").mkdir(parents=True)
    for pkg in packages:
        shutil.copy2(pkg.path, folder / "pkgs" / pkg.path.name)
    (folder / "bin").mkdir()
    shutil.copy2(avhost, folder / "bin" / "avhost")
    (folder / "bin" / "avhost").chmod(0o755)
    guest_files.write_corpus(folder / "corpus")
    guest_files.write_clamd(folder)
    guest_files.write_cicap(folder, arch)
    shutil.copy2(guest_script, folder / "guest.sh")
    (folder / "plan").write_text(the_plan.text())


def make_disk(folder: Path, image: Path) -> None:
    r = subprocess.run(
        ["du", "-sm", "--apparent-size", str(folder)], capture_output=True, text=True, check=True
    )
    size = int(r.stdout.split()[0]) * 2 + 16
    prereqs.run_quiet(
        ["mkfs.ext4", "-q", "-F", "-L", "avsmoke-stage", "-d", folder, image, f"{size}M"]
    )


def check_avhost(avhost: Path, arch: str) -> None:
    """The avhost staged must be of the guest's architecture: the other one's would fail
    every scan for a reason that is not the packages'."""
    if not avhost.is_file():
        raise UserError(
            f"{avhost} is missing: build it first (./nox -s build-{arch}), or pass --avhost PATH"
        )
    from avkit import elf  # pyelftools: not for `avkit prereqs`, which imports this package

    try:
        built_for = facts.arch_of(elf.header(avhost))
    except Exception:  # not an ELF file at all: the guest will say what it makes of it
        return
    if built_for is not None and built_for != arch:
        raise UserError(
            f"{avhost} is an {built_for} program, the smoke VM is {arch}: pass "
            f"the {arch} avhost (--avhost {facts.architecture(arch)['dist']['zig']}"
            f"/avhost below dist/)"
        )


def smoke(
    fs: rootfs.Rootfs,
    packages_dir: Path,
    avhost: Path,
    out: Path,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = 768,
    qemu: str = None,
    guest_script: Path = GUEST_SCRIPT,
    arch: str = None,
):
    """Stage, boot, judge, in a guest of `arch` (default: i386). Returns a dict with
    results, table, failed, message, console_log."""
    arch = arch or facts.default_arch()
    qemu = qemu or facts.architecture(arch)["smoke"]["qemu"]
    avhost = Path(avhost)
    check_avhost(avhost, arch)
    packages, debug, foreign = planmod.find_packages(packages_dir, arch)
    the_plan = planmod.make_plan(packages, arch)
    log(f"{arch}: {len(packages)} packages: " + ", ".join(p.path.name for p in packages))
    if debug:
        log("not installed (debug symbols): " + ", ".join(p.path.name for p in debug))
    if foreign:
        log(f"not installed (another architecture's): {len(foreign)} files")
    out.mkdir(parents=True, exist_ok=True)
    console_log = out / "console.log"
    with tempfile.TemporaryDirectory(prefix="avkit-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        stage(tmp / "stage", packages, avhost, the_plan, guest_script, arch)
        (out / "plan.txt").write_text(the_plan.text())
        make_disk(tmp / "stage", tmp / "stage.ext4")
        cmd = vm.qemu_command(
            fs.kernel, fs.initrd, fs.image, tmp / "stage.ext4", memory_mb=memory_mb, qemu=qemu
        )
        log(
            f"booting {Path(qemu).name} (TCG, limit {timeout:.0f} s), {len(the_plan.checks)} checks"
        )
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
        message = (
            f"the smoke VM hung{f' in {hung_in}' if hung_in else ''}: killed after "
            f"{timeout:.0f} s; its last console lines:\n{booted.last_lines()}\n"
        )
    elif not finished:
        message = (
            f"the smoke VM stopped before the end of its plan (qemu exit "
            f"{booted.exit_code}); its last console lines:\n{booted.last_lines()}\n"
        )
    if bad:
        message += f"{len(bad)} of {len(results)} smoke checks failed: " + ", ".join(
            r.check.id for r in bad
        )
    message += f"\nconsole log: {console_log}"
    (out / "results.json").write_text(
        json.dumps(
            {
                "arch": arch,
                "vm_seconds": round(booted.seconds, 1),
                "timed_out": booted.timed_out,
                "boot_seconds": progress.boot_seconds and round(progress.boot_seconds, 1),
                "checks": [
                    {"id": r.check.id, "what": r.check.what, "result": r.state, "detail": r.detail}
                    for r in results
                ],
            },
            indent=1,
        )
    )
    return {
        "results": results,
        "table": report.table(results),
        "failed": bool(bad) or booted.timed_out or not finished,
        "message": message.strip(),
        "console_log": console_log,
        "vm_seconds": booted.seconds,
        "boot_seconds": progress.boot_seconds,
        "boot": booted,
    }


class Progress:
    """One terminal line per finished check, with the time since boot."""

    def __init__(self, the_plan):
        self.t0 = time.monotonic()
        self.total = len(the_plan.checks)
        self.done = 0
        self.boot_seconds = None  # until the guest script's first line

    def line(self, text: str) -> None:
        m = report.LINE.match(text[text.find("AVSMOKE ") :]) if "AVSMOKE " in text else None
        if m and self.boot_seconds is None:
            self.boot_seconds = time.monotonic() - self.t0
        if m and m["status"] in ("PASS", "FAIL", "SCAN"):
            self.done += 1
            print(
                f"  [{time.monotonic() - self.t0:6.1f} s] {self.done:3}/{self.total} "
                f"{m['id']} {m['status'] if m['status'] != 'SCAN' else 'scanned'}",
                file=sys.stderr,
                flush=True,
            )
