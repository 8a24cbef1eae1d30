"""The JSON data (policies, tables) is checked when loaded, naming file and key; the data
travels with an installed avkit."""

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from avkit import facts, paths
from avkit.errors import UserError

ROOT = paths.ROOT


def data_file(name: str) -> Path:
    return next(p for p in (paths.PACKAGING / name, ROOT / "cmake" / name) if p.exists())


@pytest.mark.parametrize("name", sorted(facts.SCHEMAS))
def test_every_data_file_fits_its_schema(name):
    facts.load_json(data_file(name))


def broken_copy(tmp_path: Path, name: str, change) -> Path:
    data = json.loads(data_file(name).read_text())
    change(data)
    copy = tmp_path / name
    copy.write_text(json.dumps(data))
    return copy


def test_a_mistyped_product_key_is_named_with_its_file(tmp_path):
    copy = broken_copy(
        tmp_path, "products.json", lambda d: d["connect"].__setitem__("plugin_dir", 7)
    )
    with pytest.raises(UserError) as e:
        facts.products(copy)
    assert str(copy) in str(e.value) and "connect.plugin_dir must be a string, not a number" in str(
        e.value
    )


def test_a_missing_policy_key_is_named_with_its_index(tmp_path):
    copy = broken_copy(tmp_path, "audit-policies.json", lambda d: d["policies"][1].pop("priority"))
    with pytest.raises(UserError) as e:
        facts.policies(copy)
    assert f"{copy}: policies[1].priority is missing" == str(e.value)


def test_a_wrong_list_item_in_an_architecture_table_is_named(tmp_path):
    copy = broken_copy(
        tmp_path,
        "architectures.json",
        lambda d: d["architectures"].__setitem__("x86_64", ["not", "an", "object"]),
    )
    with pytest.raises(UserError) as e:
        facts.architectures(copy)
    assert f"{copy}: architectures.x86_64 must be an object, not a list" == str(e.value)


def test_a_file_that_is_not_json_is_named(tmp_path):
    copy = tmp_path / "plugins.json"
    copy.write_text('{"clam": ')
    with pytest.raises(UserError) as e:
        facts.load_json(copy)
    assert str(e.value).startswith(f"{copy}: not valid JSON")


def test_packaging_data_travels_with_an_installed_avkit(tmp_path):
    """`pip install .` (not editable) into a fresh venv; from another folder, the installed
    avkit reads its products, policies and architectures and sees the nFPM configs."""
    source = tmp_path / "source"
    for name in ("avkit", "packaging", "cmake"):
        shutil.copytree(
            ROOT / name,
            source / name,
            ignore=shutil.ignore_patterns("__pycache__", "gcc", "toolchains", "zig"),
        )
    for name in ("pyproject.toml", "VERSION"):
        shutil.copy2(ROOT / name, source / name)
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            str(source),
        ],
        check=True,
        timeout=300,
    )
    shutil.rmtree(source)  # nothing may be read from the source tree any more
    code = (
        "from avkit import facts, paths\n"
        "assert 'site-packages' in str(paths.PACKAGING), paths.PACKAGING\n"
        "assert (paths.PACKAGING / 'nfpm-plugin.yaml').is_file()\n"
        "assert (paths.PACKAGING / 'scripts' / 'postinst.sh').is_file()\n"
        "print(sorted(facts.products()), list(facts.architectures()), facts.glibc_floor())\n"
    )
    r = subprocess.run(
        [python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        f"{sorted(facts.products())} {list(facts.architectures())} {facts.glibc_floor()}"
    )


def test_the_wheel_lists_every_avkit_package():
    """pyproject.toml lists avkit's packages (the data folders are mapped in from outside
    avkit/): a new subpackage left off the list would be missing from an installed avkit."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    present = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "avkit").rglob("__init__.py")
    }
    assert present <= listed, f"add to [tool.setuptools] packages: {sorted(present - listed)}"
