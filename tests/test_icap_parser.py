"""Unit tests of avir_icap's pure part, the ICAP response parser
(icap/src/icap_parser.cpp): its C++ tests (icap/tests/icap_parser_test.cpp) are
compiled for this machine with the host's g++ and run here, under AddressSanitizer
and UBSan when the compiler has them.
"""
import shutil
import subprocess

import pytest

from avkit import paths

ICAP = paths.ROOT / "icap"
SOURCES = [ICAP / "tests" / "icap_parser_test.cpp", ICAP / "src" / "icap_parser.cpp"]


def _compile(out, sanitize):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no host C++ compiler (g++): apt-get install g++")
    cmd = [cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-g", "-o", str(out),
           f"-I{paths.ROOT / 'netplugin' / 'src'}", *map(str, SOURCES)]  # shared headers
    if sanitize:
        cmd[1:1] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_icap_parser_unit_tests(tmp_path):
    program = tmp_path / "icap_parser_test"
    result = _compile(program, True)
    if result.returncode != 0 and "sanitize" in result.stderr:
        result = _compile(program, False)  # a compiler without the sanitizer runtimes
    assert result.returncode == 0, f"compiling the ICAP parser tests failed:\n{result.stderr}"
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failures" in run.stdout
    assert int(run.stdout.split()[0]) > 50  # the checks ran
