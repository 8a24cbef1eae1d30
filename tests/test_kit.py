"""The four kit tests against the built plugins: sample always, clam against a real clamd,
icap (scanning, once) against a real c-icap with virus_scan over a real clamd."""

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from avkit import paths
from avkit.check import avhost, kit_corpus as corpus
from avkit.errors import UserError
from conftest import TESTED_ARCHS

LIMIT = 2 * 1024 * 1024  # a small stream limit keeps the corpus small


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("kit-data")
    kit("generate-test-data", str(d), "--stream-limit", str(LIMIT))
    return d


def kit(*args, timeout=600):
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "kit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=paths.ROOT,
    )
    print(r.stdout, r.stderr)
    return r


def test_generate_is_deterministic(tmp_path, data):
    m = corpus.generate(tmp_path / "again", stream_limit=LIMIT)
    first = corpus.load(data)
    assert [c["name"] for c in m["files"]] == [c["name"] for c in first["files"]]
    for c in m["files"]:
        p, q = tmp_path / "again" / c["name"], data / c["name"]
        if p.is_file() and c["name"] != "eicarpwd.zip":
            assert p.read_bytes() == q.read_bytes(), c["name"]
    names = {c["name"] for c in m["files"]}
    assert {
        "clean.exe",
        "eicar.com",
        "eicar.tmp",
        "eicar.zip",
        "eicarpwd.zip",
        "empty.file",
        "huge.file",
        "nonexisting.file",
        "eicar-nested.zip",
        corpus.UTF8_NAME,
        corpus.FORMAT_NAME,
        "eicar-link.com",
        "just-over-limit.file",
    } <= names
    assert (tmp_path / "again" / "huge.file").stat().st_size > LIMIT
    assert not (tmp_path / "again" / "nonexisting.file").exists()


PLUGINS = [
    pytest.param("avir_sample.so", [], id="sample"),
    pytest.param("avir_clam.so", ["--with-clamd"], id="clam"),
]


@pytest.mark.parametrize("arch", TESTED_ARCHS)
@pytest.mark.parametrize("test", ["scanning", "waiting", "server"])
@pytest.mark.parametrize("plugin,extra", PLUGINS)
def test_kit(test, plugin, extra, data, tmp_path, arch):
    """On both architectures: the kit finds the avhost beside the plugin, of its class."""
    so = paths.dist_dir("zig", arch=arch) / plugin
    if plugin == "avir_clam.so" and not so.exists():
        pytest.skip(f"{so} is not built")
    junit = tmp_path / "junit.xml"
    args = [test, "--plugin", str(so), "--data", str(data), "--junit", str(junit), *extra]
    if test == "waiting":
        args += ["--wait", "3"]  # longer than the kit clamd's IdleTimeout (wait - 1 s)
    r = kit(*args)
    assert r.returncode == 0
    engine = plugin[5:-3]
    assert f"{test} [{engine}]: " in r.stdout and " 0 failed" in r.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 14


@pytest.mark.parametrize("arch", TESTED_ARCHS)
def test_kit_icap_through_a_private_c_icap(data, tmp_path, arch):
    """avir_icap against the kit's own c-icap (virus_scan, avscan) and clamd: the icap
    engine's verdicts, with the names that come through c-icap."""
    so = paths.dist_dir("zig", arch=arch) / "avir_icap.so"
    if not so.exists():
        pytest.skip(f"{so} is not built")
    junit = tmp_path / "junit.xml"
    r = kit(
        "scanning", "--plugin", str(so), "--data", str(data), "--junit", str(junit), "--with-cicap"
    )
    assert r.returncode == 0
    assert "scanning [icap]: " in r.stdout and " 0 failed" in r.stdout
    lines = {
        line.split()[1]: line
        for line in r.stdout.splitlines()
        if line.startswith("  PASS  ") or line.startswith("  FAIL  ")
    }
    assert "[Kerio.Test.EICAR.UNOFFICIAL]" in lines["eicar.zip"]
    assert "Heuristics.Encrypted.Zip" in lines["eicarpwd.zip"]
    assert "Heuristics.Limits.Exceeded" in lines["huge.file"]  # clamd's limit, behind c-icap
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 14


def test_icap_expectations_differ_from_the_default_only_where_written(data):
    m = corpus.load(data)
    differ = {c["name"] for c in m["files"] if c["expect"]["icap"] != c["expect"]["default"]}
    assert differ == {"huge.file", "just-over-limit.file"}
    assert corpus.engine_for("avir_icap") == "icap"


def test_kit_detects_a_wrong_expectation(data, tmp_path):
    """The sample plugin judged by clam's expectations must fail (eicar.zip is OK for it)."""
    r = kit(
        "scanning",
        "--plugin",
        str(paths.dist_dir("zig") / "avir_sample.so"),
        "--data",
        str(data),
        "--engine",
        "clam",
    )
    assert r.returncode == 1
    assert "FAIL  eicar.zip" in r.stdout


def test_menu_without_input():
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "kit"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=paths.ROOT,
    )
    assert r.returncode == 0
    assert "1) avplugins_generate_test_data" in r.stdout and "end of input" in r.stdout


def test_menu_choice(data):
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "kit", "--data", str(data)],
        input="2\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=paths.ROOT,
    )
    assert r.returncode == 0 and "scanning [sample]" in r.stdout


# --- what the kit says when a plugin misbehaves: the plugin's own words, promptly ---


def kit_lines(r, name):
    return [line for line in r.stdout.splitlines() if f" {name} " in line]


def test_kit_names_an_invalid_return_code(data, broken):
    r = kit("scanning", "--plugin", broken("code7"), "--data", data, "--engine", "default")
    assert r.returncode == 1
    (line,) = kit_lines(r, "eicar.com")
    assert line.lstrip().startswith("FAIL") and "INVALID" in line
    assert "plugin_thread_test_file returned 7" in line


def test_kit_reports_a_hanging_plugin_promptly(data, broken):
    r = kit(
        "scanning",
        "--plugin",
        broken("hangeicar"),
        "--data",
        data,
        "--engine",
        "default",
        "--scan-timeout",
        "2",
        timeout=300,
    )
    (line,) = kit_lines(r, "eicar.com")
    assert "HUNG" in line and "did not return within 2 s" in line, r.stdout
    assert r.returncode == 1


def test_kit_says_in_one_line_why_a_64_bit_plugin_does_not_load(data, tmp_path, artifact):
    """Given an i386 avhost (as an i386 avserver would be)."""
    src = tmp_path / "x.c"
    src.write_text("int x;\n")
    plugin = tmp_path / "avir_x64.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", plugin, src], check=True)
    r = kit("scanning", "--plugin", plugin, "--data", data, "--avhost", artifact("avhost"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"avkit kit: avhost could not load {plugin}: load: {plugin} is a 64-bit x86_64 "
        f"(ELFCLASS64, EM_X86_64) plugin, but this avhost is i386 and, like an i386 avserver, "
        f"loads only 32-bit i386 (ELFCLASS32, EM_386) plugins: install the i386 build of the "
        f"plugin, or test this one with the x86_64 avhost (avkit build --arch x86_64)"
    ]


# --- what the product would suffer, from an author's own plugin built by `avkit plugin` ---
# Each variant is sample/ with one defect written in, built as an author builds it (gcc
# here: quicker, and with the debug file beside it by build-id, as with zig).

SAMPLE = paths.ROOT / "sample"
OPEN_FAILED = (
    'avc_format(result, AVP_RESULT_SIZE, "cannot open %s: %s", filename, '
    "strerror(errno));\n        return AVCHK_FAILED;"
)
NAMED_CRASH = """
static const char *volatile g_header; /* never set: reading it crashes */

/* A function of the author's engine, so the kit's backtrace has a name to show. */
__attribute__((noinline)) static int parse_mine_header(const char *filename)
{
    return g_header[strlen(filename) % 2];
}
"""
DEFECTS = {
    # returns -1 (not AVCHK_FAILED) for a file it cannot open
    "minus1": [(OPEN_FAILED, OPEN_FAILED.replace("return AVCHK_FAILED;", "return -1;"))],
    # reads realname, which docs/ABI.md says may be NULL
    "nullname": [("(void)realname;", "if (strlen(realname) > 4096)\n        return AVCHK_FAILED;")],
    # logs an error for clean.exe, then answers OK
    "errlog": [
        (
            "(void)realname;",
            '(void)realname;\n    if (strstr(filename, "clean.exe"))\n'
            '        avc_log_error("engine database unreadable while scanning %s", filename);',
        )
    ],
    # crashes in a named function while scanning empty.file
    "crashnamed": [
        ("int avp_test_file(", NAMED_CRASH + "\nint avp_test_file("),
        (
            "(void)realname;",
            '(void)realname;\n    if (strstr(filename, "empty.file"))\n'
            "        return parse_mine_header(filename);",
        ),
    ],
    # never returns for eicar.com, eicar.tmp and eicar.zip
    "hang": [
        (
            "(void)realname;",
            "(void)realname;\n    if (strncmp(strrchr(filename, '/') + 1, "
            '"eicar.", 6) == 0)\n        for (;;)\n            sleep(1);',
        )
    ],
}


@pytest.fixture(scope="module")
def defective(tmp_path_factory):
    """defective("minus1") -> the author's avir_minus1.so (gcc, i386), its debug file beside."""
    built = {}

    def build(variant: str):
        if variant not in built:
            where = tmp_path_factory.mktemp(f"author-{variant}")
            shutil.copytree(paths.ROOT / "api", where / "api")
            folder = where / variant
            shutil.copytree(SAMPLE, folder)
            for name in ("CMakeLists.txt", "avPlugin.c"):
                f = folder / name
                f.write_text(f.read_text().replace("avir_sample", f"avir_{variant}"))
            source = folder / "avPlugin.c"
            text = source.read_text()
            for old, new in DEFECTS[variant]:
                assert old in text, (variant, old)
                text = text.replace(old, new, 1)
            source.write_text(text)
            r = subprocess.run(
                [sys.executable, "-m", "avkit", "plugin", str(folder), "--toolchain", "gcc"],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=paths.ROOT,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            built[variant] = folder / "dist" / paths.folder("gcc") / f"avir_{variant}.so"
        return built[variant]

    return build


def avhost_has(option: str) -> bool:
    host = paths.dist_dir("zig") / "avhost"
    r = subprocess.run([host, "--help"], capture_output=True, text=True, timeout=30)
    return option in r.stdout + r.stderr


def test_kit_fails_an_unknown_return_code_the_glue_turned_into_failed(data, defective):
    """api/avCommon.c answers AVCHK_FAILED for -1 (and logs it): the kit still fails it."""
    r = kit("scanning", "--plugin", defective("minus1"), "--data", data, "--engine", "sample")
    assert r.returncode == 1
    (line,) = kit_lines(r, "nonexisting.file")
    assert line.lstrip().startswith("FAIL"), line
    assert "plugin_thread_test_file returned -1, not one of the ABI's codes 0..5" in line


@pytest.mark.skipif(not avhost_has("--realname"), reason="avhost has no --realname yet")
def test_kit_scans_with_a_null_and_an_empty_realname(data, defective):
    r = kit("scanning", "--plugin", defective("nullname"), "--data", data, "--engine", "sample")
    assert r.returncode == 1
    null = [line for line in r.stdout.splitlines() if "realname NULL:" in line]
    empty = [line for line in r.stdout.splitlines() if 'realname "":' in line]
    assert null and null[0].lstrip().startswith("FAIL") and "CRASHED" in null[0], r.stdout
    assert empty and empty[0].lstrip().startswith("PASS"), r.stdout
    sample = kit("scanning", "--plugin", paths.dist_dir("zig") / "avir_sample.so", "--data", data)
    assert sample.returncode == 0
    assert any(
        "realname NULL:" in line and line.lstrip().startswith("PASS")
        for line in sample.stdout.splitlines()
    )


def test_kit_warns_of_an_error_logged_during_a_scan_that_answered_ok(data, defective):
    r = kit("scanning", "--plugin", defective("errlog"), "--data", data, "--engine", "sample")
    (warn,) = [
        line
        for line in r.stdout.splitlines()
        if line.lstrip().startswith("WARN") and "clean.exe" in line
    ]
    assert "answered OK, but the plugin logged ERR during the scan" in warn
    assert "engine database unreadable while scanning" in warn
    assert r.returncode == 0 and " warnings" in r.stdout  # a warning, not a failure


def test_a_crash_names_the_function_from_the_debug_file(data, defective):
    plugin = defective("crashnamed")
    probe = avhost.run(paths.dist_dir("zig") / "avhost", "scan", plugin, Path(data) / "empty.file")
    (record,) = probe.events("scan")
    assert record["verdict"] == "CRASHED"
    if "frames" not in record:
        pytest.skip("this avhost reports no frames yet")
    r = kit("scanning", "--plugin", plugin, "--data", data, "--engine", "sample")
    assert r.returncode == 1
    (line,) = kit_lines(r, "empty.file")
    assert "CRASHED" in line and "SIGSEGV" in line, line
    assert "backtrace: parse_mine_header (" in line and "avPlugin.c:" in line, line
    # avp_test_file returns parse_mine_header(...): a tail call, so no frame of its own;
    # the next frame is the glue that called it
    assert "<- iface_plugin_thread_test_file (" in line and "avCommon.c:" in line, line


def test_a_hang_costs_one_timeout_not_one_per_file(data, defective):
    """eicar.com, eicar.tmp and eicar.zip hang: about one timeout, said at once, with progress."""
    timeout = 15
    start = time.monotonic()
    r = kit(
        "scanning",
        "--plugin",
        defective("hang"),
        "--data",
        data,
        "--engine",
        "sample",
        "--scan-timeout",
        str(timeout),
        timeout=600,
    )
    took = time.monotonic() - start
    assert r.returncode == 1
    hung = [line for line in r.stdout.splitlines() if line.startswith("  HUNG  ")]
    assert len(hung) >= 3 and "no answer within 15 s" in hung[0] and "deadline" in hung[0]
    assert all("hung again" in line for line in hung[1:]), hung
    if avhost_has("--rehang-timeout"):  # avhost's progress records while a scan waits
        assert "no answer yet after 5 s" in r.stdout
    assert took < 2 * timeout + 20, f"{took:.0f} s for three hanging files"


def test_the_kit_reads_the_records_of_hangs_and_crashes(capsys):
    """The kit's side of avhost's waiting, HUNG (short_timeout) and CRASHED (frames)
    records, whatever avhost is built: progress, the first hang with its hint, later
    ones as hung again, and a frame of the release sample symbolized from its debug file."""
    from types import SimpleNamespace

    from avkit import elf, facts
    from avkit.check import kit as kitlib

    plugin = paths.dist_dir("zig") / "avir_sample.so"
    debug = Path(facts.debug_file(elf.build_id(plugin), plugin.parent / "debug"))
    nm = subprocess.run(["nm", debug], capture_output=True, text=True, check=True).stdout
    (address,) = [line.split()[0] for line in nm.splitlines() if line.endswith(" avp_test_file")]
    ctx = SimpleNamespace(
        scan_timeout=60.0,
        hung=False,
        hung_files=set(),
        avhost=plugin.parent / "avhost",
        plugin=plugin,
    )
    progress = kitlib.Progress(ctx)
    progress({"event": "waiting", "path": "/d/a.file", "seconds": 5, "timeout": 60})
    progress({"event": "scan", "file": "/d/a.file", "verdict": "HUNG", "violations": []})
    progress({"event": "scan", "file": "/d/b.file", "verdict": "HUNG", "short_timeout": True})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "  ...   a.file: no answer yet after 5 s (HUNG after 60 s)"
    assert out[1].startswith("  HUNG  a.file: no answer within 60 s;") and "deadline" in out[1]
    assert out[2] == "  HUNG  b.file: hung again (waited only 5 s, as the plugin hung before)"
    assert ctx.hung and ctx.hung_files == {"/d/a.file", "/d/b.file"}
    report = kitlib.Report("scanning", "sample")
    case = {"name": "empty.file", "expect": {"default": ["OK"]}}
    frames = [
        {"object": str(plugin), "offset": hex(int(address, 16) + 4)},
        {"object": "/lib/libc.so.6", "offset": "0x1a2b"},
    ]
    kitlib.check_scan(
        report,
        case,
        {
            "verdict": "CRASHED",
            "frames": frames,
            "violations": ["plugin crashed with signal 11 (SIGSEGV) while scanning /d/empty.file"],
        },
        "sample",
    )
    (line,) = capsys.readouterr().out.splitlines()
    assert "SIGSEGV" in line and "backtrace: avp_test_file (" in line, line
    assert "avPlugin.c:" in line and "<- libc.so.6+0x1a2b" in line, line


def test_samples_manifest_in_toml_and_its_corpus(tmp_path):
    """The author's manifest: TOML as well as JSON; zips only for an engine that opens
    them; the EICAR files left out; each mistake named with its place."""
    (tmp_path / "mine.bin").write_bytes(b"header MINE-TEST-SIGNATURE trailer")
    (tmp_path / "m.toml").write_text(
        'archives = true\n[[samples]]\nfile = "mine.bin"\nexpect = "VIRUS_FOUND"\nname = "^Mine"\n'
    )
    samples = corpus.load_samples(tmp_path / "m.toml")
    m = corpus.generate_with_samples(tmp_path / "out", samples, stream_limit=LIMIT)
    names = {c["name"] for c in m["files"]}
    assert {
        "s1-mine.bin",
        "s1-mine.bin.link",
        "s1-mine.bin.padded",
        "s1-mine.bin.zip",
        "s1-mine.bin-nested.zip",
        "clean.exe",
        "nonexisting.file",
    } <= names
    assert not any("eicar" in n for n in names) and m["probe"] == "s1-mine.bin"
    assert not any(p.name.startswith("eicar") for p in (tmp_path / "out").iterdir())
    (tmp_path / "m.json").write_text('{"samples": [{"file": "mine.bin", "expect": "VIRUS_FOUND"}]}')
    plain = corpus.generate_with_samples(
        tmp_path / "out2", corpus.load_samples(tmp_path / "m.json"), stream_limit=LIMIT
    )
    assert not any(c["name"].endswith(".zip") for c in plain["files"])
    (tmp_path / "bad.json").write_text('{"samples": [{"file": "mine.bin", "expect": "INFECTED"}]}')
    with pytest.raises(UserError, match=r"samples\[0\]: want \"file\" and \"expect\""):
        corpus.load_samples(tmp_path / "bad.json")
    (tmp_path / "gone.json").write_text('{"samples": [{"file": "gone.bin", "expect": "OK"}]}')
    with pytest.raises(UserError, match="gone.bin does not exist"):
        corpus.load_samples(tmp_path / "gone.json")


def test_without_avhost_the_kit_names_the_build_of_the_clone(tmp_path):
    """No avhost beside the plugin nor in dist/: the one command, run in this clone."""
    plugin = tmp_path / "avir_sample.so"
    shutil.copy(paths.dist_dir("zig") / "avir_sample.so", plugin)
    env = dict(os.environ, AVKIT_DIST_ROOT=str(tmp_path / "dist"))
    r = subprocess.run(
        [sys.executable, "-m", "avkit", "kit", "scanning", "--plugin", plugin],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=paths.ROOT,
        env=env,
    )
    assert r.returncode == 1
    assert f"avhost not found beside {plugin}" in r.stderr, r.stderr
    assert f"(cd {paths.ROOT} && ./nox -s build-i386) or pass --avhost" in r.stderr, r.stderr
