"""ELF facts of the release plugins (every avir_*.so of the release dist folder: the
sample plugin always, the ClamAV plugin once it is built), checked against readelf
as an independent oracle, plus the avkit.elf helpers themselves."""

import re
import subprocess

import pytest

from avkit import elf, facts
from avkit.ship import audit


def release_plugins(dist, artifact):
    artifact("avir_sample.so")
    return audit.plugins_in(dist)


def glibc_floor():
    return tuple(int(x) for x in facts.glibc_floor().split("."))


def readelf(*args):
    return subprocess.run(
        ["readelf", "-W", *map(str, args)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def plugins(dist, artifact):
    return release_plugins(dist, artifact)


def test_class_and_machine(plugins):
    for so in plugins:
        h = readelf("-h", so)
        assert re.search(r"Class:\s+ELF32", h), so
        assert re.search(r"Machine:\s+Intel 80386", h), so
        assert re.search(r"Type:\s+DYN", h), so
        assert elf.header(so) == {"class": 32, "machine": "EM_386", "type": "ET_DYN"}


def test_exactly_one_exported_function(plugins):
    for so in plugins:
        defined = [
            line.split()
            for line in readelf("--dyn-syms", so).splitlines()
            if re.match(r"\s*\d+:", line)
        ]
        exported = [
            f
            for f in defined
            if f[6] != "UND"
            and f[4] in ("GLOBAL", "WEAK")
            and f[5] in ("DEFAULT", "PROTECTED")
            and len(f) > 7
        ]
        assert [(f[3], f[7]) for f in exported] == [("FUNC", "get_plugin_extended_iface")], so
        assert elf.exported_symbols(so) == ["get_plugin_extended_iface"]


def test_no_glibc_symbol_above_the_floor(plugins):
    floor = glibc_floor()
    for so in plugins:
        versions = re.findall(r"Name: GLIBC_([0-9.]+)", readelf("-V", so))
        assert versions, f"{so} has no versioned glibc references at all?"
        too_new = [v for v in versions if tuple(int(x) for x in v.split(".")) > floor]
        assert too_new == [], f"{so} needs GLIBC {too_new} above the floor {floor}"
        assert elf.highest_versions(so)["GLIBC"] <= floor


def test_no_cxx_runtime_dependency(plugins):
    for so in plugins:
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", readelf("-d", so))
        assert needed, so
        assert not [n for n in needed if n.startswith(("libstdc++", "libgcc_s", "libc++"))], needed
        assert elf.needed(so) == needed
        assert not re.search(r"Name: (GLIBCXX|CXXABI|GCC)_", readelf("-V", so))


def test_build_id_and_hardening_match_readelf(plugins):
    for so in plugins:
        notes = readelf("-n", so)
        assert elf.build_id(so) == re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
        h = elf.hardening(so)
        program = readelf("-l", so)
        stack = re.search(r"GNU_STACK(?:\s+\S+){5}\s+(\S+)", program).group(1)
        assert h["exec_stack"] is ("E" in stack)
        assert h["relro"] is ("GNU_RELRO" in program)
        dynamic = readelf("-d", so)
        assert h["bind_now"] is bool(re.search(r"BIND_NOW|Flags: NOW", dynamic))
        assert h["textrel"] is ("TEXTREL" in dynamic)
        assert h["stripped"] is (".symtab" not in readelf("-S", so))


def test_versioned_imports_match_readelf(plugins):
    for so in plugins:
        expected = set()
        for line in readelf("--dyn-syms", so).splitlines():
            m = re.search(r"\sUND\s+(\S+)@(GLIBC_[0-9.]+)", line)
            if m:
                expected.add((m.group(1), m.group(2)))
        got = {(s, v) for s, v, _lib in elf.versioned_imports(so)}
        assert got == expected
        libs = {lib for _s, _v, lib in elf.versioned_imports(so)}
        assert libs <= set(elf.needed(so))
