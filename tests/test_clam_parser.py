"""Unit tests of avir_clam's pure parts: the clamd reply parser
(clam/src/reply_parser.cpp), clamd discovery with the diagnosis of failed
socket connections (clam/src/discovery.cpp), the reading of clamd.conf's size
limits (clam/src/clamd_conf.cpp), the FdPass choice
(clam/src/fdpass.cpp) and the pool's list syntax and shared health
(netplugin/src/pool.cpp, which avir_icap shares).

Their C++ tests (clam/tests/*_test.cpp, netplugin/tests/pool_test.cpp) are
compiled for this machine with the host's g++ and run here, under
AddressSanitizer and UBSan when the compiler has them. The encrypted zip built into the plugin is checked here too.
"""
import io
import re
import shutil
import subprocess
import zipfile

import pytest

from avkit import paths

CLAM = paths.ROOT / "clam"
SOURCES = [CLAM / "tests" / "reply_parser_test.cpp", CLAM / "src" / "reply_parser.cpp"]
DISCOVERY_SOURCES = [CLAM / "tests" / "discovery_test.cpp", CLAM / "src" / "discovery.cpp"]
FDPASS_SOURCES = [CLAM / "tests" / "fdpass_test.cpp", CLAM / "src" / "fdpass.cpp"]
NETPLUGIN = paths.ROOT / "netplugin"
POOL_SOURCES = [NETPLUGIN / "tests" / "pool_test.cpp", NETPLUGIN / "src" / "pool.cpp"]
CLAMD_CONF_SOURCES = [CLAM / "tests" / "clamd_conf_test.cpp", CLAM / "src" / "clamd_conf.cpp"]
PROBE_SOURCES = [CLAM / "tests" / "limits_probe_dump.cpp", CLAM / "src" / "limits_probe.cpp"]


def _compile(out, sanitize, sources=SOURCES):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no host C++ compiler (g++): apt-get install g++")
    cmd = [cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-g", "-o", str(out),
           f"-I{NETPLUGIN / 'src'}", *map(str, sources)]
    if sanitize:
        cmd[1:1] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    return subprocess.run(cmd, capture_output=True, text=True)


def _build(out, sources):
    result = _compile(out, True, sources)
    if result.returncode != 0 and "sanitize" in result.stderr:
        result = _compile(out, False, sources)  # a compiler without the sanitizer runtimes
    assert result.returncode == 0, f"compiling {sources[0].name} failed:\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def parser_test(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("parser") / "reply_parser_test", SOURCES)


def test_reply_parser_unit_tests(parser_test):
    result = subprocess.run([str(parser_test)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


def test_discovery_unit_tests(tmp_path):
    program = _build(tmp_path / "discovery_test", DISCOVERY_SOURCES)
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


def test_clamd_conf_unit_tests(tmp_path):
    program = _build(tmp_path / "clamd_conf_test", CLAMD_CONF_SOURCES)
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


def test_pool_unit_tests(tmp_path):
    program = _build(tmp_path / "pool_test", POOL_SOURCES)
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


def test_fdpass_unit_tests(tmp_path):
    program = _build(tmp_path / "fdpass_test", FDPASS_SOURCES)
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout


@pytest.mark.parametrize("depth", [1, 3, 64])
def test_limits_probe_is_a_zip_nested_all_the_way_down(tmp_path, depth):
    """plugin_init's AlertExceedsMax probe: `depth` valid stored zips, one byte at the bottom."""
    program = _build(tmp_path / "limits_probe_dump", PROBE_SOURCES)
    data = subprocess.run([str(program), str(depth)], capture_output=True, timeout=60,
                          check=True).stdout
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
    body = text[text.index("kEncryptedProbeZip[] = {"):text.index("};")]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert str(len(data)) + " bytes" in text
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        (member,) = z.infolist()
        assert member.flag_bits & 1 and member.compress_type == zipfile.ZIP_STORED
        with pytest.raises(RuntimeError, match="encrypted"):
            z.read(member)
        assert b"not a virus" in z.read(member, pwd=b"avir_clam")
