"""Shared fixtures: where the built artifacts are.

The tests use what `python -m avkit build` left in dist/ (AVKIT_DIST_ROOT
overrides the folder); `nox -s tests` builds first.
"""
import pytest

from avkit import paths


def _artifact(toolchain: str, name: str):
    path = paths.dist_dir(toolchain) / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (./nox -s build-i386"
                    f"{' -- --toolchain gcc' if toolchain == 'gcc' else ''})")
    return path


@pytest.fixture(scope="session")
def dist():
    """Release output folder (zig toolchain)."""
    return paths.dist_dir("zig")


@pytest.fixture(scope="session")
def artifact():
    """artifact("avir_sample.so") or artifact("avhost", toolchain="gcc")."""
    def find(name, toolchain="zig"):
        return _artifact(toolchain, name)
    return find
