"""`avkit smoke`: boot i386 Debian in QEMU, install the packages, load and scan every plugin."""
import time
from pathlib import Path

from avkit import paths, prereqs
from avkit.errors import UserError
from avkit.smoke import DEFAULT_TIMEOUT, log, rootfs, smoke


def register(subparsers):
    p = subparsers.add_parser(
        "smoke", help="boot an i386 Debian in QEMU, install the packages, load and scan",
        description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--packages", type=Path, default=paths.DIST / "packages",
                   help="folder with the .deb and .rpm files to test (default: %(default)s)")
    p.add_argument("--avhost", type=Path, default=paths.dist_dir() / "avhost",
                   help="the 32-bit avhost program (default: %(default)s)")
    p.add_argument("--out", type=Path, default=paths.DIST / "smoke",
                   help="where the console log and results.json go (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="hard limit for the VM run, seconds (default: %(default)s)")
    p.add_argument("--memory", type=int, default=768, help="guest memory, MiB")
    p.add_argument("--mirror", help="Debian mirror URI (default: this machine's apt sources)")
    p.add_argument("--rebuild-rootfs", action="store_true",
                   help="build the cached root filesystem again")
    p.add_argument("--rootfs-only", action="store_true",
                   help="only build (or find) the cached root filesystem")
    p.set_defaults(func=run)


def run(args) -> int:
    prereqs.require_commands("qemu-system-i386", "mkfs.ext4")
    t0 = time.monotonic()
    fs = rootfs.ensure(args.mirror, rebuild=args.rebuild_rootfs, log=log)
    if args.rootfs_only:
        return 0
    outcome = smoke(fs, args.packages, args.avhost, args.out, timeout=args.timeout,
                    memory_mb=args.memory)
    print(outcome["table"])
    boot = outcome["boot_seconds"]
    log(f"boot to the guest script: {f'{boot:.1f} s' if boot is not None else 'never'}; "
        f"boot + checks: {outcome['vm_seconds']:.1f} s in the VM, "
        f"{time.monotonic() - t0:.1f} s in all")
    if outcome["failed"]:
        raise UserError(outcome["message"])
    log(f"all {len(outcome['results'])} checks passed; console log: {outcome['console_log']}")
    return 0
