"""Configuring and building the CMake project, and zig's one-time cache."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from avkit import facts, paths
from avkit.build import tools, zig
from avkit.build.tools import log, run_logged
from avkit.errors import UserError


def on_off(flag: bool) -> str:
    return "ON" if flag else "OFF"


def cached_compilers(build_dir: Path) -> list[str]:
    """The compilers a build folder's CMakeCache.txt names (CMake never asks again)."""
    cache = Path(build_dir) / "CMakeCache.txt"
    if not cache.is_file():
        return []
    return [line.split("=", 1)[1].strip() for line in cache.read_text(errors="replace").splitlines()
            if line.startswith(("CMAKE_C_COMPILER:", "CMAKE_CXX_COMPILER:"))]


def drop_stale_cmake_cache(build_dir: Path) -> None:
    """A build folder configured by an older checkout may name compiler wrappers that
    were renamed since; CMake would fail on them for good: the folder configures anew."""
    gone = [c for c in cached_compilers(build_dir) if c.startswith("/") and not Path(c).exists()]
    if gone:
        log(f"cmake: {build_dir} was configured with {gone[0]}, which no longer exists: "
            f"configuring it anew")
        (Path(build_dir) / "CMakeCache.txt").unlink()
        shutil.rmtree(Path(build_dir) / "CMakeFiles", ignore_errors=True)


def configure_and_build(build_dir: Path, env: dict[str, str], werror: bool,
                        sanitize: bool = False, arch: str | None = None,
                        log_file: Path | None = None) -> int:
    """Configures and builds build_dir (the plugins, avhost, the unit tests); how many
    build steps Ninja ran (0: nothing was out of date)."""
    log_file = log_file or build_dir / "build.log"
    drop_stale_cmake_cache(build_dir)
    run_logged(["cmake", "-S", paths.ROOT, "-B", build_dir, "-G", "Ninja",
                f"-DCMAKE_TOOLCHAIN_FILE={build_dir / 'conan_toolchain.cmake'}",
                f"-DKERIO_ARCH={arch or facts.default_arch()}",
                "-DCMAKE_BUILD_TYPE=Release", f"-DKERIO_WERROR={on_off(werror)}",
                f"-DKERIO_SANITIZE={on_off(sanitize)}"],
               env, log_file, what=f"configuring {tools.shown(build_dir)}")
    before = log_file.stat().st_size if log_file.exists() else 0
    run_logged(["cmake", "--build", build_dir], env, log_file,
               what=f"building {tools.shown(build_dir)}")
    if not log_file.exists():
        return 0
    with open(log_file, errors="replace") as f:
        f.seek(before)
        return len(re.findall(r"^\[\d+/\d+\] ", f.read(), re.M))


def drop_stale_zig_cache(env):
    """zig never rebuilds a cached runtime, whatever folder it was compiled in. A cache
    made before links ran from the package folder (cmake/zig/zig-driver.py) holds a
    runtime that names this clone's paths: this clone's own cache is emptied once."""
    cache = Path(env["ZIG_GLOBAL_CACHE_DIR"])
    if cache != tools.private_zig_cache():
        return  # a cache the user chose is the user's
    stamp = cache / "avkit-runtime-layout"
    want = f"{zig.version(env['KERIO_PYTHON'])} compiled in {zig.compilation_dir()}\n"
    if stamp.exists() and stamp.read_text() == want:
        return
    if cache.exists():
        log(f"zig: emptying {cache}: its runtime was built another way")
        shutil.rmtree(cache)
        shutil.rmtree(Path(env["ZIG_LOCAL_CACHE_DIR"]), ignore_errors=True)
    cache.mkdir(parents=True)
    stamp.write_text(want)


def warm_zig_cache(env: dict[str, str], arch: str | None = None,
                   log_file: Path | None = None) -> float:
    """zig builds its runtime (libc++ and friends) at the first link that needs it; a
    link of its own first does that minutes-long step once, through the same wrapper as
    CMake's links, so the cached runtime is the one they use. Its time in seconds (about
    one when the cache holds the runtime already)."""
    drop_stale_zig_cache(env)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "warm.cpp"
        src.write_text("#include <string>\nstd::string warm() { return std::string(8, 'x'); }\n")
        target = f"--target={facts.architecture(arch)['zig_target']}.{facts.glibc_floor(arch)}"
        run_logged([zig.CXX, target, "-O2", "-fPIC", "-shared", src, "-o", Path(tmp) / "warm.so"],
                   env, log_file or paths.BUILD / "zig-warm.log",
                   what=f"zig: building its libc++ for {arch or facts.default_arch()}", cwd=Path(tmp))
    return time.monotonic() - started


def unit_test_program(name: str, arch: str | None = None, toolchain: str = "zig") -> Path:
    """A program CMake built under build/<arch>/<folder>/tests/ (KERIO_TESTS, on by
    default): the unit tests and helpers such as limits_probe_dump."""
    build_dir = paths.build_dir(toolchain, arch=arch or facts.default_arch())
    found = sorted(p for p in build_dir.glob(f"*/tests/{name}") if p.is_file())
    if not found:
        raise UserError(f"{build_dir}/*/tests/{name} is missing: build it first "
                        f"(./nox -s build-{arch or facts.default_arch()})")
    return found[0]


def run_unit_tests(arch: str | None = None, toolchain: str = "zig",
                   regex: str | None = None) -> subprocess.CompletedProcess[str]:
    """`ctest --output-on-failure` in the architecture's build folder: the unit tests
    CMake built and registered (a regex selects some, by <folder>.<name>)."""
    build_dir = paths.build_dir(toolchain, arch=arch or facts.default_arch())
    if not (build_dir / "CTestTestfile.cmake").is_file():
        raise UserError(f"{build_dir} has no unit tests: build it first "
                        f"(./nox -s build-{arch or facts.default_arch()})")
    ctest = shutil.which("ctest", path=tools.environment()["PATH"])
    if ctest is None:
        raise UserError("ctest not found: run this through nox, which installs cmake")
    cmd = [ctest, "--test-dir", str(build_dir), "--output-on-failure", "--timeout", "60"]
    if regex:
        cmd += ["-R", regex]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)
