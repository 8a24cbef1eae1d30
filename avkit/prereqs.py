"""System prerequisites: each missing one stops the job naming the Debian package.

SESSION_NEEDS says, as data, what each nox session needs from the system; every session
runs `python -m avkit prereqs <session>` first, so a missing package is reported at once
(one line naming all the Debian packages to install), not after minutes of building.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from avkit.errors import UserError

#: command -> the Debian package that provides it
COMMAND_PACKAGES = {
    "objcopy": "binutils",
    "readelf": "binutils",
    "debugedit": "debugedit",
    "gcc": "gcc-multilib",
    "g++": "g++-multilib",
    "clamd": "clamav-daemon",
    "dpkg-deb": "dpkg",
    "rpm": "rpm",
    "rpmbuild": "rpm",
    "lintian": "lintian",
    "rpmlint": "rpmlint",
    "qemu-system-i386": "qemu-system-x86",
    "qemu-system-x86_64": "qemu-system-x86",
    "dnf": "dnf",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "zip": "zip",
    "unzip": "unzip",
    "createrepo_c": "createrepo-c",
    "gpg": "gnupg",
    "git": "git",
    "chroot": "coreutils",
    "setpriv": "util-linux",
    "valgrind": "valgrind",
    "clang-14": "clang-14",
    "clang-format-14": "clang-format-14",
    "cppcheck": "cppcheck",
    "gdb": "gdb",
}

#: Needs that are not commands: name -> (what is missing, Debian packages, its check).
#: "i386": run 32-bit programs (avhost, the plugins); "gcc-m32": build them with gcc;
#: "libfuzzer-i386": clang's i386 libFuzzer runtime; "clamd": ClamAV's daemon binary;
#: "c-icap": the c-icap server with its virus_scan service (the ICAP plugin's tests).
SPECIAL_NEEDS = ("i386", "gcc-m32", "libfuzzer-i386", "clamd", "c-icap")

_BUILD = ("objcopy", "debugedit")  # the release build (zig); staging needs both
_GCC = ("gcc-m32",)  # the developer toolchain, -m32
_RUN = ("i386",)  # run avhost and the plugins
_CLAMD = ("clamd",)  # a private clamd for the ClamAV plugin
_KIT = (*_RUN, *_CLAMD, "zip")  # the kit's corpus has an encrypted zip
_ICAP = ("c-icap",)  # a private c-icap with virus_scan for the ICAP plugin
_PACKAGE = (*_BUILD, "dpkg-deb", "createrepo_c", "git")
_SMOKE = (
    "qemu-system-i386",
    "qemu-system-x86_64",
    "mkfs.ext4",
    "debootstrap",
    "chroot",
    "dpkg-deb",
    "rpm",
    "zip",
)
_TESTS = (
    *_BUILD,
    *_GCC,
    *_KIT,
    *_ICAP,
    *_PACKAGE,
    "rpm",
    "rpmbuild",
    "lintian",
    "rpmlint",
    "unzip",
    "setpriv",
    "gdb",
    "dnf",
    *_SMOKE,
)


def _needs(*needs: str) -> tuple:
    return tuple(dict.fromkeys(needs))  # each once, in order


#: nox session -> what it needs from the system (commands, or one of SPECIAL_NEEDS).
#: One place: `avkit prereqs SESSION` checks it, `avkit prereqs --list` prints it.
SESSION_NEEDS = {
    "build-i386": _needs(*_BUILD),
    "build-x86_64": _needs(*_BUILD),
    "tests": _needs(*_TESTS),
    "release": _needs(*_TESTS),
    "kit": _needs(*_BUILD, *_KIT, *_ICAP),
    "audit": _needs(*_BUILD),
    "package": _needs(*_PACKAGE),
    "smoke": _needs(*_PACKAGE, *_SMOKE),
    "sanitize": _needs(*_BUILD, *_GCC, *_KIT, *_ICAP, "setpriv", "valgrind"),
    "fuzz": _needs("clang-14", "libfuzzer-i386"),
    "bench": _needs(*_BUILD, *_RUN, *_CLAMD, *_ICAP),
    "soak": _needs(*_BUILD, *_RUN, *_CLAMD),
    "failover": _needs(*_BUILD, *_RUN, *_CLAMD),
    "lock": _needs(*_BUILD),
    "unit": (),
    "lint": _needs("clang-format-14", "cppcheck"),
}

I386_LOADER = Path("/lib/ld-linux.so.2")


def require_commands(*commands: str) -> None:
    lacking = missing(commands)
    if lacking:
        raise UserError(install_hint(lacking))


def require_i386_runtime() -> None:
    """32-bit plugins and avhost run natively once the i386 C library is installed."""
    if not I386_LOADER.exists():
        raise UserError(
            "cannot run i386 programs: install the i386 C library with "
            "`dpkg --add-architecture i386 && apt-get update && apt-get install libc6:i386`"
        )


def gcc_m32_works() -> bool:
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.cpp"
        src.write_text("#include <string>\nint main() { return std::string().size(); }\n")
        r = subprocess.run(["g++", "-m32", src, "-o", Path(tmp) / "t"], capture_output=True)
        return r.returncode == 0


def require_gcc_m32() -> None:
    require_commands("gcc", "g++")
    if not gcc_m32_works():
        raise UserError(
            "g++ -m32 cannot build 32-bit programs: install "
            "`apt-get install gcc-multilib g++-multilib`"
        )


def clamd_path() -> str:
    """Debian's clamd (/usr/sbin/clamd), or AVKIT_CLAMD; the private clamd runs this."""
    return os.environ.get("AVKIT_CLAMD", "/usr/sbin/clamd")


def _cicap_with_virus_scan() -> bool:
    """c-icap itself and its virus_scan module (in Debian's multiarch folder)."""
    return Path(os.environ.get("AVKIT_CICAP", "/usr/bin/c-icap")).exists() and bool(
        glob.glob("/usr/lib/*/c_icap/virus_scan.so")
    )


def _libfuzzer_i386() -> bool:
    return bool(glob.glob("/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-i386.a"))


#: special need -> (how the message names it, its Debian packages, the check)
_SPECIAL = {
    "i386": ("the i386 C library", ["libc6:i386"], lambda: I386_LOADER.exists()),
    "gcc-m32": ("gcc/g++ -m32", ["gcc-multilib", "g++-multilib"], gcc_m32_works),
    "libfuzzer-i386": ("libFuzzer for i386", ["libclang-rt-14-dev"], _libfuzzer_i386),
    "clamd": (None, ["clamav-daemon"], lambda: Path(clamd_path()).exists()),
    "c-icap": (
        "c-icap with virus_scan",
        ["c-icap", "libc-icap-mod-virus-scan"],
        _cicap_with_virus_scan,
    ),
}


def missing(needs) -> list[tuple[str, list[str]]]:
    """(what, [Debian packages]) for each need in `needs` this machine lacks."""
    out = []
    for need in needs:
        if need in _SPECIAL:
            what, packages, check = _SPECIAL[need]
            if not check():
                out.append((what or clamd_path(), packages))
        elif shutil.which(need) is None:
            out.append((need, [COMMAND_PACKAGES.get(need, need)]))
    return out


def install_hint(lacking) -> str:
    """One line: what is missing and the apt-get command that installs all of it."""
    packages = sorted({p for _, ps in lacking for p in ps})
    first = (
        "dpkg --add-architecture i386 && apt-get update && "
        if any(p.endswith(":i386") for p in packages)
        else ""
    )
    return (
        f"missing {', '.join(dict.fromkeys(w for w, _ in lacking))}: install with "
        f"`{first}apt-get install {' '.join(packages)}` "
        f"(or: sudo ci/install-system-deps.sh, which installs all of ci/apt-packages.txt)"
    )


def require_for_session(session: str) -> None:
    """Every system prerequisite of a nox session, checked at once (a UserError names all)."""
    if session not in SESSION_NEEDS:
        raise UserError(
            f"no prerequisites known for session {session!r}: add it to "
            f"SESSION_NEEDS in avkit/prereqs.py (known: {', '.join(SESSION_NEEDS)})"
        )
    lacking = missing(SESSION_NEEDS[session])
    if lacking:
        raise UserError(install_hint(lacking))


def require_for_build(toolchain: str, arch: str = None) -> None:
    """gcc for a 64-bit target needs only gcc and g++ themselves (the machine's own)."""
    from avkit import facts  # facts imports this layer's paths module only

    require_commands("objcopy")
    if toolchain == "zig":
        require_commands("debugedit")
    if toolchain == "gcc":
        if facts.architecture(arch)["gcc_flag"] == "-m32":
            require_gcc_m32()
        else:
            require_commands("gcc", "g++")


def run_quiet(cmd) -> None:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"{' '.join(str(c) for c in cmd)} failed: {r.stderr.strip()}")
