"""System prerequisites: each missing one stops the job naming the Debian package."""
import shutil
import subprocess
import tempfile
from pathlib import Path

from avkit.errors import UserError

#: command -> the Debian package that provides it
COMMAND_PACKAGES = {
    "objcopy": "binutils",
    "readelf": "binutils",
    "gcc": "gcc-multilib",
    "g++": "g++-multilib",
    "clamd": "clamav-daemon",
    "dpkg-deb": "dpkg",
    "rpm": "rpm",
    "lintian": "lintian",
    "rpmlint": "rpmlint",
    "qemu-system-i386": "qemu-system-x86",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "zip": "zip",
}

I386_LOADER = Path("/lib/ld-linux.so.2")


def require_commands(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        pkgs = sorted({COMMAND_PACKAGES.get(c, c) for c in missing})
        raise UserError(f"missing {', '.join(missing)}: install with "
                        f"`apt-get install {' '.join(pkgs)}` (or run ./ci/install-system-deps.sh)")


def require_i386_runtime() -> None:
    """32-bit plugins and avhost run natively once the i386 C library is installed."""
    if not I386_LOADER.exists():
        raise UserError("cannot run i386 programs: install the i386 C library with "
                        "`dpkg --add-architecture i386 && apt-get update && apt-get install libc6:i386`")


def require_gcc_m32() -> None:
    require_commands("gcc", "g++")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.cpp"
        src.write_text("#include <string>\nint main() { return std::string().size(); }\n")
        r = subprocess.run(["g++", "-m32", src, "-o", Path(tmp) / "t"], capture_output=True)
        if r.returncode != 0:
            raise UserError("g++ -m32 cannot build 32-bit programs: install "
                            "`apt-get install gcc-multilib g++-multilib`")


def require_for_build(toolchain: str) -> None:
    require_commands("objcopy")
    if toolchain == "gcc":
        require_gcc_m32()


def run_quiet(cmd) -> None:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"{' '.join(str(c) for c in cmd)} failed: {r.stderr.strip()}")
