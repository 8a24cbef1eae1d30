"""kerio-avir-check, the administrator's check (packaging/tools/), against a real clamd.

The command is run as an administrator runs it, with /bin/sh (dash here; POSIX sh on the
oldest systems), the avhost of the build and avir_clam.so, against Debian's stock
clamd.conf (`Clamd(stock=True, alert_exceeds_max=False)`: Clamd's default adds
AlertExceedsMax yes even in stock mode) and the recommended settings (AlertExceedsMax yes), a
clamd that is down, and a plugin misled about clamd's limit. `-s` prints each output:
the issue note quotes them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import facts, paths
from avkit.check.clamd import EICAR_NAME, Clamd
from avkit.ship import tools_package
from fake_clamd import FakeClamd

CHECK = paths.ROOT / "packaging" / "tools" / "kerio-avir-check"
MIB = 1 << 20


def run_check(
    avhost: Path, plugin: Path, *args: str, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        ["sh", str(CHECK), "--avhost", str(avhost), *args, str(plugin)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(
        f"$ kerio-avir-check {' '.join(args)} {plugin.name}  -> exit {r.returncode}\n"
        f"{r.stdout}{r.stderr}"
    )
    return r


def row(output: str, label: str) -> list[str]:
    """The table row of one test file: its words."""
    for line in output.splitlines():
        if line.split()[:1] == [label]:
            return line.split()
    raise AssertionError(f"no row {label!r} in:\n{output}")


def unix_options(clamd: Clamd) -> list[str]:
    """-o arguments as an administrator sets them: clamd's socket and its clamd.conf."""
    return ["-o", f"LocalSocket={clamd.socket_path}", "-o", f"ClamdConf={clamd.conf_path}"]


@pytest.fixture
def tools(artifact, arch):
    return artifact("avhost", arch=arch), artifact("avir_clam.so", arch=arch)


def test_stock_clamd_all_as_expected(tmp_path, tools):
    avhost, plugin = tools
    with Clamd(tmp_path / "clamd", stock=True, alert_exceeds_max=False) as clamd:
        r = run_check(avhost, plugin, *unix_options(clamd))
    assert r.returncode == 0, r.stdout + r.stderr
    assert row(r.stdout, "eicar")[:5] == ["eicar", "68", "VIRUS_FOUND", "VIRUS_FOUND", EICAR_NAME]
    assert row(r.stdout, "eicar")[-1] == "ok"
    assert row(r.stdout, "clean")[3:] == ["OK", "ok"]
    over = row(r.stdout, "over-limit")
    # Debian's MaxFileSize 25M, one byte over; the plugin refuses it itself (AlertExceedsMax no)
    assert over[1:4] == [str(25 * MIB + 1), "IMPOSSIBLE/VIRUS_FOUND", "IMPOSSIBLE"], over
    assert over[-1] == "ok"
    assert "would call it clean unscanned (AlertExceedsMax no)" in " ".join(over)
    assert f"MaxFileSize 25M in {clamd.conf_path}" in r.stdout
    # the plugin's advice, passed on
    assert "reports a file over its limits as clean" in r.stdout and "plugin WRN:" in r.stdout
    assert "all as expected" in r.stdout and "fix" not in r.stdout


def test_recommended_settings_clamd_reports_the_limit(tmp_path, tools):
    avhost, plugin = tools
    with Clamd(tmp_path / "clamd", stock=True, alert_exceeds_max=True) as clamd:
        r = run_check(avhost, plugin, *unix_options(clamd))
    assert r.returncode == 0, r.stdout + r.stderr
    over = row(r.stdout, "over-limit")
    assert over[3] == "IMPOSSIBLE" and "(Heuristics.Limits.Exceeded.MaxFileSize)" in over, over
    assert over[-1] == "ok"


def test_clamd_down_says_what_to_fix(tmp_path, tools):
    avhost, plugin = tools
    with Clamd(tmp_path / "clamd", stock=True, alert_exceeds_max=False) as clamd:
        options = unix_options(clamd)
    r = run_check(avhost, plugin, *options)
    assert r.returncode == 1
    assert "FAIL: the plugin did not start" in r.stdout
    assert str(tmp_path / "clamd") in r.stdout  # the plugin's reason names the socket
    assert "fix: start clamd" in r.stdout


def test_a_plugin_option_too_small_is_named(tmp_path, tools):
    """MaxFileSize=10 makes EICAR itself too big to scan: the row is UNEXPECTED and the
    fix is the plugin's own text, which names the option."""
    avhost, plugin = tools
    with Clamd(tmp_path / "clamd", stock=True, alert_exceeds_max=False) as clamd:
        r = run_check(avhost, plugin, *unix_options(clamd), "-o", "MaxFileSize=10")
    assert r.returncode == 1
    assert row(r.stdout, "eicar")[3] == "IMPOSSIBLE" and row(r.stdout, "eicar")[-1] == "UNEXPECTED"
    fix = [line for line in r.stdout.splitlines() if line.strip().startswith("fix (eicar):")]
    assert len(fix) == 1 and "MaxFileSize" in fix[0], r.stdout
    assert "engine limit: 10 bytes, the plugin's option MaxFileSize" in r.stdout
    assert row(r.stdout, "over-limit")[-1] == "ok"


def test_a_server_that_passes_everything_gets_both_fixes(tmp_path, tools):
    """A clamd that calls every file clean (a fake: a real one cannot be made to miss
    EICAR with the test database), the plugin told of no limit: EICAR and the over-limit
    file come back OK, each with its fix."""
    avhost, plugin = tools
    no_limits = tmp_path / "clamd.conf"
    no_limits.write_text("MaxFileSize 0\nMaxScanSize 0\n")
    with FakeClamd("ok") as fake:
        r = run_check(
            avhost,
            plugin,
            "-o",
            "Address=127.0.0.1",
            "-o",
            f"Port={fake.port}",
            "-o",
            f"ClamdConf={no_limits}",
            "--limit",
            "1M",
        )
    assert r.returncode == 1
    assert row(r.stdout, "eicar")[3:] == ["OK", "UNEXPECTED"]
    assert row(r.stdout, "over-limit")[1:] == [
        str(MIB + 1),
        "IMPOSSIBLE/VIRUS_FOUND",
        "OK",
        "UNEXPECTED",
    ]
    assert "fix (eicar): the engine did not find the EICAR test string" in r.stdout
    assert (
        "fix (over-limit): a file over the engine's limit came back clean unscanned: "
        "set AlertExceedsMax yes in clamd.conf"
    ) in r.stdout
    assert "all as expected" not in r.stdout


def test_finds_the_installed_plugins_below_a_root(tmp_path, tools):
    avhost, plugin = tools
    folder = tmp_path / "root" / "opt/kerio/winroute/avirplugins"
    folder.mkdir(parents=True)
    (folder / plugin.name).write_bytes(plugin.read_bytes())
    with Clamd(tmp_path / "clamd", stock=True, alert_exceeds_max=False) as clamd:
        r = subprocess.run(
            [
                "sh",
                str(CHECK),
                "--avhost",
                str(avhost),
                "--root",
                str(tmp_path / "root"),
                *unix_options(clamd),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{folder}/avir_clam.so (Kerio Control, " in r.stdout
    r = subprocess.run(
        ["sh", str(CHECK), "--avhost", str(avhost), "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "no plugin installed" in r.stderr


@pytest.fixture(scope="module")
def packages(tmp_path_factory, artifact) -> Path:
    """The i386 packages of the build (avkit package), kerio-avir-tools among them."""
    artifact("avhost")
    out = tmp_path_factory.mktemp("packages")
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "package", "--out", str(out), "--no-repo"],
        capture_output=True,
        text=True,
        cwd=paths.ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_the_installed_package_checks_the_installed_plugin(tmp_path, packages):
    """kerio-avir-tools and kerio-connect-avir-clam unpacked into a private root: the
    command finds its avhost beside it and the plugin in Kerio Connect's folder."""
    (tools,) = packages.glob("kerio-avir-tools_*_i386.deb")
    (clam,) = packages.glob("kerio-connect-avir-clam_*_i386.deb")
    assert subprocess.run(
        ["dpkg-deb", "-f", tools, "Depends"], capture_output=True, text=True
    ).stdout.startswith("libc6 (>= 2.")
    root = tmp_path / "root"
    for deb in (tools, clam):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    check = root / "usr/sbin/kerio-avir-check"
    assert (root / "usr/lib/kerio-avir-tools/avhost").is_file()
    assert (root / "usr/share/man/man8/kerio-avir-check.8.gz").is_file()
    readme = (root / "usr/share/doc/kerio-avir-tools/README").read_text()
    assert "## The administrator's check" in readme and "over-limit" in readme
    with Clamd(tmp_path / "clamd", stock=True, alert_exceeds_max=False) as clamd:
        r = subprocess.run(
            [str(check), "--root", str(root), *unix_options(clamd)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(
        f"{root}/opt/kerio/mailserver/plugin/avserver/avirs/avir_clam.so (Kerio Connect, 32-bit)"
    )
    assert "all as expected" in r.stdout
    # the plugin package's README is the guide's text on its plugin, the check included
    plugin_readme = (root / "usr/share/doc/kerio-connect-avir-clam/README").read_text()
    assert "## The ClamAV plugin" in plugin_readme and "kerio-avir-check" in plugin_readme


def test_searches_the_products_plugin_folders():
    products = json.loads(facts.PRODUCTS_FILE.read_text())
    expected = [p["plugin_dir"] for k, p in products.items() if not k.startswith("_")]
    assert sorted(tools_package.plugin_dirs_in_command()) == sorted(expected)


def test_is_posix_sh_and_ships_no_eicar():
    text = CHECK.read_bytes()
    assert text.startswith(b"#!/bin/sh\n")
    assert facts.EICAR not in text
    r = subprocess.run(["sh", "-n", str(CHECK)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not re.search(r"\[\[|^\s*(function|local) |\$\(<", CHECK.read_text(), re.M)


def test_the_guide_names_the_console_place_the_postinst_prints():
    """docs/admin.md's console table says what postinst says (products.json: console)."""
    guide = (paths.ROOT / "docs" / "admin.md").read_text()
    for product in facts.products().values():
        where = product["console"].split("administration: ", 1)[1]
        where = where.replace("'{plugin_id}'", "`avir_clam` (or `avir_icap`)")
        assert f"| {product['title']} | {where} |" in guide, product["title"]
    assert "dpkg --add-architecture i386 && apt-get update && apt-get install libc6:i386" in guide
