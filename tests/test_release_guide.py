"""docs/release.md followed literally, and the CI workflows that cut releases: what a
release engineer does and what CI runs must keep working, and the signing key must
meet nothing but the signing steps."""
import re
from pathlib import Path

import pytest
import yaml

from avkit import paths

WORKFLOWS = paths.ROOT / ".github" / "workflows"
FULL_SHA = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
DIGEST = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")
SECRET = re.compile(r"\$\{\{\s*secrets\.")


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def text(obj: object) -> str:
    return yaml.safe_dump(obj)


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflows_pin_actions_images_and_pip_installs(name):
    """Actions by full commit SHA with the tag in a comment, the container by digest,
    checkout without persisted credentials, pip only from the hashed requirements."""
    raw = (WORKFLOWS / name).read_text()
    doc = workflow(name)
    for job_name, job in doc["jobs"].items():
        image = job["container"]["image"] if isinstance(job.get("container"), dict) \
            else job.get("container")
        assert image and DIGEST.match(image), (job_name, image)
        for step in steps(job):
            if "uses" in step:
                assert FULL_SHA.match(step["uses"]), (job_name, step["uses"])
                line = next(li for li in raw.splitlines() if step["uses"] in li)
                assert re.search(r"# v\d+\.\d+\.\d+$", line), line  # the tag, for updates
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, job_name
            for command in re.findall(r"pip install[^\n]*", step.get("run", "")):
                assert "--require-hashes -r ci/requirements-ci.txt" in command, command
    # ./nox installs nox and the tools by version, not by hash
    assert not [s for job in doc["jobs"].values() for s in steps(job)
                if "./nox" in s.get("run", "")]
    pins = (paths.ROOT / "ci" / "requirements-ci.txt").read_text()
    for line in pins.splitlines():
        if "==" in line:
            i = pins.splitlines().index(line)
            assert "--hash=sha256:" in pins.splitlines()[i + 1], line


def test_hashed_requirements_cover_every_pinned_tool():
    pins = (paths.ROOT / "ci" / "requirements-ci.txt").read_text()
    hashed = dict(re.findall(r"^([\w.-]+)==(\S+)", pins, re.M))
    for line in (paths.ROOT / "ci" / "tools.txt").read_text().splitlines():
        m = re.match(r"^([\w.-]+)==(\S+)", line)
        if m and m.group(1) != "nox":  # nox: ./nox's own, CI runs avkit directly
            assert hashed.get(m.group(1).lower()) == m.group(2), line


def test_only_the_signing_steps_get_the_secrets():
    """The build job (tests, builds, pip, conan) has no secret and a read-only token; the
    sign job's secrets are in the env of the signing step alone, whose commands are the
    signing ones; the write token is the sign job's and reaches only `gh release`."""
    doc = workflow("release.yml")
    assert doc["permissions"] == {"contents": "read"}
    build, sign = doc["jobs"]["build"], doc["jobs"]["sign"]
    assert not SECRET.search(text(build)) and "permissions" not in build
    assert sign["needs"] == "build" and sign["permissions"] == {"contents": "write"}
    with_secrets = [s for s in steps(sign) if SECRET.search(text(s))]
    assert len(with_secrets) == 1
    step = with_secrets[0]
    assert set(step["env"]) == {"AVKIT_SIGNING_KEY", "AVKIT_SIGNING_PASSPHRASE"}
    assert [li.split()[2:4] for li in step["run"].strip().splitlines()] == \
        [["avkit", "release"], ["avkit", "package"], ["avkit", "release"]]
    assert "--preflight" in step["run"].splitlines()[0]  # no key: refused before packaging
    token_steps = [s for s in steps(sign) if "github.token" in text(s)]
    assert len(token_steps) == 1 and "gh release create" in token_steps[0]["run"]
    assert not SECRET.search(text(workflow("ci.yml")))
    assert workflow("ci.yml")["permissions"] == {"contents": "read"}
    # The build job refuses what it can before building: placeholders, tree, changelog.
    build_runs = [s.get("run", "") for s in steps(build)]
    first_build = next(i for i, r in enumerate(build_runs) if "avkit build" in r)
    assert any("avkit release --preflight" in r for r in build_runs[:first_build])
