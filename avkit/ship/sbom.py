"""The release's SBOM: SPDX 2.3 JSON, one document for every plugin of the release
(each architecture's avir_<name>.so is a package of its own, its architecture in its
SPDXID and summary).

SPDX rather than CycloneDX: what this project must answer is licensing (which
license texts go with each plugin), and SPDX has the license expression of each
package and the texts of licenses outside its list (LicenseRef-) as first-class
fields; its STATIC_LINK relationship says exactly how a component is in a plugin.

Each plugin is a package with the sha256 of the shipped file; each component linked
into it (avkit/ship/components.py) is a package with its version, license and, where
one exists, the hash of what it was taken from: Boost's pinned wheel (conandata.yml),
the installed zig executable for what the ziglang wheel ships. missing() is the
audit's side: the components a plugin's DWARF names that the SBOM lacks.
"""
import json
import re
from pathlib import Path
from typing import Any

from avkit import elf, facts
from avkit.errors import UserError
from avkit.ship import components

NAMESPACE = "https://spdx.org/spdxdocs/"  # SPDX's own base for documents without a home


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", text.replace("++", "xx"))


def component_id(component: dict) -> str:
    return _spdx_id(f"component-{component['name']}-{component['version']}")


def plugin_arch(so: Path) -> str:
    return facts.arch_of(elf.header(so)) or "unknown"


def plugin_id(so: Path) -> str:
    """Per architecture: avir_clam.so of i386 and of x86_64 are two packages."""
    return _spdx_id(f"plugin-{plugin_arch(so)}-{so.name}")


def _component_package(c: dict) -> dict:
    pkg = {"SPDXID": component_id(c), "name": c["name"], "versionInfo": c["version"],
           "summary": c["title"], "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
           "licenseConcluded": c["license"], "licenseDeclared": c["license"],
           "copyrightText": "\n".join(c["copyright"])}
    if c.get("version_from") == "conan":
        source = components.boost_source()
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": source["sha256"]}]
        pkg["packageFileName"] = source["wheel"]
        pkg["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                "referenceLocator": "pkg:pypi/" + source["pypi_requirement"]
                                .replace("==", "@")}]
        pkg["sourceInfo"] = f"the wheel {source['wheel']} pinned by conan/index (sha256 above)"
    elif c.get("version_from") in ("zig", "libcxx"):
        pkg["checksums"] = [{"algorithm": "SHA256",
                             "checksumValue": components.sha256_file(components.zig_executable())}]
        pkg["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                "referenceLocator": f"pkg:pypi/ziglang@{components.zig_version()}"}]
        pkg["sourceInfo"] = (f"as shipped in the ziglang {components.zig_version()} wheel "
                             f"(checksum: its zig executable)")
    return pkg


def document(plugins: list, version: str, created: str) -> dict[str, Any]:
    """The SPDX document of the release's plugins."""
    packages, relationships, seen = [], [], {}
    refs = set()
    for so in plugins:
        linked = components.linked(so)
        pid = plugin_id(so)
        packages.append({"SPDXID": pid, "name": so.name, "versionInfo": version,
                         "packageFileName": so.name, "downloadLocation": "NOASSERTION",
                         "summary": f"{so.name} for {plugin_arch(so)} "
                                    f"({elf.header(so)['class']}-bit Kerio products)",
                         "filesAnalyzed": False,
                         "checksums": [{"algorithm": "SHA256",
                                        "checksumValue": components.sha256_file(so)}],
                         "licenseConcluded": components.expression(linked),
                         "licenseDeclared": components.policy()["project"]["license"],
                         "copyrightText": "NOASSERTION", "primaryPackagePurpose": "LIBRARY"})
        relationships.append({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                              "relatedSpdxElement": pid})
        for c in linked:
            if c["name"] == components.policy()["project"]["name"]:
                continue
            cid = component_id(c)
            if cid not in seen:
                seen[cid] = _component_package(c)
            relationships.append({"spdxElementId": pid, "relationshipType": "STATIC_LINK",
                                  "relatedSpdxElement": cid})
            refs |= {c["license"]} if c["license"].startswith("LicenseRef-") else set()
    packages += [seen[k] for k in sorted(seen)]
    name = f"{components.policy()['project']['name']}-{version}"
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": name, "documentNamespace": f"{NAMESPACE}{name}",
        "creationInfo": {"created": created, "creators": ["Tool: avkit release"]},
        "packages": packages, "relationships": relationships,
        "hasExtractedLicensingInfos": [
            {"licenseId": r, "name": components.dep5_license_name(r),
             "extractedText": components.license_text(r)} for r in sorted(refs)],
    }


def write(plugins: list, version: str, created: str, out: Path) -> Path:
    out.write_text(json.dumps(document(plugins, version, created), indent=1) + "\n")
    return out


def missing(sbom: dict, plugins: list) -> list[str]:
    """["avir_x.so: component (version)"] for every component linked into a plugin (by
    its DWARF) that the SBOM does not list as statically linked into that plugin's file
    (same sha256), and for a plugin the SBOM lacks."""
    by_id = {p["SPDXID"]: p for p in sbom.get("packages", [])}
    links = {(r["spdxElementId"], r["relatedSpdxElement"]) for r in sbom.get("relationships", [])
             if r.get("relationshipType") == "STATIC_LINK"}
    out = []
    for so in plugins:
        digest = components.sha256_file(so)
        plugin = next((p for p in by_id.values() if p.get("packageFileName") == so.name and
                       any(c["checksumValue"] == digest for c in p.get("checksums", []))), None)
        if plugin is None:
            out.append(f"{so.name}: the plugin itself (sha256 {digest[:12]}...)")
            continue
        linked_ids = {b for a, b in links if a == plugin["SPDXID"]}
        for c in components.linked(so):
            if c["name"] == components.policy()["project"]["name"]:
                continue
            present = [by_id[i] for i in linked_ids if i in by_id
                       and by_id[i].get("name") == c["name"]
                       and by_id[i].get("versionInfo") == c["version"]]
            if not present:
                out.append(f"{so.name}: {c['name']} {c['version']}")
    return out


def check(path: Path, plugins: list) -> None:
    """The audit's SBOM check: raises naming what is missing."""
    if not Path(path).is_file():
        raise UserError(f"no SBOM at {path}: `python -m avkit release` writes it")
    gone = missing(json.loads(Path(path).read_text()), plugins)
    if gone:
        raise UserError(f"{path} lacks components linked into the plugins (by their debug "
                        f"information): {'; '.join(gone)}")
