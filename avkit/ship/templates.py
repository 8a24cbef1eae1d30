"""The packaging templates (packaging/: nFPM configs, maintainer scripts, package texts):
one placeholder syntax, @KEY@, in all of them, and the keys each one uses declared in
packaging/templates.json, checked before anything is filled in.

A template's keys are of one kind each: "json" (nFPM YAML: the value as JSON, which YAML
reads as-is), "yaml" (nFPM YAML: the value is YAML text, one "- {...}" list entry a line)
or "text" (scripts and texts: the value as it is). A template that uses an undeclared
key, declares a key it does not use, or is rendered without a value for a key, fails
naming the template and the key.
"""

import json
import re
from collections.abc import Mapping
from pathlib import Path

from avkit import paths
from avkit.errors import UserError

PACKAGING = paths.PACKAGING
DECLARATIONS = PACKAGING / "templates.json"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
KINDS = ("json", "yaml", "text")


def declarations(file: Path = DECLARATIONS) -> dict[str, dict[str, str]]:
    """{template: {KEY: kind}} from packaging/templates.json."""
    data = json.loads(file.read_text())
    out: dict[str, dict[str, str]] = {}
    for name, kinds in data["templates"].items():
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise UserError(
                f"{file.name}: template {name} has key kinds {unknown}: use {', '.join(KINDS)}"
            )
        out[name] = {key: kind for kind in KINDS for key in kinds.get(kind, [])}
    return out


def used_keys(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def check_declared(name: str, text: str, declared: Mapping[str, str]) -> None:
    """The placeholders of the template are exactly its declared keys."""
    used = used_keys(text)
    undeclared, unused = sorted(used - set(declared)), sorted(set(declared) - used)
    if undeclared:
        raise UserError(
            f"packaging template {name} uses {', '.join(f'@{k}@' for k in undeclared)}"
            f", which {DECLARATIONS.name} does not declare for it: declare it"
        )
    if unused:
        raise UserError(
            f"{DECLARATIONS.name} declares {', '.join(unused)} for packaging "
            f"template {name}, which does not use it: remove it from the declaration"
        )


def check_all(root: Path = PACKAGING) -> list[str]:
    """Every declared template exists and uses exactly its declared keys; returns their names."""
    declared = declarations(root / DECLARATIONS.name)
    for name, keys in sorted(declared.items()):
        path = root / name
        if not path.is_file():
            raise UserError(
                f"{DECLARATIONS.name} declares the template {name}, which is not in {root}"
            )
        check_declared(name, path.read_text(), keys)
    return sorted(declared)


def _filled(name: str, key: str, kind: str, values: Mapping[str, object]) -> str:
    if key not in values:
        raise UserError(
            f"packaging template {name} needs a value for @{key}@ "
            f"(declared in {DECLARATIONS.name}); none was given"
        )
    value = values[key]
    if kind == "json":
        return json.dumps(value)
    if not isinstance(value, str):
        raise UserError(
            f"packaging template {name}: @{key}@ is {kind} and needs a string, "
            f"not {type(value).__name__}"
        )
    return value


def render(name: str, values: Mapping[str, object], root: Path = PACKAGING) -> str:
    """packaging/<name> with its declared keys filled in from values (keys of any case:
    the templates write them in upper case). Extra values are ignored: one set of values
    serves several templates."""
    declared = declarations(root / DECLARATIONS.name)
    if name not in declared:
        raise UserError(f"packaging template {name} is not declared in {DECLARATIONS.name}")
    keys = declared[name]
    text = (root / name).read_text()
    check_declared(name, text, keys)
    upper = {k.upper(): v for k, v in values.items()}
    filled = {key: _filled(name, key, kind, upper) for key, kind in sorted(keys.items())}
    return PLACEHOLDER.sub(lambda m: filled[m.group(1)], text)
