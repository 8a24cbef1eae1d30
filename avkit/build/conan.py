"""Boost through Conan, offline: the project's own recipe index is the only remote."""
import hashlib
import shutil
import subprocess

from avkit import facts, paths
from avkit.build.tools import log, run_tool

#: one host profile per toolchain; the architecture is a setting given with it (the Conan
#: arch of cmake/architectures.json). Boost is header-only: one package serves every arch.
PROFILES = {"zig": "zig", "gcc": "gcc"}
REMOTE = "kerio-local"
# Inputs of `conan install`: when none changed, its generated files are reused.
INPUTS = ["conanfile.py", "conan.lock", "conan/profiles", "conan/index"]


def configure_remotes(env):
    """Resolve only from the project's recipe index: the central one is unreachable here."""
    subprocess.run([shutil.which("conan", path=env["PATH"]) or "conan", "remote", "remove",
                    "conancenter"], env=env, capture_output=True, cwd=paths.ROOT)
    run_tool(["conan", "remote", "add", REMOTE, paths.ROOT / "conan" / "index",
              "--type=local-recipes-index", "--force"], env, capture_output=True)


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


def install(toolchain, arch, build_dir, env, update_lock):
    stamp = build_dir / "conan-inputs.sha256"
    lock = paths.ROOT / "conan.lock"
    wanted = inputs_digest(toolchain, arch)
    if not update_lock and stamp.exists() and stamp.read_text() == wanted \
            and (build_dir / "conan_toolchain.cmake").exists():
        log("conan: inputs unchanged, reusing generated files")
        return
    configure_remotes(env)
    profiles = ["-pr:h", paths.ROOT / "conan" / "profiles" / PROFILES[toolchain],
                f"-s:h=arch={facts.architecture(arch)['conan_arch']}",
                "-pr:b", paths.ROOT / "conan" / "profiles" / "build"]
    if update_lock or not lock.exists():
        run_tool(["conan", "lock", "create", ".", *profiles, "--lockfile-out", lock], env)
    run_tool(["conan", "install", ".", *profiles, "--lockfile", lock,
              "--output-folder", build_dir, "--build=missing"], env)
    stamp.write_text(wanted)
