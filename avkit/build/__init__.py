"""Building: Conan (Boost) -> CMake + Ninja -> dist/<target>/, for each architecture
of cmake/architectures.json (i386, x86_64).

    from avkit.build import build
    build("zig").out        # the release plugins and avhost in dist/i386/
    build("zig", arch="x86_64")   # ... in dist/x86_64/
    build("gcc", werror=True, sanitize=True)

The output folder holds the stripped plugins (avir_*.so), avhost, and the split
debug info under debug/.build-id/xx/yyyy.debug.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from avkit import facts, paths, prereqs
from avkit.build import cmake, conan, stage, tools, zig

PROFILES = conan.PROFILES


@dataclasses.dataclass
class Built:
    """What one build did, for its summary line."""
    arch: str
    toolchain: str
    out: Path        # dist/<target>/
    build_dir: Path  # build/<target>/, with the unit tests (ctest --test-dir)
    log: Path        # the tools' output
    steps: int       # Ninja's build steps (0: nothing was out of date)
    conan_ran: bool
    zig_seconds: float
    seconds: float

    def summary(self) -> list[str]:
        artifacts = ", ".join(p.name for p in sorted(self.out.iterdir()) if p.is_file())
        did = f"{self.steps} build steps" if self.steps else "nothing to rebuild"
        if self.conan_ran:
            did += ", Conan install"
        if self.zig_seconds > 20:
            did += f", zig's libc++ built in {self.zig_seconds:.0f} s (once)"
        return [f"built into {tools.shown(self.out)}/ in {self.seconds:.1f} s ({self.arch}, "
                f"{self.toolchain}; {did}): {artifacts}",
                f"  unit tests: ctest --test-dir {tools.shown(self.build_dir)}; "
                f"the tools' output: {tools.shown(self.log)}"]


def build(toolchain: str = "zig", werror: bool = False, update_lock: bool = False,
          sanitize: bool = False, arch: str | None = None) -> Built:
    """Conan, CMake and staging for one architecture; their output in build/<target>/build.log."""
    started = time.monotonic()
    arch = arch or facts.default_arch()
    prereqs.require_for_build(toolchain, arch)
    env = tools.environment()
    build_dir = paths.build_dir(toolchain, sanitize, arch)
    log_file = build_dir / "build.log"
    tools.start_log(log_file, f"avkit build --arch {arch} --toolchain {toolchain}"
                    f"{' --sanitize' if sanitize else ''}")
    conan_ran = conan.install(toolchain, arch, build_dir, env, update_lock, log_file)
    zig_seconds = cmake.warm_zig_cache(env, arch, log_file) if toolchain == "zig" else 0.0
    steps = cmake.configure_and_build(build_dir, env, werror, sanitize, arch, log_file)
    out = stage.stage(build_dir, paths.dist_dir(toolchain, sanitize, arch),
                      rewrites=debug_path_rewrites(toolchain, env))
    return Built(arch, toolchain, out, build_dir, log_file, steps, conan_ran, zig_seconds,
                 time.monotonic() - started)


def debug_path_rewrites(toolchain: str, env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """What staging renames in the debug info: where zig's runtime was compiled."""
    if toolchain != "zig":
        return ()
    return ((zig.compilation_dir(), zig.debug_source_dir(env["KERIO_PYTHON"])),)
