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


def _dist_folder_of(path: Path) -> Optional[tuple[Path, str]]:
    """(the folder holding dist/, the dist/<folder> name) for a path under some dist/."""
    path = Path(path).resolve()
    for parent in [path, *path.parents]:
        if parent.parent.name == "dist":
            return parent.parent.parent, parent.name
    return None


def author_folder(plugin: Path) -> Optional[Path]:
    """FOLDER for FOLDER/dist/ARCH/avir_x.so built by `avkit plugin FOLDER` (or this clone)."""
    found = _dist_folder_of(plugin)
    return found[0] if found else None


def _toolchain_arch(folder_name: str) -> tuple[str, str]:
    """dist/<folder> name -> (toolchain, architecture): i386-gcc -> (gcc, i386)."""
    for arch, data in facts.architectures().items():
        for toolchain, name in data.get("dist", {}).items():
            if name == folder_name:
                return toolchain, arch
    return "zig", facts.default_arch()


def build_command(path: Path, arch: Optional[str] = None) -> str:
    """The one command that builds what `path` (a plugin, avhost) should be, for every
    hint that says "build it": ./nox -s build-ARCH in this clone for this clone's dist/,
    `avkit plugin FOLDER` for an author's folder (FOLDER/dist/ARCH/)."""
    found = _dist_folder_of(path)
    if found is None:
        return f"avkit plugin YOUR_FOLDER --arch {arch or facts.default_arch()}"
    owner, name = found
    toolchain, dist_arch = _toolchain_arch(name)
    arch = arch or dist_arch
    if owner == paths.DIST.parent or owner == paths.ROOT:
        gcc = " -- --toolchain gcc" if toolchain == "gcc" else ""
        return f"cd {paths.ROOT} && ./nox -s build-{arch}{gcc}"
    flags = (f" --arch {arch}" if arch != facts.default_arch() else "") + \
        (" --toolchain gcc" if toolchain == "gcc" else "")
    return f"avkit plugin {owner}{flags}"


def avhost_command(arch: Optional[str] = None) -> str:
    """avhost is built with this clone's plugins: the one command that builds it."""
    return f"cd {paths.ROOT} && ./nox -s build-{arch or facts.default_arch()}"
