"""The Python tooling's layering: each subpackage imports only from the layers below it,
so the import graph has no cycle and a module's place says what it may use."""

import ast
from pathlib import Path

AVKIT = Path(__file__).resolve().parent.parent / "avkit"
CORE = {"facts", "paths", "prereqs", "elf", "errors", "workdir", "hints"}
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


def module_name(path: Path) -> str:
    rel = path.relative_to(AVKIT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(AVKIT.rglob("*.py"))}


def imported_modules(path: Path) -> set:
    """The avkit modules one module imports, anywhere in it (function-local imports
    too): `from avkit.ship import components` is avkit.ship.components."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avkit"):
            for alias in node.names:
                named = f"{node.module}.{alias.name}"
                out.add(named if named in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("avkit")}
    # A package's __init__ is imported on the way to its modules, not a dependency of theirs.
    return {m for m in out if m in MODULES and not MODULES[m].name == "__init__.py"}


def import_cycles(graph: dict) -> list:
    """Every cycle of the graph, once each (as the modules of one strongly connected
    component, sorted), by Tarjan's algorithm."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


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
        # statements, not lines: the formatter's line breaks do not make a command fatter
        statements = sum(isinstance(n, ast.stmt) for n in ast.walk(tree))
        assert statements < 60, f"main_{name}.py holds more than a command ({statements})"


def test_one_module_builds_avhost_command_lines():
    """Only avkit/check/avhost.py spells avhost's -o options or reads its JSON lines;
    the tooling and the tests ask it."""
    tests = Path(__file__).resolve().parent
    sources = [*AVKIT.rglob("*.py"), *tests.glob("*.py")]
    spelled = [
        p
        for p in sources
        if p != Path(__file__).resolve()
        and (
            '"-o", f"{' in p.read_text()
            and "avhost" in p.read_text()
            or "json.loads(line)" in p.read_text()
            and "avhost" in p.read_text()
        )
    ]
    assert [p.relative_to(AVKIT.parent).as_posix() for p in spelled] == ["avkit/check/avhost.py"]


def subpackage(module: str) -> str:
    """avkit.ship.components -> "ship"; "" for avkit's top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or MODULES[module].name == "__init__.py" else ""


def test_no_import_cycle_inside_a_subpackage():
    """The layering above keeps subpackages apart; inside one, a cycle (avkit/ship's
    components <-> packages, closed by a function-local import) is still a cycle: each
    module must be readable over the ones below it."""
    graph = {
        name: {
            m for m in imported_modules(path) if subpackage(m) and subpackage(m) == subpackage(name)
        }
        for name, path in MODULES.items()
    }
    assert import_cycles(graph) == []


def test_the_cycle_check_sees_a_function_local_import(tmp_path):
    """The check itself: a cycle closed inside a function is found."""
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from avkit.ship import packages\n")
    assert "avkit.ship.packages" in imported_modules(module)


def test_no_library_function_is_named_like_a_test():
    """pytest collects test_* functions: in the library they read as tests and are not."""
    named = [
        f"{path.relative_to(AVKIT.parent).as_posix()}: {node.name}"
        for path in sorted(AVKIT.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    ]
    assert named == []


def module_constants(path: Path) -> dict:
    """{NAME: its value's source} for the module-level UPPER_CASE names of one module."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign) and node.value
            else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                out[target.id] = ast.unparse(node.value)
    return out


def test_one_name_per_file_constant():
    """A constant naming a file of the repository has one name, and that name one file:
    facts.POLICY_FILE (the audit policies) and components.POLICY_FILE (the components)
    made a reader guess which was meant."""
    by_name, by_value = {}, {}
    for path in sorted(AVKIT.rglob("*.py")):
        for name, value in module_constants(path).items():
            if "paths.ROOT" in value or value.startswith("ROOT /"):
                by_name.setdefault(name, set()).add(value)
                by_value.setdefault(value, set()).add(name)
    assert {n: v for n, v in by_name.items() if len(v) > 1} == {}
    assert {v: n for v, n in by_value.items() if len(n) > 1} == {}
