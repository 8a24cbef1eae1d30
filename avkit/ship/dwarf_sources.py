"""The source files a plugin's linked code came from, read from its separate debug file
(dist/<target>/debug/.build-id/...): each compile unit's name, and each file its line
table has code rows for (inline functions of headers included)."""

import posixpath
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from avkit import elf, facts
from avkit.errors import UserError


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _line_files(dwarf: Any, cu: Any, comp_dir: str) -> set[str]:
    """The files of one compile unit's line table that code rows point at."""
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return set()
    version = program["version"]
    dirs = [_text(d) for d in program["include_directory"]]
    entries = program["file_entry"]
    used = {e.state.file for e in program.get_entries() if e.state is not None}
    out = set()
    for index in used:
        # DWARF 5 numbers files and directories from 0 (0 = the compile unit's own);
        # DWARF 4 from 1, with directory 0 meaning the compilation directory.
        entry = entries[index if version >= 5 else index - 1]
        if version >= 5:
            folder = dirs[entry.dir_index]
        else:
            folder = dirs[entry.dir_index - 1] if entry.dir_index else comp_dir
        out.add(posixpath.join(comp_dir, folder, _text(entry.name)))
    return out


def source_files(debug_file: Path) -> list[str]:
    """Every source file named by the compile units and line tables, normalized."""
    found = set()
    with open(debug_file, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            top = cu.get_top_DIE()
            comp_dir = (
                _text(top.attributes["DW_AT_comp_dir"].value)
                if "DW_AT_comp_dir" in top.attributes
                else ""
            )
            if "DW_AT_name" in top.attributes:
                found.add(posixpath.join(comp_dir, _text(top.attributes["DW_AT_name"].value)))
            found |= _line_files(dwarf, cu, comp_dir)
    return sorted(posixpath.normpath(f) for f in found)


def debug_file_of(so: Path) -> Path:
    build_id = elf.build_id(so)
    debug = Path(facts.debug_file(build_id, so.parent / "debug"))
    if not build_id or not debug.is_file():
        raise UserError(
            f"no debug file {debug} for {so.name}: its components are read from "
            f"it; rebuild with `python -m avkit build`, which stages it"
        )
    return debug
