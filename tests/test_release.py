"""The release (avkit release): licenses derived from what each plugin links, DEP-5
copyright files and the RPM %license, the SPDX SBOM and the audit that checks it,
placeholders refused on a tagged release, the reproducible source archive, the
provenance, the debug sources that let gdb show a line, release notes and SHA256SUMS."""

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from avkit import facts, paths
from avkit.errors import UserError
from avkit.ship import components, licenses, provenance, sbom, source_archive, toolchain, version
from private_apt import private_apt

#: the release the tests make: the VERSION file's (whatever it holds), given with --version
VERSION = (paths.ROOT / "VERSION").read_text().strip()
GUIDE = paths.ROOT / "docs" / "release.md"
NAME = "kerio-avir-plugins"
LLVM_RUNTIMES = {"libc++", "libc++abi", "libunwind"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("rpm"), reason="builds packages: needs root, dpkg and rpm"
)


def run(cmd, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r


def avkit(*args, **kw):
    return run([sys.executable, "-m", "avkit", *args], **kw)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def plugins(dist, artifact):
    return {name: artifact(name) for name in ("avir_clam.so", "avir_sample.so")}


@pytest.fixture(scope="module")
def every_plugin(artifact):
    """{(architecture, file name): plugin} of both release architectures."""
    return {
        (arch, name): artifact(name, arch=arch)
        for arch in facts.architectures()
        for name in ("avir_clam.so", "avir_sample.so")
    }


def guide_block(heading: str, index: int = 0) -> list[str]:
    """The command lines of a ```sh block of docs/release.md's section `heading` (comments
    and blank lines left out)."""
    text = GUIDE.read_text()
    section = text[text.index(heading) :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else None]
    block = re.findall(r"```sh\n(.*?)```", section, re.S)[index]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def make_key_as_the_guide_says(folder: Path) -> Path:
    """docs/release.md's throwaway key, made with its commands (GNUPGHOME: a folder of
    the test, not mktemp's)."""
    home = folder / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    for line in guide_block("## 1. A signing key"):
        if line.startswith("export GNUPGHOME"):
            continue
        run(["sh", "-c", line], cwd=folder, env=env)
    run(["gpgconf", "--kill", "all"], env=env, check=False)
    return folder / "key.asc"


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory) -> Path:
    return make_key_as_the_guide_says(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def release(tmp_path_factory, plugins, every_plugin, signing_key):
    """`avkit package --arch all` then `avkit release` of the built plugins of both
    architectures, signed with the guide's throwaway key, into a temporary folder."""
    top = tmp_path_factory.mktemp("release")
    avkit(
        "package",
        "--arch",
        "all",
        "--out",
        top / "packages",
        "--version",
        VERSION,
        "--sign-key",
        signing_key,
        cwd=paths.ROOT,
    )
    avkit(
        "release",
        "--packages",
        top / "packages",
        "--out",
        top / "release",
        "--version",
        VERSION,
        "--sign-key",
        signing_key,
        cwd=paths.ROOT,
    )
    return top / "release"


def spdx_file(release) -> Path:
    return release / f"{NAME}-{VERSION}.spdx.json"


def deb_copyright(deb: Path) -> str:
    package = deb.name.split("_")[0]
    return run(
        [
            "sh",
            "-c",
            f"dpkg-deb --fsys-tarfile '{deb}' | tar -xO ./usr/share/doc/{package}/copyright",
        ]
    ).stdout


# --- licenses --------------------------------------------------------------------------


def test_components_are_read_from_the_debug_information(plugins):
    clam = {c["name"]: c for c in components.linked(plugins["avir_clam.so"])}
    sample = {c["name"]: c for c in components.linked(plugins["avir_sample.so"])}
    assert {"boost", *LLVM_RUNTIMES, NAME} <= set(clam)
    assert any("/boost/asio/" in f for f in clam["boost"]["files"])
    assert any(f.endswith("/libcxxabi/src/cxa_exception.cpp") for f in clam["libc++abi"]["files"])
    # C only: no Boost, no C++ runtime, and the project's files are the sample's own.
    assert NAME in sample and not {"boost", *LLVM_RUNTIMES} & set(sample)
    assert components.project_sources(plugins["avir_sample.so"]) == [
        "api/avCommon.c",
        "sample/avPlugin.c",
    ]
    assert clam["boost"]["version"] == toolchain.boost_version() == "1.85.0"
    assert clam["boost"]["license"] == "BSL-1.0"
    assert clam["libc++"]["license"] == "Apache-2.0 WITH LLVM-exception"


def test_components_match_the_canonical_names_of_a_release_build_too():
    """The release build names its sources /usr/src/debug/<name>/... (the same segments as
    a local build's raw paths, which the test above reads)."""
    zig, boost = f"/usr/src/debug/zig-{toolchain.zig_version()}/lib", "/usr/src/debug/boost-1.85.0"
    names = {
        f"{zig}/libcxx/src/string.cpp": "libc++",
        f"{zig}/libcxxabi/src/cxa_guard.cpp": "libc++abi",
        f"{zig}/libunwind/src/libunwind.cpp": "libunwind",
        f"{zig}/libc/glibc/io/fstat64-2.32.c": "glibc-nonshared",
        f"{zig}/libc/include/generic-glibc/bits/stdio2.h": "glibc-headers",
        f"{boost}/boost/asio/io_context.hpp": "boost",
        f"/usr/src/debug/{NAME}/clam/src/scanner.cpp": NAME,
    }
    found = components.classify(sorted(names))
    assert {f: c for c, files in found.items() for f in files} == names
    assert (
        components.project_relative(f"/usr/src/debug/{NAME}/clam/src/scanner.cpp")
        == "clam/src/scanner.cpp"
    )


def test_a_linked_file_of_no_known_component_stops_the_release():
    known = "/usr/src/debug/kerio-avir-plugins/api/avCommon.c"
    assert components.classify([known]) == {NAME: [known]}
    with pytest.raises(UserError, match="components.json"):
        components.classify([known, "/opt/vendor/libfoo/src/foo.c"])


def test_copyright_files_are_dep5_and_list_what_the_plugin_links(release, every_plugin):
    for (arch, plugin), so in every_plugin.items():
        name = plugin[len("avir_") : -len(".so")]
        deb_arch = facts.architecture(arch)["deb"]
        linked = components.linked(so)
        wanted = {licenses.dep5_name(c["license"]) for c in linked}
        debs = [
            *release.glob(f"kerio-*-avir-{name}_*_{deb_arch}.deb"),
            *release.glob(f"kerio-avir-{name}-dbgsym_*_{deb_arch}.deb"),
        ]
        assert len(debs) == len(facts.products()) + 1, debs
        for deb in debs:
            text = deb_copyright(deb)
            texts = licenses.check(text)  # every Files paragraph has its license's text
            files = [p for p in licenses.parse(text) if "Files" in p]
            assert {p["License"] for p in files} == wanted == set(texts), deb.name
            assert len(files) == len(linked)
            # Debian policy: the common licenses by reference, LLVM's exception in full.
            if "Apache-2.0 with LLVM exception" in texts:
                assert (
                    "/usr/share/common-licenses/Apache-2.0"
                    in texts["Apache-2.0 with LLVM exception"]
                )
                assert "LLVM Exceptions to the Apache 2.0 License" in text
            assert ("BSL-1.0" in texts) == (plugin == "avir_clam.so"), deb.name
            assert (
                "Boost Software License - Version 1.0" in text
                if plugin == "avir_clam.so"
                else "Boost" not in text
            )


def test_the_rpm_license_file_is_marked_license_with_every_text_in_full(release, tmp_path):
    for rpm in sorted(release.glob("*.rpm")):
        name = run(["rpm", "-qp", "--qf", "%{NAME}", rpm]).stdout
        copyright_file = f"/usr/share/licenses/{name}/copyright"
        assert run(["rpm", "-qp", "--licensefiles", rpm]).stdout.split() == [copyright_file]
        assert copyright_file not in run(["rpm", "-qp", "--docfiles", rpm]).stdout
        root = tmp_path / rpm.name  # a package of each architecture
        root.mkdir()
        run(["sh", "-c", f"rpm2cpio '{rpm}' | cpio -idm --quiet"], cwd=root)
        text = (root / copyright_file.lstrip("/")).read_text()
        licenses.check(text)
        if "clam" in name:
            assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
            assert "Boost Software License - Version 1.0" in text
        assert "On Debian systems, the complete text" not in text  # no reference: the text


# --- SBOM ------------------------------------------------------------------------------


def test_sbom_lists_each_plugin_and_its_components_with_hashes(release, every_plugin):
    """Each plugin of each architecture is a package of its own, with its hash, and
    linked to the components its own debug information names."""
    doc = json.loads(spdx_file(release).read_text())
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    plugin_packages = [p for p in doc["packages"] if p["name"].startswith("avir_")]
    assert len(plugin_packages) == len(facts.architectures()) * len(
        list(paths.dist_dir("zig").glob("avir_*.so"))
    )
    for (arch, plugin), so in every_plugin.items():
        package = by_id[sbom.plugin_id(so)]
        assert arch.replace("_", "-") in package["SPDXID"]
        assert package["packageFileName"] == plugin and arch in package["summary"]
        assert package["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha256(so)}]
    assert sbom.missing(doc, list(every_plugin.values())) == []
    by_name = {p["name"]: p for p in doc["packages"]}
    by_name.update(
        {
            name: by_id[sbom.plugin_id(so)]
            for (arch, name), so in every_plugin.items()
            if arch == "i386"
        }
    )
    boost = by_name["boost"]
    assert boost["versionInfo"] == "1.85.0"
    assert boost["checksums"][0]["checksumValue"] == toolchain.boost_source()["sha256"]
    assert by_name["libc++"]["versionInfo"] == toolchain.llvm_version()
    links = {
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in doc["relationships"]
        if r["relationshipType"] == "STATIC_LINK"
    }
    sample_links = {b for a, b in links if a == by_name["avir_sample.so"]["SPDXID"]}
    assert boost["SPDXID"] not in sample_links
    assert boost["SPDXID"] in {b for a, b in links if a == by_name["avir_clam.so"]["SPDXID"]}
    refs = {e["licenseId"] for e in doc["hasExtractedLicensingInfos"]}
    used = {p["licenseConcluded"] for p in doc["packages"] if "licenseConcluded" in p}
    assert {u for u in used if u.startswith("LicenseRef-")} <= refs


def test_the_audit_fails_an_sbom_missing_a_linked_component(
    release, plugins, every_plugin, tmp_path
):
    good = spdx_file(release)
    r = avkit("audit", "--sbom", good, *every_plugin.values(), cwd=paths.ROOT)
    assert "lists every component" in r.stderr
    doc = json.loads(good.read_text())
    boost = next(p["SPDXID"] for p in doc["packages"] if p["name"] == "boost")
    doc["packages"] = [p for p in doc["packages"] if p["SPDXID"] != boost]
    broken = tmp_path / "no-boost.spdx.json"
    broken.write_text(json.dumps(doc))
    r = avkit("audit", "--sbom", broken, *plugins.values(), cwd=paths.ROOT, check=False)
    assert r.returncode == 1
    assert "avir_clam.so: boost 1.85.0" in r.stderr
    assert "avir_sample.so" not in r.stderr  # it links no Boost: nothing missing there


# --- placeholders ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of this repository's HEAD (committed files only), to tag."""
    top = tmp_path_factory.mktemp("clone") / "repo"
    run(["git", "clone", "--quiet", "--no-hardlinks", paths.ROOT, top])
    run(["git", "-C", top, "config", "user.email", "test@localhost"])
    run(["git", "-C", top, "config", "user.name", "test"])
    return top


def release_in(clone_dir, tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVKIT_")}
    env["AVKIT_DIST_ROOT"] = str(tmp_path / "empty-dist")
    return avkit("release", *args, cwd=clone_dir, env=env, check=False)


def commit_all(clone_dir: Path, message: str) -> None:
    run(["git", "-C", clone_dir, "commit", "-q", "-a", "-m", message])


PLACEHOLDER_PROJECT = {
    "homepage": "https://kerio-plugins.example.org/",
    "maintainer": "M <m@kerio-plugins.example.org>",
}
REAL_PROJECT = {
    "homepage": "https://plugins.kerio-partner.cz/",
    "maintainer": "Plugins team <plugins@kerio-partner.cz>",
}


def set_json(path: Path, **fields) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_a_tagged_release_is_checked_before_anything_builds(clone, tmp_path, signing_key):
    """Placeholders (project.json and repositories.json's base_url), the key, the tree,
    the changelog: each refuses a tagged release, named, before the build is looked at
    ("no avir_*.so" is the first thing a release that passed its checks meets here)."""
    project, repos = clone / "packaging" / "project.json", clone / "packaging" / "repositories.json"
    set_json(project, **PLACEHOLDER_PROJECT)
    set_json(repos, base_url="file:///srv/kerio-avir-plugins")
    commit_all(clone, "placeholders")
    r = release_in(clone, tmp_path)  # a snapshot warns and goes on
    assert "warning: snapshot with placeholders" in r.stderr and "no avir_*.so" in r.stderr
    assert "warning: unsigned snapshot" in r.stderr
    version = "9.8.7"
    (clone / "VERSION").write_text(version + "\n")
    commit_all(clone, "bump")
    run(["git", "-C", clone, "tag", f"v{version}"])
    try:
        r = release_in(clone, tmp_path, "--sign-key", signing_key)
        assert r.returncode == 1 and "no avir_*.so" not in r.stderr, r.stderr
        assert "tagged release cannot carry placeholders" in r.stderr
        for field in (
            "project.json: homepage",
            "project.json: maintainer",
            "repositories.json: base_url",
        ):
            assert f"packaging/{field} = " in r.stderr, (field, r.stderr)
        set_json(project, **REAL_PROJECT)
        set_json(repos, base_url="https://plugins.kerio-partner.cz/repo")
        # Real values, but not committed: the tree is dirty, each file named.
        r = release_in(clone, tmp_path, "--sign-key", signing_key)
        assert r.returncode == 1 and "no avir_*.so" not in r.stderr, r.stderr
        assert (
            "commit or revert: packaging/project.json, packaging/repositories.json" in r.stderr
        ), r.stderr
        commit_all(clone, "real addresses")
        run(["git", "-C", clone, "tag", "-f", f"v{version}"])
        r = release_in(clone, tmp_path)  # no key
        assert r.returncode == 1 and "a tagged release must be signed" in r.stderr, r.stderr
        r = release_in(clone, tmp_path, "--sign-key", signing_key)  # no changelog entry
        assert r.returncode == 1 and f"changelog.json has no entry for {version}" in r.stderr
        log = json.loads((clone / "packaging" / "changelog.json").read_text())
        log["entries"].insert(
            0, {"version": version, "date": "2026-12-06T12:00:00Z", "changes": ["Test."]}
        )
        (clone / "packaging" / "changelog.json").write_text(json.dumps(log, indent=2))
        commit_all(clone, "changelog")
        run(["git", "-C", clone, "tag", "-f", f"v{version}"])
        r = release_in(clone, tmp_path, "--sign-key", signing_key, "--version", "9.8.8")
        assert r.returncode == 1 and "disagrees with the tag" in r.stderr, r.stderr
        r = release_in(clone, tmp_path, "--sign-key", signing_key)
        assert f"tagged release {version}: checks passed" in r.stderr, r.stderr
        assert "no avir_*.so" in r.stderr
    finally:
        run(["git", "-C", clone, "tag", "-d", f"v{version}"])


def test_source_state_lists_every_changed_path_exactly(clone, monkeypatch):
    """git status --porcelain's first line starts with a space (" M path"): the
    provenance must not strip it and eat the path's first letter."""
    monkeypatch.setattr(paths, "ROOT", clone)
    (clone / "packaging" / "project.json").write_text("{}\n")
    (clone / "docs" / "a file with spaces.md").write_text("x\n")
    run(["git", "-C", clone, "add", "docs/a file with spaces.md"])
    run(["git", "-C", clone, "mv", "LICENSE", "LICENSE.txt"])
    (clone / "VERSION").unlink()
    try:
        state = provenance.source_state()
        assert state["dirty"] is True
        assert sorted(state["changed_files"]) == [
            "LICENSE",
            "LICENSE.txt",
            "VERSION",
            "docs/a file with spaces.md",
            "packaging/project.json",
        ]
        assert (
            state["changed_files"]["packaging/project.json"] == hashlib.sha256(b"{}\n").hexdigest()
        )
        assert state["changed_files"]["VERSION"] is None  # deleted
    finally:
        run(["git", "-C", clone, "reset", "-q", "--hard"])


# --- source archive, provenance, notes, checksums --------------------------------------------


def test_source_archive_is_reproducible(release, tmp_path):
    version_file = {version.ARCHIVE_VERSION_FILE: VERSION + "\n"}
    first = source_archive.write(tmp_path / "a.tar.gz", f"{NAME}-{VERSION}", extra=version_file)
    second = source_archive.write(tmp_path / "b.tar.gz", f"{NAME}-{VERSION}", extra=version_file)
    assert first.read_bytes() == second.read_bytes()
    assert (release / f"{NAME}-{VERSION}.tar.gz").read_bytes() == first.read_bytes()
    header = first.read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0" and not header[3] & 0x08  # no time, no file name
    with tarfile.open(first) as tar:
        names = tar.getnames()
        mtimes = {m.mtime for m in tar.getmembers()}
    assert f"{NAME}-{VERSION}/VERSION" in names and f"{NAME}-{VERSION}/LICENSE" in names
    assert not [n for n in names if "/dist/" in n or "/.nox/" in n]
    commit_time = int(run(["git", "-C", paths.ROOT, "log", "-1", "--format=%ct"]).stdout)
    assert mtimes == {commit_time}
    assert gzip.decompress(first.read_bytes())  # a valid gzip stream


def test_provenance_records_commit_tools_inputs_and_outputs(release, every_plugin):
    prov = json.loads((release / "provenance.json").read_text())
    head = run(["git", "-C", paths.ROOT, "rev-parse", "HEAD"]).stdout.strip()
    assert prov["version"] == VERSION
    assert prov["source"]["commit"] == head and isinstance(prov["source"]["dirty"], bool)
    assert (
        prov["source"]["tree"]
        == run(["git", "-C", paths.ROOT, "rev-parse", "HEAD^{tree}"]).stdout.strip()
    )
    for tool in ("zig", "conan", "cmake", "ninja", "nfpm", "python"):
        assert prov["tools"][tool], tool
    assert prov["inputs"]["conan.lock"] == sha256(paths.ROOT / "conan.lock")
    assert prov["inputs"]["ci/tools.txt"] == sha256(paths.ROOT / "ci" / "tools.txt")
    assert prov["inputs"]["boost"]["sha256"] == toolchain.boost_source()["sha256"]
    by_name = {Path(k).name: v for k, v in prov["outputs"].items()}
    for so in every_plugin.values():  # both architectures' avir_clam.so, each by its path
        assert [v for k, v in prov["outputs"].items() if Path(k).parts[-2:] == so.parts[-2:]] == [
            sha256(so)
        ], so
    for deb in release.glob("*.deb"):  # the packages of both architectures
        assert by_name[deb.name] == sha256(deb)
    assert [n for n in by_name if n.endswith("_amd64.deb")] and [
        n for n in by_name if n.endswith("_i386.deb")
    ]
    assert by_name[f"{NAME}-{VERSION}.tar.gz"] == sha256(release / f"{NAME}-{VERSION}.tar.gz")


def test_release_notes_and_checksums(release):
    notes = (release / "RELEASE-NOTES.md").read_text()
    entry = next(
        e
        for e in json.loads((paths.ROOT / "packaging" / "changelog.json").read_text())["entries"]
        if e["version"] == VERSION
    )
    assert notes.startswith(f"# {NAME} {VERSION}\n")
    for change in entry["changes"]:
        assert f"- {change}" in notes
    for arch, a in facts.architectures().items():
        label = re.escape(f"({arch}, {a['elf_class']}-bit: {a['deb']} .deb, {a['rpm']} .rpm)")
        assert re.search(rf"`avir_clam.so` {label}: .*boost 1\.85\.0 \(BSL-1\.0\)", notes)
        assert "boost" not in next(
            line for line in notes.splitlines() if line.startswith(f"- `avir_sample.so` ({arch},")
        )
        assert re.search(rf"^- `kerio-connect-avir-clam_{VERSION}-1_{a['deb']}\.deb`$", notes, re.M)
        assert re.search(
            rf"^- `kerio-connect-avir-clam-{VERSION}-1\.{a['rpm']}\.rpm`$", notes, re.M
        )
    assert "UNSIGNED" not in notes and "signed in `SHA256SUMS.asc`" in notes
    run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=release)
    listed = {line.split("  ", 1)[1] for line in (release / "SHA256SUMS").read_text().splitlines()}
    assert listed == {
        f.relative_to(release).as_posix()
        for f in release.rglob("*")
        if f.is_file() and f.name not in ("SHA256SUMS", "SHA256SUMS.asc")
    }
    assert {
        f"{NAME}-{VERSION}.tar.gz",
        f"{NAME}-{VERSION}.spdx.json",
        "provenance.json",
        "RELEASE-NOTES.md",
    } <= listed
    for a in facts.architectures().values():
        assert [n for n in listed if n.endswith(f"_{a['deb']}.deb")], a["deb"]
        assert [n for n in listed if n.endswith(f".{a['rpm']}.rpm")], a["rpm"]


def test_a_release_whose_packages_lack_an_architecture_is_refused(tmp_path):
    """The release ships both architectures' plugins: packages of one alone are refused
    before anything is written."""
    only_i386 = tmp_path / "packages"
    only_i386.mkdir()
    (only_i386 / f"kerio-connect-avir-clam_{VERSION}-1_i386.deb").write_bytes(b"")
    r = avkit(
        "release",
        "--packages",
        only_i386,
        "--out",
        tmp_path / "release",
        "--version",
        VERSION,
        cwd=paths.ROOT,
        check=False,
    )
    assert r.returncode == 1, r.stderr
    assert "no amd64 .deb nor x86_64 .rpm" in r.stderr and "--arch all" in r.stderr, r.stderr
    assert not list((tmp_path / "release").glob("*.tar.gz"))


# --- debug sources -----------------------------------------------------------------------


def gdb_list(so: Path, root: Path, function: str) -> str:
    """gdb's listing of a function, with the debug packages unpacked into root: debug
    files by build-id, sources where the DWARF names them (/usr/src/debug/..., or, for a
    local build's relative names, the project folder as the working directory)."""
    project = root / "usr" / "src" / "debug" / NAME
    project.mkdir(parents=True, exist_ok=True)
    return run(
        [
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            f"set debug-file-directory {root}/usr/lib/debug",
            "-ex",
            f"set substitute-path /usr/src/debug {root}/usr/src/debug",
            "-ex",
            f"file {so}",
            "-ex",
            f"list {function}",
        ],
        cwd=project,
        check=False,
    )


@pytest.mark.skipif(not shutil.which("gdb"), reason="gdb is missing: apt-get install gdb")
@pytest.mark.parametrize("arch", list(facts.architectures()))
def test_gdb_lists_source_lines_of_avir_sample_from_the_debug_packages(
    release, every_plugin, arch, tmp_path
):
    """Each architecture's debug package, with the one debug sources package."""
    so = every_plugin[(arch, "avir_sample.so")]
    deb_arch = facts.architecture(arch)["deb"]
    source = (paths.ROOT / "api" / "avCommon.c").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "iface_plugin_init(AV_LOG" in text)
    without, with_sources = tmp_path / "symbols-only", tmp_path / "both"
    for root, debs in (
        (without, [f"kerio-avir-sample-dbgsym_*_{deb_arch}.deb"]),
        (
            with_sources,
            [f"kerio-avir-sample-dbgsym_*_{deb_arch}.deb", "kerio-avir-debugsource_*.deb"],
        ),
    ):
        for pattern in debs:
            run(["dpkg-deb", "-x", next(release.glob(pattern)), root])
    r = gdb_list(so, without, "iface_plugin_init")
    assert "No such file" in r.stdout + r.stderr  # symbols alone: gdb knows the line, not the text
    r = gdb_list(so, with_sources, "iface_plugin_init")
    assert f"{line}\tstatic int iface_plugin_init(AV_LOG_CALLBACK_NEW log_callback)" in r.stdout, (
        r.stdout + r.stderr
    )


def test_debugsource_holds_the_files_the_dwarf_names(release, every_plugin):
    # every plugin the release packaged (both architectures), not only the two the
    # other tests look at
    wanted = sorted(
        {
            f
            for arch in facts.architectures()
            for so in paths.dist_dir("zig", arch=arch).glob("avir_*.so")
            for f in components.project_sources(so)
        }
    )
    deb = next(release.glob("kerio-avir-debugsource_*_all.deb"))
    listing = run(["dpkg-deb", "-c", deb]).stdout
    shipped = sorted(re.findall(rf"\./usr/src/debug/{NAME}/(\S*[^/\s])$", listing, re.M))
    assert shipped == wanted
    rpm = next(release.glob("kerio-avir-debugsource-*.noarch.rpm"))
    assert (
        sorted(
            f[len(f"/usr/src/debug/{NAME}/") :]
            for f in run(["rpm", "-qlp", rpm]).stdout.split()
            if f.startswith(f"/usr/src/debug/{NAME}/")
            and (paths.ROOT / f[len(f"/usr/src/debug/{NAME}/") :]).is_file()
        )
        == wanted
    )


def test_debugsource_packages_are_lint_clean(release, tmp_path):
    """The copyright, %license and debugsource packages pass lintian and rpmlint (the
    plugin and debug packages are linted in test_packages.py with the same rules)."""
    debs = sorted(release.glob("*.deb"))
    r = run(["lintian", "--no-cfg", "--fail-on", "none", *debs])
    assert not [line for line in r.stdout.splitlines() if re.match(r"[EW]: ", line)], r.stdout
    # The .rpms are signed: rpmlint checks the signature against the rpm database it runs
    # with, so it runs where the release's key is imported, as on a site.
    home = tmp_path / "home"
    (home / "rpmdb").mkdir(parents=True)
    (home / ".rpmmacros").write_text(f"%_dbpath {home / 'rpmdb'}\n")
    env = dict(os.environ, HOME=str(home))
    run(["rpm", "--import", release / "signing-key.asc"], env=env)
    r = run(
        [
            "rpmlint",
            "-c",
            paths.ROOT / "packaging" / "rpmlint.toml",
            *sorted(release.glob("*.rpm")),
        ],
        check=False,
        env=env,
    )
    assert re.search(r"\b0 errors\b", r.stdout) and re.search(r"\b0 warnings\b", r.stdout), r.stdout


# --- one version, a folder verifiable on its own -------------------------------------------


def test_a_version_the_packages_do_not_carry_is_refused(release, tmp_path):
    """`avkit release --version X` over packages of another version would label the SBOM,
    the archive and the notes X: refused, naming the packages."""
    packages_dir = release.parent / "packages"
    r = avkit(
        "release",
        "--packages",
        packages_dir,
        "--out",
        tmp_path / "out",
        "--version",
        "9.9.9",
        cwd=paths.ROOT,
        check=False,
    )
    assert r.returncode == 1, r.stderr
    assert "the release is 9.9.9 but these packages are not" in r.stderr
    assert f"kerio-connect-avir-clam_{VERSION}-1_i386.deb ({VERSION})" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_source_archive_builds_its_own_version_without_git(release, tmp_path):
    """Unpacked without .git, the archive's .version decides the version (not the bare
    VERSION, which a snapshot's archive would otherwise turn into a release)."""
    with tarfile.open(release / f"{NAME}-{VERSION}.tar.gz") as tar:
        member = tar.getmember(f"{NAME}-{VERSION}/{version.ARCHIVE_VERSION_FILE}")
        assert tar.extractfile(member).read().decode() == VERSION + "\n"
    snapshot = "1.2.3+git20261206120000.abcdef0"
    archive = source_archive.write(
        tmp_path / "s.tar.gz", "s", extra={version.ARCHIVE_VERSION_FILE: snapshot + "\n"}
    )
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    env = {k: v for k, v in os.environ.items() if k != "AVKIT_VERSION"}
    r = run(
        [
            sys.executable,
            "-c",
            "from avkit.ship import packages; print(packages.project_version())",
        ],
        cwd=tmp_path / "s",
        env=dict(env, GIT_CEILING_DIRECTORIES=str(tmp_path)),
    )
    assert r.stdout.strip() == snapshot


def test_the_release_folder_verifies_on_its_own_with_the_guides_commands(release, tmp_path):
    """Only the published folder (copied away from everything else) and the commands of
    docs/release.md's "Verifying a release": gpgv, sha256sum -c, rpm -K with the key
    imported, apt with signed-by; a tampered file fails them."""
    published = tmp_path / "published"
    shutil.copytree(release, published)
    for name in (
        "SHA256SUMS",
        "SHA256SUMS.asc",
        "signing-key.asc",
        "signing-key.gpg",
        "RELEASE-NOTES.md",
        "provenance.json",
        f"{NAME}-{VERSION}.tar.gz",
        f"{NAME}-{VERSION}.spdx.json",
        "kerio-avir-plugins.list",
        "kerio-avir-plugins.repo",
        "dists/stable/InRelease",
        "dists/stable/Release.gpg",
    ):
        assert (published / name).is_file(), name
    for a in facts.architectures().values():
        assert (published / "yum" / a["yum_basearch"] / "repodata" / "repomd.xml.asc").is_file()
        assert (
            published / "dists" / "stable" / "main" / f"binary-{a['deb']}" / "Packages"
        ).is_file()
    home = tmp_path / "home"  # rpm --import into a private database, as a site's own
    (home / "rpmdb").mkdir(parents=True)
    (home / ".rpmmacros").write_text(f"%_dbpath {home / 'rpmdb'}\n")
    env = dict(os.environ, HOME=str(home))
    commands = guide_block("## 5. Verifying a release")
    assert [c.split()[0] for c in commands] == ["gpgv", "sha256sum", "rpm"]
    for line in commands:
        r = run(["sh", "-c", line], cwd=published, env=env)
        assert "BAD" not in r.stdout + r.stderr
    assert "signatures OK" in r.stdout
    # apt, with the sources line the folder ships (signed-by), the amd64 machine with i386
    # added as the guide says, the keyring where the line says.
    apt_lines = guide_block("## 5. Verifying a release", 1)
    assert apt_lines[0] == "dpkg --add-architecture i386"
    line = next(
        li
        for li in (published / "kerio-avir-plugins.list").read_text().splitlines()
        if li.startswith("deb ")
    )
    keyring = "/usr/share/keyrings/kerio-avir-plugins.gpg"
    assert f"[signed-by={keyring}]" in line
    line = re.sub(
        r"\] \S+ ",
        f"] file:{published} ",
        line.replace(keyring, str(published / "signing-key.gpg")),
    )
    opts = private_apt(tmp_path / "apt", [line], ["amd64", "i386"])
    r = run(["apt-get", *opts, "update"])
    shown = run(["apt-cache", *opts, "show", "kerio-connect-avir-clam:i386"]).stdout
    assert f"Version: {VERSION}-1" in shown and "Architecture: i386" in shown
    # Tampering with a package is caught by sha256sum; with SHA256SUMS by gpgv.
    deb = next(published.glob("*.deb"))
    deb.write_bytes(deb.read_bytes() + b"x")
    assert (
        run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=published, check=False).returncode
        != 0
    )
    sums = published / "SHA256SUMS"
    sums.write_text(
        sums.read_text().replace(toolchain.sha256_file(release / deb.name), sha256(deb))
    )
    assert (
        run(
            ["gpgv", "--keyring", "./signing-key.gpg", "SHA256SUMS.asc", "SHA256SUMS"],
            cwd=published,
            check=False,
        ).returncode
        != 0
    )


def test_an_unsigned_snapshot_says_so_in_its_names_and_notes(release, tmp_path):
    """Without a key (a snapshot only), the archive and the SBOM are -UNSIGNED, the notes
    say so, and there is no SHA256SUMS.asc."""
    unsigned = tmp_path / "unsigned-packages"
    shutil.copytree(release.parent / "packages", unsigned)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVKIT_SIGNING")}
    avkit(
        "release",
        "--packages",
        unsigned,
        "--out",
        tmp_path / "out",
        "--version",
        VERSION,
        cwd=paths.ROOT,
        env=env,
    )
    out = tmp_path / "out"
    assert (out / f"{NAME}-{VERSION}-UNSIGNED.tar.gz").is_file()
    assert (out / f"{NAME}-{VERSION}-UNSIGNED.spdx.json").is_file()
    assert not (out / "SHA256SUMS.asc").exists()
    assert "**UNSIGNED snapshot**" in (out / "RELEASE-NOTES.md").read_text()
