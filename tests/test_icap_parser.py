"""Unit tests of avir_icap's pure part, the ICAP response parser
(icap/src/icap_parser.cpp): its C++ tests (icap/tests/icap_parser_test.cpp) are built
by CMake with the plugins, for each architecture, and run here through CTest.
"""

import pytest

from avkit import elf, facts
from avkit.build import cmake


@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_icap_parser_unit_tests(arch):
    program = cmake.unit_test_program("icap_parser_test", arch)
    assert facts.arch_of(elf.header(program)) == arch  # the architecture's own build
    result = cmake.run_unit_tests(arch, regex=r"^icap\.")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "icap.icap_parser_test" in result.stdout and "100% tests passed" in result.stdout
