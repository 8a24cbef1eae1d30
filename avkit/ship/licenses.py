"""The copyright file of a package, in Debian's machine-readable format (DEP-5), made
from the components linked into its plugin (avkit/ship/components.py; the texts:
avkit/ship/license_texts.py); the .deb
installs it as /usr/share/doc/<package>/copyright (referring to
/usr/share/common-licenses where Debian has a text), the .rpm, with every text in
full, as its %license file /usr/share/licenses/<package>/copyright.
parse() reads one back: the tests and `avkit release` check that every Files
paragraph names a license whose text is in the file.
"""

import re
from typing import Any

from avkit.errors import UserError
from avkit.ship import components, license_texts

FORMAT = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"


def _field(name: str, value: str) -> str:
    """A DEP-5 field: continuation lines indented, empty lines as " ."."""
    lines = value.strip("\n").split("\n")
    first, rest = lines[0], lines[1:]
    out = f"{name}: {first}".rstrip() + "\n"
    for line in rest:
        out += (" " + line.rstrip() if line.strip() else " .") + "\n"
    return out


def dep5_name(license_id: str) -> str:
    return license_texts.dep5_license_name(license_id)


def render(
    linked: list[dict[str, Any]], project: dict[str, Any], plugin: str, debian: bool = True
) -> str:
    """The copyright file of the packages of one plugin, given its linked components;
    debian: refer to /usr/share/common-licenses where Debian has the text (the .deb),
    else every text in full (the .rpm's %license)."""
    out = _field("Format", FORMAT)
    out += _field("Upstream-Name", components.policy()["project"]["name"])
    out += _field("Upstream-Contact", project["maintainer"])
    out += _field("Source", project["homepage"])
    out += _field(
        "Comment",
        f"The components linked into {plugin}, read from its debug "
        f"information (each source file its code comes from); "
        f"the Files paths are those of the sources under "
        f"/usr/src/debug.",
    )
    for c in linked:
        out += "\n" + _field("Files", c["dep5_files"])
        out += _field("Copyright", "\n".join(c["copyright"]))
        out += _field("License", dep5_name(c["license"]))
        if c["name"] != components.policy()["project"]["name"]:
            out += _field(
                "Comment",
                f"{c['title']}, version {c['version']}, {c['origin']}; "
                f"license text from "
                f"{license_texts.license_source(c['license'])}.",
            )
    for license_id in dict.fromkeys(c["license"] for c in linked):
        out += "\n" + _field(
            "License",
            dep5_name(license_id) + "\n" + license_texts.license_text(license_id, debian=debian),
        )
    return out


def parse(text: str) -> list[dict[str, str]]:
    """The paragraphs of a DEP-5 file: [{field: value}] (continuations joined by \\n)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        fields, last = {}, None
        for line in block.split("\n"):
            if line.startswith((" ", "\t")):
                if last is None:
                    raise UserError(f"copyright: continuation line without a field: {line!r}")
                fields[last] += "\n" + ("" if line.strip() == "." else line[1:])
            else:
                m = re.match(r"([A-Za-z-]+):\s?(.*)$", line)
                if not m:
                    raise UserError(f"copyright: not a field: {line!r}")
                last = m.group(1)
                fields[last] = m.group(2)
        paragraphs.append(fields)
    return paragraphs


def check(text: str) -> dict[str, str]:
    """{license name: text} after checking the DEP-5 rules this project relies on: a
    Format header, and a License with its text (in place or in a stand-alone License
    paragraph) for every Files paragraph."""
    paragraphs = parse(text)
    if not paragraphs or not paragraphs[0].get("Format", "").startswith(FORMAT[:40]):
        raise UserError("copyright: the first paragraph has no DEP-5 Format field")
    texts = {}
    for p in paragraphs[1:]:
        if "Files" not in p and "License" in p:
            name, _, body = p["License"].partition("\n")
            texts[name.strip()] = body
    for p in paragraphs[1:]:
        if "Files" in p:
            if "Copyright" not in p or "License" not in p:
                raise UserError(f"copyright: Files {p['Files']} lacks Copyright or License")
            name, _, body = p["License"].partition("\n")
            if not body.strip() and not texts.get(name.strip(), "").strip():
                raise UserError(f"copyright: Files {p['Files']}: no text for license {name}")
    return texts
