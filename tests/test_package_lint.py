"""The lint configuration is exact (issue 22): every rpmlint filter of
packaging/rpmlint.toml and every lintian override of packaging/lintian-overrides* hides
the one tag it explains, and no other tag that begins like it; the linters' explanations
go to a log file (avkit/ship/lint.py), named in the report. Unit tests: no build, no root."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from avkit import paths
from avkit.ship import components, lint

PACKAGING = paths.ROOT / "packaging"
RPMLINT = Path("/usr/lib/python3/dist-packages/rpmlint")
#: A filter: from the line's start, the package, the level, the tag and the tag's end
#: (a space or the line's end) or the start of the detail the filter names.
FILTER_FORM = re.compile(
    r"^\^(?P<package>.+?): (?P<level>\[EW\]|E|W): "
    r"(?P<tag>[^ ]+?)(?P<end>\( \|\$\)| .+)$"
)
#: Names of the packages the project builds, of each kind (architecture added below).
PACKAGE_NAMES = [
    "kerio-connect-avir-sample.i686",
    "kerio-control-avir-clam.x86_64",
    "kerio-avir-icap-debuginfo.i686",
    "kerio-avir-debugsource.noarch",
    "kerio-avir-tools.x86_64",
]
#: Details a filter may expect after its tag.
DETAILS = [
    "",
    " x",
    " /opt/kerio/connect/plugins/avir/avir_x.so",
    " mv",
    " rpm",
    " /usr/lib/debug/.build-id/ab/cdef.debug",
    " /usr/lib/kerio-avir-tools/avhost",
    " kerio-avir-check",
]
#: Tags rpmlint composes at run time (checks/PostCheck.py, FilesCheck.py), so not literals.
COMPOSED_TAGS = [
    f"dangerous-command-in-%{s}"
    for s in ("pre", "post", "preun", "postun", "pretrans", "posttrans", "trigger")
] + [f"dir-or-file-in-{d}" for d in ("opt", "usr-local", "home", "tmp", "mnt")]


def filters() -> list[str]:
    return tomllib.loads((PACKAGING / "rpmlint.toml").read_text())["Filters"]


def rpmlint_tags() -> set[str]:
    """Every tag rpmlint can report: its descriptions' keys and the tag literals of its checks."""
    if not RPMLINT.is_dir():
        pytest.skip("rpmlint is not installed (ci/apt-packages.txt has it)")
    tags = set(COMPOSED_TAGS)
    for f in (RPMLINT / "descriptions").glob("*.toml"):
        tags |= set(tomllib.loads(f.read_text()))
    for f in RPMLINT.rglob("*.py"):
        tags |= set(re.findall(r"add_info\(\s*'[EW]',\s*\w+,\s*'([a-z0-9%-]+)'", f.read_text()))
    return {t for t in tags if "%s" not in t}


def hidden_tags(pattern: str, tags: set[str]) -> set[str]:
    """The tags a filter hides on some line of some package of ours."""
    f = re.compile(pattern)
    return {
        tag
        for tag in tags
        for name in PACKAGE_NAMES
        for level in "EW"
        for detail in DETAILS
        if f.search(f"{name}: {level}: {tag}{detail}")
    }


@pytest.mark.parametrize("pattern", filters())
def test_each_rpmlint_filter_is_anchored_and_ends_its_tag(pattern):
    m = FILTER_FORM.match(pattern)
    assert m, (
        f"filter {pattern!r}: write it as ^<package>: [EW]: <tag>( |$), or "
        f"^<package>: [EW]: <tag> <detail>"
    )


@pytest.mark.parametrize("pattern", filters())
def test_each_rpmlint_filter_hides_only_the_tags_it_names(pattern):
    tags = rpmlint_tags()
    named = FILTER_FORM.match(pattern)["tag"] if FILTER_FORM.match(pattern) else pattern
    hidden = hidden_tags(pattern, tags)
    assert hidden, f"filter {pattern!r} hides no tag rpmlint knows: a typo or a renamed tag?"
    others = sorted(t for t in hidden if not re.fullmatch(named, t))
    assert not others, f"filter {pattern!r} also hides {others}"


def test_an_unanchored_filter_is_caught():
    """The check above fails on the filter this project had (issue 22)."""
    tags = rpmlint_tags()
    assert "invalid-license-exception" in hidden_tags("invalid-license", tags)
    assert not FILTER_FORM.match("invalid-license")
    anchored = "^kerio-[a-z0-9_-]+\\.(i686|x86_64|noarch): [EW]: invalid-license( |$)"
    assert hidden_tags(anchored, tags) == {"invalid-license"}


def lintian_tags() -> set[str]:
    if shutil.which("lintian-explain-tags") is None:
        pytest.skip("lintian is not installed (ci/apt-packages.txt has it)")
    r = subprocess.run(
        ["lintian-explain-tags", "--list-tags"], capture_output=True, text=True, check=True
    )
    return set(r.stdout.split())


def override_lines() -> list[tuple[str, str]]:
    """(file, line) of every override in packaging/lintian-overrides*."""
    return [
        (f.name, line)
        for f in sorted(PACKAGING.glob("lintian-overrides*"))
        for line in f.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not re.fullmatch(r"@[A-Z_]+@", line)
    ]


def test_each_lintian_override_names_one_existing_tag():
    """lintian matches an override's tag by its whole name; it must be a tag lintian has
    (a renamed tag would leave the override matching nothing, and the warning back)."""
    tags = lintian_tags()
    assert override_lines()
    for name, line in override_lines():
        m = re.fullmatch(r"@PACKAGE@: (?P<tag>[a-z0-9][a-z0-9.+-]*)( \S.*)?", line)
        assert m, f"{name}: {line!r}: write <package>: <tag> [<context>]"
        assert m["tag"] in tags, f"{name}: {m['tag']} is not a lintian tag"


def test_lint_explanations_go_to_the_log_not_the_report(tmp_path):
    """A package with lint findings: the report lists the tags and names the log; the
    log has lintian's explanations."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: broken\nVersion: 1.0\nArchitecture: all\nMaintainer: A <a@example.org>\n"
        "Description: broken\n"
    )
    deb = tmp_path / "broken_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    log = tmp_path / "lint.log"
    found = lint.lint([deb], log)
    report = lint.report(found, log)
    assert found and all(re.match(r"[EW]: broken", line) for line in found), found
    assert str(log) in report
    assert "N: " not in report
    assert re.search(r"^N: ", log.read_text(), re.M)  # explanations are in the log


def test_rpmlint_knows_every_license_the_components_have():
    """Each SPDX identifier of packaging/components.json is a ValidLicenses entry (and each
    exception a ValidLicenseExceptions one): none is hidden by a filter instead."""
    config = tomllib.loads((PACKAGING / "rpmlint.toml").read_text())
    ids = [*components.policy()["licenses"], components.policy()["project"]["license"]]
    for spdx in ids:
        base, _, exception = spdx.partition(" WITH ")
        assert base in config["ValidLicenses"], spdx
        if exception:
            assert exception in config["ValidLicenseExceptions"], spdx
