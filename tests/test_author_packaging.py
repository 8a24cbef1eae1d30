"""An author packages their own plugin, as docs/author.md ("Packaging your own plugin") tells it: in a folder
outside the repository with the sample plugin copied there (renamed avir_mine), the
document's components file and commands, both architectures, audited and lint-clean,
without AVKIT_DIST_ROOT. The commands and the JSON are read from the document, so the
text and the test cannot drift apart."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import paths

DOC = paths.ROOT / "docs" / "author.md"
BIN = Path(sys.executable).parent
LICENSE_TEXT = "Copyright 2026 Jane Author\n\nPermission to use, copy, modify and distribute.\n"

pytestmark = pytest.mark.skipif(
    not (shutil.which("rpm") and shutil.which("lintian")),
    reason="reads the packages with dpkg-deb and rpm, lints them",
)


def doc_block(language: str, first: str) -> str:
    for block in re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S):
        if block.lstrip().startswith(first):
            return block
    raise AssertionError(f"{DOC.name} has no {language} block starting with {first!r}")


def sh(line: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AVKIT_DIST_ROOT"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    r = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
    )
    assert r.returncode == 0, f"{line}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    where = tmp_path_factory.mktemp("author-packaging")
    if not (BIN / "avkit").exists():  # the one install step of the author's guide
        sh(f"{BIN / 'pip'} install -q -e {paths.ROOT}", where)
    shutil.copytree(paths.ROOT / "api", where / "api")
    shutil.copytree(
        paths.ROOT / "sample", where / "mine", ignore=shutil.ignore_patterns("build", "dist")
    )
    for name in ("CMakeLists.txt", "avPlugin.c"):
        f = where / "mine" / name
        f.write_text(f.read_text().replace("avir_sample", "avir_mine"))
    components = json.loads(doc_block("json", "{"))
    (where / "my-components.json").write_text(json.dumps(components))
    for spec in components["licenses"].values():
        for part in spec["text"]:
            (where / part["path"]).write_text(LICENSE_TEXT)
    steps = [line for line in doc_block("sh", "avkit plugin").splitlines() if line.strip()]
    outputs = [sh(step, where) for step in steps]
    return where, components, outputs[-1]


def package_files(where: Path) -> list[str]:
    return sorted(p.name for p in (where / "packages").iterdir() if p.suffix in (".deb", ".rpm"))


def test_both_architectures_packaged_from_the_authors_folder(packaged):
    where, components, said = packaged
    version = components["package"]["version"]
    names = package_files(where)
    for product in ("connect", "control"):
        assert f"kerio-{product}-avir-mine_{version}-1_i386.deb" in names
        assert f"kerio-{product}-avir-mine_{version}-1_amd64.deb" in names
        assert f"kerio-{product}-avir-mine-{version}-1.i686.rpm" in names
        assert f"kerio-{product}-avir-mine-{version}-1.x86_64.rpm" in names
    assert f"kerio-avir-mine-debugsource_{version}-1_all.deb" in names
    assert not (paths.DIST / "packages" / names[0]).exists()
    assert "(i386, x86_64)" in said.stdout


def test_the_authors_packages_are_lint_clean(packaged):
    where, _, said = packaged
    assert re.search(r"^lint: lintian and rpmlint clean \(\d+ packages; log: ", said.stdout, re.M)
    assert "N: " not in said.stdout + said.stderr  # explanations stay in the log
    assert (where / "packages-lint.log").is_file()


def test_the_copyright_is_the_authors_with_the_sdk_glue_as_a_known_component(packaged):
    where, components, _ = packaged
    version = components["package"]["version"]
    deb = where / "packages" / f"kerio-connect-avir-mine_{version}-1_i386.deb"
    member = "./usr/share/doc/kerio-connect-avir-mine/copyright"
    copyright_file = subprocess.run(
        f"dpkg-deb --fsys-tarfile {deb} | tar -xO {member}",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Upstream-Name: avir-mine" in copyright_file
    assert "Upstream-Contact: Jane Author <jane@example.org>" in copyright_file
    assert "Files: *\nCopyright: 2026 Jane Author\nLicense: BSD-2-clause" in copyright_file
    assert "Files: api/*" in copyright_file and "API glue" in copyright_file
    assert "Permission to use, copy, modify and distribute." in copyright_file
    rpm = where / "packages" / f"kerio-connect-avir-mine-{version}-1.x86_64.rpm"
    license_field = subprocess.run(
        ["rpm", "-qp", "--qf", "%{LICENSE}", rpm], capture_output=True, text=True
    ).stdout
    assert license_field.startswith("BSD-2-Clause AND BSD-3-Clause")


def test_the_authors_sources_are_packaged_where_the_debug_info_says(packaged):
    where, components, _ = packaged
    version = components["package"]["version"]
    deb = where / "packages" / f"kerio-avir-mine-debugsource_{version}-1_all.deb"
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    prefix = components["project"]["path_prefixes"][0]
    assert f".{prefix}avPlugin.c" in listing


def test_a_components_file_lacking_a_key_names_file_section_and_key(tmp_path):
    from avkit.errors import UserError
    from avkit.ship import author

    data = json.loads(doc_block("json", "{"))
    del data["package"]["version"]
    (tmp_path / "mine").mkdir()
    f = tmp_path / "my-components.json"
    f.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r'my-components\.json: "package" needs version'):
        author.read(f)


def test_an_authors_license_id_the_sdk_components_have_is_refused(tmp_path):
    from avkit.errors import UserError
    from avkit.ship import author

    data = json.loads(doc_block("json", "{"))
    data["project"]["license"] = "MIT"
    data["licenses"] = {"MIT": {"dep5": "Expat", "text": [{"path": "LICENSE"}]}}
    (tmp_path / "mine").mkdir()
    (tmp_path / "LICENSE").write_text(LICENSE_TEXT)
    f = tmp_path / "my-components.json"
    f.write_text(json.dumps(data))
    with pytest.raises(
        UserError,
        match=r"the license MIT is one the SDK's components already "
        r"have.*LicenseRef-<name>",
    ):
        author.merged_policy(author.read(f))
