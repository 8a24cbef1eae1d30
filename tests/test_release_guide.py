"""docs/release.md followed literally, and the CI workflows that cut releases: what a
release engineer does and what CI runs must keep working, and the signing key must
meet nothing but the signing steps."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
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
        image = (
            job["container"]["image"]
            if isinstance(job.get("container"), dict)
            else job.get("container")
        )
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
    assert not [
        s for job in doc["jobs"].values() for s in steps(job) if "./nox" in s.get("run", "")
    ]
    pins = (paths.ROOT / "ci" / "requirements-ci.txt").read_text()
    for line in pins.splitlines():
        if "==" in line:
            i = pins.splitlines().index(line)
            assert "--hash=sha256:" in pins.splitlines()[i + 1], line


def test_hashed_requirements_cover_every_pinned_tool():
    pins = (paths.ROOT / "ci" / "requirements-ci.txt").read_text()

    def canonical(name: str) -> str:  # PEP 503: pip reports ntia_conformance_checker
        return re.sub(r"[-_.]+", "-", name).lower()

    hashed = {canonical(n): v for n, v in re.findall(r"^([\w.-]+)==(\S+)", pins, re.M)}
    for line in (paths.ROOT / "ci" / "tools.txt").read_text().splitlines():
        m = re.match(r"^([\w.-]+)==(\S+)", line)
        if m and m.group(1) != "nox":  # nox: ./nox's own, CI runs avkit directly
            assert hashed.get(canonical(m.group(1))) == m.group(2), line


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
    assert [li.split()[2:4] for li in step["run"].strip().splitlines()] == [
        ["avkit", "release"],
        ["avkit", "package"],
        ["avkit", "release"],
    ]
    assert "--preflight" in step["run"].splitlines()[0]  # no key: refused before packaging
    token_steps = [s for s in steps(sign) if "github.token" in text(s)]
    assert len(token_steps) == 1 and "gh release create" in token_steps[0]["run"]
    assert not SECRET.search(text(workflow("ci.yml")))
    assert workflow("ci.yml")["permissions"] == {"contents": "read"}
    # The build job refuses what it can before building: placeholders, tree, changelog.
    build_runs = [s.get("run", "") for s in steps(build)]
    first_build = next(i for i, r in enumerate(build_runs) if "avkit build" in r)
    assert any("avkit release --preflight" in r for r in build_runs[:first_build])


# --- the guide, followed in a clone ----------------------------------------------------------

GUIDE = paths.ROOT / "docs" / "release.md"
NOXFILE = paths.ROOT / "noxfile.py"
#: what `./nox -s release -- ARGS` runs (noxfile.py's release session): the test runs it
#: with the checkout's tools venv rather than a fresh one
NOX_RELEASE = "./nox -s release -- "


def guide_block(heading: str, index: int = 0) -> list[str]:
    """The command lines of a ```sh block of docs/release.md's section `heading`."""
    text = GUIDE.read_text()
    section = text[text.index(heading) :]
    end = section.find("\n## ", 1)
    block = re.findall(r"```sh\n(.*?)```", section[: end if end > 0 else None], re.S)[index]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def next_version(version: str) -> str:
    parts = version.split(".")
    return ".".join([*parts[:-1], str(int(parts[-1]) + 1)])


def sh(line: str, cwd: Path, env: dict, timeout: float = 1800) -> subprocess.CompletedProcess:
    r = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"{line}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_the_nox_release_session_is_avkit_release_all():
    """The guide's `./nox -s release -- ARGS` is `python -m avkit release --all ARGS`
    (what the clone below runs): no test suite inside, every check before the build."""
    tree = ast.parse(NOXFILE.read_text())
    session = next(
        f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "release"
    )
    calls = [
        ast.unparse(c)
        for c in ast.walk(session)
        if isinstance(c, ast.Call)
        and isinstance(c.func, ast.Name)
        and c.func.id in ("avkit", "build", "build_test_ship")
    ]
    assert calls == ["avkit(session, 'release', '--all', *session.posargs)"], calls


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("rpm") or not (paths.ROOT / ".git").exists(),
    reason="cuts a release in a clone: needs root, git, dpkg and rpm",
)
def test_the_release_guide_followed_literally_in_a_clone(tmp_path):
    """Sections 1 and 3 of docs/release.md, command by command, in a clone of HEAD: the
    throwaway key, the bump, the changelog entry and real addresses (the guide's
    comment lines), commit, tag, the release; then the published folder verifies with
    section 5's commands. The clone shares the checkout's zig and Conan caches (so Boost
    and zig's libc++ are not built again) and its tools venv."""
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(paths.ROOT), str(clone)], check=True
    )
    subprocess.run(
        [
            "git",
            "-C",
            str(clone),
            "checkout",
            "--quiet",
            "--detach",
            subprocess.run(
                ["git", "-C", str(paths.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
        ],
        check=True,
    )
    (clone / ".cache").mkdir()
    for cache in ("zig", "conan"):
        (clone / ".cache" / cache).symlink_to(paths.ROOT / ".cache" / cache)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AVKIT_", "SOURCE_DATE_EPOCH", "ZIG_", "CONAN_"))
    }
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@kerio-partner.cz",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@kerio-partner.cz",
        GNUPGHOME=str(tmp_path / "gnupg"),
    )
    os.mkdir(env["GNUPGHOME"], 0o700)
    work = tmp_path  # key.asc beside the clone, out of its tree
    for line in guide_block("## 1. A signing key"):
        if not line.startswith("export GNUPGHOME"):
            sh(line, work, env)
    key = work / "key.asc"
    assert "PRIVATE KEY BLOCK" in key.read_text()
    old = (clone / "VERSION").read_text().strip()
    new = next_version(old)
    steps = guide_block("## 3. Cutting a release")
    assert steps[0].startswith("echo ") and steps[-1].startswith(NOX_RELEASE), steps
    for line in steps:
        line = line.replace("1.0.1", new).replace("key.asc", str(key))
        if line.startswith("git commit"):
            # the guide's comment lines: the changelog entry, real addresses
            log = json.loads((clone / "packaging" / "changelog.json").read_text())
            log["entries"].insert(
                0,
                {
                    "version": new,
                    "date": "2026-12-06T12:00:00Z",
                    "changes": ["A release cut by the guide's test."],
                },
            )
            (clone / "packaging" / "changelog.json").write_text(json.dumps(log, indent=2))
            for name, fields in (
                (
                    "project.json",
                    {
                        "homepage": "https://kerio-partner.cz/",
                        "maintainer": "T <t@kerio-partner.cz>",
                    },
                ),
                ("repositories.json", {"base_url": "https://kerio-partner.cz/avir"}),
            ):
                f = clone / "packaging" / name
                f.write_text(json.dumps({**json.loads(f.read_text()), **fields}, indent=2))
        if line.startswith(NOX_RELEASE):
            line = f"{sys.executable} -m avkit release --all {line[len(NOX_RELEASE) :]}"
        sh(line, clone, env, timeout=3600)
    out = clone / "dist" / "release"
    assert (out / f"kerio-avir-plugins-{new}.tar.gz").is_file()
    assert json.loads((out / "provenance.json").read_text())["source"]["dirty"] is False
    debs = sorted(p.name for p in out.glob("*.deb"))
    assert debs and all(f"_{new}-1_" in d for d in debs), debs
    home = tmp_path / "home"
    (home / "rpmdb").mkdir(parents=True)
    (home / ".rpmmacros").write_text(f"%_dbpath {home / 'rpmdb'}\n")
    for line in guide_block("## 5. Verifying a release"):
        sh(line, out, dict(env, HOME=str(home)))
