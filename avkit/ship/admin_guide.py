"""The administrator's guide, docs/admin.md, as the packages install it: each plugin
package's README ends with the guide's sections on its plugin, and kerio-avir-tools'
README is the section on the check, so the guide and the packages say one text."""

from __future__ import annotations

import re

from avkit import paths
from avkit.errors import UserError

GUIDE = paths.ROOT / "docs" / "admin.md"
#: the guide's sections each plugin package installs (a plugin not listed: none)
PLUGIN_SECTIONS = {
    "clam": ["## The ClamAV plugin", "### ClamAV (clamd)", "## The administrator's check"],
    "icap": ["## The ICAP plugin", "### ICAP (c-icap virus_scan)", "## The administrator's check"],
}
HEADING = re.compile(r"^(#+) ", re.M)


def section(heading: str) -> str:
    """The guide's section under `heading`, to the next heading of its level or above."""
    text = GUIDE.read_text()
    start = text.find("\n" + heading + "\n")
    if start < 0:
        raise UserError(f"{GUIDE} has no section {heading!r} (a package's README needs it)")
    level = len(heading.split(" ", 1)[0])
    body_from = start + len(heading) + 2
    end = len(text)
    for m in HEADING.finditer(text, body_from):
        if len(m.group(1)) <= level:
            end = m.start()
            break
    return text[start + 1 : end].strip("\n") + "\n"


def plugin_notes(name: str) -> str:
    """What a plugin's package README adds about it: the guide's sections, or nothing."""
    return "\n".join(section(h) for h in PLUGIN_SECTIONS.get(name, []))
