"""What a release engineer meets running the nox sessions: prerequisites named before any
slow step, machine-readable output alone on stdout, one shared tools environment."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avkit import paths, prereqs, toolsenv

ROOT = paths.ROOT
NOXFILE = ROOT / "noxfile.py"


def avkit(*args, env=None, python=sys.executable, timeout=600):
    return subprocess.run(
        [python, "-m", "avkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def nox_sessions() -> dict:
    """Session name -> its function node, from the noxfile's decorators."""
    tree = ast.parse(NOXFILE.read_text())
    out = {}
    for f in tree.body:
        if not isinstance(f, ast.FunctionDef):
            continue
        for d in f.decorator_list:
            text = ast.unparse(d)
            if "session" not in text:
                continue
            names = [kw.value.value for kw in getattr(d, "keywords", []) if kw.arg == "name"]
            out[names[0] if names else f.name] = f
    return out


# --- 1. prerequisites before any slow step -------------------------------------------


def test_every_session_has_its_prerequisites_written_down():
    assert set(nox_sessions()) == set(prereqs.SESSION_NEEDS)
    for session, needs in prereqs.SESSION_NEEDS.items():
        for need in needs:
            assert need in prereqs.SPECIAL_NEEDS or need in prereqs.COMMAND_PACKAGES, (
                f"{session}: no Debian package known for {need!r}"
            )


def test_every_session_checks_its_prerequisites_before_anything_else():
    """All sessions go through avkit_session, whose first command is `avkit prereqs`."""
    tree = ast.parse(NOXFILE.read_text())
    for f in nox_sessions().values():
        assert any(ast.unparse(d).startswith("avkit_session") for d in f.decorator_list), f.name
    wrapper = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "wrapper"
    )
    first = ast.unparse(wrapper.body[0])
    assert "'prereqs'" in first and "session_name" in first, first


def path_without(tmp_path, *left_out) -> str:
    """A PATH with every command the sessions need except `left_out`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wanted = {n for needs in prereqs.SESSION_NEEDS.values() for n in needs} | {"gcc", "g++"}
    for name in wanted - set(left_out) - set(prereqs.SPECIAL_NEEDS):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def test_smoke_without_qemu_fails_at_once_naming_the_package(tmp_path):
    env = dict(os.environ, PATH=path_without(tmp_path, "qemu-system-i386"))
    started = time.monotonic()
    r = avkit("prereqs", "smoke", env=env)
    took = time.monotonic() - started
    assert r.returncode == 1
    assert "qemu-system-i386" in r.stderr and "apt-get install qemu-system-x86" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""
    assert took < 10, f"the check took {took:.1f} s"


def test_all_missing_packages_are_named_in_one_line(tmp_path):
    env = dict(os.environ, PATH=path_without(tmp_path, "qemu-system-i386", "rpm", "zip"))
    r = avkit("prereqs", "tests", env=env)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "\n" not in line
    assert "apt-get install " in line
    for package in ("qemu-system-x86", "rpm", "zip"):
        assert package in line.split("apt-get install ", 1)[1]


def test_the_i386_runtime_and_non_commands_are_named_with_their_packages(monkeypatch):
    monkeypatch.setattr(prereqs, "I386_LOADER", Path("/nonexistent/ld-linux.so.2"))
    monkeypatch.setenv("AVKIT_CLAMD", "/nonexistent/clamd")
    with pytest.raises(prereqs.UserError) as e:
        prereqs.require_for_session("bench")
    text = str(e.value)
    assert "the i386 C library" in text and "/nonexistent/clamd" in text
    assert "dpkg --add-architecture i386 && apt-get update && apt-get install" in text
    assert "libc6:i386" in text and "clamav-daemon" in text


def test_a_session_with_everything_passes_quietly():
    r = avkit("prereqs", "build-i386")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_the_check_needs_nothing_but_the_standard_library():
    """The noxfile runs it with nox's own Python, before the tools are installed."""
    code = (
        "import sys; sys.modules['elftools'] = None\n"
        "from avkit.cli import main\n"
        "sys.exit(main(['prereqs', 'build-i386']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


# --- 2. machine-readable output alone on stdout ---------------------------------------


def test_build_prints_nothing_on_stdout():
    r = avkit("build", "--werror")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == ""
    assert "built into" in r.stderr


def test_audit_json_after_a_build_is_json_alone():
    assert avkit("build", "--werror").returncode == 0
    r = avkit("audit", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["reports"] and doc["required_policy"]


# --- 7. one shared tools environment --------------------------------------------------


def test_sessions_share_one_tools_environment_without_nox_venvs():
    """python=False for every session (no per-session venv); avkit/toolsenv.py makes the one
    tools environment, with every tool pinned in ci/tools.txt."""
    text = NOXFILE.read_text()
    assert "@nox.session(" in text and text.count("@nox.session") == 1
    assert "python=False" in text
    pinned = {
        line.split("==")[0]
        for line in (ROOT / "ci" / "tools.txt").read_text().splitlines()
        if "==" in line
    }
    assert set(toolsenv.TOOLS) <= pinned
    assert toolsenv.VENV.relative_to(ROOT).parts[0] != ".nox"


def test_the_noxfile_is_sessions_only():
    """Each session a few lines with a one-line docstring; no environment machinery."""
    tree = ast.parse(NOXFILE.read_text())
    for name, f in nox_sessions().items():
        doc = ast.get_docstring(f)
        assert doc and "\n" not in doc, f"{name}: no one-line docstring"
        statements = sum(isinstance(n, ast.stmt) for n in ast.walk(f)) - 1  # not the def
        assert statements <= 8, f"{name}: {statements} statements"  # lines vary with formatting
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert not imported & {"fcntl", "hashlib", "shutil", "contextlib"}, imported


def test_nothing_depends_on_nox_session_folders():
    """nox's .nox/<session> folders are nox's own: no tracked file runs anything from them."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    users = [
        f
        for f in files
        if f not in (".gitignore", "tests/test_sessions.py")
        and (ROOT / f).is_file()
        and re.search(
            r"\.nox/(tools|[\w-]+/bin)|\.nox\" / \"", (ROOT / f).read_text(errors="replace")
        )
    ]
    assert users == []


def test_the_tools_environment_is_made_once_and_then_reused(tmp_path, monkeypatch):
    """ensure() installs when the stamp differs and does nothing when it matches."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if "venv" in cmd:
            (tmp_path / "venv" / "bin").mkdir(parents=True)
            (tmp_path / "venv" / "bin" / "python").touch()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(toolsenv.subprocess, "run", fake_run)
    python = toolsenv.ensure(tmp_path / "venv")
    assert python == tmp_path / "venv" / "bin" / "python"
    assert len(calls) == 2 and "pip" in calls[1] and str(toolsenv.PINS) in calls[1]
    toolsenv.ensure(tmp_path / "venv")
    assert len(calls) == 2, "a second run with the same pins installed again"


# --- 8. tests by speed ----------------------------------------------------------------


def test_unit_tests_are_selected_by_the_conftest_rule_alone():
    """`-m unit` (the unit session) collects tests, none from a module that starts servers
    or needs a build; every test carries exactly one of the two markers."""
    import conftest

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "unit",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    assert len(ids) >= 30, r.stdout[-2000:]
    modules = {Path(i.split("::")[0]).stem for i in ids}
    assert not modules & conftest.INTEGRATION_MODULES
    assert "-m" in ast.unparse(nox_sessions()["unit"]) and "'unit'" in ast.unparse(
        nox_sessions()["unit"]
    )


# --- 9. the linters --------------------------------------------------------------------


def test_the_lint_session_runs_every_linter_and_ci_runs_it_first():
    body = ast.unparse(nox_sessions()["lint"])
    for step in ("'ruff', 'check'", "'mypy'", "'avkit.lint'", "'ruff', 'format', '--check'"):
        assert step in body, step
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("./nox -s lint") < ci.index("./nox -s tests")


def test_a_public_function_returning_a_bare_dict_or_list_is_found(tmp_path):
    from avkit import lint

    module = tmp_path / "m.py"
    module.write_text(
        "def facts() -> dict:\n    return {}\n\n"
        "def names() -> list[str]:\n    return []\n\n"
        "def _private() -> list:\n    return []\n\n"
        "class C:\n    def rows(self) -> list:\n        return []\n"
    )
    found = lint.bare_returns([module])
    assert [line.split(": ", 1)[1] for line in found] == [
        "facts() -> dict: say what it holds (dict[str, int])",
        "rows() -> list: say what it holds (dict[str, int])",
    ]
    assert lint.check_returns() == [], "avkit has a public function returning a bare dict/list"


def test_every_cppcheck_suppression_says_why():
    lines = (ROOT / ".cppcheck-suppressions").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("#"), f"{line}: no comment above it"
            assert ":" in line and "*" not in line, f"{line}: suppress one id in one file"


def test_the_tools_environment_is_made_with_the_standard_library_alone():
    """nox's own Python runs avkit.toolsenv before anything is installed."""
    tree = ast.parse((ROOT / "avkit" / "toolsenv.py").read_text())
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
