"""The administrator's package, kerio-avir-tools: avhost and kerio-avir-check.

One package per architecture of the dist folders (the avhost built beside the plugins),
.deb and .rpm, built by avkit/ship/packages.py from packaging/tools/nfpm-tools.yaml with
the same changelog, copyright and lint rules as the plugins' packages. avhost is audited
as a plugin is (glibc floor, libraries, hardening), but for the exports a plugin must
have: a program exports nothing. Its README is docs/admin.md's check section, so the
package and the guide say the same.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from avkit import paths
from avkit.errors import UserError
from avkit.ship import admin_guide, audit, components

PACKAGE = "kerio-avir-tools"
TOOLS = paths.PACKAGING / "tools"
LIB_DIR = f"/usr/lib/{PACKAGE}"
COMMAND = "/usr/sbin/kerio-avir-check"
MAN_PAGE = "/usr/share/man/man8/kerio-avir-check.8.gz"
GUIDE_SECTION = "## The administrator's check"
SUMMARY = "Checks an installed Kerio antivirus plugin without the product"
DESCRIPTION = (
    "kerio-avir-check loads the installed avir_*.so plugins of Kerio Connect\n"
    "and Kerio Control with avhost, an avserver emulator, as the product\n"
    "does; scans EICAR, a clean file and a file over the engine's limit;\n"
    "prints a verdict table and what to fix."
)


def avhosts(plugins: list[Path]) -> list[Path]:
    """The avhost of each dist folder that holds plugins (one per architecture)."""
    folders = sorted({so.parent for so in plugins})
    return [f / "avhost" for f in folders if (f / "avhost").is_file()]


def audited_dependencies(avhost: Path) -> dict[str, list[str]]:
    """avhost's package dependencies, once it passes its architecture's policy; what
    makes a plugin a plugin (a shared object exporting its one symbol) is not a
    program's: avhost is an executable (ET_EXEC) that exports nothing."""
    data = audit.policies_for(avhost)
    data = {
        **data,
        "elf": {**data["elf"], "type": "ET_EXEC"},
        "policies": [{**p, "exports": []} for p in data["policies"]],
    }
    report = audit.audit_file(avhost, data)
    if not audit.passes(report, data["default"]):
        raise UserError(
            f"{avhost} ({data['arch']}) fails the audit policy "
            f'"{data["default"]}", not packaging it:\n'
            + audit.format_report(report, data, data["default"])
        )
    return report["dependencies"]


def specs(
    plugins: list[Path], common: dict[str, Any], arch_names: Callable[[Path], dict[str, str]]
) -> list[dict[str, Any]]:
    """One spec per architecture for packages.build_packages (kind "tools")."""
    out = []
    for avhost in avhosts(plugins):
        deps = audited_dependencies(avhost)
        values = {
            **common,
            **arch_names(avhost),
            "package": PACKAGE,
            "summary": SUMMARY,
            "description": SUMMARY + "\n" + DESCRIPTION,
            "avhost_src": str(avhost),
            "avhost_dst": f"{LIB_DIR}/avhost",
            "check_src": str(TOOLS / "kerio-avir-check"),
            "check_dst": COMMAND,
            "man_dst": MAN_PAGE,
            "lib_dir": LIB_DIR,
            "doc_dir": f"/usr/share/doc/{PACKAGE}",
            "depends_deb": deps["deb"],
            "depends_rpm": deps["rpm"],
            "lintian_overrides_dst": f"/usr/share/lintian/overrides/{PACKAGE}",
            # the RPM License: every component avhost links
            "license": components.expression(components.linked(avhost)),
        }
        out.append(
            {
                "kind": "tools",
                "template": "tools/nfpm-tools.yaml",
                "plugin": avhost,
                "values": values,
                "scripts": None,
            }
        )
    return out


def readme() -> str:
    return (
        f"{PACKAGE}\n{'=' * len(PACKAGE)}\n\n"
        f"{COMMAND} and its helper {LIB_DIR}/avhost. From the administrator's guide\n"
        f"(docs/admin.md of kerio-avir-plugins):\n\n" + admin_guide.section(GUIDE_SECTION)
    )


def inputs(d: Path, gzip_bytes) -> dict[str, str]:
    """The tools package's own files, written into d: README and the gzipped man page."""
    (d / "README").write_text(readme())
    man = d / "kerio-avir-check.8.gz"
    man.write_bytes(gzip_bytes((TOOLS / "kerio-avir-check.8").read_bytes()))
    return {
        "readme_src": str(d / "README"),
        "man_src": str(man),
        "readme_dst": f"/usr/share/doc/{PACKAGE}/README",
    }


def plugin_dirs_in_command() -> list[str]:
    """The folders kerio-avir-check searches (its PLUGIN_DIRS line)."""
    m = re.search(r'^PLUGIN_DIRS="([^"]*)"', (TOOLS / "kerio-avir-check").read_text(), re.M)
    return m.group(1).split() if m else []
