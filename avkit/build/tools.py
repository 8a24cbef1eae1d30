"""Running the pinned build tools (conan, cmake, ninja, zig) of the active environment.

Quiet by default: a build's tool output goes to its log (build/<arch>/build.log), named
with its last lines when a tool fails; -v/--verbose (set_verbose) shows it as it comes."""
from __future__ import annotations

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


#: -v/--verbose: the tools' own output shown as it comes, not only kept in the log
VERBOSE = False


def set_verbose(verbose: bool) -> None:
    global VERBOSE
    VERBOSE = verbose


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


#: how much of a failed tool's log is shown
TAIL_LINES = 30


def start_log(log_file: Path, title: str) -> None:
    """A fresh log for one build: the tools' output of the last build only."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(f"# {title}\n")


def shown(path: Path) -> str:
    """A path as the user reads it: relative to the source tree when inside it."""
    try:
        return str(Path(path).relative_to(paths.ROOT))
    except ValueError:
        return str(path)


def run_logged(cmd, env, log_file: Path, what: str, hint: str = "", cwd: Path | None = None
               ) -> subprocess.CompletedProcess[bytes]:
    """Runs a pinned tool with its output appended to `log_file` (its command line
    first); with --verbose, shown as well. A failure says what failed, names the
    log and shows its last lines."""
    exe = shutil.which(str(cmd[0]), path=env["PATH"])
    if exe is None:
        raise UserError(f"{cmd[0]} not found: run this through nox (./nox -s build-i386), "
                        f"which installs the pinned tools of ci/tools.txt")
    line = "+ " + " ".join(str(c) for c in cmd)
    if VERBOSE:
        log(line)
        result = subprocess.run([exe, *(str(c) for c in cmd[1:])], env=env,
                                cwd=cwd or paths.ROOT, stdout=2)
        if result.returncode != 0:
            raise UserError(f"{what} failed: {Path(str(cmd[0])).name} exited "
                            f"{result.returncode}; see above{'; ' + hint if hint else ''}")
        return result
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        out.write(line + "\n")
        out.flush()
        result = subprocess.run([exe, *(str(c) for c in cmd[1:])], env=env,
                                cwd=cwd or paths.ROOT, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        raise UserError(f"{what} failed: {Path(str(cmd[0])).name} exited "
                        f"{result.returncode}. The last {len(tail)} lines of its log, "
                        f"{log_file}:\n" + "\n".join("  " + t for t in tail)
                        + (f"\n{hint}" if hint else "")
                        + "\n(the whole log is in " + str(log_file) + "; -v shows it as it comes)")
    return result
