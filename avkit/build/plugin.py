"""A plugin author's own folder, built the way the release builds its plugins.

The folder holds the plugin's CMakeLists.txt (as sample/ does: it includes
api/KerioPlugin.cmake from a copy of api/ beside it). This configures it with the
project's toolchain files (zig, the release one, or gcc -m32), builds it, and
stages the stripped plugin with its debug file by build-id into <folder>/dist/<target>/,
the same layout `avkit build` gives: ready for the audit, the kit and packaging.
"""
from pathlib import Path

from avkit import facts, paths, prereqs
from avkit.build import cmake, debug_path_rewrites, stage, tools
from avkit.errors import UserError

TOOLCHAIN_FILES = {"zig": "zig.cmake", "gcc": "gcc.cmake"}


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
                    f"-DKERIO_WERROR={cmake.on_off(werror)}"], env)
    tools.run_tool(["cmake", "--build", build_dir], env)
    built = stage.built_artifacts(build_dir, pattern="")
    if not built:
        raise UserError(f"{build_dir} holds no avir_*.so: does {source / 'CMakeLists.txt'} "
                        f"call kerio_add_plugin(avir_<name> ...)?")
    return stage.stage(build_dir, source / "dist" / paths.folder(toolchain, arch), built,
                       rewrites=debug_path_rewrites(toolchain, env))
