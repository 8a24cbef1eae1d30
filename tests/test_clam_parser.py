"""Unit tests of avir_clam's pure parts: the clamd reply parser
(clam/src/reply_parser.cpp), clamd discovery with the diagnosis of failed
socket connections (clam/src/discovery.cpp), the reading of clamd.conf's size
limits (clam/src/clamd_conf.cpp), the FdPass choice
(clam/src/fdpass.cpp) and the pool's list syntax and shared health
(netplugin/src/pool.cpp, which avir_icap shares).

Their C++ tests (clam/tests/*_test.cpp, netplugin/tests/*_test.cpp) are built by
CMake with the plugins, for each architecture, and run here through CTest (the
ASan+UBSan build, `--toolchain gcc --sanitize`, instruments them as well). The
encrypted zip built into the plugin is checked here too.
"""

import io
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from avkit import facts, paths
from avkit.build import cmake

CLAM = paths.ROOT / "clam"
NETPLUGIN = paths.ROOT / "netplugin"
UNIT_TESTS = [
    "clam.reply_parser_test",
    "clam.discovery_test",
    "clam.clamd_conf_test",
    "clam.fdpass_test",
    "netplugin.pool_test",
    "netplugin.deadline_test",
]


def _build(out, sources):
    """The CMake-built program of sources[0] (i386); kept for tests/test_deadlines.py,
    which still asks for its program this way."""
    return cmake.unit_test_program(Path(sources[0]).stem)


@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_clam_and_netplugin_unit_tests(arch):
    result = cmake.run_unit_tests(arch, regex=r"^(clam|netplugin)\.")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in UNIT_TESTS:
        assert re.search(rf"{re.escape(name)} \.+ +Passed", result.stdout), result.stdout


@pytest.mark.parametrize("depth", [1, 3, 64])
def test_limits_probe_is_a_zip_nested_all_the_way_down(tmp_path, depth):
    """plugin_init's AlertExceedsMax probe: `depth` valid stored zips, one byte at the bottom."""
    program = cmake.unit_test_program("limits_probe_dump")
    data = subprocess.run(
        [str(program), str(depth)], capture_output=True, timeout=60, check=True
    ).stdout
    assert len(data) == 1 + 100 * depth  # 100 bytes of headers per level
    for level in range(depth):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            (member,) = z.infolist()
            assert member.compress_type == zipfile.ZIP_STORED and member.filename == "a"
            assert z.testzip() is None, f"bad CRC at level {level}"
            data = z.read(member)
    assert data == b"x"


def test_built_in_probe_is_an_encrypted_zip():
    """The AlertEncrypted probe of plugin_init: one stored member, encrypted."""
    text = (CLAM / "src" / "encrypted_probe.h").read_text()
    body = text[text.index("kEncryptedProbeZip[] = {") : text.index("};")]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert str(len(data)) + " bytes" in text
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        (member,) = z.infolist()
        assert member.flag_bits & 1 and member.compress_type == zipfile.ZIP_STORED
        with pytest.raises(RuntimeError, match="encrypted"):
            z.read(member)
        assert b"not a virus" in z.read(member, pwd=b"avir_clam")
