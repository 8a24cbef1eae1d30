"""`avkit smoke`: boot Debian of a release architecture in QEMU, install the packages, load and scan every plugin."""

import time
from pathlib import Path
from typing import Any

from avkit import facts, paths, prereqs
from avkit.errors import UserError
from avkit.smoke import DEFAULT_TIMEOUT, log, rootfs, smoke


def register(subparsers):
    p = subparsers.add_parser(
        "smoke",
        help="boot an i386 or x86_64 Debian in QEMU, install the packages, load and scan",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
    )
    p.add_argument(
        "--arch",
        action="append",
        choices=list(facts.architectures()),
        help="the guest's architecture; repeat for several, one VM each in turn "
        f"(default: {facts.default_arch()})",
    )
    p.add_argument(
        "--packages",
        type=Path,
        default=paths.DIST / "packages",
        help="folder with the .deb and .rpm files to test; each guest takes the "
        "files of its own architecture (default: %(default)s)",
    )
    p.add_argument(
        "--avhost",
        type=Path,
        help="the avhost program of the guest's architecture (default: dist/<arch>/avhost)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=paths.DIST / "smoke",
        help="where the console log and results.json go; dist/smoke/ for i386, "
        "dist/smoke-<arch>/ for another (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="hard limit for each VM run, seconds (default: %(default)s)",
    )
    p.add_argument("--memory", type=int, default=768, help="guest memory, MiB")
    p.add_argument("--mirror", help="Debian mirror URI (default: this machine's apt sources)")
    p.add_argument(
        "--rebuild-rootfs", action="store_true", help="build the cached root filesystem again"
    )
    p.add_argument(
        "--rootfs-only", action="store_true", help="only build (or find) the cached root filesystem"
    )
    p.set_defaults(func=run)


def out_dir(base: Path, arch: str) -> Path:
    """The default architecture keeps its folder; another gets one beside it."""
    return base if arch == facts.default_arch() else base.with_name(f"{base.name}-{arch}")


def run_one(args, arch: str) -> dict[str, Any]:
    """One guest: its root filesystem, then the smoke run. Returns the outcome and times."""
    prereqs.require_commands(facts.architecture(arch)["smoke"]["qemu"], "mkfs.ext4")
    t0 = time.monotonic()
    fs = rootfs.ensure(args.mirror, rebuild=args.rebuild_rootfs, log=log, arch=arch)
    rootfs_seconds = time.monotonic() - t0
    if args.rootfs_only:
        return {"arch": arch, "outcome": None, "rootfs_seconds": rootfs_seconds}
    avhost = args.avhost or paths.dist_dir(arch=arch) / "avhost"
    outcome = smoke(
        fs,
        args.packages,
        avhost,
        out_dir(args.out, arch),
        timeout=args.timeout,
        memory_mb=args.memory,
        arch=arch,
    )
    print(outcome["table"])
    boot = outcome["boot_seconds"]
    total = time.monotonic() - t0
    log(
        f"{arch}: boot to the guest script: {f'{boot:.1f} s' if boot is not None else 'never'}; "
        f"boot + checks: {outcome['vm_seconds']:.1f} s in the VM, {total:.1f} s in all "
        f"(root filesystem: {rootfs_seconds:.1f} s)"
    )
    if not outcome["failed"]:
        log(
            f"{arch}: all {len(outcome['results'])} checks passed; console log: "
            f"{outcome['console_log']}"
        )
    return {"arch": arch, "outcome": outcome, "rootfs_seconds": rootfs_seconds, "seconds": total}


def run(args) -> int:
    archs = list(dict.fromkeys(args.arch or [facts.default_arch()]))
    if args.avhost and len(archs) > 1:
        raise UserError("--avhost names one program, of one architecture: pass one --arch with it")
    runs = [run_one(args, arch) for arch in archs]
    failed = [r for r in runs if r["outcome"] and r["outcome"]["failed"]]
    if len(runs) > 1 and not args.rootfs_only:
        log(
            "; ".join(
                f"{r['arch']}: {'FAILED' if r in failed else 'passed'} in {r['seconds']:.1f} s"
                for r in runs
            )
        )
    if failed:
        raise UserError("\n".join(f"{r['arch']}: {r['outcome']['message']}" for r in failed))
    return 0
