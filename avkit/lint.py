"""The lint session's own checks, beside ruff and mypy: `python -m avkit.lint`.

    returns        no public avkit function returns a bare dict or list (say what it holds)
    clang-format   the C/C++ sources match .clang-format (--dry-run -Werror: reports, never edits)
    cppcheck       the C/C++ sources pass cppcheck with the suppressions of .cppcheck-suppressions

Each check prints its findings on stderr; the exit status is 1 when any check found one.
`python -m avkit.lint returns` runs one check.
"""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
#: the C and C++ of the project (the broken test plugins are broken on purpose, but still
#: formatted; the fuzz targets are code like any other)
C_SUFFIXES = ("*.c", "*.h", "*.cpp", "*.hpp")
CLANG_FORMAT = "clang-format-14"
CPPCHECK = "cppcheck"
BARE = {"dict", "list", "Dict", "List"}


def tracked(*patterns: str) -> list[Path]:
    """The tracked files matching the git pathspecs, so build trees and caches never count."""
    out = subprocess.run(
        ["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / line for line in out.splitlines() if line]


def _public_functions(tree: ast.Module) -> Iterator[ast.FunctionDef]:
    """Module-level functions and methods of module-level classes, not named _private."""
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        for f in members:
            if isinstance(f, ast.FunctionDef) and not f.name.startswith("_"):
                yield f


def bare_returns(files: list[Path]) -> list[str]:
    """`file:line: name() -> dict` for each public function annotated with a bare dict/list."""
    found = []
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for f in _public_functions(tree):
            if f.returns is not None and ast.unparse(f.returns) in BARE:
                shown = path.relative_to(ROOT) if ROOT in path.parents else path
                found.append(
                    f"{shown}:{f.lineno}: {f.name}() -> "
                    f"{ast.unparse(f.returns)}: say what it holds (dict[str, int])"
                )
    return found


def check_returns() -> list[str]:
    return bare_returns(tracked("avkit/*.py"))


def check_clang_format() -> list[str]:
    files = [str(f) for f in tracked(*C_SUFFIXES)]
    r = subprocess.run(
        [CLANG_FORMAT, "--dry-run", "-Werror", *files], cwd=ROOT, capture_output=True, text=True
    )
    return [line for line in r.stderr.splitlines() if ": error: " in line]


def check_cppcheck() -> list[str]:
    r = subprocess.run(
        [
            CPPCHECK,
            "--quiet",
            "--error-exitcode=1",
            "--inline-suppr",
            "--enable=warning,portability",
            "--std=c++17",
            "--suppressions-list=.cppcheck-suppressions",
            "--template={file}:{line}: {severity} ({id}): {message}",
            "-I",
            "api",
            "-I",
            "netplugin",
            "-D__GNUC__",
            *(str(f.relative_to(ROOT)) for f in tracked("*.c", "*.cpp")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return [line for line in r.stderr.splitlines() if line.strip()]


CHECKS: dict[str, Callable[[], list[str]]] = {
    "returns": check_returns,
    "clang-format": check_clang_format,
    "cppcheck": check_cppcheck,
}


def main(argv: list[str]) -> int:
    failed = False
    for name in argv or list(CHECKS):
        findings = CHECKS[name]()
        for line in findings:
            print(line, file=sys.stderr)
        print(f"avkit.lint {name}: {len(findings)} finding(s)", file=sys.stderr)
        failed = failed or bool(findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
