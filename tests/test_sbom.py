"""The release's SBOM (avkit/ship/sbom.py) against the NTIA minimum elements, checked by
a real conformance checker from PyPI (ntia-conformance-checker, pinned in ci/tools.txt),
and validated as SPDX 2.3 by spdx-tools (its dependency): suppliers, a namespace unique to
each document, glibc's own version for glibc's pieces, the files' own hashes, and the
.deb/.rpm packages with what they contain. No test depends on the version number."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import facts, paths
from avkit.ship import audit, components, licenses, sbom, toolchain

CREATED = "2026-01-01T00:00:00Z"
PLUGINS = ("avir_clam.so", "avir_sample.so")
TOOLS = Path(sys.executable).parent


def run(cmd, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert not check or r.returncode == 0, f"{cmd}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def plugins(artifact):
    """Every plugin of every architecture's dist folder, as a release has them."""
    for arch in facts.architectures():
        for name in PLUGINS:
            artifact(name, arch=arch)  # fails naming the build command when not built
    return [
        so
        for arch in facts.architectures()
        for so in audit.plugins_in(paths.dist_dir("zig", arch=arch))
    ]


@pytest.fixture(scope="module")
def package_files(tmp_path_factory, plugins):
    """The .deb and .rpm packages of the plugins of every architecture (no repository)."""
    out = tmp_path_factory.mktemp("packages")
    run(
        [sys.executable, "-m", "avkit", "package", "--arch", "all", "--out", out, "--no-repo"],
        cwd=paths.ROOT,
    )
    return sorted(p for p in out.iterdir() if p.suffix in (".deb", ".rpm"))


@pytest.fixture(scope="module")
def doc(plugins, package_files):
    return sbom.document(plugins, components.project_version(), CREATED, package_files)


@pytest.fixture(scope="module")
def spdx_path(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("sbom") / "release.spdx.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def test_ntia_checker_finds_every_minimum_element(spdx_path):
    checker = shutil.which("ntia-checker", path=str(TOOLS)) or shutil.which("ntia-checker")
    assert checker, (
        "ntia-checker is not installed: pip install -c ci/tools.txt ntia-conformance-checker"
    )
    report = run([checker, "--comply", "ntia", "--output", "json", spdx_path], check=False)
    result = json.loads(report.stdout)
    assert result["isNtiaConformant"] is True, report.stdout
    assert result["isConformant"] is True, report.stdout


def test_spdx_tools_validate_the_document(spdx_path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    messages = validate_full_spdx_document(parse_file(str(spdx_path)))
    assert [m.validation_message for m in messages] == []


def test_every_package_names_its_supplier(doc):
    assert [
        p["name"]
        for p in doc["packages"]
        if not p.get("supplier", "").startswith(("Organization: ", "Person: "))
    ] == []


def test_each_document_has_its_own_namespace_and_a_rebuild_the_same(plugins, doc):
    again = sbom.document(plugins, components.project_version(), CREATED)
    other_version = sbom.document(plugins, components.project_version() + ".1", CREATED)
    same = sbom.document(plugins, components.project_version(), CREATED)
    assert again["documentNamespace"] == same["documentNamespace"]
    assert other_version["documentNamespace"] != same["documentNamespace"]
    # one more package described: another document, another namespace
    assert doc["documentNamespace"] != same["documentNamespace"]
    for d in (doc, same, other_version):
        assert d["documentNamespace"].startswith(sbom.NAMESPACE + d["name"] + "-")


def zig_glibc_versions() -> list:
    """The glibc versions zig itself says it can target (`zig targets`, in its ZON)."""
    out = run([toolchain.zig_executable(), "targets"]).stdout
    block = re.search(r"\.glibc = \.\{(.*?)\}", out, re.S)
    assert block, "no .glibc list in `zig targets`"
    return re.findall(r'"([0-9.]+)"', block.group(1))


def version_key(v: str) -> tuple:
    """2.44.0 and 2.44 are one version."""
    key = [int(x) for x in v.split(".")]
    while key and key[-1] == 0:
        key.pop()
    return tuple(key)


def test_glibc_pieces_carry_glibcs_own_version(doc):
    glibc = [p for p in doc["packages"] if p["name"].startswith("glibc-")]
    assert glibc, "no glibc component in the SBOM of the plugins"
    newest = max(zig_glibc_versions(), key=version_key)
    for p in glibc:
        assert p["versionInfo"] != toolchain.zig_version()
        assert version_key(p["versionInfo"]) == version_key(newest), p
        assert "abilists" in p["sourceInfo"]
    assert "glibc's own version" in doc["comment"]


def test_the_copyright_file_gives_glibcs_version_not_zigs(plugins):
    clam = next(so for so in plugins if so.name == "avir_clam.so")
    text = licenses.render(
        components.linked(clam), {"maintainer": "m <m@m>", "homepage": "https://h/"}, clam.name
    )
    paragraphs = [p for p in licenses.parse(text) if "glibc" in p.get("Comment", "")]
    assert paragraphs
    for p in paragraphs:
        assert f"version {toolchain.glibc_version()}," in p["Comment"]
        assert f"version {toolchain.zig_version()}," not in p["Comment"]


def test_components_list_their_files_with_the_files_own_hashes(doc):
    zig = toolchain.sha256_file(toolchain.zig_executable())
    files = {f["SPDXID"]: f for f in doc["files"]}
    contains = {}
    for r in doc["relationships"]:
        if r["relationshipType"] == "CONTAINS" and r["relatedSpdxElement"] in files:
            contains.setdefault(r["spdxElementId"], []).append(files[r["relatedSpdxElement"]])
    for p in (p for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-component-")):
        assert zig not in [c["checksumValue"] for c in p.get("checksums", [])], p["name"]
        assert contains.get(p["SPDXID"]), f"{p['name']} lists no files"
    checked = 0
    for f in files.values():
        if f["SPDXID"].startswith("SPDXRef-file-boost"):
            continue  # Boost's files are in the Conan cache; zig's make the point
        data = (toolchain.zig_folder() / f["fileName"]).read_bytes()
        sums = {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}
        assert sums == {
            "SHA1": hashlib.sha1(data).hexdigest(),
            "SHA256": hashlib.sha256(data).hexdigest(),
        }, f["fileName"]
        checked += 1
    assert checked > 10


def test_the_packages_are_described_with_the_plugin_they_contain(doc, package_files, plugins):
    by_file = {p.get("packageFileName"): p for p in doc["packages"]}
    plugin_ids = {sbom.plugin_id(so): so.name for so in plugins}
    assert len(plugin_ids) == len(plugins)  # each architecture's plugin is its own package
    contains = {
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in doc["relationships"]
        if r["relationshipType"] == "CONTAINS"
    }
    described = {
        r["relatedSpdxElement"]
        for r in doc["relationships"]
        if r["relationshipType"] == "DESCRIBES"
    }
    assert package_files
    for path in package_files:
        package = by_file[path.name]
        assert package["SPDXID"] in described
        assert package["checksums"][0]["checksumValue"] == toolchain.sha256_file(path)
        inside = [plugin_ids[b] for a, b in contains if a == package["SPDXID"] and b in plugin_ids]
        if re.fullmatch(r"kerio-[a-z]+-avir-[a-z0-9_]+", package["name"]) and not package[
            "name"
        ].endswith(("dbgsym", "debuginfo")):
            # kerio-<product>-avir-<name>: exactly the plugin of its name
            name = package["name"].rsplit("-avir-", 1)[1]
            assert inside == [f"avir_{name}.so"], package["name"]


def test_the_docs_check_command_says_conformant(spdx_path):
    """docs/sbom.md's `ntia-checker` line, run as written on an SBOM."""
    doc_lines = (paths.ROOT / "docs" / "sbom.md").read_text().splitlines()
    (line,) = [x.strip() for x in doc_lines if x.strip().startswith("ntia-checker ")]
    argv = line.replace("kerio-avir-plugins-<version>.spdx.json", str(spdx_path)).split()
    argv[0] = shutil.which("ntia-checker", path=str(TOOLS)) or argv[0]
    r = run(argv, check=False)
    assert "Conformant: True" in r.stdout, r.stdout + r.stderr
