"""Running the pinned build tools (conan, cmake, ninja, zig) of the active environment."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from avkit import paths
from avkit.errors import UserError


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["CONAN_HOME"] = str((paths.CACHE / "conan").resolve())  # Conan wants it absolute
    # zig's libc++ cache is private to this clone: a cache shared by every clone of a
    # user is rewritten by the others' builds, with their folders in its debug info.
    env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(private_zig_cache()))
    env.setdefault("ZIG_LOCAL_CACHE_DIR", str((paths.CACHE / "zig-local").resolve()))
    # The zig wrappers (cmake/zig/) run zig from the ziglang package of $KERIO_PYTHON.
    env.setdefault("KERIO_PYTHON", sys.executable)
    # conan, cmake and ninja come with this Python's environment (the nox venv).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def private_zig_cache() -> Path:
    return (paths.CACHE / "zig").resolve()


def log(msg: str) -> None:
    """Build progress goes to stderr: stdout stays free for a command's result (a
    session that builds and then prints JSON gives JSON alone on stdout)."""
    print(msg, file=sys.stderr, flush=True)


def run_tool(cmd, env, **kw):
    """Runs a pinned tool; its output goes to stderr (unless the caller redirects it)."""
    log("+ " + " ".join(str(c) for c in cmd))
    exe = shutil.which(str(cmd[0]), path=env["PATH"])
    if exe is None:
        raise UserError(f"{cmd[0]} not found: run this through nox (./nox -s build-i386), "
                        f"which installs the pinned tools of ci/tools.txt")
    if "stdout" not in kw and not kw.get("capture_output"):
        kw["stdout"] = 2  # the file descriptor: also right when sys.stderr is replaced
    result = subprocess.run([exe, *(str(c) for c in cmd[1:])], env=env, cwd=paths.ROOT, **kw)
    if result.returncode != 0:
        raise UserError(f"{Path(str(cmd[0])).name} failed (exit {result.returncode}); see above")
    return result
