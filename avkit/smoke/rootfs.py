"""The smoke VM's Debian of one architecture: a root filesystem image, its kernel and
initrd, cached.

Built with `debootstrap --variant=minbase --arch=<deb arch>` from this machine's own
mirror (see mirror.py), with what the guest needs and the architecture's kernel
(the smoke facts of cmake/architectures.json), then packed into an ext4 image with
`mkfs.ext4 -d` (no loop mounts). The result lives in .cache/smoke/rootfs-<arch>-<key>/,
where <key> is a hash of every input of the build; an unchanged input set reuses it,
and each architecture keeps its own.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avkit import facts, paths, prereqs
from avkit.errors import UserError
from avkit.smoke import mirror

SUITE = "bookworm"  # Debian 12
VARIANT = "minbase"
#: what the guest needs on top of minbase: clamd and its client, c-icap (with its
#: client) and virus_scan for avir_icap, rpm for the .rpm checks, ip for the loopback,
#: and the initramfs builder for the kernel's initrd (the kernel: packages())
PACKAGES = [
    "clamav-daemon",
    "clamdscan",
    "c-icap",
    "libc-icap-mod-virus-scan",
    "rpm",
    "iproute2",
    "initramfs-tools",
]
#: the initrd holds only what mounts the root: virtio disks and ext4
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4", "crc32c_generic"]
#: dropped from the image: downloads, package lists, documentation, and the kernel's
#: module tree (the initrd carries the few modules the guest loads)
REMOVE = [
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "lib/modules/*/kernel",
    "boot/initrd.img*",
    "boot/vmlinuz*",
    "var/log/*.log",
]
#: free space left in the image for what the guest installs (writes go to a snapshot)
HEADROOM_MB = 256
LAUNCHER = Path(__file__).with_name("guest") / "init.sh"
LAUNCHER_IN_GUEST = "sbin/avkit-smoke-init"
#: bump when the way the image is made changes in a way the inputs above do not show
RECIPE_VERSION = 1

CACHE_DIR = paths.CACHE / "smoke"


@dataclass
class Rootfs:
    dir: Path

    @property
    def image(self) -> Path:
        return self.dir / "rootfs.ext4"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.dir / "rootfs.json").read_text())

    def complete(self) -> bool:
        return all(
            p.is_file() for p in (self.image, self.kernel, self.initrd, self.dir / "rootfs.json")
        )


def debian_arch(arch: str = None) -> str:
    """debootstrap's --arch for an architecture of cmake/architectures.json."""
    return facts.architecture(arch)["deb"]


def packages(arch: str = None) -> list[str]:
    """What debootstrap installs: PACKAGES and the architecture's kernel."""
    return PACKAGES + [facts.architecture(arch)["smoke"]["kernel_package"]]


def inputs(mirror_uri: str, arch: str = None) -> dict[str, Any]:
    return {
        "suite": SUITE,
        "arch": debian_arch(arch),
        "variant": VARIANT,
        "packages": sorted(packages(arch)),
        "initrd_modules": INITRD_MODULES,
        "remove": REMOVE,
        "headroom_mb": HEADROOM_MB,
        "launcher": hashlib.sha256(LAUNCHER.read_bytes()).hexdigest(),
        "recipe": RECIPE_VERSION,
        # the mirror is part of the key but only as a hash: no host name on disk
        "mirror": hashlib.sha256(mirror_uri.encode()).hexdigest(),
    }


def cache_key(mirror_uri: str, arch: str = None) -> str:
    blob = json.dumps(inputs(mirror_uri, arch), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_folder(mirror_uri: str, arch: str = None, cache_dir: Path = None) -> Path:
    arch = arch or facts.default_arch()
    return (cache_dir or CACHE_DIR) / f"rootfs-{arch}-{cache_key(mirror_uri, arch)}"


def _stale(cache_dir: Path, arch: str, keep: Path):
    """This architecture's older caches, and those named before there were two
    (rootfs-<key>, i386's): another architecture's cache is never stale here."""
    for old in cache_dir.glob("rootfs-*"):
        if old == keep or not old.is_dir() or ".tmp" in old.name:
            continue
        if old.name.startswith(f"rootfs-{arch}-") or re.fullmatch(r"rootfs-[0-9a-f]{16}", old.name):
            yield old


def ensure(
    mirror_uri: str = None,
    rebuild: bool = False,
    cache_dir: Path = None,
    log=print,
    arch: str = None,
) -> Rootfs:
    """The cached root filesystem of `arch` (default: i386) for the current inputs;
    builds it when missing."""
    cache_dir = cache_dir or CACHE_DIR
    arch = arch or facts.default_arch()
    keyring = None
    if mirror_uri is None:
        mirror_uri, keyring = mirror.find_mirror(SUITE)
    rootfs = Rootfs(cache_folder(mirror_uri, arch, cache_dir))
    if rootfs.complete() and not rebuild:
        log(
            f"root filesystem: cached in {rootfs.dir} "
            f"(built {rootfs.info.get('built', '?')} in {rootfs.info.get('build_seconds', '?')} s)"
        )
        return rootfs
    build(rootfs, mirror_uri, keyring, log, arch)
    for old in _stale(cache_dir, arch, rootfs.dir):
        log(f"root filesystem: removing the stale cache {old.name}")
        _remove_tree(old)
    return rootfs


def require_cached_or_root(
    mirror_uri: str = None, cache_dir: Path = None, arch: str = None
) -> None:
    """Fails at once when the root filesystem would have to be built and cannot be (not
    root): a check for before the slow steps that come ahead of the smoke test."""
    if os.geteuid() == 0:
        return
    if mirror_uri is None:
        mirror_uri, _ = mirror.find_mirror(SUITE)
    if not Rootfs(cache_folder(mirror_uri, arch, cache_dir)).complete():
        require_root()


def require_root():
    if os.geteuid() != 0:
        raise UserError(
            "building the smoke test's root filesystem needs root (debootstrap, "
            "chroot): run it as root (CI runs as root), or build the cache once "
            "with `sudo ./nox -s smoke`"
        )


def build(rootfs: Rootfs, mirror_uri: str, keyring, log, arch: str = None) -> None:
    require_root()
    prereqs.require_commands("debootstrap", "mkfs.ext4", "chroot")
    started = time.monotonic()
    work = rootfs.dir.with_name(rootfs.dir.name + f".tmp{os.getpid()}")
    _remove_tree(work)
    target = work / "root"
    target.mkdir(parents=True)
    try:
        _debootstrap(target, mirror_uri, keyring, work / "debootstrap.log", log, arch)
        kver = _kernel_version(target, arch)
        log(
            f"root filesystem: kernel {kver}; building a small initrd ({', '.join(INITRD_MODULES)})"
        )
        _small_initrd(target, kver, work)
        packages = _package_versions(target)
        _finish_tree(target)
        size_mb = _tree_mb(target) + HEADROOM_MB
        log(f"root filesystem: mkfs.ext4 -d, {size_mb} MiB")
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "avsmoke-root",
                "-d",
                target,
                work / "rootfs.ext4",
                f"{size_mb}M",
            ]
        )
        _remove_tree(target)
        seconds = round(time.monotonic() - started)
        (work / "rootfs.json").write_text(
            json.dumps(
                {
                    "inputs": inputs(mirror_uri, arch),
                    "kernel": kver,
                    "build_seconds": seconds,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "packages": packages,
                },
                indent=1,
                sort_keys=True,
            )
        )
        _remove_tree(rootfs.dir)
        work.rename(rootfs.dir)
        log(f"root filesystem: built in {seconds} s -> {rootfs.dir}")
    except BaseException:
        _remove_tree(work)
        raise


def _debootstrap(
    target: Path, mirror_uri: str, keyring, logfile: Path, log, arch: str = None
) -> None:
    include = packages(arch)
    cmd = [
        "debootstrap",
        f"--arch={debian_arch(arch)}",
        f"--variant={VARIANT}",
        f"--include={','.join(include)}",
    ]
    if keyring:
        cmd.append(f"--keyring={keyring}")
    cmd += [SUITE, str(target), mirror_uri]
    log(
        f"root filesystem: debootstrap {SUITE} {debian_arch(arch)} {VARIANT} + {', '.join(include)} "
        f"(some minutes; log in {logfile})"
    )
    counts: dict[str, int] = {}
    phase, last_report = None, time.monotonic()
    started = last_report
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        for line in proc.stdout:
            out.write(line)
            words = line.split()
            if len(words) >= 2 and words[0] == "I:":
                phase = words[1].rstrip(".")
                counts[phase] = counts.get(phase, 0) + 1
            now = time.monotonic()
            if now - last_report >= 15:
                last_report = now
                log(
                    f"  ... {int(now - started)} s: "
                    + ", ".join(
                        f"{k.lower()} {v}"
                        for k, v in counts.items()
                        if k in ("Retrieving", "Extracting", "Unpacking", "Configuring")
                    )
                )
        proc.wait()
    if proc.returncode != 0:
        tail = "".join(logfile.read_text(errors="replace").splitlines(True)[-15:])
        raise UserError(
            f"debootstrap failed (exit {proc.returncode}); its last lines:\n{tail}"
            f"full log: {logfile}"
        )
    log(f"root filesystem: debootstrap done in {int(time.monotonic() - started)} s")


def _kernel_version(target: Path, arch: str = None) -> str:
    smoke = facts.architecture(arch)["smoke"]
    found = sorted((target / "boot").glob(f"vmlinuz-*-{smoke['kernel_flavour']}"))
    if not found:
        raise UserError(
            f"no /boot/vmlinuz-*-{smoke['kernel_flavour']} in the new root "
            f"filesystem: did {smoke['kernel_package']} install? see "
            f"{target.parent / 'debootstrap.log'}"
        )
    return found[-1].name[len("vmlinuz-") :]


def _small_initrd(target: Path, kver: str, work: Path) -> None:
    conf = target / "etc/initramfs-tools"
    (conf / "conf.d" / "avkit-smoke").write_text("MODULES=list\n")
    (conf / "modules").write_text("\n".join(INITRD_MODULES) + "\n")
    _run(["chroot", target, "update-initramfs", "-u", "-k", kver])
    shutil.copy2(target / "boot" / f"vmlinuz-{kver}", work / "vmlinuz")
    shutil.copy2(target / "boot" / f"initrd.img-{kver}", work / "initrd.img")


def _package_versions(target: Path) -> dict:
    r = subprocess.run(
        ["dpkg-query", f"--admindir={target}/var/lib/dpkg", "-W", "-f=${Package} ${Version}\n"],
        capture_output=True,
        text=True,
    )
    return dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)


def _finish_tree(target: Path) -> None:
    for pattern in REMOVE:
        for p in target.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    launcher = target / LAUNCHER_IN_GUEST
    shutil.copy(LAUNCHER, launcher)
    launcher.chmod(0o755)
    (target / "smoke").mkdir(exist_ok=True)
    (target / "etc/hostname").write_text("avsmoke\n")


def _tree_mb(target: Path) -> int:
    r = subprocess.run(
        ["du", "-sm", "--apparent-size", str(target)], capture_output=True, text=True, check=True
    )
    return int(r.stdout.split()[0])


def _run(cmd) -> None:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(
            f"{' '.join(str(c) for c in cmd)} failed (exit {r.returncode}):\n"
            f"{(r.stdout + r.stderr).strip()[-2000:]}"
        )


def _mounts_below(path: Path):
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p.startswith(prefix)]


def _remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what a failed debootstrap left mounted inside."""
    if not path.exists():
        return
    for point in sorted(_mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mounts_below(path)
    if left:
        raise UserError(f"cannot remove {path}: still mounted inside: {', '.join(left)}")
    shutil.rmtree(path)
