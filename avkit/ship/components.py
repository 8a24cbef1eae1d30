"""What is linked into a plugin, read from its debug information, and what each part is.

A plugin's separate debug file (dist/<target>/debug/.build-id/...) names every source
file the linked code came from: each compile unit, and each file the line table has
code rows for (inline functions of headers included). Those names are given to the
components of packaging/components.json by path segment; the project's own files are
the rest under the project's prefix (or relative, as the -ffile-prefix-map of a local
build writes them). A file of no known component stops the release: its license would
be missing. Nothing here is typed per plugin: avir_sample.so (C) gets no Boost because
its DWARF names none.
"""
import functools
import importlib.metadata
import importlib.util
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from avkit import elf, facts, paths
from avkit.errors import UserError

POLICY_FILE = paths.PACKAGING / "components.json"


@functools.lru_cache(maxsize=None)
def policy() -> dict[str, Any]:
    return json.loads(POLICY_FILE.read_text())


# --- the DWARF file list ---------------------------------------------------------------

def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _line_files(dwarf, cu, comp_dir: str) -> set:
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
            comp_dir = _text(top.attributes["DW_AT_comp_dir"].value) \
                if "DW_AT_comp_dir" in top.attributes else ""
            if "DW_AT_name" in top.attributes:
                found.add(posixpath.join(comp_dir, _text(top.attributes["DW_AT_name"].value)))
            found |= _line_files(dwarf, cu, comp_dir)
    return sorted(posixpath.normpath(f) for f in found)


def debug_file_of(so: Path) -> Path:
    build_id = elf.build_id(so)
    debug = Path(facts.debug_file(build_id, so.parent / "debug"))
    if not build_id or not debug.is_file():
        raise UserError(f"no debug file {debug} for {so.name}: its components are read from "
                        f"it; rebuild with `python -m avkit build`, which stages it")
    return debug


# --- files -> components -----------------------------------------------------------------

def project_relative(path: str) -> str:
    """The repository-relative name of one of the project's own files, or "" if it is not
    one: under the canonical prefix, relative (local build), or under this clone."""
    prefixes = [*policy()["project"]["path_prefixes"], str(paths.ROOT) + "/"]
    for prefix in prefixes:
        if path.startswith(prefix):
            return path[len(prefix):]
    return path if not path.startswith("/") else ""


def classify(files: list) -> dict[str, list[Any]]:
    """{component name: [files]}; the project's own under the project's name."""
    data = policy()
    found: dict[str, list[Any]] = {}
    unknown = []
    for f in files:
        owner = next((c["name"] for c in data["components"]
                      if any(seg in "/" + f for seg in c["segments"])), None)
        if owner is None and project_relative(f):
            owner = data["project"]["name"]
        if owner is None:
            unknown.append(f)
        else:
            found.setdefault(owner, []).append(f)
    if unknown:
        raise UserError(f"linked code from files of no known component (its license would be "
                        f"missing): {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}; "
                        f"add the component to {POLICY_FILE.relative_to(paths.ROOT)}")
    return found


@functools.lru_cache(maxsize=None)
def _linked(debug_file: Path) -> tuple:
    return tuple(sorted(classify(source_files(debug_file)).items()))


def linked(so: Path) -> list[dict[str, Any]]:
    """The components linked into one plugin, the project first, each with its files,
    version and license: [{"name", "title", "version", "license", "files", ...}]."""
    by_name = dict(_linked(debug_file_of(Path(so))))
    data = policy()
    out = []
    project = data["project"]
    if project["name"] in by_name:
        out.append(project_component(by_name[project["name"]]))
    for c in data["components"]:
        if c["name"] in by_name:
            out.append({**c, "version": component_version(c), "origin": component_origin(c),
                        "files": by_name[c["name"]]})
    return out


def project_component(files=()) -> dict[str, Any]:
    return {**policy()["project"], "title": "the project's own code",
            "version": project_version(), "files": list(files)}


def project_sources(so: Path) -> list[str]:
    """Repository-relative names of the project's files the plugin's DWARF names."""
    name = policy()["project"]["name"]
    files = dict(_linked(debug_file_of(Path(so)))).get(name, [])
    return sorted({project_relative(f) for f in files})


# --- where the components come from ---------------------------------------------------------

def project_version() -> str:
    from avkit.ship import packages
    return packages.project_version()


def zig_folder() -> Path:
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the ziglang package is not installed here: run in the tools "
                        "environment (./nox -s release, or .tools/venv/bin/python -m avkit)")
    return Path(list(spec.submodule_search_locations)[0])


def zig_version() -> str:
    return importlib.metadata.version("ziglang")


def llvm_version() -> str:
    """libc++'s version as zig ships it: _LIBCPP_VERSION XXYYZZ -> XX.YY.ZZ."""
    config = (zig_folder() / "lib" / "libcxx" / "include" / "__config").read_text()
    m = re.search(r"#\s*define\s+_LIBCPP_VERSION\s+(\d+)", config)
    if not m:
        raise UserError("no _LIBCPP_VERSION in zig's lib/libcxx/include/__config")
    v = int(m.group(1))
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def boost_reference() -> str:
    """boost/<version>#<revision> from conan.lock."""
    lock = json.loads((paths.ROOT / "conan.lock").read_text())
    for ref in lock["requires"]:
        if ref.startswith("boost/"):
            return ref.split("%")[0]
    raise UserError("conan.lock has no boost reference: run ./nox -s lock")


def boost_version() -> str:
    return boost_reference().split("/", 1)[1].split("#")[0]


def boost_source() -> dict[str, Any]:
    """The pinned wheel of Boost's version, from the recipe's conandata.yml."""
    import yaml  # conan's own dependency, in the tools environment
    data = yaml.safe_load((paths.ROOT / "conan" / "index" / "recipes" / "boost" / "all" /
                           "conandata.yml").read_text())
    return data["sources"][boost_version()]


def boost_package_folder() -> Path:
    """The Boost package in the Conan cache (its package id is cleared: one for all)."""
    ref = boost_reference() + ":da39a3ee5e6b4b0d3255bfef95601890afd80709"
    # The Conan home the build uses (avkit/build/tools.py), with this environment's conan.
    env = dict(os.environ, CONAN_HOME=str((paths.CACHE / "conan").resolve()))
    conan = shutil.which("conan", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        env.get("PATH", "")])) or "conan"
    r = subprocess.run([conan, "cache", "path", ref], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"Boost {ref} is not in the Conan cache: build first "
                        f"(./nox -s build-i386): {r.stderr.strip()[-300:]}")
    return Path(r.stdout.strip())


def component_origin(component: dict) -> str:
    """Where a component comes from, in words, for the copyright file and the SBOM."""
    source = component["version_from"]
    if source == "conan":
        return f"headers of the wheel {boost_source()['wheel']} (conan/index, sha256 pinned)"
    return f"as shipped in ziglang {zig_version()}"


def license_source(license_id: str) -> str:
    """Where a license's text is read from, in words (no machine's paths)."""
    names = {"zig": "ziglang's ", "conan": "the Boost package's ", "project": "the project's ",
             "system": ""}
    return " + ".join(names[p["from"]] + p["path"] for p in policy()["licenses"][license_id]["text"])


def component_version(component: dict) -> str:
    source = component["version_from"]
    if source == "conan":
        return boost_version()
    if source == "libcxx":
        return llvm_version()
    return zig_version()


def _first_comment(text: str) -> str:
    m = re.search(r"/\*(.*?)\*/", text, re.S)
    return "\n".join(line.strip() for line in m.group(1).strip().splitlines()) if m else text


def license_origin(part: dict) -> Path:
    where = part["from"]
    if where == "project":
        return paths.ROOT / part["path"]
    if where == "zig":
        return zig_folder() / part["path"]
    if where == "conan":
        return boost_package_folder() / part["path"]
    return Path(part["path"])


def license_text(license_id: str, debian: bool = False) -> str:
    """A license's full text, from the files the policy names (in order). debian: what
    /usr/share/common-licenses has is referred to there instead (Debian policy 12.5)."""
    spec = policy()["licenses"].get(license_id)
    if spec is None:
        raise UserError(f"license {license_id!r} has no entry in {POLICY_FILE}")
    parts = []
    for part in spec["text"]:
        origin = license_origin(part)
        if not origin.is_file():
            raise UserError(f"license text of {license_id} missing: {origin}"
                            + (" (Debian's base-files ships it)" if part["from"] == "system" else ""))
        text = origin.read_text(errors="replace")
        text = _first_comment(text) if part.get("first_comment") else text
        if debian and part.get("debian_common"):
            common = part["debian_common"]
            kept = text[text.index(part["debian_keep_from"]):] if part.get("debian_keep_from") else ""
            text = (f"On Debian systems, the complete text of the {common} license is in "
                    f"/usr/share/common-licenses/{common}.") + ("\n\n" + kept if kept else "")
        parts.append(text)
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def license_origins(license_id: str) -> list[str]:
    return [str(license_origin(p)) for p in policy()["licenses"][license_id]["text"]]


def expression(components: list) -> str:
    """The SPDX expression of a plugin: every component's license, once each."""
    ids = list(dict.fromkeys(c["license"] for c in components))
    return " AND ".join(f"({i})" if " WITH " in i and len(ids) > 1 else i for i in ids)


def sha256_file(path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def zig_executable() -> Path:
    return zig_folder() / ("zig.exe" if os.name == "nt" else "zig")


def dep5_license_name(license_id: str) -> str:
    return policy()["licenses"][license_id]["dep5"]
