"""Unit tests of avir_clam's clamd reply parser (clam/src/reply_parser.cpp).

The parser is a pure function, so its C++ tests (clam/tests/reply_parser_test.cpp)
are compiled for this machine with the host's g++ and run here, under
AddressSanitizer and UBSan when the compiler has them.
"""
import shutil
import subprocess

import pytest

from avkit import paths

SOURCES = [paths.ROOT / "clam" / "tests" / "reply_parser_test.cpp",
           paths.ROOT / "clam" / "src" / "reply_parser.cpp"]


def _compile(out, sanitize):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no host C++ compiler (g++): apt-get install g++")
    cmd = [cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-g", "-o", str(out),
           *map(str, SOURCES)]
    if sanitize:
        cmd[1:1] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def parser_test(tmp_path_factory):
    out = tmp_path_factory.mktemp("parser") / "reply_parser_test"
    result = _compile(out, sanitize=True)
    if result.returncode != 0 and "sanitize" in result.stderr:
        result = _compile(out, sanitize=False)  # a compiler without the sanitizer runtimes
    assert result.returncode == 0, f"compiling the parser tests failed:\n{result.stderr}"
    return out


def test_reply_parser_unit_tests(parser_test):
    result = subprocess.run([str(parser_test)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failures" in result.stdout
