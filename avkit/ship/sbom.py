"""The release's SBOM: SPDX 2.3 JSON, one document for every plugin of the release
(each architecture's avir_<name>.so is a package of its own, its architecture in its
SPDXID and summary) and every .deb/.rpm that installs one.

SPDX rather than CycloneDX: what this project must answer is licensing (which
license texts go with each plugin), and SPDX has the license expression of each
package and the texts of licenses outside its list (LicenseRef-) as first-class
fields; its STATIC_LINK relationship says exactly how a component is in a plugin.

It meets the NTIA minimum elements (tests/test_sbom.py runs ntia-checker): a supplier,
name, version and unique SPDXID for every package, the author and time of the document,
and the relationships: the document DESCRIBES each plugin and package, a package CONTAINS
the plugin it installs (the same sha256), a plugin STATIC_LINKs each component its debug
information names (avkit/ship/components.py). A component lists, as SPDX files, the
source files of it the plugins' DWARF names, each with its own SHA1 and SHA256 (read from
the ziglang wheel or the Boost package they were compiled from); Boost also has the
sha256 of its pinned wheel. glibc's pieces carry glibc's own version
(toolchain.GLIBC_VERSION_HOW, also in the document's comment). The documentNamespace is a
UUID derived from the document's content, so two releases differ in it and one release
rebuilt is byte-identical. missing() is the audit's side: the components a plugin's
DWARF names that the SBOM lacks.
"""

import hashlib
import io
import json
import re
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any, Iterable

from avkit import elf, facts, paths
from avkit.errors import UserError
from avkit.ship import components, license_texts, toolchain

NAMESPACE = "https://spdx.org/spdxdocs/"  # SPDX's own base for documents without a home
PROJECT_FILE = paths.PACKAGING / "project.json"

Json = dict[str, Any]


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", text.replace("++", "xx"))


def component_id(component: Json) -> str:
    return _spdx_id(f"component-{component['name']}-{component['version']}")


def plugin_arch(so: Path) -> str:
    return facts.arch_of(elf.header(so)) or "unknown"


def plugin_id(so: Path) -> str:
    """Per architecture: avir_clam.so of i386 and of x86_64 are two packages."""
    return _spdx_id(f"plugin-{plugin_arch(so)}-{so.name}")


def project_supplier() -> str:
    """The project as SPDX supplier: its vendor and the maintainers' address."""
    project = json.loads(PROJECT_FILE.read_text())
    mail = re.search(r"<([^>]+)>", project["maintainer"])
    return f"Organization: {project['vendor']}" + (f" ({mail.group(1)})" if mail else "")


def project_copyright() -> str:
    """The project's copyright lines (its components' are in their own packages)."""
    return "\n".join(components.policy()["project"]["copyright"])


# --- the components and their files ------------------------------------------------------


def _component_root(component: Json) -> Path:
    """The folder a component's files were compiled from, on this machine."""
    if component["version_from"] == "conan":
        return toolchain.boost_package_folder() / "include"
    return toolchain.zig_folder()


def _relative(component: Json, debug_path: str) -> str:
    """A DWARF file name relative to its component's root: from the component's segment
    on (".../zig-0.17.0/lib/libcxx/include/x" -> "lib/libcxx/include/x")."""
    name = "/" + debug_path.lstrip("/")
    at = min(name.find(seg) for seg in component["segments"] if seg in name)
    return name[at + 1 :]


def _file_entry(component: Json, rel: str, root: Path) -> Json:
    path = root / rel
    if not path.is_file():
        raise UserError(
            f"{component['name']}: {path} (named by a plugin's debug information) "
            f"is not here to hash: build on the machine that built the plugins"
        )
    data = path.read_bytes()
    return {
        "SPDXID": _spdx_id(f"file-{component['name']}-{component['version']}-{rel}"),
        "fileName": "./" + rel,
        "checksums": [
            {"algorithm": "SHA1", "checksumValue": hashlib.sha1(data).hexdigest()},
            {"algorithm": "SHA256", "checksumValue": hashlib.sha256(data).hexdigest()},
        ],
        "licenseConcluded": component["license"],
        "copyrightText": "NOASSERTION",
    }


def _verification_code(files: list[Json]) -> str:
    """SPDX's package verification code: SHA1 over the sorted SHA1s of its files."""
    sha1s = sorted(
        c["checksumValue"] for f in files for c in f["checksums"] if c["algorithm"] == "SHA1"
    )
    return hashlib.sha1("".join(sha1s).encode()).hexdigest()


def _component_origin(c: Json) -> Json:
    """The fields saying where a component was taken from."""
    if c["version_from"] == "conan":
        source = toolchain.boost_source()
        return {
            "checksums": [{"algorithm": "SHA256", "checksumValue": source["sha256"]}],
            "packageFileName": source["wheel"],
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": "pkg:pypi/" + source["pypi_requirement"].replace("==", "@"),
                }
            ],
            "sourceInfo": f"the wheel {source['wheel']} pinned by conan/index (sha256 above)",
        }
    info = f"as shipped in the ziglang {toolchain.zig_version()} wheel"
    if c["version_from"] == "glibc":
        info = (
            f"glibc {toolchain.glibc_version()}'s code {info}; glibc's version is "
            f"{toolchain.GLIBC_VERSION_HOW}"
        )
    return {
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:pypi/ziglang@{toolchain.zig_version()}",
            }
        ],
        "sourceInfo": info,
    }


def _component_package(c: Json, files: list[Json]) -> Json:
    return {
        "SPDXID": component_id(c),
        "name": c["name"],
        "versionInfo": c["version"],
        "supplier": c["supplier"],
        "summary": c["title"],
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": _verification_code(files)},
        "comment": "Its files listed here are those the plugins' debug information names.",
        "licenseConcluded": c["license"],
        "licenseDeclared": c["license"],
        "licenseInfoFromFiles": ["NOASSERTION"],
        "copyrightText": "\n".join(c["copyright"]),
        **_component_origin(c),
    }


# --- the plugins ----------------------------------------------------------------------------


def _plugin_package(so: Path, version: str, linked: list[Json]) -> Json:
    return {
        "SPDXID": plugin_id(so),
        "name": so.name,
        "versionInfo": version,
        "supplier": project_supplier(),
        "packageFileName": so.name,
        "downloadLocation": "NOASSERTION",
        "summary": f"{so.name} for {plugin_arch(so)} "
        f"({elf.header(so)['class']}-bit Kerio products)",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": toolchain.sha256_file(so)}],
        "licenseConcluded": components.expression(linked),
        "licenseDeclared": components.policy()["project"]["license"],
        "copyrightText": project_copyright(),
        "primaryPackagePurpose": "LIBRARY",
    }


# --- the .deb and .rpm packages --------------------------------------------------------------


def _run(*cmd: str) -> bytes:
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise UserError(f"{' '.join(cmd)} failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def _deb_facts(deb: Path) -> tuple[str, str, dict[str, str]]:
    """(name, version, {path: sha256 of each avir_*.so it installs})."""
    fields = _run("dpkg-deb", "-f", str(deb), "Package", "Version").decode().splitlines()
    name, version = (line.split(":", 1)[1].strip() for line in fields[:2])
    digests = {}
    tar = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for member in t.getmembers():
            if member.isfile() and re.fullmatch(r"avir_.*\.so", Path(member.name).name):
                digests[member.name.lstrip(".")] = hashlib.sha256(
                    t.extractfile(member).read()
                ).hexdigest()
    return name, version, digests


def _rpm_facts(rpm: Path) -> tuple[str, str, dict[str, str]]:
    """(name, version-release, {path: sha256 of each avir_*.so it installs}): rpm's own
    file digests (nFPM writes SHA256 ones: algorithm 8)."""
    head = _run(
        "rpm",
        "-qp",
        "--nosignature",
        "--qf",
        "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{FILEDIGESTALGO}\\n",
        str(rpm),
    ).decode()
    name, version, algo = head.split("\n")[0].split("\t")
    if algo != "8":
        raise UserError(f"{rpm.name}: file digests of algorithm {algo}, not SHA256 (8)")
    rows = (
        _run("rpm", "-qp", "--nosignature", "--qf", "[%{FILENAMES}\\t%{FILEDIGESTS}\\n]", str(rpm))
        .decode()
        .splitlines()
    )
    digests = {
        p: d
        for p, d in (row.split("\t") for row in rows if "\t" in row)
        if re.fullmatch(r"avir_.*\.so", Path(p).name)
    }
    return name, version, digests


def _package_package(path: Path) -> tuple[Json, set[str]]:
    """The SPDX package of one .deb/.rpm, and the sha256s of the plugins it installs."""
    name, version, digests = (_deb_facts if path.suffix == ".deb" else _rpm_facts)(path)
    kind = "Debian package" if path.suffix == ".deb" else "RPM package"
    return (
        {
            "SPDXID": _spdx_id(f"package-{path.name}"),
            "name": name,
            "versionInfo": version,
            "supplier": project_supplier(),
            "packageFileName": path.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "summary": f"{kind} {path.name}",
            "checksums": [{"algorithm": "SHA256", "checksumValue": toolchain.sha256_file(path)}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": project_copyright(),
            "primaryPackagePurpose": "INSTALL",
        },
        set(digests.values()),
    )


# --- the document -----------------------------------------------------------------------------


def _relationship(a: str, kind: str, b: str) -> Json:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


def document(
    plugins: list[Path], version: str, created: str, package_files: Iterable[Path] = ()
) -> Json:
    """The SPDX document of the release's plugins and of the packages installing them."""
    packages, relationships = [], []
    seen: dict[str, tuple[Json, dict[str, Json]]] = {}  # component id -> (component, files)
    by_digest = {}
    for so in plugins:
        linked = components.linked(so)
        pid = plugin_id(so)
        packages.append(_plugin_package(so, version, linked))
        by_digest[packages[-1]["checksums"][0]["checksumValue"]] = pid
        relationships.append(_relationship("SPDXRef-DOCUMENT", "DESCRIBES", pid))
        for c in linked:
            if c["name"] == components.policy()["project"]["name"]:
                continue
            cid = component_id(c)
            component, files = seen.setdefault(cid, (c, {}))
            root = _component_root(c)
            for rel in {_relative(c, f) for f in c["files"]}:
                files.setdefault(rel, _file_entry(c, rel, root))
            relationships.append(_relationship(pid, "STATIC_LINK", cid))
    for path in sorted(package_files, key=lambda p: p.name):
        package, contained = _package_package(Path(path))
        packages.append(package)
        relationships.append(_relationship("SPDXRef-DOCUMENT", "DESCRIBES", package["SPDXID"]))
        relationships += [
            _relationship(package["SPDXID"], "CONTAINS", by_digest[d])
            for d in sorted(contained)
            if d in by_digest
        ]
    files_out = []
    for cid in sorted(seen):
        c, files = seen[cid]
        entries = [files[rel] for rel in sorted(files)]
        packages.append(_component_package(c, entries))
        files_out += entries
        relationships += [_relationship(cid, "CONTAINS", f["SPDXID"]) for f in entries]
    refs = sorted(
        {c["license"] for c, _ in seen.values() if c["license"].startswith("LicenseRef-")}
    )
    name = f"{components.policy()['project']['name']}-{version}"
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": "",
        "comment": f"The components of each plugin are read from its debug information. "
        f"glibc's pieces carry glibc's own version: {toolchain.GLIBC_VERSION_HOW}.",
        "creationInfo": {
            "created": created,
            "creators": ["Tool: avkit release", project_supplier()],
        },
        "packages": packages,
        "files": files_out,
        "relationships": relationships,
        "hasExtractedLicensingInfos": [
            {
                "licenseId": r,
                "name": license_texts.dep5_license_name(r),
                "extractedText": license_texts.license_text(r),
            }
            for r in refs
        ],
    }
    doc["documentNamespace"] = namespace(doc)
    return doc


def namespace(doc: Json) -> str:
    """A namespace unique to this document's content: a name-based UUID of its hash (the
    same release rebuilt gets the same one; any other document another)."""
    content = json.dumps(
        {k: v for k, v in doc.items() if k != "documentNamespace"}, sort_keys=True
    ).encode()
    digest = hashlib.sha256(content).hexdigest()
    return f"{NAMESPACE}{doc['name']}-{uuid.uuid5(uuid.NAMESPACE_URL, NAMESPACE + digest)}"


def write(
    plugins: list[Path], version: str, created: str, out: Path, package_files: Iterable[Path] = ()
) -> Path:
    out.write_text(json.dumps(document(plugins, version, created, package_files), indent=1) + "\n")
    return out


def missing(sbom: Json, plugins: list[Path]) -> list[str]:
    """["avir_x.so: component (version)"] for every component linked into a plugin (by
    its DWARF) that the SBOM does not list as statically linked into that plugin's file
    (same sha256), and for a plugin the SBOM lacks."""
    by_id = {p["SPDXID"]: p for p in sbom.get("packages", [])}
    links = {
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in sbom.get("relationships", [])
        if r.get("relationshipType") == "STATIC_LINK"
    }
    out = []
    for so in plugins:
        digest = toolchain.sha256_file(so)
        plugin = next(
            (
                p
                for p in by_id.values()
                if p.get("packageFileName") == so.name
                and any(c["checksumValue"] == digest for c in p.get("checksums", []))
            ),
            None,
        )
        if plugin is None:
            out.append(f"{so.name}: the plugin itself (sha256 {digest[:12]}...)")
            continue
        linked_ids = {b for a, b in links if a == plugin["SPDXID"]}
        for c in components.linked(so):
            if c["name"] == components.policy()["project"]["name"]:
                continue
            present = [
                by_id[i]
                for i in linked_ids
                if i in by_id
                and by_id[i].get("name") == c["name"]
                and by_id[i].get("versionInfo") == c["version"]
            ]
            if not present:
                out.append(f"{so.name}: {c['name']} {c['version']}")
    return out


def check(path: Path, plugins: list[Path]) -> None:
    """The audit's SBOM check: raises naming what is missing."""
    if not Path(path).is_file():
        raise UserError(f"no SBOM at {path}: `python -m avkit release` writes it")
    gone = missing(json.loads(Path(path).read_text()), plugins)
    if gone:
        raise UserError(
            f"{path} lacks components linked into the plugins (by their debug "
            f"information): {'; '.join(gone)}"
        )
