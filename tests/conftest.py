"""Shared fixtures: where the built artifacts are, and which tests are unit tests.

The tests use what `python -m avkit build` left in dist/ (AVKIT_DIST_ROOT
overrides the folder); `nox -s tests` builds first. `nox -s unit` (pytest -m unit)
runs the unit tests alone: see pytest_collection_modifyitems.
"""

import os

import pytest

from avkit import elf, facts, paths
from avkit.check import avhost as client

#: the release architectures (cmake/architectures.json), the default (i386) first. Tests
#: where the architecture can matter (loading, the contract checks, the lifecycle, verdicts
#: through real servers, the kit, pools) take an `arch` parameter; pure protocol and parsing
#: logic runs once, on the default one.
ARCHS = list(facts.architectures())

# AVKIT_SANITIZED=1: the plugin tests that care run the same cases against the
# ASan+UBSan build (dist/i386-gcc-asan/, `python -m avkit build --toolchain gcc
# --sanitize`), as tests/test_faults.py does.
SANITIZED = os.environ.get("AVKIT_SANITIZED", "") not in ("", "0")
#: the architectures the arch-parametrized tests run on: the ASan build is i386 only
TESTED_ARCHS = ARCHS[:1] if SANITIZED else ARCHS


def _artifact(toolchain: str, name: str, arch: str = None):
    path = paths.dist_dir(toolchain, arch=arch) / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it first (./nox -s build-{arch or ARCHS[0]}"
            f"{' -- --toolchain gcc' if toolchain == 'gcc' else ''})"
        )
    # a test of one architecture must never run the other's binary by mistake
    assert facts.arch_of(elf.header(path)) == (arch or ARCHS[0]), path
    return path


@pytest.fixture(scope="session")
def dist():
    """Release output folder (zig toolchain) of the default architecture."""
    return paths.dist_dir("zig")


@pytest.fixture(scope="session")
def artifact():
    """artifact("avir_sample.so"), artifact("avhost", toolchain="gcc"),
    artifact("avir_clam.so", arch="x86_64")."""

    def find(name, toolchain="zig", arch=None):
        return _artifact(toolchain, name, arch)

    return find


@pytest.fixture(params=TESTED_ARCHS)
def arch(request):
    """Each release architecture in turn, for a test where it can matter."""
    return request.param


#: a plugin test that runs on both architectures: its `host` and `plugin` fixtures (which
#: read requested_arch) give that architecture's avhost and plugin
ON_BOTH_ARCHS = pytest.mark.parametrize("arch", TESTED_ARCHS)


def requested_arch(request):
    """The architecture a test is parametrized with (ON_BOTH_ARCHS), else None: the
    default one."""
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("arch") if callspec else None


@pytest.fixture
def host(under_test):
    """The avhost under test: the release one of the test's architecture (ON_BOTH_ARCHS),
    or the sanitized one under AVKIT_SANITIZED=1."""
    return under_test("avhost")


@pytest.fixture
def plugin(under_test, request):
    """The plugin under test, named by the module's PLUGIN (say "avir_clam.so"), found as
    `host` is."""
    return under_test(request.module.PLUGIN)


@pytest.fixture
def under_test(artifact, request):
    """under_test("avhost"): the release build's binary (of the test's architecture, see
    ON_BOTH_ARCHS), or the sanitized one (i386) under AVKIT_SANITIZED=1."""
    arch = requested_arch(request)

    def find(name):
        if not SANITIZED:
            return artifact(name, arch=arch)
        path = paths.dist_dir("gcc", sanitize=True) / name
        if not path.exists():
            pytest.fail(f"{path} is missing: python -m avkit build --toolchain gcc --sanitize")
        return path

    return find


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    """A private clamd with the tests' signatures (a module may define its own)."""
    from avkit.check.clamd import Clamd

    with Clamd(tmp_path_factory.mktemp("clamd")) as c:
        yield c


@pytest.fixture(scope="module")
def icap(tmp_path_factory):
    """A private c-icap with virus_scan over a clamd of its own (a module may define its own)."""
    from avkit.check.icap import CIcap, ClamdForIcap

    with ClamdForIcap(tmp_path_factory.mktemp("clamd_icap")) as c:
        with CIcap(tmp_path_factory.mktemp("icap"), c) as i:
            yield i


@pytest.fixture
def serve(host, plugin):
    """serve(options, *args): an `avhost serve` of the module's plugin (its `host` and
    `plugin` fixtures) kept alive across requests. At the end each one is closed and must
    have run clean: no violation, crash or restart, and every descriptor the plugin opened
    closed again by plugin_close (its connections, and a pool's probes)."""
    servers = []

    def start(options, *args):
        s = client.Serve(host, plugin, *args, options=options)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()
        assert s.violations() == [], s.records
        assert s.events("crash") == [] and s.events("restart") == [], s.records
        closes = s.events("close")
        assert closes and all(c["fds_after_close"] == c["fds_before_init"] for c in closes), closes


@pytest.fixture(scope="session")
def broken_of_arch():
    """broken("crash3") -> the path of avir_crash3.so of the gcc build (-m32);
    broken("crash3", arch="x86_64") of the x86_64 one: CMake builds every variant of
    tests/broken_plugins/ (its CMakeLists.txt lists them) with the project's flags."""

    def build(variant, arch=None):
        folder = paths.build_dir("gcc", arch=arch or ARCHS[0]) / "tests" / "broken_plugins"
        so = folder / f"avir_{variant}.so"
        if not so.is_file():
            pytest.fail(
                f"{so} is missing: add {variant!r} to tests/broken_plugins/CMakeLists.txt, "
                f"then ./nox -s build-{arch or ARCHS[0]} -- --toolchain gcc"
            )
        return so

    return build


@pytest.fixture(scope="session")
def broken(broken_of_arch):
    """broken("crash3"): see broken_of_arch."""
    return broken_of_arch


# --- unit and integration tests ---------------------------------------------------------
# A unit test needs no build, root, clamd, c-icap, QEMU or server of its own: `-m unit`
# runs those alone in under a minute. Everything else is marked integration. The rule
# is here, in one place, so no test module carries a marker of its own.

#: fixtures that need a build, a server or a VM: a test using one is an integration test
INTEGRATION_FIXTURES = {
    "artifact",
    "dist",
    "under_test",
    "host",
    "plugin",
    "serve",
    "clamd",
    "icap",
    "broken",
    "broken_of_arch",
    "plugins",
    "dist_dir",
}
#: modules whose tests build, package, boot or start servers in their own bodies
INTEGRATION_MODULES = {
    "test_author",
    "test_avhost",
    "test_bench_arch",
    "test_build",
    "test_clam_limits",
    "test_clam_plugin",
    "test_clam_pool",
    "test_deadlines",
    "test_exhaustion",
    "test_faults",
    "test_file_contents",
    "test_icap_plugin",
    "test_jobs",
    "test_kit",
    "test_lifecycle",
    "test_packages_arch",
    "test_reproducible",
    "test_sample_plugin",
    "test_smoke",
    "test_clam_parser",
    "test_icap_parser",
    "test_admin_check",
    "test_author_packaging",
    "test_sbom",
}
#: single tests of otherwise-unit modules that build or start a server
INTEGRATION_TESTS = {
    "test_build_prints_nothing_on_stdout",
    "test_audit_json_after_a_build_is_json_alone",
    "test_policies_are_ordered_and_the_zig_build_targets_the_default_floor",
    "test_a_release_whose_packages_lack_an_architecture_is_refused",
    "test_packaging_data_travels_with_an_installed_avkit",  # pip fetches setuptools
    "test_the_release_guide_followed_literally_in_a_clone",
}


def is_integration(item: pytest.Item) -> bool:
    return (
        item.module.__name__.rsplit(".", 1)[-1] in INTEGRATION_MODULES
        or item.originalname in INTEGRATION_TESTS
        or bool(INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration if is_integration(item) else pytest.mark.unit)
