"""A plugin author's own folder, built the way the release builds its plugins.

The folder holds the plugin's CMakeLists.txt (as sample/ does: it includes
api/KerioPlugin.cmake from a copy of api/ beside it). This configures it with the
project's toolchain files (zig, the release one, or gcc -m32), builds it, and
stages the stripped plugin with its debug file by build-id into <folder>/dist/<target>/,
the same layout `avkit build` gives: ready for the audit, the kit and packaging.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from avkit import facts, paths, prereqs
from avkit.build import cmake, debug_path_rewrites, stage, tools
from avkit.errors import UserError

TOOLCHAIN_FILES = {"zig": "zig.cmake", "gcc": "gcc.cmake"}

#: Always errors in an author's build, --werror or not: outside text used as a format
#: (`avc_log_debug(filename)`) logs garbage or crashes the product, so it never ships.
FORMAT_ERRORS = "-Werror=format -Werror=format-nonliteral -Werror=format-security"


def build_plugin(source: Path, toolchain: str = "zig", werror: bool = False,
                 arch: str = None) -> Path:
    source = Path(source).resolve()
    if not (source / "CMakeLists.txt").is_file():
        raise UserError(f"{source} has no CMakeLists.txt: point at a plugin folder such as a "
                        f"copy of sample/ (with api/ beside it)")
    prereqs.require_for_build(toolchain, arch)
    env = tools.environment()
    build_dir = source / "build" / paths.folder(toolchain, arch)
    if toolchain == "zig":
        cmake.warm_zig_cache(env, arch)
    toolchain_file = paths.ROOT / "cmake" / "toolchains" / TOOLCHAIN_FILES[toolchain]
    tools.run_tool(["cmake", "-S", source, "-B", build_dir, "-G", "Ninja",
                    f"-DCMAKE_TOOLCHAIN_FILE={toolchain_file}", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DKERIO_ARCH={arch or facts.default_arch()}",
                    f"-DKERIO_WERROR={cmake.on_off(werror)}",
                    f"-DCMAKE_C_FLAGS={FORMAT_ERRORS}", f"-DCMAKE_CXX_FLAGS={FORMAT_ERRORS}"], env)
    tools.run_tool(["cmake", "--build", build_dir], env)
    built = stage.built_artifacts(build_dir, pattern="")
    if not built:
        raise UserError(f"{build_dir} holds no avir_*.so: does {source / 'CMakeLists.txt'} "
                        f"call kerio_add_plugin(avir_<name> ...)?")
    return stage.stage(build_dir, source / "dist" / paths.folder(toolchain, arch), built,
                       rewrites=debug_path_rewrites(toolchain, env))


