"""Small pure helpers over pyelftools: facts about one ELF file.

Shared by the build (build-ids), the audit and the tests.
"""
import re
from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import NoteSection


def _open(path):
    f = open(path, "rb")
    return f, ELFFile(f)


def header(path) -> dict:
    f, elf = _open(path)
    with f:
        return {"class": elf.elfclass, "machine": elf["e_machine"], "type": elf["e_type"]}


def build_id(path) -> str:
    """The GNU build-id as hex, or "" when there is none."""
    f, elf = _open(path)
    with f:
        for section in elf.iter_sections():
            if isinstance(section, NoteSection):
                for note in section.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return note["n_desc"]
    return ""


def dynamic_tags(path) -> dict:
    """DT_* tag name -> list of values (strings for NEEDED/RPATH/RUNPATH/SONAME)."""
    f, elf = _open(path)
    tags = {}
    with f:
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    value = getattr(tag, tag.entry.d_tag[3:].lower(), tag.entry.d_val)
                    tags.setdefault(tag.entry.d_tag, []).append(value)
    return tags


def needed(path) -> list:
    return dynamic_tags(path).get("DT_NEEDED", [])


def exported_symbols(path) -> list:
    """Names of defined, globally visible dynamic symbols (what a host can dlsym)."""
    f, elf = _open(path)
    with f:
        dynsym = elf.get_section_by_name(".dynsym")
        if dynsym is None:
            return []
        return sorted(
            s.name for s in dynsym.iter_symbols()
            if s.name and s["st_shndx"] != "SHN_UNDEF"
            and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
            and s["st_other"]["visibility"] in ("STV_DEFAULT", "STV_PROTECTED"))


def required_versions(path) -> dict:
    """Library file name -> the symbol versions it must provide (e.g. GLIBC_2.4)."""
    f, elf = _open(path)
    result = {}
    with f:
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    result.setdefault(verneed.name, []).extend(a.name for a in auxes)
    return result


_VERSION = re.compile(r"^([A-Z]+)_([0-9][0-9.]*)$")


def version_key(version: str):
    """("GLIBC", (2, 12)) for "GLIBC_2.12"; None for private versions like GLIBC_PRIVATE."""
    m = _VERSION.match(version)
    if not m:
        return None
    return m.group(1), tuple(int(x) for x in m.group(2).split("."))


def highest_versions(path) -> dict:
    """Namespace (GLIBC, GLIBCXX, CXXABI, GCC) -> highest required version tuple."""
    best = {}
    for versions in required_versions(path).values():
        for v in versions:
            key = version_key(v)
            if key and key[1] > best.get(key[0], ()):
                best[key[0]] = key[1]
    return best


def is_elf(path) -> bool:
    with open(Path(path), "rb") as f:
        return f.read(4) == b"\x7fELF"
