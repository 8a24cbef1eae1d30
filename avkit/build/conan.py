"""Boost through Conan, offline: the project's own recipe index is the only remote."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from avkit import facts, paths
from avkit.build import tools

#: one host profile per toolchain; the architecture is a setting given with it (the Conan
#: arch of cmake/architectures.json). Boost is header-only: one package serves every arch.
PROFILES = {"zig": "zig", "gcc": "gcc"}
REMOTE = "kerio-local"
# Inputs of `conan install`: when none changed, its generated files are reused.
INPUTS = ["conanfile.py", "conan.lock", "conan/profiles", "conan/index"]


def configure_remotes(env: dict[str, str], log_file: Path) -> None:
    """Resolve only from the project's recipe index: the central one is unreachable here."""
    subprocess.run([shutil.which("conan", path=env["PATH"]) or "conan", "remote", "remove",
                    "conancenter"], env=env, capture_output=True, cwd=paths.ROOT)
    tools.run_logged(["conan", "remote", "add", REMOTE, paths.ROOT / "conan" / "index",
                      "--type=local-recipes-index", "--force"], env, log_file,
                     what="adding the project's Conan recipe index")


def inputs_digest(toolchain: str, arch: str) -> str:
    digest = hashlib.sha256(f"{toolchain} {facts.architecture(arch)['conan_arch']}".encode())
    for name in INPUTS:
        root = paths.ROOT / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(paths.ROOT)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()


def install(toolchain: str, arch: str, build_dir: Path, env: dict[str, str],
            update_lock: bool, log_file: Path) -> bool:
    """`conan install` of Boost into build_dir (its CMake toolchain and config files),
    unless none of its inputs changed since the last one; whether it ran."""
    stamp = build_dir / "conan-inputs.sha256"
    lock = paths.ROOT / "conan.lock"
    wanted = inputs_digest(toolchain, arch)
    if not update_lock and stamp.exists() and stamp.read_text() == wanted \
            and (build_dir / "conan_toolchain.cmake").exists():
        return False
    configure_remotes(env, log_file)
    profiles = profile_args(toolchain, arch)
    if update_lock or not lock.exists():
        # The recipe as the index has it now: not the revision the old lock names
        # (--lockfile= ignores it), nor one the cache holds (--update).
        tools.run_logged(["conan", "lock", "create", ".", *profiles, "--update", "--lockfile=",
                          "--lockfile-out", lock], env, log_file, what="conan lock create")
    tools.run_logged(["conan", "install", ".", *profiles, "--lockfile", lock,
                      "--output-folder", build_dir, "--build=missing"], env, log_file,
                     what="conan install (Boost)")
    stamp.write_text(wanted)
    return True


TEST_PACKAGE = paths.ROOT / "conan" / "index" / "recipes" / "boost" / "all" / "test_package"


def check_boost_package(toolchain: str, arch: str, work: Path,
                        log_file: Path) -> subprocess.CompletedProcess[bytes]:
    """`conan test` of the Boost recipe's test_package/ (a tiny Asio program) against the
    package in the project's Conan cache, for one profile and architecture, run natively.
    The copy in `work` keeps test_package/'s build folder out of the source tree."""
    env = tools.environment()
    env["KERIO_ARCH"] = arch
    configure_remotes(env, log_file)
    copy = work / f"test_package-{toolchain}-{arch}"
    shutil.copytree(TEST_PACKAGE, copy, dirs_exist_ok=True)
    reference = f"boost/{boost_version()}"
    return tools.run_logged(
        ["conan", "test", copy, reference, *profile_args(toolchain, arch),
         "--lockfile", paths.ROOT / "conan.lock",
         "-c", "tools.build.cross_building:can_run=True"],
        env, log_file, what=f"the Boost test_package for {arch} ({toolchain})")


def boost_version() -> str:
    """The Boost version conanfile.py requires (conan.lock pins its revision)."""
    text = (paths.ROOT / "conanfile.py").read_text()
    return text.split('self.requires("boost/', 1)[1].split('"', 1)[0]


def profile_args(toolchain: str, arch: str) -> list[str]:
    """Conan's host and build profiles for a toolchain and architecture."""
    return ["-pr:h", str(paths.ROOT / "conan" / "profiles" / PROFILES[toolchain]),
            f"-s:h=arch={facts.architecture(arch)['conan_arch']}",
            "-pr:b", str(paths.ROOT / "conan" / "profiles" / "build")]
