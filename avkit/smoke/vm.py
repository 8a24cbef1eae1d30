"""Boot the smoke VM under the qemu-system binary of its architecture (qemu-system-i386,
qemu-system-x86_64: cmake/architectures.json) and collect its serial console, with a hard
limit.

No network device, the serial console on stdio, the root image opened as a snapshot
(nothing the guest does reaches the cached image), the staging disk read-only.
TCG: KVM fails on these machines (nested virtualisation), for either architecture.
"""

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

KERNEL_OPTIONS = [
    "console=ttyS0",
    "root=/dev/vda",
    "rootfstype=ext4",
    "rw",
    "init=/sbin/avkit-smoke-init",
    "quiet",
    "loglevel=3",
    "cryptomgr.notests",
    "panic=-1",
    "mitigations=off",
]


@dataclass
class Boot:
    console: str
    seconds: float
    timed_out: bool
    exit_code: Optional[int]

    def last_lines(self, n: int = 15) -> str:
        """The console's last lines; after a kernel panic, the lines up to the panic."""
        lines = self.console.replace("\r", "").splitlines()
        panics = [i for i, line in enumerate(lines) if "Kernel panic" in line]
        if panics:
            i = panics[-1]
            return "\n".join(
                lines[max(0, i + 1 - n) : i + 1]
                + ["(the kernel's call trace follows in the console log)"]
            )
        return "\n".join(lines[-n:])


def qemu_command(
    kernel: Path,
    initrd: Path,
    image: Path,
    stage: Path,
    memory_mb: int = 768,
    qemu: str = "qemu-system-i386",
    accel: str = "tcg",
) -> List[str]:
    return [
        qemu,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-accel",
        accel,
        "-m",
        str(memory_mb),
        "-smp",
        "1",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        " ".join(KERNEL_OPTIONS),
        "-drive",
        f"file={image},format=raw,if=virtio,snapshot=on",
        "-drive",
        f"file={stage},format=raw,if=virtio,readonly=on",
    ]


def boot(
    cmd: List[str],
    timeout: float,
    log_path: Path,
    on_line: Callable[[str], None] = lambda line: None,
) -> Boot:
    """Runs `cmd`, tees its output into log_path, kills it after `timeout` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    chunks, pending, timed_out = [], b"", False
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(timeout=min(left, 1.0)):
                    if proc.poll() is not None:
                        break
                    continue
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                chunks.append(data)
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace").rstrip("\r"))
        finally:
            sel.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        if timed_out:
            log.write(f"\n[avkit smoke: killed the VM after {timeout:.0f} s]\n".encode())
    if pending:
        on_line(pending.decode("utf-8", "replace"))
    return Boot(
        b"".join(chunks).decode("utf-8", "replace"),
        time.monotonic() - started,
        timed_out,
        None if timed_out else proc.returncode,
    )
