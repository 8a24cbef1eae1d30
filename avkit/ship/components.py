"""What is linked into a plugin, and what each part is.

A plugin's source files (avkit/ship/dwarf_sources.py, from its debug information) are
given to the components of packaging/components.json by path segment; the project's own
files are the rest under the project's prefix (or relative, as the -ffile-prefix-map of a
local build writes them). A file of no known component stops the release: its license
would be missing. Nothing here is typed per plugin: avir_sample.so (C) gets no Boost
because its DWARF names none. Versions and origins come from avkit/ship/toolchain.py,
the project's version from avkit/ship/version.py, license texts from license_texts.py.
"""

import functools
import json
from pathlib import Path
from typing import Any, Iterable

from avkit import paths
from avkit.errors import UserError
from avkit.ship import dwarf_sources, toolchain
from avkit.ship.version import project_version


COMPONENTS_FILE = paths.PACKAGING / "components.json"


@functools.lru_cache(maxsize=None)
def policy() -> dict[str, Any]:
    return json.loads(COMPONENTS_FILE.read_text())


# --- files -> components -----------------------------------------------------------------


def project_relative(path: str) -> str:
    """The repository-relative name of one of the project's own files, or "" if it is not
    one: under the canonical prefix, relative (local build), or under this clone."""
    prefixes = [*policy()["project"]["path_prefixes"], str(paths.ROOT) + "/"]
    for prefix in prefixes:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path if not path.startswith("/") else ""


def classify(files: list[str]) -> dict[str, list[str]]:
    """{component name: [files]}; the project's own under the project's name."""
    data = policy()
    found: dict[str, list[str]] = {}
    unknown = []
    for f in files:
        owner = next(
            (c["name"] for c in data["components"] if any(seg in "/" + f for seg in c["segments"])),
            None,
        )
        if owner is None and project_relative(f):
            owner = data["project"]["name"]
        if owner is None:
            unknown.append(f)
        else:
            found.setdefault(owner, []).append(f)
    if unknown:
        raise UserError(
            f"linked code from files of no known component (its license would be "
            f"missing): {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}; "
            f"add the component to {COMPONENTS_FILE.relative_to(paths.ROOT)}"
        )
    return found


@functools.lru_cache(maxsize=None)
def _linked(debug_file: Path) -> tuple[tuple[str, list[str]], ...]:
    return tuple(sorted(classify(dwarf_sources.source_files(debug_file)).items()))


def linked(so: Path) -> list[dict[str, Any]]:
    """The components linked into one plugin, the project first, each with its files,
    version and license: [{"name", "title", "version", "license", "files", ...}]."""
    by_name = dict(_linked(dwarf_sources.debug_file_of(Path(so))))
    data = policy()
    out = []
    project = data["project"]
    if project["name"] in by_name:
        out.append(project_component(by_name[project["name"]]))
    for c in data["components"]:
        if c["name"] in by_name:
            out.append(
                {
                    **c,
                    "version": component_version(c),
                    "origin": component_origin(c),
                    "files": by_name[c["name"]],
                }
            )
    return out


def project_component(files: Iterable[str] = ()) -> dict[str, Any]:
    return {
        **policy()["project"],
        "title": "the project's own code",
        "version": project_version(),
        "files": list(files),
    }


def project_sources(so: Path) -> list[str]:
    """Repository-relative names of the project's files the plugin's DWARF names."""
    name = policy()["project"]["name"]
    files = dict(_linked(dwarf_sources.debug_file_of(Path(so)))).get(name, [])
    return sorted({project_relative(f) for f in files})


# --- where the components come from ---------------------------------------------------------


def component_origin(component: dict[str, Any]) -> str:
    """Where a component comes from, in words, for the copyright file and the SBOM."""
    source = component["version_from"]
    if source == "conan":
        return (
            f"headers of the wheel {toolchain.boost_source()['wheel']} (conan/index, sha256 pinned)"
        )
    if source == "glibc":
        return (
            f"glibc {toolchain.glibc_version()}'s own code as shipped in ziglang {toolchain.zig_version()} "
            f"(glibc's version: the newest in zig's {toolchain.GLIBC_ABILISTS})"
        )
    return f"as shipped in ziglang {toolchain.zig_version()}"


def component_version(component: dict[str, Any]) -> str:
    source = component["version_from"]
    if source == "conan":
        return toolchain.boost_version()
    if source == "libcxx":
        return toolchain.llvm_version()
    if source == "glibc":
        return toolchain.glibc_version()
    return toolchain.zig_version()


def expression(components: list[dict[str, Any]]) -> str:
    """The SPDX expression of a plugin: every component's license, once each."""
    ids = list(dict.fromkeys(c["license"] for c in components))
    return " AND ".join(f"({i})" if " WITH " in i and len(ids) > 1 else i for i in ids)
