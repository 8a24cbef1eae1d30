"""The products' whole plugin lifecycle, with the plugins as shipped.

Kerio's avserver and Kerio's own test kit dlclose() a plugin after plugin_close
(shutdown, a plugin switch, the end of a kit test), then go on or leave through
exit(). avhost walks that path: every run ends with dlclose and exit(), and
`--reloads N` loads, uses, closes and unloads the plugin N times in one process.
A zig-linked C++ plugin that leaves a destructor on the exit list crashes the
process in exit(); these tests run the release (zig) build as well as gcc's,
because that defect exists only in one of them.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from avkit import paths
from avkit.check import avhost as client
from conftest import TESTED_ARCHS
from avkit.check.clamd import EICAR_NAME, Clamd
from avkit.facts import EICAR

ROOT = Path(__file__).resolve().parent.parent
TOOLCHAINS = ["zig", "gcc"]
ROUNDS = 100


def avhost(toolchain, mode, plugin, *args, options=None, timeout=600, arch=None):
    r = client.run(
        paths.dist_dir(toolchain, arch=arch) / "avhost",
        mode,
        plugin,
        "--no-logs",
        *args,
        options=options,
        timeout=timeout,
    )
    return r.returncode, r.records, r.stderr


def events(records, kind):
    return [r for r in records if r["event"] == kind]


def violations(records):
    return [v for r in records for v in r.get("violations", [])]


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    with Clamd(tmp_path_factory.mktemp("clamd")) as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lifecycle-files")
    names = []
    for i in range(4):
        (d / f"eicar{i}.com").write_bytes(EICAR)
        (d / f"clean{i}.txt").write_bytes(os.urandom(4096 + i))
        names += [d / f"eicar{i}.com", d / f"clean{i}.txt"]
    return names


def options(plugin_name, clamd):
    return clamd.plugin_options() if plugin_name == "avir_clam.so" else {}


@pytest.mark.parametrize("arch", TESTED_ARCHS)
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("plugin_name", ["avir_clam.so", "avir_sample.so"])
def test_hundred_load_use_unload_rounds_then_exit(toolchain, plugin_name, clamd, files, arch):
    """dlopen, set_plugin_config, plugin_init, plugin_thread_init from 4 threads, scans,
    plugin_thread_close, plugin_close, dlclose; 100 times in one process, then exit(0).
    On both architectures: the unload path (zig's missing __cxa_finalize) is the linker's."""
    plugin = paths.dist_dir(toolchain, arch=arch) / plugin_name
    code, recs, err = avhost(
        toolchain,
        "scan",
        plugin,
        *files,
        "--threads",
        4,
        "--reloads",
        ROUNDS,
        options=options(plugin_name, clamd),
        arch=arch,
    )
    assert violations(recs) == [], err[-2000:]
    assert code == 0, err[-2000:]
    unloads = events(recs, "unload")
    assert [u["round"] for u in unloads] == list(range(1, ROUNDS + 1))
    assert len({r["pid"] for r in events(recs, "load")}) == 1, "all rounds in one process"
    assert all(u["result"] == 0 for u in unloads)
    # Flat: every round ends with the descriptors and threads it started with.
    assert {(u["fds_before_load"], u["fds_after_unload"]) for u in unloads} == {
        (unloads[0]["fds_before_load"],) * 2
    }
    assert {(u["threads_before_load"], u["threads_after_unload"]) for u in unloads} == {(1, 1)}
    (memory,) = events(recs, "reloads")
    assert memory["rounds"] == ROUNDS and memory["violations"] == []
    assert memory["memory_checked"] == (os.environ.get("AVKIT_SANITIZED") != "1")
    # Several workers, each with its own context, in every round.
    assert len(events(recs, "thread_init")) >= 2 * ROUNDS
    verdicts = [r["verdict"] for r in events(recs, "scan")]
    assert verdicts.count("VIRUS_FOUND") == 4 * ROUNDS and verdicts.count("OK") == 4 * ROUNDS
    if plugin_name == "avir_clam.so":
        assert {r["vir_info"] for r in events(recs, "scan") if r["code"] == 2} == {EICAR_NAME}
    # What glibc does with the file is reported: the zig build must really be unmapped.
    if toolchain == "zig":
        assert all(u["unmapped"] for u in unloads)


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_a_plugin_authors_cpp_plugin_survives_unload_and_exit(toolchain, tmp_path):
    """The fix lives in api/ for every plugin: a C++ plugin with a function-local static
    (its destructor registered with __cxa_atexit on first use), built out of tree with
    kerio_add_plugin, is finalized by dlclose and the host exits cleanly."""
    shutil.copytree(ROOT / "api", tmp_path / "api")
    src = tmp_path / "avir_statics"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.21)\n"
        "project(avir_statics LANGUAGES C CXX)\n"
        "include(../api/KerioPlugin.cmake)\n"
        "kerio_add_plugin(avir_statics SOURCES plugin.cpp)\n"
    )
    (src / "plugin.cpp").write_text(r"""
#include <string>
#include "avPlugin.h"
#include "avCommon.h"

static const avp_option kOptions[] = {{"Greeting", "hello"}};
const avp_plugin_desc avp_plugin = {"avir_statics", "Statics test plugin 1.0 for Kerio",
                                    kOptions, 1};

static std::string &engine_name()
{
    static std::string name(std::string(64, 'x') + "engine"); // destructor via __cxa_atexit
    return name;
}

int avp_init(void) { return engine_name().size() > 0; }
void avp_close(void) {}
int avp_thread_init(void **context) { *context = nullptr; return 1; }
void avp_thread_close(void *context) { (void)context; }
int avp_test_file(void *context, const char *filename, const char *realname, char *result)
{
    (void)context; (void)filename; (void)realname;
    result[0] = '\0';
    return engine_name().empty() ? AVCHK_FAILED : AVCHK_OK;
}
""")
    toolchain_file = ROOT / "cmake" / "toolchains" / f"{toolchain}.cmake"
    build = tmp_path / "build"
    env = dict(os.environ)
    subprocess.run(
        [
            "cmake",
            "-S",
            src,
            "-B",
            build,
            "-G",
            "Ninja",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_TOOLCHAIN_FILE={toolchain_file}",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    subprocess.run(["cmake", "--build", build], check=True, env=env, capture_output=True)
    plugin = build / "avir_statics.so"
    clean = tmp_path / "clean.txt"
    clean.write_bytes(b"clean\n")
    code, recs, err = avhost(toolchain, "scan", plugin, clean, "--reloads", 3)
    assert violations(recs) == [], err[-2000:]
    assert code == 0
    assert [r["verdict"] for r in events(recs, "scan")] == ["OK"] * 3
