"""What the guides name exists: every `./nox -s SESSION` is a session of the noxfile, every
`avkit COMMAND` (or `python -m avkit COMMAND`) a command of avkit, every relative link a
file of the repository. The guides' own procedures are run by their tests
(test_author, test_author_packaging, test_admin_check, test_release_guide); this catches
a renamed session or moved file in the text that no test runs."""

import ast
import re
from pathlib import Path

import pytest

from avkit import paths
from avkit.commands import COMMANDS

DOCS = sorted([paths.ROOT / "README.md", *(paths.ROOT / "docs").glob("*.md")])


def sessions() -> set[str]:
    """The session names of noxfile.py, read from its decorators."""
    names = set()
    for node in ast.parse((paths.ROOT / "noxfile.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Name) and deco.id == "avkit_session":
                names.add(node.name)
            elif isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "avkit_session":
                named = [k.value.value for k in deco.keywords if k.arg == "name"]
                names.add(named[0] if named else node.name)
    return names


def code(doc: Path) -> str:
    """The guide's code: its fenced blocks and `inline` spans (prose says "avkit names")."""
    text = doc.read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(blocks + spans)


def test_the_session_reader_sees_the_sessions():
    assert {"build-i386", "build-x86_64", "tests", "unit", "lint", "release"} <= sessions()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_session_a_guide_names_exists(doc: Path):
    named = set(re.findall(r"nox -s ([A-Za-z0-9_-]+)", code(doc)))
    # build-ARCH: the guides' way of saying "the session of your architecture"
    unknown = sorted(named - sessions() - {"build-ARCH"})
    assert unknown == [], f"{doc.name} names sessions the noxfile does not have: {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_avkit_command_a_guide_names_exists(doc: Path):
    named = set(re.findall(r"(?:^|[\s(])avkit ([a-z][a-z_-]*)", code(doc), re.M))
    unknown = sorted(named - set(COMMANDS))
    assert unknown == [], f"{doc.name} names avkit commands that do not exist: {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_of_a_guide_exists(doc: Path):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    missing = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert missing == [], f"{doc.name} links to files that are not there: {missing}"
