"""The Python tooling's layering: each subpackage imports only from the layers below it,
so the import graph has no cycle and a module's place says what it may use."""
import ast
from pathlib import Path

AVKIT = Path(__file__).resolve().parent.parent / "avkit"
CORE = {"facts", "paths", "prereqs", "elf", "errors", "workdir"}
#: layer -> the layers (besides core) it may import
ALLOWED = {
    "core": set(),
    "build": set(),
    "check": set(),
    "ship": set(),
    "smoke": {"check"},
    "stress": {"build", "check"},
    "commands": {"build", "check", "ship", "smoke", "stress"},
    "entry": {"commands"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"
    if parts[1] in CORE:
        return "core"
    if parts[1] in ("cli", "__main__", "__init__"):
        return "entry"
    return parts[1]


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avkit"):
            for alias in node.names:
                yield f"{node.module}.{alias.name}" if node.module == "avkit" else node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("avkit"))


def test_subpackages_import_only_downwards():
    wrong = []
    for path in sorted(AVKIT.rglob("*.py")):
        rel = path.relative_to(AVKIT.parent).with_suffix("")
        here = layer(".".join(rel.parts))
        for target in imports(path):
            there = layer(target)
            if there not in (here, "core") and there not in ALLOWED[here]:
                wrong.append(f"{rel}: {here} imports {target} ({there})")
    assert wrong == []


def test_every_command_is_a_thin_module_over_the_library():
    from avkit.commands import COMMANDS
    for name in COMMANDS:
        source = (AVKIT / "commands" / f"main_{name}.py").read_text()
        tree = ast.parse(source)
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"register", "run"} <= functions, name
        assert len(source.splitlines()) < 80, f"main_{name}.py holds more than a command"


def test_one_module_builds_avhost_command_lines():
    """Only avkit/check/avhost.py spells avhost's -o options or reads its JSON lines;
    the tooling and the tests ask it."""
    tests = Path(__file__).resolve().parent
    sources = [*AVKIT.rglob("*.py"), *tests.glob("*.py")]
    spelled = [p for p in sources if p != Path(__file__).resolve()
               and ('"-o", f"{' in p.read_text() and "avhost" in p.read_text()
                    or "json.loads(line)" in p.read_text() and "avhost" in p.read_text())]
    assert [p.relative_to(AVKIT.parent).as_posix() for p in spelled] == ["avkit/check/avhost.py"]
