"""The plugin audit (avkit audit): each defect built into a real ELF file is caught
and explained; the release plugins pass the default policy; the package
dependencies are derived from what a plugin really needs."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import elf, facts, paths
from avkit.ship import audit

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc-multilib")

GOOD_C = r"""
#include <string.h>
#define EXPORT __attribute__((visibility("default")))
static int table[14];
EXPORT void *get_plugin_extended_iface(unsigned int *version)
{
    *version = 2;
    memset(table, 0, sizeof table);
    return table;
}
"""
HARDENED = ["-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack", "-Wl,--build-id=sha1"]


def build(
    tmp_path: Path,
    name: str,
    source: str = GOOD_C,
    cflags=("-fPIC",),
    ldflags=(),
    strip=True,
    lang="c",
    m32=True,
) -> Path:
    """Compile one shared object; by default hardened and stripped like a release plugin."""
    src = tmp_path / f"{name}.{lang}"
    src.write_text(source)
    out = tmp_path / f"{name}.so"
    compiler = "g++" if lang == "cpp" else "gcc"
    cmd = [
        compiler,
        *(["-m32"] if m32 else []),
        "-O2",
        "-fvisibility=hidden",
        *cflags,
        "-shared",
        str(src),
        "-o",
        str(out),
        *HARDENED,
        *ldflags,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    if strip:
        subprocess.run(["objcopy", "--strip-unneeded", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def data():
    return audit.load_policies()


def default_violations(path, data):
    report = audit.audit_file(path, data)
    return report, report["violations"][data["default"]]


def checks(violations):
    return sorted({v["check"] for v in violations})


@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_policies_are_ordered_and_the_zig_build_targets_the_default_floor(arch):
    data = audit.load_policies(arch=arch)
    names = [p["name"] for p in data["policies"]]
    assert data["default"] in names
    assert {p["arch"] for p in data["policies"]} == {arch}
    priorities = [p["priority"] for p in data["policies"]]
    assert priorities == sorted(priorities, reverse=True) and len(set(priorities)) == len(
        priorities
    )
    default = audit.policy_by_name(data, data["default"])
    assert default["symbol_versions"]["GLIBC"] == facts.glibc_floor(arch)
    # The release toolchain read its floor from the same file when the build configured it.
    cache = (paths.build_dir("zig", arch=arch) / "CMakeCache.txt").read_text()
    assert f"KERIO_GLIBC_FLOOR:STRING={facts.glibc_floor(arch)}\n" in cache
    assert f"KERIO_ARCH:STRING={arch}\n" in cache
    for p in data["policies"]:
        assert p["exports"] == ["get_plugin_extended_iface"]
        assert set(p["hardening"]) <= set(audit.HARDENING)
        for lib in p["needed"]:
            assert lib in data["packages"], f"{lib} has no package for the derived dependencies"


def test_a_clean_plugin_passes(tmp_path, data):
    so = build(tmp_path, "good")
    report, violations = default_violations(so, data)
    assert violations == []
    assert report["policy"] is not None


def test_extra_export_is_caught(tmp_path, data):
    so = build(tmp_path, "export", GOOD_C + "EXPORT int helper_leak(void) { return 1; }\n")
    report, violations = default_violations(so, data)
    assert checks(violations) == ["exports"]
    assert "helper_leak" in violations[0]["message"]
    assert violations[0]["symbols"] == ["helper_leak"]
    assert report["policy"] is None  # every policy allows exactly the entry point


def test_missing_entry_point_is_caught(tmp_path, data):
    so = build(tmp_path, "noentry", GOOD_C.replace("get_plugin_extended_iface", "other_name"))
    _, violations = default_violations(so, data)
    messages = " ".join(v["message"] for v in violations)
    assert "does not export get_plugin_extended_iface" in messages
    assert "other_name" in messages


def test_too_recent_glibc_symbol_is_explained(tmp_path, data):
    source = (
        GOOD_C
        + r"""
#include <pthread.h>
static void *run(void *arg) { return arg; }
int start(void) { pthread_t t; return pthread_create(&t, 0, run, 0); }
"""
    )
    so = build(tmp_path, "pthread", source, ldflags=["-pthread"])
    report, violations = default_violations(so, data)
    assert checks(violations) == ["symbol_versions"]
    message = violations[0]["message"]
    # Names the version, the limit, the symbol and the library it must come from.
    assert "GLIBC_2.34" in message and "2.12" in message
    assert "pthread_create@GLIBC_2.34 from libc.so.6" in message
    assert "pthread_create@GLIBC_2.34 (libc.so.6)" in violations[0]["symbols"]
    # The build machine's policy accepts it, so that is the strictest one satisfied.
    assert report["policy"] == "debian12-dev"
    assert report["dependencies"]["glibc"] == "2.34"
    assert "libc6 (>= 2.34)" in report["dependencies"]["deb"]
    assert "libc.so.6(GLIBC_2.34)" in report["dependencies"]["rpm"]


@pytest.mark.parametrize(
    "dtags,tag", [("--disable-new-dtags", "DT_RPATH"), ("--enable-new-dtags", "DT_RUNPATH")]
)
def test_rpath_and_runpath_are_caught(tmp_path, data, dtags, tag):
    so = build(tmp_path, "rpath", ldflags=["-Wl,-rpath,/opt/evil/lib", f"-Wl,{dtags}"])
    assert tag in elf.dynamic_tags(so)
    _, violations = default_violations(so, data)
    assert checks(violations) == ["no_rpath"]
    assert "/opt/evil/lib" in violations[0]["message"]


def test_executable_stack_is_caught(tmp_path, data):
    so = build(tmp_path, "execstack", ldflags=["-Wl,-z,execstack"])
    _, violations = default_violations(so, data)
    assert checks(violations) == ["noexec_stack"]
    assert "executable stack" in violations[0]["message"]


def test_text_relocations_are_caught(tmp_path, data):
    source = GOOD_C + "int counter;\nint bump(void) { return ++counter; }\n"
    so = build(
        tmp_path,
        "textrel",
        source,
        cflags=["-fno-pic"],
        ldflags=["-Wl,--no-warn-shared-textrel"] if _ld_knows("--no-warn-shared-textrel") else [],
    )
    assert elf.hardening(so)["textrel"]
    _, violations = default_violations(so, data)
    assert "no_textrel" in checks(violations)
    assert "DT_TEXTREL" in next(v for v in violations if v["check"] == "no_textrel")["message"]


def _ld_knows(option):
    r = subprocess.run(["ld", "--help"], capture_output=True, text=True)
    return option in r.stdout


def test_unstripped_file_is_caught(tmp_path, data):
    so = build(tmp_path, "unstripped", cflags=["-fPIC", "-g"], strip=False)
    _, violations = default_violations(so, data)
    assert checks(violations) == ["stripped"]


def test_missing_build_id_is_caught(tmp_path, data):
    so = build(tmp_path, "nobuildid", ldflags=["-Wl,--build-id=none"])
    _, violations = default_violations(so, data)
    assert checks(violations) == ["build_id"]


def test_lazy_binding_and_missing_relro_are_caught(tmp_path, data):
    so = build(tmp_path, "lazy", ldflags=["-Wl,-z,lazy", "-Wl,-z,norelro"])
    _, violations = default_violations(so, data)
    assert checks(violations) == ["bind_now", "relro"]


def test_cxx_runtime_dependency_is_caught(tmp_path, data):
    source = (
        '#include <string>\nextern "C" __attribute__((visibility("default")))\n'
        "void *get_plugin_extended_iface(unsigned *v) {\n"
        '  static std::string s; s += "x"; *v = 2; return &s; }\n'
    )
    so = build(tmp_path, "cxx", source, lang="cpp")
    report, violations = default_violations(so, data)
    assert "needed" in checks(violations)
    assert any("libstdc++.so.6" in v["message"] for v in violations if v["check"] == "needed")
    assert "libstdc++6" in report["dependencies"]["deb"]


def test_64bit_file_is_caught(tmp_path, data):
    so = build(tmp_path, "x86_64", m32=False)
    report, violations = default_violations(so, data)
    assert "elf" in checks(violations)
    assert "ELFCLASS64 EM_X86_64" in violations[0]["message"]
    assert report["policy"] is None


def test_each_file_is_checked_against_its_own_architectures_policies(tmp_path):
    """A clean x86_64 plugin passes the x86_64 floor; an i386 one, the i386 floor; and either
    fails the other architecture's policies on its ELF header alone."""
    for arch, m32 in (("i386", True), ("x86_64", False)):
        so = build(tmp_path, f"good-{arch}", m32=m32)
        report = audit.audit_file(so)
        assert report["arch"] == arch
        assert report["default_policy"] == facts.architecture(arch)["audit_policy"]
        assert report["violations"][report["default_policy"]] == []
        other = audit.load_policies(arch="x86_64" if arch == "i386" else "i386")
        (v,) = audit.audit_file(so, other)["violations"][other["default"]]
        assert v["check"] == "elf" and f"an {other['arch']} avserver loads only" in v["message"]


def test_64bit_rpm_requirements_are_those_of_the_64bit_glibc(tmp_path):
    source = GOOD_C + '#include <stdlib.h>\nint uses_libc(void) { return getenv("X") != 0; }\n'
    deps = audit.audit_file(build(tmp_path, "good64", source, m32=False))["dependencies"]
    assert deps["rpm"][:2] == ["libc.so.6()(64bit)", "libc.so.6(GLIBC_2.2.5)(64bit)"]
    assert deps["deb"] == ["libc6 (>= 2.2.5)"]


def test_cli_exit_codes_and_json(tmp_path):
    bad = build(tmp_path, "export", GOOD_C + "EXPORT int helper_leak(void) { return 1; }\n")
    good = build(tmp_path, "good")
    run = [sys.executable, "-m", "avkit", "audit"]
    r = subprocess.run([*run, str(good)], capture_output=True, text=True, cwd=paths.ROOT)
    assert r.returncode == 0, r.stderr
    assert re.search(
        r'good\.so: OK for policy "kerio-glibc2\.12"; satisfies "kerio-glibc2\.5"', r.stdout
    ), r.stdout
    r = subprocess.run(
        [*run, "--json", str(good), str(bad)], capture_output=True, text=True, cwd=paths.ROOT
    )
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    by_name = {rep["name"]: rep for rep in doc["reports"]}
    assert by_name["good.so"]["violations"]["kerio-glibc2.12"] == []
    assert by_name["export.so"]["violations"]["kerio-glibc2.12"][0]["symbols"] == ["helper_leak"]
    assert "export.so" in r.stderr
    r = subprocess.run(
        [*run, "--policy", "no-such-policy", str(good)],
        capture_output=True,
        text=True,
        cwd=paths.ROOT,
    )
    assert r.returncode == 1 and "no audit policy named 'no-such-policy'" in r.stderr


def readelf_glibc_max(path) -> str:
    """An oracle independent of pyelftools: the highest GLIBC_x in readelf -V."""
    out = subprocess.run(
        ["readelf", "-V", "-W", str(path)], capture_output=True, text=True, check=True
    ).stdout
    versions = re.findall(r"Name: GLIBC_([0-9.]+)", out)
    return max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


def release_plugins(dist):
    plugins = audit.plugins_in(dist)
    assert dist / "avir_sample.so" in plugins
    return plugins


def test_release_plugins_pass_the_default_policy(artifact, arch):
    artifact("avir_sample.so", arch=arch)
    data = audit.load_policies(arch=arch)
    mark = "(64bit)" if facts.architecture(arch)["elf_class"] == 64 else ""
    for so in release_plugins(paths.dist_dir("zig", arch=arch)):
        report, violations = default_violations(so, data)
        assert violations == [], audit.format_report(report, data, data["default"])
        glibc = readelf_glibc_max(so)
        assert report["dependencies"]["glibc"] == glibc
        assert report["dependencies"]["deb"] == [f"libc6 (>= {glibc})"]
        assert f"libc.so.6(GLIBC_{glibc}){mark}" in report["dependencies"]["rpm"]
        assert ("libc.so.6()(64bit)" if mark else "libc.so.6") in report["dependencies"]["rpm"]


def test_audit_command_passes_on_the_release_of_each_architecture(artifact):
    for arch in facts.architectures():
        artifact("avir_sample.so", arch=arch)
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "audit"], capture_output=True, text=True, cwd=paths.ROOT
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for arch in facts.architectures():
        policy = facts.architecture(arch)["audit_policy"]
        for so in release_plugins(paths.dist_dir("zig", arch=arch)):
            assert f'[{arch}] {so.name}: OK for policy "{policy}"' in r.stdout


def test_each_reason_is_printed_once_with_the_policies_it_fails(tmp_path, data):
    """A leaked export fails every policy: one line says so and names them all, instead of
    the same line under each policy."""
    bad = build(tmp_path, "export", GOOD_C + "EXPORT int helper_leak(void) { return 1; }\n")
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "audit", str(bad)],
        capture_output=True,
        text=True,
        cwd=paths.ROOT,
    )
    assert r.returncode == 1
    leak = [line for line in r.stdout.splitlines() if "helper_leak" in line and "- " in line]
    assert len(leak) == 1, r.stdout
    at = r.stdout.splitlines().index(leak[0])
    names = [p["name"] for p in data["policies"]]
    assert len(names) > 1
    assert r.stdout.splitlines()[at + 1].strip() == f"fails: {', '.join(names)}", r.stdout


def test_a_reason_some_policies_allow_names_only_those_it_fails(data):
    """A symbol version above some floors and not others: one reason, its policies only."""
    report = {"violations": {p["name"]: [] for p in data["policies"]}}
    strict, *rest = [p["name"] for p in data["policies"]]
    report["violations"][strict] = [
        {
            "check": "symbol_versions",
            "reason": "GLIBC_X is too recent",
            "message": "GLIBC_X is too recent (above 1)",
        }
    ]
    assert audit.reasons(report, data) == {"GLIBC_X is too recent": [strict]}


@pytest.mark.parametrize(
    "args", [["audit", "GOOD", "GOOD", "GOOD"], ["audit", "--json", "GOOD"], ["--help"]]
)
def test_a_closed_stdout_ends_the_command_quietly(tmp_path, args):
    """`avkit audit ... | head -1`: the reader leaves; no BrokenPipeError traceback."""
    good = build(tmp_path, "good")
    argv = [str(good) if a == "GOOD" else a for a in args]
    p = subprocess.Popen(
        [sys.executable, "-m", "avkit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=paths.ROOT,
    )
    p.stdout.close()  # the reader is gone before the first line
    _, err = p.communicate(timeout=120)
    assert err.decode() == ""
    if args != ["--help"]:  # argparse's help ignores a closed stdout itself (status 0)
        assert p.returncode == 141  # as a tool killed by SIGPIPE: pipefail still sees it
    shell = subprocess.run(
        f"{sys.executable} -m avkit {' '.join(argv)} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=paths.ROOT,
    )
    assert shell.stderr == "" and len(shell.stdout.splitlines()) == 1, shell
