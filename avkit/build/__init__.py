"""Building: Conan (Boost) -> CMake + Ninja -> dist/<target>/, for each architecture
of cmake/architectures.json (i386, x86_64).

    from avkit.build import build
    build("zig")            # the release plugins and avhost in dist/i386/
    build("zig", arch="x86_64")   # ... in dist/x86_64/
    build("gcc", werror=True, sanitize=True)

The output folder holds the stripped plugins (avir_*.so), avhost, and the split
debug info under debug/.build-id/xx/yyyy.debug.
"""
from pathlib import Path

from avkit import facts, paths, prereqs
from avkit.build import cmake, conan, stage, tools, zig

PROFILES = conan.PROFILES


def build(toolchain: str = "zig", werror: bool = False, update_lock: bool = False,
          sanitize: bool = False, arch: str = None) -> Path:
    arch = arch or facts.default_arch()
    prereqs.require_for_build(toolchain, arch)
    env = tools.environment()
    build_dir = paths.build_dir(toolchain, sanitize, arch)
    build_dir.mkdir(parents=True, exist_ok=True)
    conan.install(toolchain, arch, build_dir, env, update_lock)
    if toolchain == "zig":
        cmake.warm_zig_cache(env, arch)
    cmake.configure_and_build(build_dir, env, werror, sanitize, arch)
    return stage.stage(build_dir, paths.dist_dir(toolchain, sanitize, arch),
                       rewrites=debug_path_rewrites(toolchain, env))


def debug_path_rewrites(toolchain: str, env: dict):
    """What staging renames in the debug info: where zig's runtime was compiled."""
    if toolchain != "zig":
        return ()
    return ((zig.compilation_dir(), zig.debug_source_dir(env["KERIO_PYTHON"])),)
