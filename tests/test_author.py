"""A plugin author's journey, as the author's guide (docs/author.md) tells it: copy api/
and sample/ out of the tree, rename, build with both toolchains, audit, run the kit.

The commands are taken from the guide's shell blocks, so the text and the test
cannot drift apart; only the repository's path and the venv's `avkit` are filled in.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avkit import elf

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


GUIDE = ROOT / "docs" / "author.md"


def guide_block(heading: str, first_line: str) -> list[str]:
    """The lines of the guide's sh block under `heading` that starts with first_line."""
    text = GUIDE.read_text()
    section = text.split(heading, 1)[1]
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if block.startswith(first_line):
            return [line.split("#")[0].strip() for line in block.strip().splitlines()]
    raise AssertionError(f"no sh block starting with {first_line!r} under {heading!r}")


def sh(line: str, cwd: Path, check=True):
    line = line.replace("/path/to/this/repo", str(ROOT))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if check:
        assert r.returncode == 0, f"{line}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def author(tmp_path_factory):
    """The guide's steps, in a folder outside the repository; `avkit` is this venv's."""
    where = tmp_path_factory.mktemp("author")
    if not (BIN / "avkit").exists():  # the one install step, into the test's venv
        sh(f"{BIN / 'pip'} install -q -e {ROOT}", where)
    for step in guide_block("# Writing a plugin", "cd /path/to/this/repo")[1:]:
        if not step.startswith("./nox"):
            continue  # the venv is this test's own
        sh(step, ROOT)
    steps = guide_block("# Writing a plugin", "cp -r")
    outputs = [sh(step, where) for step in steps]
    return where, steps, outputs


def test_release_build_out_of_tree_is_stripped_with_its_debug_file_and_audited(author):
    where, steps, outputs = author
    plugin = where / "mine" / "dist" / "i386" / "avir_mine.so"
    assert elf.header(plugin) == {"class": 32, "machine": "EM_386", "type": "ET_DYN"}
    assert elf.exported_symbols(plugin) == ["get_plugin_extended_iface"]
    bid = elf.build_id(plugin)
    assert (
        where / "mine" / "dist" / "i386" / "debug" / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
    ).is_file()
    audit = outputs[steps.index("avkit audit mine/dist/i386/avir_mine.so")]
    assert 'avir_mine.so: OK for policy "kerio-glibc2.12"' in audit.stdout
    audit64 = outputs[steps.index("avkit audit mine/dist/x86_64/avir_mine.so")]
    assert 'avir_mine.so: OK for policy "kerio-x86_64-glibc2.12"' in audit64.stdout


def test_the_kit_runs_from_the_authors_folder(author):
    where, steps, outputs = author
    kits = [out for step, out in zip(steps, outputs) if step.startswith("avkit kit")]
    assert len(kits) == 2  # i386 and x86_64
    for kit in kits:
        assert "scanning [sample]: " in kit.stdout and " 0 failed" in kit.stdout, kit.stdout
    # The corpus went into the author's folder, not into this clone's build/.
    assert (where / "mine" / "build" / "kit-data" / "manifest.json").is_file()
    # Without --engine, the kit says why it expects what it expects.
    r = sh("avkit kit scanning --plugin mine/dist/i386/avir_mine.so", where, check=False)
    assert "avir_mine is not a plugin the kit knows" in r.stdout
    assert "pass --engine sample" in r.stdout


def test_gcc_build_out_of_tree_and_flags_cannot_drop_m32(author):
    where, _, _ = author
    sh("avkit plugin mine --toolchain gcc", where)
    assert elf.header(where / "mine" / "dist" / "i386-gcc" / "avir_mine.so")["class"] == 32
    sh("avkit plugin mine --toolchain gcc --arch x86_64", where)
    assert elf.header(where / "mine" / "dist" / "x86_64-gcc" / "avir_mine.so")["class"] == 64
    shutil.copytree(ROOT / "cmake", where / "cmake", dirs_exist_ok=True)
    sh(
        "cmake -S mine -B build-mine -G Ninja -DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/toolchains/gcc.cmake"
        " -DCMAKE_C_FLAGS=-DAUTHOR_FLAG=1 && cmake --build build-mine",
        where,
    )
    assert elf.header(where / "build-mine" / "avir_mine.so")["class"] == 32


def test_a_file_name_used_as_a_format_does_not_compile(author, tmp_path):
    where, _, _ = author
    shutil.copytree(where / "api", tmp_path / "api")
    shutil.copytree(
        where / "mine", tmp_path / "bad", ignore=shutil.ignore_patterns("build", "dist")
    )
    source = tmp_path / "bad" / "avPlugin.c"
    text = source.read_text()
    marker = "int avp_test_file("
    assert marker in text
    head, tail = text.split(marker, 1)
    body_start = tail.index("{") + 1
    source.write_text(
        head + marker + tail[:body_start] + "\n    avc_log_debug(filename);" + tail[body_start:]
    )
    r = sh("avkit plugin bad --toolchain gcc", tmp_path, check=False)  # an error without --werror
    assert r.returncode != 0
    assert "format not a string literal" in r.stdout + r.stderr


def test_every_hint_names_the_one_command(author, tmp_path):
    """A missing plugin or avhost: the message names the command the guide gives."""
    where, _, _ = author
    r = sh("avkit kit scanning --plugin mine/dist/x86_64-gcc/avir_other.so", where, check=False)
    assert f"avkit plugin {where / 'mine'} --arch x86_64 --toolchain gcc" in r.stderr, r.stderr
    r = sh("avkit audit mine/dist/x86_64-gcc/avir_other.so", where, check=False)
    assert f"avkit plugin {where / 'mine'} --arch x86_64 --toolchain gcc" in r.stderr, r.stderr
    lone = tmp_path / "avir_lone.so"
    shutil.copy(where / "mine" / "dist" / "i386" / "avir_mine.so", lone)
    r = sh(f"avkit kit scanning --plugin {lone} --engine sample", where, check=False)
    if "avhost not found" in r.stderr:  # a clone whose dist/i386 was never built
        assert f"cd {ROOT} && ./nox -s build-i386" in r.stderr
    hints = subprocess.run(
        [
            "grep",
            "-rn",
            "python -m avkit build\\|avkit build --arch",
            str(ROOT / "avkit" / "check"),
            str(ROOT / "avkit" / "ship" / "audit.py"),
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert hints == "", f"hints naming another command than the guide's:\n{hints}"


def guide_script(heading: str, first_line: str) -> str:
    """The guide's sh block under `heading` that starts with first_line, as one script."""
    section = GUIDE.read_text().split(heading, 1)[1]
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no sh block starting with {first_line!r} under {heading!r}")


ENGINE_STRING = "MINE-TEST-SIGNATURE"  # the guide's example engine finds this, not EICAR
EICAR_LITERAL = '"X5O!P%@AP[4\\\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"'


@pytest.fixture(scope="module")
def own_engine(author, tmp_path_factory):
    """The author's plugin with its own engine: the sample searching another string and
    naming it Mine.Test, built with the guide's command."""
    where, _, _ = author
    folder = tmp_path_factory.mktemp("own-engine")
    shutil.copytree(where / "api", folder / "api")
    shutil.copytree(where / "mine", folder / "mine", ignore=shutil.ignore_patterns("build", "dist"))
    source = folder / "mine" / "avPlugin.c"
    text = source.read_text()
    assert EICAR_LITERAL in text and '"EICAR-Test-File"' in text
    source.write_text(
        text.replace(EICAR_LITERAL, f'"{ENGINE_STRING}"').replace(
            '"EICAR-Test-File"', '"Mine.Test"'
        )
    )
    sh("avkit plugin mine", folder)
    return folder


def test_the_kit_tests_the_authors_own_engine_with_its_samples(own_engine):
    """The guide's samples and command: every expectation met, said per file."""
    r = sh(
        guide_script("## Your own engine's samples", "mkdir -p samples"), own_engine, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scanning [default]: " in r.stdout and " 0 failed" in r.stdout, r.stdout
    lines = r.stdout.splitlines()
    found = [line for line in lines if "s1-mine-test.txt" in line and "PASS" in line]
    assert len(found) >= 3, r.stdout  # as given, behind a symlink, padded
    assert all(
        "VIRUS_FOUND" in line and "named /^Mine\\.Test$/: met" in line and "[Mine.Test]" in line
        for line in found
    ), found
    assert any("s2-harmless.txt" in line and "OK" in line and ": met" in line for line in lines)
    # A name that does not match fails, saying so.
    manifest = own_engine / "samples" / "manifest.json"
    manifest.write_text(manifest.read_text().replace("^Mine\\\\.Test$", "^Other$"))
    r = sh(
        "avkit kit scanning --plugin mine/dist/i386/avir_mine.so --samples samples/manifest.json",
        own_engine,
        check=False,
    )
    assert r.returncode == 1
    assert "the virus name 'Mine.Test' does not match /^Other$/" in r.stdout, r.stdout


def test_without_its_samples_the_kit_fails_and_says_to_give_them(own_engine):
    r = sh("avkit kit scanning --plugin mine/dist/i386/avir_mine.so", own_engine, check=False)
    assert r.returncode == 1
    assert "FAIL  eicar.com" in r.stdout
    assert "the plugin found EICAR nowhere" in r.stdout and "--samples MANIFEST" in r.stdout
