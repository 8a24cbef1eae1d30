"""The long jobs' manners, checked cheaply: temporary folders removed (or kept and named),
progress at least every 10 s from fuzz and soak, a bench chart that reads on its own."""

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from avkit import paths
from avkit.check.clamd import ClamdError
from avkit.stress import bench, failover, fuzz, soak
from avkit.workdir import Scratch

AVKIT = paths.ROOT / "avkit"


@pytest.fixture
def tmp_root(tmp_path, monkeypatch):
    """The system's temporary folder, for these tests: tmp_path/tmp."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(root))
    return root


# --- 3. temporary folders --------------------------------------------------------------


def test_a_scratch_folder_goes_at_the_end_of_a_good_job(tmp_root):
    said = []
    with Scratch("avkit-x-", log=said.append) as s:
        (s.path / "data").write_text("x")
        assert s.path.parent == tmp_root
    assert list(tmp_root.iterdir()) == [] and said == []


def test_a_scratch_folder_stays_when_asked_and_says_where(tmp_root):
    said = []
    with Scratch("avkit-x-", keep=True, log=said.append) as s:
        pass
    assert s.path.is_dir()
    assert len(said) == 1 and str(s.path) in said[0] and "--keep" in said[0]


def test_a_failed_job_keeps_its_folder_but_not_the_generated_inputs(tmp_root):
    said = []
    with pytest.raises(ClamdError):
        with Scratch("avkit-x-", drop_when_kept=["files"], log=said.append) as s:
            (s.path / "files").mkdir()
            (s.path / "files" / "big").write_bytes(b"x" * 1000)
            (s.path / "clamd.log").write_text("why it failed")
            raise ClamdError("clamd exited with status 1 while starting:\nits log")
    assert (s.path / "clamd.log").exists() and not (s.path / "files").exists()
    assert len(said) == 1
    assert str(s.path) in said[0] and "ClamdError: clamd exited with status 1" in said[0]
    assert "files removed" in said[0]


def test_a_job_that_judges_itself_failed_keeps_its_folder_with_the_reason(tmp_root):
    said = []
    with Scratch("avkit-x-", log=said.append) as s:
        s.keep_because("memcheck found errors")
    assert s.path.is_dir() and "because memcheck found errors" in said[0]


def test_an_interrupted_job_removes_its_folder(tmp_root):
    with pytest.raises(KeyboardInterrupt):
        with Scratch("avkit-x-", log=print) as s:
            raise KeyboardInterrupt
    assert not s.path.exists()


def test_no_job_makes_a_temporary_folder_but_through_workdir():
    found = [
        p.relative_to(AVKIT.parent).as_posix()
        for p in AVKIT.rglob("*.py")
        if "mkdtemp(" in p.read_text() and p.name != "workdir.py"
    ]
    assert found == []


def fake_bench(monkeypatch, fail: bool):
    """run_bench with tiny workloads, no clamd and no avhost: only its folder handling."""
    seen = {}

    def fake_workloads(folder, quick):
        folder.mkdir(parents=True)
        f = folder / "s0.bin"
        f.write_bytes(b"x" * 4096)
        seen["work"] = folder.parent
        return {"4KiB": [f]}

    class FakeClamd:
        def __init__(self, workdir, **kw):
            Path(workdir).mkdir(parents=True)
            (Path(workdir) / "clamd.log").write_text("log")

        def __enter__(self):
            if fail:
                raise ClamdError("clamd did not answer PING within 60 s")
            return self

        def __exit__(self, *exc):
            pass

        def version(self):
            return "ClamAV 1.4.3"

        def plugin_options(self, transport="tcp"):
            return {}

    def fake_cell(clamd, transport, wname, files, n, *rest):
        s = {
            "files_per_s": (10.0, 9.0, 11.0),
            "mb_per_s": (1.0, 1.0, 1.0),
            "peak_rss_kb": (None, None, None),
            "open_fds": (None, None, None),
            "ratio": 1.0,
        }
        return {
            "transport": transport,
            "workload": wname,
            "threads": n,
            "files": len(files),
            "bytes": 4096,
            "summary": {"raw clamd": s, "avir_clam.so": dict(s)},
        }

    monkeypatch.setattr(bench, "workloads", fake_workloads)
    monkeypatch.setattr(bench, "Clamd", FakeClamd)
    monkeypatch.setattr(bench, "measure_cell", fake_cell)
    monkeypatch.setattr(bench, "_chart", lambda *a: None)

    def fake_pool(work, clam, host, quick):
        phases = failover.tally([], 1.0, 3.0)
        return {
            "workers": 4,
            "transport": "tcp",
            "seconds": 3.0,
            "kill_at": 1.0,
            "killed": "a (SIGKILL)",
            "scans": 0,
            "phases": phases,
            "problems": failover.problems(phases),
        }

    monkeypatch.setattr(bench, "pool_row", fake_pool)
    dist = paths.dist_dir("zig")
    if not (dist / "avir_clam.so").exists():
        pytest.skip(f"no {dist / 'avir_clam.so'}: build first")
    return seen


def test_bench_removes_its_400_mb_folder(tmp_root, tmp_path, monkeypatch):
    seen = fake_bench(monkeypatch, fail=False)
    assert bench.run_bench([1], ["tcp"], 1, True, [], tmp_path / "b.json", tmp_path / "b.png") == 0
    assert seen["work"].parent == tmp_root and not seen["work"].exists()
    assert list(tmp_root.iterdir()) == []


def test_bench_keeps_clamd_folder_of_a_failed_run_and_says_where(
    tmp_root, tmp_path, monkeypatch, capsys
):
    seen = fake_bench(monkeypatch, fail=True)
    with pytest.raises(ClamdError):
        bench.run_bench([1], ["tcp"], 1, True, [], tmp_path / "b.json", tmp_path / "b.png")
    work = seen["work"]
    assert (work / "clamd" / "clamd.log").exists() and not (work / "files").exists()
    err = capsys.readouterr().err
    assert f"kept {work}" in err and "did not answer PING" in err


def test_bench_keep_keeps_everything(tmp_root, tmp_path, monkeypatch):
    seen = fake_bench(monkeypatch, fail=False)
    bench.run_bench([1], ["tcp"], 1, True, [], tmp_path / "b.json", tmp_path / "b.png", keep=True)
    assert (seen["work"] / "files" / "s0.bin").exists()


# --- 4. progress: soak --------------------------------------------------------------------


def test_soak_prints_a_readable_line_while_it_runs(capsys):
    tally = soak.Tally()
    for _ in range(7):
        tally.add("OK", done=True)
    tally.add("FAILED")
    busy = threading.Thread(target=time.sleep, args=(0.8,))
    busy.start()

    class NoClamd:
        def restart(self):
            raise AssertionError("no restart planned")

    samples, restarts = soak.watch(
        [busy],
        os.getpid(),
        NoClamd(),
        [],
        tally,
        time.monotonic(),
        total=100,
        every=0.2,
        sample_every=0.05,
    )
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("soak")]
    assert len(lines) >= 2 and samples and restarts == 0
    line = lines[-1]
    assert "{" not in line
    assert re.search(r"7/100 scans", line) and "wrong 0" in line and "asked again 1" in line
    assert re.search(r"\d+ fds, RSS [\d.]+ MiB, \d+ threads", line)


def report(**results):
    counts = {"OK": 640000, "wrong": 0, "FAILED": 12, "ERROR": 0, "CRASHED": 0, "other": 0}
    counts.update(results)
    return {
        "workers": 64,
        "scans_per_worker": 10000,
        "scans": 640000,
        "seconds": 1234.5,
        "restarts": 3,
        "results": counts,
        "first_sample": {"fds": 20, "VmRSS": 10240, "Threads": 66},
        "last_sample": {"fds": 21, "VmRSS": 10500, "Threads": 66},
        "wrong_examples": [],
    }


def test_soak_summary_is_for_people():
    text = soak.summary_text(report())
    assert "{" not in text and text.splitlines()[-1] == "soak: ok"
    assert "640,000 of 640,000 scans" in text and "descriptors 20 -> 21" in text
    assert "RSS 10.0 MiB -> 10.3 MiB" in text


def test_soak_summary_says_why_it_failed():
    bad = report(wrong=2)
    bad["last_sample"]["fds"] = 40
    bad["wrong_examples"] = [{"file": "/x/f001.eicar", "verdict": "OK"}]
    text = soak.summary_text(bad)
    assert text.splitlines()[-1] == (
        "soak: FAIL: 2 wrong verdicts; descriptors grew by 20 (limit 4)"
    )
    assert "wrong: /x/f001.eicar: OK" in text
    assert not soak.verdict(bad)


# --- 4. progress: fuzz --------------------------------------------------------------------


def test_libfuzzer_status_lines_are_understood():
    s = fuzz.parse_status("#4096\tpulse  cov: 91 ft: 180 corp: 30/1022b exec/s: 2048 rss: 31Mb")
    assert s == {"execs": 4096, "event": "pulse", "cov": 91, "corp_units": 30, "exec_per_s": 2048}
    assert fuzz.parse_status("INFO: Seed: 1234") is None


FAKE_FUZZER = textwrap.dedent("""\
    import sys, time
    print("INFO: Seed: 1", file=sys.stderr, flush=True)
    print("#2\\tINITED cov: 10 ft: 10 corp: 3/30b exec/s: 0 rss: 30Mb", file=sys.stderr,
          flush=True)
    time.sleep(0.6)
    print("#1024\\tpulse  cov: 12 ft: 14 corp: 5/50b exec/s: 1000 rss: 30Mb", file=sys.stderr,
          flush=True)
    time.sleep(1.0)
    print("stat::number_of_executed_units: 2000", file=sys.stderr, flush=True)
    """)


def test_fuzz_reports_progress_while_libfuzzer_is_quiet(tmp_path, capsys):
    script = tmp_path / "fake_fuzzer.py"
    script.write_text(FAKE_FUZZER)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a").write_text("x")
    progress = fuzz.Progress("fake", 2, corpus)
    code, output = fuzz.run_target(
        [sys.executable, str(script)],
        tmp_path,
        progress,
        tmp_path / "fuzz.log",
        timeout=30,
        every=0.25,
    )
    assert code == 0 and "stat::number_of_executed_units: 2000" in output
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("fuzz fake")]
    assert len(lines) >= 4, lines
    assert re.search(
        r"~[\d,]+ executions \(1,000/s\), corpus 5 inputs \(1 new files\), "
        r"coverage 12 edges",
        lines[-1],
    ), lines[-1]
    assert (tmp_path / "fuzz.log").read_text() == output


# --- 6. the bench chart -----------------------------------------------------------------


def test_bench_chart_reads_on_its_own(tmp_path):
    pytest.importorskip("matplotlib")
    cells = []
    for t in ("tcp", "unix"):
        for w in ("4KiB", "8MiB", "mix"):
            for n in (1, 2):
                s = {"files_per_s": (100.0, 90.0, 110.0), "mb_per_s": (200.0, 190.0, 210.0)}
                cells.append(
                    {
                        "transport": t,
                        "workload": w,
                        "threads": n,
                        "files": 10,
                        "summary": {"raw clamd": s, "avir_clam.so": s},
                    }
                )
    meta = {
        "cpus": 2,
        "cpu_model": "Test CPU 3000",
        "clamd": "ClamAV 1.4.3",
        "reps": 3,
        "quick": False,
        "chunk": 65536,
    }
    fig = bench.chart_figure(cells, meta)
    legends = fig.legends
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == ["raw clamd", "avir_clam.so"]
    title = legends[0].get_title().get_text()
    assert "avir_clam.so" in title and "2 cores, Test CPU 3000" in title
    assert "ClamAV 1.4.3" in title
    caption = fig.get_supxlabel()
    assert "N: concurrent scans" in caption and "min..max over the 3 repetitions" in caption
    assert all(ax.get_title() and ax.get_ylabel() for ax in fig.axes)
    png = tmp_path / "b.png"
    bench._chart(cells, png, meta)
    assert png.stat().st_size > 10000


def test_machine_names_the_cpu():
    m = bench.machine()
    assert m["cpus"] == os.cpu_count() and m["cpu_model"]


SIGTERMED_JOB = textwrap.dedent("""\
    import os, signal, sys, threading, time
    from avkit import cli
    from avkit.commands import main_prereqs
    from avkit.workdir import Scratch

    def job(args):
        with Scratch("avkit-sigterm-") as s:
            print(s.path, flush=True)
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            time.sleep(30)

    main_prereqs.run = job
    cli.main(["prereqs", "build-i386"])
    """)


def test_sigterm_unwinds_a_job_and_removes_its_folder(tmp_root):
    r = subprocess.run(
        [sys.executable, "-c", SIGTERMED_JOB],
        capture_output=True,
        text=True,
        cwd=paths.ROOT,
        env=dict(os.environ, TMPDIR=str(tmp_root)),
        timeout=20,
    )
    assert r.returncode == 143, r.stderr
    folder = Path(r.stdout.strip())
    assert folder.parent == tmp_root and not folder.exists()


# --- the bench's ICAP cells ----------------------------------------------------------------


def test_bench_icap_cell_runs_every_icap_row_on_the_same_files_and_n(monkeypatch, tmp_path):
    """Each row of ICAP_ROWS scans the cell's files with its N, with the options its
    function gives from the servers; ratios are to avir_clam.so streaming to clamd."""
    calls = []
    rates = {"avir_clam.so": 100.0, "avir_icap.so": 25.0}

    def fake_plugin_bench(host, plugin, options, files, n):
        calls.append(
            (
                plugin.name,
                options.get("Server") or options.get("LocalSocket") or options.get("Port"),
                tuple(files),
                n,
            )
        )
        rate = rates[plugin.name] * (2 if options.get("FdPass") == "on" else 1)
        return {
            "files_per_s": rate,
            "mb_per_s": rate / 256,
            "cpu_ms_per_file": 0.1,
            "peak_rss_kb": 2000,
            "open_fds": 4,
        }

    class Srv:
        class clamd:
            @staticmethod
            def plugin_options(transport="tcp"):
                return {"Port": "3310"} if transport == "tcp" else {"LocalSocket": "/s"}

        class icap:
            @staticmethod
            def plugin_options():
                return {"Server": "127.0.0.1", "Port": "1344", "Service": "avscan"}

    monkeypatch.setattr(bench, "plugin_bench", fake_plugin_bench)
    files = [tmp_path / "a.bin", tmp_path / "b.bin"]
    for f in files:
        f.write_bytes(b"x" * 4096)
    host = tmp_path / "avhost"
    cell = bench.measure_cell(None, bench.ICAP, "4KiB", files, 2, [], None, host, {}, 2, Srv)
    assert cell["base"] == bench.ICAP_BASE and list(cell["summary"]) == list(bench.ICAP_ROWS)
    assert len(calls) == 2 * len(bench.ICAP_ROWS)  # every row, every repetition
    assert {(c[2], c[3]) for c in calls} == {(tuple(files), 2)}
    assert ("avir_icap.so", "127.0.0.1", tuple(files), 2) in calls
    ratios = {name: s["ratio"] for name, s in cell["summary"].items()}
    assert ratios == {bench.ICAP_BASE: 1.0, "avir_clam.so FILDES": 2.0, "avir_icap.so": 0.25}
    text = bench.icap_text([cell])
    assert "to avir_clam.so INSTREAM" in text and "0.250" in text


def test_bench_chart_gives_the_icap_cells_their_own_panels():
    pytest.importorskip("matplotlib")
    s = {"files_per_s": (100.0, 90.0, 110.0), "mb_per_s": (200.0, 190.0, 210.0)}
    cells = [
        {
            "transport": t,
            "workload": "4KiB",
            "threads": 1,
            "files": 10,
            "summary": (
                {"raw INSTREAM": s, "avir_clam.so INSTREAM": s}
                if t == "tcp"
                else {name: s for name in bench.ICAP_ROWS}
            ),
        }
        for t in ("tcp", bench.ICAP)
    ]
    fig = bench.chart_figure(cells, {"cpus": 2, "cpu_model": "X", "reps": 1, "quick": True})
    assert any("ICAP (c-icap" in ax.get_title() for ax in fig.axes)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "avir_icap.so" in names and names.count("avir_clam.so INSTREAM") == 1
    assert "avir_icap.so through c-icap" in fig.legends[0].get_title().get_text()
