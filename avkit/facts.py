"""Facts the whole project shares, each defined once here or read from its data file.

    EICAR             the 68-byte antivirus test string
    products()        the Kerio products, from packaging/products.json
    plugin_dir(p)     where product p loads plugins from
    debug_file(id)    where the split debug info of a build-id lives, below a root
    policies()        the audit policies, packaging/audit-policies.json
    glibc_floor()     the oldest glibc a release plugin loads on: the default policy's
                      GLIBC version (cmake/toolchains/zig-i386.cmake reads the same file)
"""
import functools
import json
from pathlib import Path, PurePosixPath

from avkit import paths
from avkit.errors import UserError

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

PRODUCTS_FILE = paths.ROOT / "packaging" / "products.json"
POLICY_FILE = paths.ROOT / "packaging" / "audit-policies.json"


@functools.lru_cache(maxsize=None)
def products() -> dict:
    """{"connect": {...}, "control": {...}}: title, package, plugin_dir, ..."""
    data = json.loads(PRODUCTS_FILE.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def plugin_dir(product: str) -> str:
    return products()[product]["plugin_dir"]


def debug_file(build_id: str, root="") -> PurePosixPath:
    """<root>/.build-id/xx/yyyy.debug: the layout gdb searches for a build-id."""
    return PurePosixPath(str(root)) / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"


def policies(path: Path = POLICY_FILE) -> dict:
    data = json.loads(Path(path).read_text())
    if not data.get("policies") or data.get("default") not in {p["name"] for p in data["policies"]}:
        raise UserError(f"{path}: no policies, or the default policy is not among them")
    return data


def glibc_floor() -> str:
    data = policies()
    default = next(p for p in data["policies"] if p["name"] == data["default"])
    return default["symbol_versions"]["GLIBC"]
