"""apt-get and apt-cache in a private state (their own sources, dpkg status and
architectures), so the package tests read our repositories as a machine would,
without touching the system's apt."""

import subprocess
from pathlib import Path


def private_apt(state: Path, sources: list, archs: list, status: str = "") -> list:
    """The apt options of a state in `state`: `sources` are sources.list lines, `archs`
    the machine's architectures (the first the native one, the rest added with
    `dpkg --add-architecture`), `status` the dpkg status file (what is installed)."""
    for d in (
        "lists/partial",
        "cache/archives/partial",
        "etc/sources.list.d",
        "etc/preferences.d",
        "etc/apt.conf.d",
    ):
        (state / d).mkdir(parents=True, exist_ok=True)
    (state / "etc/sources.list").write_text("".join(f"{line}\n" for line in sources))
    (state / "status").write_text(status)
    opts = [
        "-o",
        f"Dir::Etc={state}/etc",
        "-o",
        f"Dir::State={state}",
        "-o",
        f"Dir::State::status={state}/status",
        "-o",
        f"Dir::Cache={state}/cache",
        "-o",
        f"APT::Architecture={archs[0]}",
        "-o",
        "Debug::NoLocking=1",
    ]
    for arch in archs:
        opts += ["-o", f"APT::Architectures::={arch}"]
    return opts


def apt(tool: str, opts: list, *args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([tool, *opts, *[str(a) for a in args]], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(
            f"{tool} {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r
