"""Facts the whole project shares, each defined once here or read from its data file.

EICAR             the 68-byte antivirus test string
products()        the Kerio products, from packaging/products.json
plugin_dir(p)     where product p loads plugins from
debug_file(id)    where the split debug info of a build-id lives, below a root
architectures()   the release architectures, cmake/architectures.json (validated)
architecture(a)   the facts of one: zig target, gcc flag, package arch names, ELF class...
arch_of(header)   which architecture an ELF header (elf.header()) was built for, or None
policies()        the audit policies, packaging/audit-policies.json
glibc_floor(a)    the oldest glibc a release plugin of architecture a loads on: the GLIBC
                  version of its audit policy (cmake/toolchains/zig.cmake reads the same)
load_json(path)   a JSON data file, checked against its schema in SCHEMAS (file and key
                  named when it does not fit)
"""

import functools
import json
from pathlib import Path, PurePosixPath
from typing import Any

from avkit import paths
from avkit.errors import UserError

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

PRODUCTS_FILE = paths.PACKAGING / "products.json"
AUDIT_POLICY_FILE = paths.PACKAGING / "audit-policies.json"
ARCH_FILE = paths.ARCH_FILE

#: every architecture's facts, with their types: a missing or mistyped one is named at load
ARCH_KEYS = {
    "description": str,
    "zig_target": str,
    "gcc_flag": str,
    "cmake_processor": str,
    "library_architecture": str,
    "conan_arch": str,
    "deb": str,
    "rpm": str,
    "yum_basearch": str,
    "nfpm": str,
    "elf_class": int,
    "elf_machine": str,
    "pointer_size": int,
    "audit_policy": str,
    "dist": dict,
    "smoke": dict,
}
TOOLCHAIN_NAMES = ("zig", "gcc")
#: the smoke test's guest of each architecture (avkit/smoke/)
SMOKE_KEYS = ("qemu", "kernel_package", "kernel_flavour")


#: A schema: a type (the value is one), a dict {key: schema} (an object with at least those
#: keys; a key written "?key" may be absent; other keys, such as "_comment", are free), a
#: one-item list [schema] (a list of such values), or {"*": schema} (an object whose every
#: key not starting with "_" holds such a value).
Schema = Any

_PRODUCT = {
    "title": str,
    "package": str,
    "plugin_dir": str,
    "deb_section": str,
    "rpm_group": str,
    "console": str,
    "product_marker": str,
    "product_binaries": [str],
    "?admin_backup": str,
    "?former_plugin_dirs": [dict],
}
_POLICY = {
    "name": str,
    "arch": str,
    "priority": int,
    "description": str,
    "symbol_versions": {"*": str},
    "needed": [str],
    "exports": [str],
    "hardening": [str],
}
#: data file name (below packaging/ or cmake/) -> its schema; load_json checks against it
SCHEMAS: dict[str, Schema] = {
    "products.json": {"*": _PRODUCT},
    "audit-policies.json": {"policies": [_POLICY]},
    "architectures.json": {"default": str, "architectures": {"*": dict}},
    "plugins.json": {
        "*": {
            "summary": str,
            "description": str,
            "recommends_deb": [str],
            "recommends_rpm": [str],
            "?suggests_deb": [str],
            "?suggests_rpm": [str],
        }
    },
    "project.json": {
        "maintainer": str,
        "vendor": str,
        "homepage": str,
        "license": str,
        "release": str,
    },
    "repositories.json": {
        "id": str,
        "name": str,
        "base_url": str,
        "suite": str,
        "component": str,
        "apt_list": [str],
        "yum_repo": [str],
    },
    "rpm-compat.json": {
        "rpmlib": {"*": str},
        "payload_compressors": [str],
        "payload_formats": [str],
        "header_digests": [str],
    },
}


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "a number",
        bool: "true/false",
    }.get(type(value), type(value).__name__)


def validate(value: Any, schema: Schema, where: str, key: str = "") -> None:
    """Raises a UserError naming `where` (the file) and the key path when value misfits."""
    at = key or "the top level"
    if isinstance(schema, type):
        if not isinstance(value, schema) or (schema is int and isinstance(value, bool)):
            raise UserError(f"{where}: {at} must be {_kind(schema())}, not {_kind(value)}")
    elif isinstance(schema, list):
        validate(value, list, where, key)
        for i, item in enumerate(value):
            validate(item, schema[0], where, f"{key}[{i}]")
    else:
        validate(value, dict, where, key)
        if "*" in schema:
            for name, item in value.items():
                if not name.startswith("_"):
                    validate(item, schema["*"], where, f"{key}.{name}" if key else name)
            return
        for name, sub in schema.items():
            optional, name = name.startswith("?"), name.lstrip("?")
            inner = f"{key}.{name}" if key else name
            if name in value:
                validate(value[name], sub, where, inner)
            elif not optional:
                raise UserError(f"{where}: {inner} is missing")


def load_json(path: Path) -> Any:
    """A data file's JSON, checked against SCHEMAS[its name] (a file without one is not)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON: {e}") from None
    if path.name in SCHEMAS:
        validate(data, SCHEMAS[path.name], str(path))
    return data


@functools.lru_cache(maxsize=None)
def products(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """{"connect": {...}, "control": {...}}: title, package, plugin_dir, ...
    (PRODUCTS_FILE read when called: a test may point it at an earlier version's table)"""
    data = load_json(path or PRODUCTS_FILE)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def plugin_dir(product: str) -> str:
    return products()[product]["plugin_dir"]


def debug_file(build_id: str, root="") -> PurePosixPath:
    """<root>/.build-id/xx/yyyy.debug: the layout gdb searches for a build-id."""
    return PurePosixPath(str(root)) / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"


def _check_architecture(name: str, arch: dict, path: Path) -> None:
    for key, kind in ARCH_KEYS.items():
        if not isinstance(arch.get(key), kind):
            raise UserError(f"{path}: architecture {name!r} has no {key} of type {kind.__name__}")
    if set(arch["dist"]) != set(TOOLCHAIN_NAMES) or len(set(arch["dist"].values())) != 2:
        raise UserError(
            f"{path}: architecture {name!r}: dist must name one folder for each of "
            f"{', '.join(TOOLCHAIN_NAMES)}"
        )
    smoke = arch["smoke"]
    if sorted(smoke) != sorted(SMOKE_KEYS) or not all(
        isinstance(v, str) and v for v in smoke.values()
    ):
        raise UserError(
            f"{path}: architecture {name!r}: smoke must give exactly "
            f"{', '.join(SMOKE_KEYS)}, each a non-empty string"
        )
    if arch["elf_class"] not in (32, 64) or arch["pointer_size"] * 8 != arch["elf_class"]:
        raise UserError(
            f"{path}: architecture {name!r}: elf_class {arch['elf_class']} does not "
            f"match pointer_size {arch['pointer_size']}"
        )


@functools.lru_cache(maxsize=None)
def architectures(path: Path = ARCH_FILE) -> dict[str, dict[str, Any]]:
    """{"i386": {...}, "x86_64": {...}}, in the file's order (the default one first)."""
    data = load_json(path)
    archs = data.get("architectures") or {}
    if data.get("default") not in archs:
        raise UserError(f"{path}: no architectures, or the default one is not among them")
    folders = [f for a in archs.values() for f in a.get("dist", {}).values()]
    if len(folders) != len(set(folders)):
        raise UserError(f"{path}: two architectures share a dist folder")
    for name, arch in archs.items():
        _check_architecture(name, arch, path)
    return {
        data["default"]: archs[data["default"]],
        **{k: v for k, v in archs.items() if k != data["default"]},
    }


def default_arch() -> str:
    return next(iter(architectures()))


def architecture(name: str = None) -> dict[str, Any]:
    name = name or default_arch()
    if name not in architectures():
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(architectures())}")
    return architectures()[name]


def arch_of(header: dict[str, Any]) -> "str | None":
    """The architecture whose binaries have this ELF class and machine, or None."""
    for name, arch in architectures().items():
        if (header["class"], header["machine"]) == (arch["elf_class"], arch["elf_machine"]):
            return name
    return None


def policies(path: Path = AUDIT_POLICY_FILE) -> dict[str, Any]:
    """Every policy of every architecture; each names its "arch". Each architecture's
    audit_policy (architectures.json) must be one of its own."""
    data = load_json(path)
    if not data.get("policies"):
        raise UserError(f"{path}: no policies")
    for name, arch in architectures().items():
        own = {p["name"] for p in data["policies"] if p.get("arch") == name}
        if arch["audit_policy"] not in own:
            raise UserError(
                f"{path}: architecture {name}'s audit_policy {arch['audit_policy']!r} "
                f"is not among its policies ({', '.join(sorted(own)) or 'none'})"
            )
    return data


def glibc_floor(arch: str = None) -> str:
    wanted = architecture(arch)["audit_policy"]
    policy = next(p for p in policies()["policies"] if p["name"] == wanted)
    return policy["symbol_versions"]["GLIBC"]
