"""The packaging templates (avkit/ship/templates.py, packaging/templates.json): one
placeholder syntax, every key declared, checked before anything is rendered. Unit tests:
no build, no root."""

import re
import shutil
from pathlib import Path

import pytest

from avkit import paths
from avkit.errors import UserError
from avkit.ship import templates

PACKAGING = paths.ROOT / "packaging"
#: The other placeholder syntaxes the templates once had or a shell would suggest.
OTHER_SYNTAXES = re.compile(r"\$\{[a-z_]+\}|\{\{[^}]*\}\}")


@pytest.fixture
def packaging_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGING, tmp_path / "packaging")
    return tmp_path / "packaging"


def test_every_template_uses_exactly_its_declared_keys():
    names = templates.check_all()
    assert {
        "nfpm-plugin.yaml",
        "nfpm-debug.yaml",
        "nfpm-debugsource.yaml",
        "scripts/postinst.sh",
        "README.in",
        "lintian-overrides",
    } <= set(names)


def test_every_file_with_a_placeholder_is_a_declared_template():
    declared = set(templates.declarations())
    with_placeholders = {
        p.relative_to(PACKAGING).as_posix()
        for p in PACKAGING.rglob("*")
        if p.is_file() and p.suffix != ".json" and templates.used_keys(p.read_text())
    }
    assert with_placeholders <= declared, with_placeholders - declared


def test_one_placeholder_syntax():
    for name in templates.declarations():
        found = OTHER_SYNTAXES.findall((PACKAGING / name).read_text())
        assert not found, f"{name} uses another placeholder syntax: {found}"


def test_deb_and_rpm_relations_go_through_nfpm_overrides():
    """One config for both packagers: no relation at the top level, each under overrides."""
    for name in ("nfpm-plugin.yaml", "nfpm-debug.yaml"):
        text = (PACKAGING / name).read_text()
        assert not re.search(r"^(depends|recommends|suggests):", text, re.M), name
        overrides = text[text.index("\noverrides:\n") :]
        assert "  deb:\n    depends: @DEPENDS_DEB@" in overrides
        assert "  rpm:\n    depends: @DEPENDS_RPM@" in overrides


def test_a_missing_value_names_the_template_and_the_key():
    with pytest.raises(UserError, match=r"scripts/prerm\.sh needs a value for @PLUGIN_DIR@"):
        templates.render(
            "scripts/prerm.sh",
            {
                "PACKAGE": "p",
                "PLUGIN_ID": "avir_x",
                "PRODUCT": "Kerio Connect",
                "CONSOLE_PLACE": "Kerio Connect administration",
            },
        )


def test_json_values_are_json_and_text_values_are_text():
    rendered = templates.render("lintian-overrides-initial", {"package": "kerio-x"})
    assert "kerio-x: initial-upload-closes-no-bugs" in rendered
    values = {key: "v" for key in templates.declarations()["nfpm-debugsource.yaml"]}
    values.update(RPM_DIRS="  - {}", SOURCE_CONTENTS="  - {}", SUMMARY='say "hi"')
    assert 'summary: "say \\"hi\\""' in templates.render("nfpm-debugsource.yaml", values)


def test_an_undeclared_placeholder_is_refused_before_rendering(packaging_copy):
    prerm = packaging_copy / "scripts" / "prerm.sh"
    prerm.write_text(prerm.read_text() + "echo @NEW_KEY@\n")
    with pytest.raises(UserError, match=r"scripts/prerm\.sh uses @NEW_KEY@.*does not declare"):
        templates.check_all(packaging_copy)


def test_a_declared_key_the_template_does_not_use_is_refused(packaging_copy):
    prerm = packaging_copy / "scripts" / "prerm.sh"
    prerm.write_text(prerm.read_text().replace("@PRODUCT@", "Kerio"))
    with pytest.raises(
        UserError,
        match=r"declares PRODUCT for packaging template "
        r"scripts/prerm\.sh, which does not use it",
    ):
        templates.check_all(packaging_copy)
