"""`avkit bench --arch`: the benchmark runs the avhost and plugins of the architecture
asked for, and keeps each architecture's figures apart (the cells themselves are
exercised by `nox -s bench`; the figures are not a test: the machine is shared)."""

import os
import subprocess
import sys

from avkit import facts, paths
from avkit.commands.main_bench import default_output


def test_each_architecture_has_its_own_figures():
    assert default_output(facts.default_arch(), "json") == paths.BUILD / "bench" / "bench.json"
    assert default_output("x86_64", "png") == paths.BUILD / "bench" / "bench-x86_64.png"


def test_bench_x86_64_runs_the_64_bit_build(tmp_path):
    """With no dist/x86_64/ the x86_64 run stops at once, naming the 64-bit plugin and
    the build that makes it (never falling back to the i386 one)."""
    env = dict(os.environ, AVKIT_DIST_ROOT=str(tmp_path / "dist"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avkit",
            "bench",
            "--arch",
            "x86_64",
            "--quick",
            "--json",
            tmp_path / "b.json",
            "--png",
            tmp_path / "b.png",
        ],
        cwd=paths.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    folder = facts.architecture("x86_64")["dist"]["zig"]
    assert f"dist/{folder}/avir_clam.so not found" in r.stderr, r.stderr
    assert "python -m avkit build --arch x86_64" in r.stderr, r.stderr
    assert not (tmp_path / "b.json").exists()
