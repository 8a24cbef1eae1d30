"""Small pure helpers over pyelftools: facts about one ELF file.

Shared by the build (build-ids), the audit and the tests.
"""

import re
from pathlib import Path
from typing import Any, BinaryIO, Union

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import NoteSection

PathLike = Union[str, Path]


def _open(path: PathLike) -> tuple[BinaryIO, Any]:
    """The open file and its ELFFile (Any: pyelftools types sections by their base class)."""
    f = open(path, "rb")
    return f, ELFFile(f)


def header(path: PathLike) -> dict[str, Any]:
    f, elf = _open(path)
    with f:
        return {"class": elf.elfclass, "machine": elf["e_machine"], "type": elf["e_type"]}


def build_id(path: PathLike) -> str:
    """The GNU build-id as hex, or "" when there is none."""
    f, elf = _open(path)
    with f:
        for section in elf.iter_sections():
            if isinstance(section, NoteSection):
                for note in section.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return note["n_desc"]
    return ""


def dynamic_tags(path: PathLike) -> dict[str, list[Any]]:
    """DT_* tag name -> list of values (strings for NEEDED/RPATH/RUNPATH/SONAME)."""
    f, elf = _open(path)
    tags: dict[str, list[Any]] = {}
    with f:
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    value = getattr(tag, tag.entry.d_tag[3:].lower(), tag.entry.d_val)
                    tags.setdefault(tag.entry.d_tag, []).append(value)
    return tags


def needed(path: PathLike) -> list[str]:
    return dynamic_tags(path).get("DT_NEEDED", [])


def exported_symbols(path: PathLike) -> list[str]:
    """Names of defined, globally visible dynamic symbols (what a host can dlsym)."""
    f, elf = _open(path)
    with f:
        dynsym = elf.get_section_by_name(".dynsym")
        if dynsym is None:
            return []
        return sorted(
            s.name
            for s in dynsym.iter_symbols()
            if s.name
            and s["st_shndx"] != "SHN_UNDEF"
            and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
            and s["st_other"]["visibility"] in ("STV_DEFAULT", "STV_PROTECTED")
        )


def required_versions(path: PathLike) -> dict[str, list[str]]:
    """Library file name -> the symbol versions it must provide (e.g. GLIBC_2.4)."""
    f, elf = _open(path)
    result: dict[str, list[str]] = {}
    with f:
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    result.setdefault(verneed.name, []).extend(a.name for a in auxes)
    return result


_VERSION = re.compile(r"^([A-Z]+)_([0-9][0-9.]*)$")


def version_key(version: str) -> tuple[str, tuple[int, ...]] | None:
    """("GLIBC", (2, 12)) for "GLIBC_2.12"; None for private versions like GLIBC_PRIVATE."""
    m = _VERSION.match(version)
    if not m:
        return None
    return m.group(1), tuple(int(x) for x in m.group(2).split("."))


def highest_versions(path: PathLike) -> dict[str, tuple[int, ...]]:
    """Namespace (GLIBC, GLIBCXX, CXXABI, GCC) -> highest required version tuple."""
    best: dict[str, tuple[int, ...]] = {}
    for versions in required_versions(path).values():
        for v in versions:
            key = version_key(v)
            if key and key[1] > best.get(key[0], ()):
                best[key[0]] = key[1]
    return best


def is_elf(path: PathLike) -> bool:
    with open(Path(path), "rb") as f:
        return f.read(4) == b"\x7fELF"


# --- Facts for the audit ----------------------------------------------------------
# Each helper opens the file itself and returns plain data, so the audit and the
# tests can use them one by one; `facts()` gathers them all for one report.

PF_X = 0x1
DF_TEXTREL = 0x4
DF_BIND_NOW = 0x8
DF_1_NOW = 0x1


def versioned_imports(path: PathLike) -> list[tuple[str, str, str]]:
    """(symbol, version, library) of every undefined dynamic symbol bound to a
    version a library must provide, e.g. ("pthread_create", "GLIBC_2.34", "libc.so.6")."""
    f, elf = _open(path)
    result: list[tuple[str, str, str]] = []
    with f:
        versym = elf.get_section_by_name(".gnu.version")
        dynsym = elf.get_section_by_name(".dynsym")
        if versym is None or dynsym is None:
            return result
        index = {}  # version index (vna_other) -> (version name, library)
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    for aux in auxes:
                        index[aux["vna_other"]] = (aux.name, verneed.name)
        for i, sym in enumerate(dynsym.iter_symbols()):
            if i == 0 or sym["st_shndx"] != "SHN_UNDEF" or not sym.name:
                continue
            ndx = versym.get_symbol(i)["ndx"]
            if isinstance(ndx, int) and (ndx & 0x7FFF) in index:
                version, library = index[ndx & 0x7FFF]
                result.append((sym.name, version, library))
    return sorted(result)


def segments(path: PathLike) -> list[dict[str, Any]]:
    """Program headers as {"type": "PT_LOAD"/"PT_GNU_STACK"/..., "flags": p_flags}."""
    f, elf = _open(path)
    with f:
        return [{"type": s["p_type"], "flags": s["p_flags"]} for s in elf.iter_segments()]


def section_names(path: PathLike) -> list[str]:
    f, elf = _open(path)
    with f:
        return [s.name for s in elf.iter_sections() if s.name]


def _flag_value(values) -> int:
    return values[0] if values else 0


def hardening(path: PathLike) -> dict[str, Any]:
    """What the loader will do with the file: relro, bind_now, exec stack, textrel, rpath."""
    tags = dynamic_tags(path)
    segs = segments(path)
    types = {s["type"] for s in segs}
    stack = [s for s in segs if s["type"] == "PT_GNU_STACK"]
    flags = _flag_value(tags.get("DT_FLAGS", []))
    flags_1 = _flag_value(tags.get("DT_FLAGS_1", []))
    names = section_names(path)
    return {
        "relro": "PT_GNU_RELRO" in types,
        "bind_now": "DT_BIND_NOW" in tags or bool(flags & DF_BIND_NOW) or bool(flags_1 & DF_1_NOW),
        # No PT_GNU_STACK at all means an executable stack on i386.
        "exec_stack": not stack or bool(stack[0]["flags"] & PF_X),
        "textrel": "DT_TEXTREL" in tags or bool(flags & DF_TEXTREL),
        "rpath": [*tags.get("DT_RPATH", []), *tags.get("DT_RUNPATH", [])],
        "stripped": ".symtab" not in names and not any(n.startswith(".debug_") for n in names),
        "build_id": build_id(path),
    }


def facts(path: PathLike) -> dict[str, Any]:
    """Everything the audit looks at, as plain JSON-friendly data."""
    head = header(path)
    return {
        "class": head["class"],
        "machine": head["machine"],
        "type": head["type"],
        "exports": exported_symbols(path),
        "needed": needed(path),
        "imports": [list(t) for t in versioned_imports(path)],
        "required_versions": required_versions(path),
        "hardening": hardening(path),
    }
