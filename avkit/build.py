"""`avkit build`: Conan (Boost) -> CMake + Ninja -> dist/<target>/, for i386.

The output folder holds the stripped plugins (avir_*.so), avhost, and the
split debug info under debug/.build-id/xx/yyyy.debug.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from avkit import paths, prereqs
from avkit.errors import UserError

PROFILES = {"zig": "zig-i386", "gcc": "gcc-i386"}
CONAN_REMOTE = "kerio-local"
# Inputs of `conan install`: when none changed, its generated files are reused.
CONAN_INPUTS = ["conanfile.py", "conan.lock", "conan/profiles", "conan/index"]


def register(subparsers):
    p = subparsers.add_parser("build", help="build the 32-bit plugins and avhost")
    p.add_argument("--toolchain", choices=sorted(PROFILES), default="zig",
                   help="zig (release, default) or gcc (-m32, developer cross-check)")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors (CI)")
    p.add_argument("--sanitize", action="store_true",
                   help="ASan+UBSan build (gcc only) into dist/i386-gcc-asan/")
    p.add_argument("--update-lock", action="store_true",
                   help="re-resolve Boost and rewrite conan.lock")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.sanitize and args.toolchain != "gcc":
        raise UserError("--sanitize needs --toolchain gcc (zig's runtime has no i386 ASan)")
    out = build(args.toolchain, werror=args.werror, update_lock=args.update_lock,
                sanitize=args.sanitize)
    print(f"built into {out}/:")
    for f in sorted(out.iterdir()):
        if f.is_file():
            print(f"  {f.name:24} {f.stat().st_size:>10,} bytes")
    return 0


def build(toolchain: str = "zig", werror: bool = False, update_lock: bool = False,
          sanitize: bool = False) -> Path:
    prereqs.require_for_build(toolchain)
    env = conan_env()
    build_dir = paths.build_dir(toolchain, sanitize)
    build_dir.mkdir(parents=True, exist_ok=True)
    conan_install(toolchain, build_dir, env, update_lock)
    if toolchain == "zig":
        warm_zig_cache(env)
    cmake_build(build_dir, env, werror, sanitize)
    return stage(build_dir, paths.dist_dir(toolchain, sanitize))


def conan_env() -> dict:
    env = dict(os.environ)
    env["CONAN_HOME"] = str((paths.CACHE / "conan").resolve())  # Conan wants it absolute
    # The zig wrappers (cmake/zig/) run `$KERIO_PYTHON -m ziglang`.
    env.setdefault("KERIO_PYTHON", sys.executable)
    # conan, cmake and ninja come with this Python's environment (the nox venv).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_tool(cmd, env, **kw):
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    exe = shutil.which(str(cmd[0]), path=env["PATH"])
    if exe is None:
        raise UserError(f"{cmd[0]} not found: run this through nox (./nox -s build-i386), "
                        f"which installs the pinned tools of ci/tools.txt")
    result = subprocess.run([exe, *(str(c) for c in cmd[1:])], env=env, cwd=paths.ROOT, **kw)
    if result.returncode != 0:
        raise UserError(f"{Path(str(cmd[0])).name} failed (exit {result.returncode}); see above")
    return result


def configure_remotes(env):
    """Resolve only from the project's recipe index: the central one is unreachable here."""
    subprocess.run([shutil.which("conan", path=env["PATH"]) or "conan", "remote", "remove",
                    "conancenter"], env=env,
                   capture_output=True, cwd=paths.ROOT)
    run_tool(["conan", "remote", "add", CONAN_REMOTE, paths.ROOT / "conan" / "index",
              "--type=local-recipes-index", "--force"], env, capture_output=True)


def inputs_digest(toolchain: str) -> str:
    digest = hashlib.sha256(toolchain.encode())
    for name in CONAN_INPUTS:
        root = paths.ROOT / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(paths.ROOT)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()


def conan_install(toolchain, build_dir, env, update_lock):
    stamp = build_dir / "conan-inputs.sha256"
    lock = paths.ROOT / "conan.lock"
    wanted = inputs_digest(toolchain)
    if not update_lock and stamp.exists() and stamp.read_text() == wanted \
            and (build_dir / "conan_toolchain.cmake").exists():
        print("conan: inputs unchanged, reusing generated files")
        return
    configure_remotes(env)
    profiles = ["-pr:h", paths.ROOT / "conan" / "profiles" / PROFILES[toolchain],
                "-pr:b", paths.ROOT / "conan" / "profiles" / "build"]
    if update_lock or not lock.exists():
        run_tool(["conan", "lock", "create", ".", *profiles, "--lockfile-out", lock], env)
    run_tool(["conan", "install", ".", *profiles, "--lockfile", lock,
              "--output-folder", build_dir, "--build=missing"], env)
    stamp.write_text(inputs_digest(toolchain))


def warm_zig_cache(env):
    """zig builds its libc++ once and caches it with the folder it was first built
    from in the debug info; building it first from "/" rather than from a random
    CMake try-compile folder keeps plugins byte-identical across machines."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "warm.cpp"
        src.write_text("#include <string>\nstd::string warm() { return std::string(8, 'x'); }\n")
        target = "x86-linux-gnu." + zig_glibc_floor()
        subprocess.run([env["KERIO_PYTHON"], "-m", "ziglang", "c++", "-target", target, "-O2",
                        "-fPIC", "-shared", src, "-o", Path(tmp) / "warm.so"],
                       env=env, cwd="/", check=True, capture_output=True)


def zig_glibc_floor() -> str:
    """KERIO_GLIBC_FLOOR, read from the toolchain file that sets it."""
    text = (paths.ROOT / "cmake" / "toolchains" / "zig-i386.cmake").read_text()
    m = re.search(r'set\(KERIO_GLIBC_FLOOR "([0-9.]+)"', text)
    if not m:
        raise UserError("cmake/toolchains/zig-i386.cmake does not set KERIO_GLIBC_FLOOR")
    return m.group(1)


def on_off(flag: bool) -> str:
    return "ON" if flag else "OFF"


def cmake_build(build_dir, env, werror, sanitize=False):
    run_tool(["cmake", "-S", paths.ROOT, "-B", build_dir, "-G", "Ninja",
              f"-DCMAKE_TOOLCHAIN_FILE={build_dir / 'conan_toolchain.cmake'}",
              "-DCMAKE_BUILD_TYPE=Release", f"-DKERIO_WERROR={on_off(werror)}",
              f"-DKERIO_SANITIZE={on_off(sanitize)}"],
             env, stdout=subprocess.DEVNULL)
    run_tool(["cmake", "--build", build_dir], env)


def built_artifacts(build_dir: Path):
    """The files a release ships: every avir_*.so and the avhost program."""
    found = sorted(build_dir.glob("*/avir_*.so"))
    found += sorted(p for p in build_dir.glob("*/avhost") if p.is_file())
    return found


def stage(build_dir: Path, out: Path) -> Path:
    from avkit import elf

    out.mkdir(parents=True, exist_ok=True)
    for src in built_artifacts(build_dir):
        dest = out / src.name
        if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
            continue
        build_id = elf.build_id(src)
        if not build_id:
            raise UserError(f"{src} has no build-id; link it with --build-id")
        debug = out / "debug" / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
        debug.parent.mkdir(parents=True, exist_ok=True)
        prereqs.run_quiet(["objcopy", "--only-keep-debug", src, debug])
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        prereqs.run_quiet(["objcopy", "--strip-unneeded", "--remove-section=.comment", src, tmp])
        shutil.copystat(src, tmp)
        tmp.replace(dest)
    return out
