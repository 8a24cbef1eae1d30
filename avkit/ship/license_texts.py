"""The license texts of the components (packaging/components.json "licenses"), read from
where each component ships them: the ziglang wheel, the Boost package in the Conan cache,
this repository, or the build machine (Debian's common-licenses)."""

import re
from pathlib import Path
from typing import Any

from avkit import paths
from avkit.errors import UserError
from avkit.ship import components, toolchain


def license_source(license_id: str) -> str:
    """Where a license's text is read from, in words (no machine's paths)."""
    names = {
        "zig": "ziglang's ",
        "conan": "the Boost package's ",
        "project": "the project's ",
        "system": "",
    }
    return " + ".join(
        names[p["from"]] + p["path"] for p in components.policy()["licenses"][license_id]["text"]
    )


def _first_comment(text: str) -> str:
    m = re.search(r"/\*(.*?)\*/", text, re.S)
    return "\n".join(line.strip() for line in m.group(1).strip().splitlines()) if m else text


def license_origin(part: dict[str, Any]) -> Path:
    where = part["from"]
    if where == "project":
        return paths.ROOT / part["path"]
    if where == "zig":
        return toolchain.zig_folder() / part["path"]
    if where == "conan":
        return toolchain.boost_package_folder() / part["path"]
    return Path(part["path"])


def _debian_reference(part: dict[str, Any], text: str) -> str:
    """What the .deb's copyright says instead of a text /usr/share/common-licenses has."""
    common = part["debian_common"]
    kept = text[text.index(part["debian_keep_from"]) :] if part.get("debian_keep_from") else ""
    return (
        f"On Debian systems, the complete text of the {common} license is in "
        f"/usr/share/common-licenses/{common}."
    ) + ("\n\n" + kept if kept else "")


def license_text(license_id: str, debian: bool = False) -> str:
    """A license's full text, from the files the policy names (in order). debian: what
    /usr/share/common-licenses has is referred to there instead (Debian policy 12.5)."""
    spec = components.policy()["licenses"].get(license_id)
    if spec is None:
        raise UserError(f"license {license_id!r} has no entry in {components.COMPONENTS_FILE}")
    parts = []
    for part in spec["text"]:
        origin = license_origin(part)
        if not origin.is_file():
            hint = " (Debian's base-files ships it)" if part["from"] == "system" else ""
            raise UserError(f"license text of {license_id} missing: {origin}{hint}")
        text = origin.read_text(errors="replace")
        text = _first_comment(text) if part.get("first_comment") else text
        if debian and part.get("debian_common"):
            text = _debian_reference(part, text)
        parts.append(text)
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def license_origins(license_id: str) -> list[str]:
    return [str(license_origin(p)) for p in components.policy()["licenses"][license_id]["text"]]


def dep5_license_name(license_id: str) -> str:
    return components.policy()["licenses"][license_id]["dep5"]
