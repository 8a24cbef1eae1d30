"""avhost's contract checks, against deliberately broken plugins built here.

Each plugin of tests/broken_plugins/broken.c breaks one rule; avhost must name
the breach precisely in "violations", exit 1, and survive (a summary record).
"""

import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from avkit import facts
from avkit.check import avhost as client
from avkit.facts import EICAR
from conftest import TESTED_ARCHS


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "eicar.com").write_bytes(EICAR)
    (d / "clean.txt").write_bytes(b"nothing to see\n" * 100)
    (d / "empty.file").write_bytes(b"")
    (d / "error.txt").write_bytes(b"makes BROKEN_ERROR return AVCHK_ERROR")
    return d


def run(avhost, mode, plugin, *args, timeout=60):
    r = client.run(avhost, mode, plugin, *args, timeout=timeout)
    return r.returncode, r.records


def violations(records, event=None):
    return [v for r in records if event in (None, r["event"]) for v in r.get("violations", [])]


def summary(records):
    s = [r for r in records if r["event"] == "summary"]
    assert len(s) == 1, "avhost must end with one summary record (it must survive)"
    return s[0]


@pytest.fixture(
    params=[(toolchain, arch) for arch in TESTED_ARCHS for toolchain in ("zig", "gcc")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def avhost_of(request, artifact):
    """(avhost, its architecture): every contract check runs on both architectures."""
    toolchain, arch = request.param
    return artifact("avhost", toolchain=toolchain, arch=arch), arch


@pytest.fixture
def avhost(avhost_of):
    return avhost_of[0]


@pytest.fixture
def broken(broken_of_arch, avhost_of):
    """The broken plugins of the avhost's own architecture."""
    return lambda variant: broken_of_arch(variant, arch=avhost_of[1])


def kind(arch):
    a = facts.architecture(arch)
    return f"{a['elf_class']}-bit {arch} (ELFCLASS{a['elf_class']}, {a['elf_machine']})"


@pytest.mark.parametrize("host_arch,plugin_arch", [("i386", "x86_64"), ("x86_64", "i386")])
def test_an_avhost_refuses_a_plugin_of_the_other_class_in_one_line(
    artifact, broken_of_arch, host_arch, plugin_arch
):
    """As an avserver of one class cannot load the other: said before dlopen, naming both
    kinds and what to do (dlopen alone says "wrong ELF class: ELFCLASS64")."""
    plugin = broken_of_arch("none", plugin_arch)
    code, recs = run(artifact("avhost", arch=host_arch), "info", plugin)
    assert code == 3
    (load,) = [r for r in recs if r["event"] == "load"]
    assert load["error"] == (
        f"{plugin} is a {kind(plugin_arch)} plugin, but this avhost is {host_arch} and, like an "
        f"{host_arch} avserver, loads only {kind(host_arch)} plugins: install the {host_arch} "
        f"build of the plugin, or test this one with the {plugin_arch} avhost "
        f"(avkit build --arch {plugin_arch})"
    )


def scan_files(files, *names):
    return [files / n for n in names]


def test_correct_plugin_has_no_violation(avhost, broken, files):
    code, recs = run(
        avhost, "scan", broken("none"), *scan_files(files, "eicar.com", "clean.txt"), "--threads", 2
    )
    assert code == 0 and violations(recs) == []
    assert [r["verdict"] for r in recs if r["event"] == "scan"].count("VIRUS_FOUND") == 1


def test_write_past_vi_size(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("overflow"), files / "clean.txt", "--vi-size", 100)
    assert code == 1
    assert (
        "wrote past vi_size=100 into vir_info: 8 of the 64 guard bytes after the buffer "
        "changed, the first at offset 100"
    ) in violations(recs, "scan")
    assert "vir_info has no NUL within vi_size=100" in violations(recs, "scan")
    assert summary(recs)["violation_count"] == 2


def test_return_code_7(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("code7"), files / "eicar.com")
    assert code == 1
    assert violations(recs, "scan") == [
        f"plugin_thread_test_file returned 7 for {files / 'eicar.com'} (valid: 0..5)"
    ]
    assert summary(recs)["INVALID"] == 1


def test_crash_on_third_file_restarts(avhost, broken, files):
    names = ["eicar.com", "clean.txt", "empty.file", "eicar.com", "clean.txt"]
    code, recs = run(avhost, "scan", broken("crash3"), *scan_files(files, *names))
    assert code == 1
    scans = [r for r in recs if r["event"] == "scan"]
    assert [r["verdict"] for r in scans] == ["VIRUS_FOUND", "OK", "CRASHED", "VIRUS_FOUND", "OK"]
    assert violations(recs, "scan") == [
        f"plugin crashed with signal 11 (SIGSEGV) while scanning {files / 'empty.file'}"
    ]
    restarts = [r for r in recs if r["event"] == "restart"]
    assert len(restarts) == 1 and "SIGSEGV" in restarts[0]["reason"]
    assert restarts[0]["pid"] != restarts[0]["old_pid"]
    assert summary(recs)["restarts"] == 1


def test_avchk_error_restarts_in_fresh_process(avhost, broken, files):
    code, recs = run(
        avhost, "scan", broken("error"), *scan_files(files, "eicar.com", "error.txt", "eicar.com")
    )
    assert code == 0  # AVCHK_ERROR is allowed; the restart is the product's answer to it
    scans = [r for r in recs if r["event"] == "scan"]
    assert [r["verdict"] for r in scans] == ["VIRUS_FOUND", "ERROR", "VIRUS_FOUND"]
    restart = [r for r in recs if r["event"] == "restart"]
    assert len(restart) == 1
    assert restart[0]["reason"] == f"plugin returned AVCHK_ERROR for {files / 'error.txt'}"
    loads = [r["pid"] for r in recs if r["event"] == "load"]
    assert len(set(loads)) == 2, "the plugin must be loaded again in a new process"


def test_non_ascii_virus_name(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("nonascii"), files / "eicar.com")
    assert code == 1
    assert violations(recs, "scan") == ["vir_info has a non-ASCII byte 0xC3 at offset 6"]
    scan = next(r for r in recs if r["event"] == "scan")
    assert scan["vir_info"].encode("latin-1") == b"Eicar-\xc3\x9cnicode"


def test_extra_exports(avhost, broken):
    code, recs = run(avhost, "info", broken("exports"))
    assert code == 1
    (v,) = violations(recs, "load")
    assert v.startswith("exports 5 symbol(s) besides get_plugin_extended_iface: ")
    for name in ("get_info", "get_error", "set_config", "get_config", "free_config"):
        assert name in v


def test_fd_leak_over_cycles(avhost, broken):
    code, recs = run(avhost, "info", broken("fdleak"), "--cycles", 3)
    assert code == 1
    leaks = violations(recs, "close")
    assert len(leaks) == 3  # one more descriptor after each plugin_init/plugin_close cycle
    assert "left open after plugin_close (cycle 1)" in leaks[0] and "-> /dev/null" in leaks[0]


def test_wrong_info(avhost, broken):
    code, recs = run(avhost, "info", broken("info"))
    assert code == 1
    assert violations(recs, "load") == [
        'get_plugin_info: name "avir_somethingelse" differs from the file name "avir_info"',
        "get_plugin_info: reserved is not zeroed (byte 0 is 0x78)",
    ]


def test_bad_log_messages(avhost, broken):
    code, recs = run(avhost, "info", broken("log"), "--cycles", 1)
    assert code == 1
    logs = [r for r in recs if r["event"] == "log"]
    assert logs[0]["kind"] == "WRN" and logs[0]["violations"] == ["log message ends with a newline"]
    assert logs[1]["kind"] == "debug"
    assert logs[1]["violations"] == ["log message has a non-ASCII byte 0xC3 at offset 3"]


def test_plugin_close_hangs(avhost, broken):
    code, recs = run(avhost, "info", broken("hangclose"), "--close-timeout", 1, timeout=30)
    assert code == 1
    assert violations(recs, "close") == ["plugin_close did not return within 1 s (--close-timeout)"]


def test_same_context_for_two_workers(avhost, broken, files):
    code, recs = run(
        avhost,
        "scan",
        broken("samectx"),
        *scan_files(files, "eicar.com", "clean.txt", "eicar.com", "clean.txt"),
        "--threads",
        2,
    )
    assert code == 1
    inits = [r for r in recs if r["event"] == "thread_init"]
    assert len(inits) == 2, "two concurrent requests must start a second worker"
    assert any("which worker 1 already owns" in v for v in violations(recs, "thread_init"))
    assert any("is in use by workers" in v for v in violations(recs, "scan"))


def test_unloadable_file(avhost, tmp_path):
    bogus = tmp_path / "avir_bogus.so"
    bogus.write_bytes(b"not an ELF file")
    code, recs = run(avhost, "info", bogus)
    assert code == 3
    load = next(r for r in recs if r["event"] == "load")
    assert load["error"]


def test_pool_reuses_free_worker_and_closes_idle_ones(avhost, broken, files):
    with client.Serve(avhost, broken("none"), "--idle-timeout", "0.5", "--no-logs") as serve:
        for _ in range(3):  # one request at a time: the free worker is reused
            assert serve.scan(files / "eicar.com")["verdict"] == "VIRUS_FOUND"
        serve.send("STATS")
        busy = serve.next_record("stats")
        time.sleep(1.5)
        serve.send("STATS")
        idle = serve.next_record("stats")
    assert serve.returncode == 0
    assert busy["started"] == 1 and busy["workers"] == 1
    assert idle["workers"] == 0 and idle["closed_idle"] == 1
    assert [r["reason"] for r in serve.events("thread_close")] == ["idle"]


# --- unloading: what the products do after plugin_close ---


def test_destructor_left_on_the_exit_list_crashes_exit(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("unfinalized"), files / "eicar.com")
    assert code == 1
    (crash,) = [r for r in recs if r["event"] == "crash"]
    assert crash["phase"] == "exit"
    assert crash["violations"] == [
        "the plugin process crashed with signal 11 (SIGSEGV) in exit(), after plugin_close and "
        "dlclose: a handler the plugin left registered (a static destructor, an atexit function, "
        "a thread) ran after its code was unloaded"
    ]
    assert [r["verdict"] for r in recs if r["event"] == "scan"] == ["VIRUS_FOUND"]
    assert summary(recs)["violation_count"] == 1


def test_thread_left_running_after_plugin_close(avhost, broken):
    """Caught either way it can go: the thread is still listed after dlclose, or it was
    still in the plugin's code when dlclose unmapped it and the process crashed there."""
    code, recs = run(avhost, "info", broken("thread"), "--cycles", 1)
    assert code == 1
    unloads = [r for r in recs if r["event"] == "unload"]
    if unloads:
        (unload,) = unloads
        assert unload["threads_after_unload"] == unload["threads_before_load"] + 1
        (v,) = unload["violations"]
        assert v.startswith(
            "1 thread(s) still running after plugin_close and dlclose (round 1): thread "
        )
        assert v.endswith("plugin_close must stop and join every thread the plugin started")
    else:
        (crash,) = [r for r in recs if r["event"] == "crash"]
        assert crash["phase"] == "dlclose", crash
        assert crash["violations"] == ["plugin crashed with signal 11 (SIGSEGV) during dlclose"]


def test_descriptor_leaked_on_every_load(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("loadfd"), files / "clean.txt", "--reloads", 3)
    assert code == 1
    unloads = [r for r in recs if r["event"] == "unload"]
    assert [u["round"] for u in unloads] == [1, 2, 3]
    grown = [u["fds_after_unload"] - u["fds_before_load"] for u in unloads]
    assert grown == [1, 1, 1]
    for n, u in enumerate(unloads, 1):
        (v,) = u["violations"]
        assert v.startswith(f"1 descriptor(s) left open after dlclose (round {n}): ")
        assert v.endswith("-> /dev/null")
    assert len({r["pid"] for r in recs if r["event"] == "load"}) == 1


def test_descriptor_without_close_on_exec_reaches_executed_programs(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("nocloexec"), files / "clean.txt")
    assert code == 1
    (v,) = violations(recs, "scan")
    assert v.startswith("descriptors inherited by a program the host executes (fd target: ")
    assert "/dev/null" in v and "without close-on-exec" in v
    code, recs = run(avhost, "scan", broken("nocloexec"), files / "clean.txt", "--no-exec-check")
    assert code == 0


def test_crash_in_dlclose_names_the_phase(avhost, broken):
    code, recs = run(avhost, "info", broken("dtorcrash"))
    assert code == 1
    (crash,) = [r for r in recs if r["event"] == "crash"]
    assert crash["phase"] == "dlclose"
    assert crash["violations"] == ["plugin crashed with signal 11 (SIGSEGV) during dlclose"]


def test_hang_in_dlclose_names_the_phase(avhost, broken):
    code, recs = run(avhost, "info", broken("dtorhang"), "--close-timeout", 1, timeout=30)
    assert code == 1
    assert violations(recs, "unload") == ["dlclose did not return within 1 s (--close-timeout)"]


def test_hang_in_exit_is_killed_and_reported(avhost, broken):
    code, recs = run(avhost, "info", broken("exithang"), "--close-timeout", 1, timeout=30)
    assert code == 1
    (crash,) = [r for r in recs if r["event"] == "crash"]
    assert crash["phase"] == "exit"
    assert crash["violations"] == [
        "the plugin process did not finish exit() within 1 s after plugin_close and dlclose "
        "(killed): an exit handler or destructor of the plugin hangs"
    ]
    assert summary(recs)["exit"] == 1


def test_correct_plugin_survives_reloads(avhost, broken, files):
    code, recs = run(
        avhost,
        "scan",
        broken("none"),
        files / "eicar.com",
        files / "clean.txt",
        "--reloads",
        20,
        "--threads",
        2,
    )
    assert code == 0 and violations(recs) == []
    assert len([r for r in recs if r["event"] == "unload"]) == 20
    (memory,) = [r for r in recs if r["event"] == "reloads"]
    assert memory["rounds"] == 20


def serve(avhost, plugin, stdin: bytes, *args, timeout=60):
    r = client.run(avhost, "serve", plugin, "--no-logs", *args, input=stdin, timeout=timeout)
    return r.returncode, r.records


def test_restart_request_unloads_and_exits_like_the_product(avhost, broken, files):
    """RESTART closes the plugin, dlcloses it and leaves through exit(): a destructor left
    behind crashes there, and that is reported before the fresh process starts."""
    code, recs = serve(
        avhost,
        broken("unfinalized"),
        f"SCAN {files / 'eicar.com'}\nRESTART\nSCAN {files / 'eicar.com'}\n".encode(),
    )
    assert code == 1
    kinds = [r["event"] for r in recs]
    assert kinds.index("crash") < kinds.index("restart")
    crashes = [r for r in recs if r["event"] == "crash"]
    assert [c["phase"] for c in crashes] == ["exit", "exit"]  # at RESTART and at the end
    assert [r["verdict"] for r in recs if r["event"] == "scan"] == ["VIRUS_FOUND"] * 2
    code, recs = serve(
        avhost,
        broken("none"),
        f"SCAN {files / 'eicar.com'}\nRESTART\nSCAN {files / 'eicar.com'}\n".encode(),
    )
    assert code == 0 and violations(recs) == []
    assert len([r for r in recs if r["event"] == "unload"]) == 2


def test_overlong_request_is_refused_and_its_tail_is_not_a_request(avhost, broken, files):
    line = b"x" * 8191 + str(files / "eicar.com").encode()
    code, recs = serve(avhost, broken("none"), line + b"\n" + b"PING\n")
    errors = [r for r in recs if r["event"] == "error"]
    assert len(errors) == 1 and errors[0]["limit"] == 8192
    assert errors[0]["message"] == "request line longer than 8192 bytes: refused, nothing scanned"
    assert [r for r in recs if r["event"] == "scan"] == [], "the tail must not be scanned"
    assert [r["event"] for r in recs].count("pong") == 1, "the next request is served"
    assert code == 0


def test_long_paths_are_answered_never_lost(avhost, broken, tmp_path):
    """A path just under the limit reaches the plugin (which answers for it); a longer
    request is refused with a record. Either way every request gets an answer and a summary."""
    just_under = "/" + "a" * 8186  # "SCAN " + 8187 bytes = 8192, the limit
    over = "/" + "b" * 8200
    code, recs = serve(
        avhost, broken("none"), f"SCAN {just_under}\nSCAN {over}\n".encode(), timeout=30
    )
    (scan,) = [r for r in recs if r["event"] == "scan"]
    assert scan["verdict"] == "FAILED" and scan["file"] == just_under
    (error,) = [r for r in recs if r["event"] == "error"]
    assert error["limit"] == 8192
    assert summary(recs)["files"] == 1
    # From the command line, a path over the limit is answered, not cut or dropped.
    code, recs = run(avhost, "scan", broken("none"), over, "/" + "c" * 8186)
    scans = {r["file"][:2]: r for r in recs if r["event"] == "scan"}
    assert scans["/b"]["verdict"] == "NOT_SCANNED"
    assert scans["/b"]["vir_info"] == "avhost: path longer than 8192 bytes, not scanned"
    assert scans["/c"]["verdict"] == "FAILED"
    assert summary(recs)["files"] == 2


PARTIAL_REQUEST = (
    "request without its newline when the client ended: dropped, nothing run "
    "(end every request with a newline)"
)


def test_last_request_without_newline_is_dropped_not_run(avhost, broken, files):
    """The input ended inside a line: the writer may have died mid-path, so what came
    is not the request that was meant (SCAN /a/b of /a/b.exe)."""
    code, recs = serve(avhost, broken("none"), f"SCAN {files / 'eicar.com'}".encode())
    assert [r for r in recs if r["event"] == "scan"] == []
    assert [r["message"] for r in recs if r["event"] == "error"] == [PARTIAL_REQUEST]
    assert summary(recs)["files"] == 0
    assert code == 0


def test_virus_found_without_a_name(avhost, broken, files):
    code, recs = run(avhost, "scan", broken("noname"), files / "eicar.com")
    assert code == 1
    assert violations(recs, "scan") == [
        f"returned VIRUS_FOUND for {files / 'eicar.com'} without a virus name in vir_info"
    ]


def test_a_scan_that_never_returns_is_hung_and_the_plugin_restarted(
    avhost, broken, files, tmp_path
):
    hang = tmp_path / "hang.txt"
    hang.write_bytes(b"never answered")
    start = time.monotonic()
    code, recs = run(
        avhost,
        "scan",
        broken("hangscan"),
        files / "eicar.com",
        hang,
        files / "clean.txt",
        "--scan-timeout",
        2,
        timeout=60,
    )
    took = time.monotonic() - start
    assert code == 1
    assert [r["verdict"] for r in recs if r["event"] == "scan"] == ["VIRUS_FOUND", "HUNG", "OK"]
    assert violations(recs, "scan") == [
        f"plugin_thread_test_file did not return within 2 s (--scan-timeout) for {hang}; "
        "the plugin process was killed, as the product would"
    ]
    (restart,) = [r for r in recs if r["event"] == "restart"]
    assert restart["reason"] == f"plugin_thread_test_file hung on {hang}"
    assert summary(recs)["HUNG"] == 1
    assert took < 30, "reported promptly, not after a long silence"


def start_socket_serve(avhost, plugin, sock, *args, **popen):
    """`avhost serve --socket sock`, once it says it is serving."""
    p = subprocess.Popen(
        [str(avhost), "serve", str(plugin), "--socket", str(sock), "--no-logs", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        **popen,
    )
    line = p.stdout.readline()
    first = client.parse_records(line.decode(errors="replace"))
    assert first and first[0]["event"] == "serving", p.stderr.read()
    return p


def talk(sock, data: bytes, half_close=False, timeout=30) -> list:
    """Sends data on one connection (then closes its sending side when asked) and returns
    the records read until avhost closes it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(str(sock))
        c.sendall(data)
        if half_close:
            c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
            if not half_close and got.endswith(b"\n"):
                break
    return client.parse_records(got.decode("latin-1"))


def finish(p, timeout=60):
    """The process's end: its exit status and records (killed past timeout)."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, client.parse_records(out.decode("latin-1")), err.decode("latin-1")


def test_serve_socket_is_private_and_never_replaces_a_file(avhost, broken, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("an administrator's file")
    r = client.run(avhost, "serve", broken("none"), "--socket", precious, timeout=30)
    assert r.returncode == 2 and "exists and is not a socket" in r.stderr
    assert precious.read_text() == "an administrator's file"

    sock = tmp_path / "avhost.sock"

    def start():
        return start_socket_serve(
            avhost, broken("none"), sock, preexec_fn=lambda: os.umask(0)
        )  # even so: private

    p = start()
    try:
        assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
        second = client.run(avhost, "serve", broken("none"), "--socket", sock, timeout=30)
        assert second.returncode == 2 and "something is serving on it already" in second.stderr
    finally:
        p.kill()  # leaves a stale socket behind
        p.wait(timeout=30)
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    p = start()  # a stale socket is replaced
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock))
        c.sendall(b"SHUTDOWN\n")
    assert p.wait(timeout=30) == 0
    assert not os.path.lexists(sock), "its own socket is removed at the end"


def test_pretty_output_shows_utf8_names_as_themselves(avhost, broken, tmp_path):
    name = tmp_path / "r\u00e9sum\u00e9-\u6587\u4ef6.com"
    name.write_bytes(EICAR)
    r = subprocess.run(
        [str(avhost), "scan", str(broken("none")), str(name), "--pretty", "--no-logs"],
        capture_output=True,
        timeout=60,
    )
    (line,) = [x for x in r.stdout.split(b"\n") if x.startswith(b"scan")]
    assert f'file="{name}"'.encode() in line
    r = client.run(avhost, "scan", broken("none"), name, "--no-logs")  # JSON keeps \u00XX
    assert client.raw_text(r.events("scan")[0]["file"]) == str(name)


def test_a_path_with_a_newline_is_refused_not_cut(avhost, broken, tmp_path):
    real = tmp_path / "two\nlines.com"
    real.write_bytes(EICAR)
    (tmp_path / "two").write_bytes(b"the truncated path: must not be scanned instead")
    code, recs = run(avhost, "scan", broken("none"), real)
    (scan,) = [r for r in recs if r["event"] == "scan"]
    assert scan["verdict"] == "NOT_SCANNED"
    assert scan["vir_info"] == "avhost: path contains a newline, not scanned"
    assert scan["file"] == str(real)


def test_a_partial_request_from_a_client_that_disconnects_is_dropped(
    avhost, broken, files, tmp_path
):
    sock = tmp_path / "avhost.sock"
    p = start_socket_serve(avhost, broken("none"), sock)
    try:
        answers = talk(sock, f"SCAN {files / 'eicar.com'}".encode(), half_close=True)
        talk(sock, b"SHUTDOWN\n")
    finally:
        code, recs, err = finish(p)
    assert summary(recs)["files"] == 0, "the cut request must not be scanned"
    assert [(a["event"], a.get("message")) for a in answers] == [("error", PARTIAL_REQUEST)]
    assert code == 0, err


# An attacker who can write to the socket's folder swaps a symlink in right after bind().
SWAP_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void swap_in(const char *what)
{
    const char *path = getenv("SWAP_PATH"), *target = getenv("SWAP_TARGET");
    const char *when = getenv("SWAP_AFTER");
    if (path && target && when && (when[0] == what[0])) {
        unlink(path);
        if (getenv("SWAP_RENAME"))
            rename(target, path); /* the file itself put there */
        else
            symlink(target, path);
    }
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    int (*real)(int, const struct sockaddr *, socklen_t) =
        (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    int r = real(fd, addr, len);
    if (r == 0 && addr->sa_family == AF_UNIX)
        swap_in("bind");
    return r;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int (*real)(int, const struct sockaddr *, socklen_t) =
        (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    int r = real(fd, addr, len), saved = errno;
    if (r != 0 && addr->sa_family == AF_UNIX)
        swap_in("connect"); /* the probe found the socket stale */
    errno = saved;
    return r;
}
"""


@pytest.fixture(scope="session")
def swap_shims(tmp_path_factory):
    """swap_shims(arch): the LD_PRELOAD shim built for that architecture."""
    d = tmp_path_factory.mktemp("shim")
    (d / "swap.c").write_text(SWAP_SHIM)
    built = {}

    def build(arch):
        if arch not in built:
            so = d / f"swap-{arch}.so"
            subprocess.run(
                [
                    "gcc",
                    facts.architecture(arch)["gcc_flag"],
                    "-shared",
                    "-fPIC",
                    "-Wall",
                    "-Werror",
                    "-o",
                    str(so),
                    str(d / "swap.c"),
                    "-ldl",
                ],
                check=True,
            )
            built[arch] = so
        return built[arch]

    return build


@pytest.fixture
def swap_shim(swap_shims, avhost_of):
    """The shim of the avhost's own architecture (ld.so ignores one of the other class)."""
    return swap_shims(avhost_of[1])


def test_socket_mode_never_lands_on_a_symlink_swapped_in_after_bind(
    avhost, broken, swap_shim, tmp_path
):
    victim = tmp_path / "victim.conf"
    victim.write_text("an administrator's file")
    victim.chmod(0o640)
    sock = tmp_path / "avhost.sock"
    env = dict(
        os.environ,
        LD_PRELOAD=str(swap_shim),
        SWAP_PATH=str(sock),
        SWAP_TARGET=str(victim),
        SWAP_AFTER="bind",
    )
    p = subprocess.Popen(
        [
            str(avhost),
            "serve",
            str(broken("none")),
            "--socket",
            str(sock),
            "--socket-mode",
            "666",
            "--no-logs",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    code, recs, err = finish(p, timeout=30)
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o640, "the symlink's target was chmodded"
    assert os.readlink(sock) == str(victim), "what was put at PATH is never replaced"
    assert code == 2
    assert f"cannot listen on {sock}: something was put there while avhost made its socket" in err


def test_a_file_swapped_in_after_the_staleness_probe_is_not_removed(
    avhost, broken, swap_shim, tmp_path
):
    sock = tmp_path / "avhost.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
        gone.bind(str(sock))  # a stale socket: nobody answers on it once closed
    precious = tmp_path / "precious.txt"
    precious.write_text("an administrator's file")
    env = dict(
        os.environ,
        LD_PRELOAD=str(swap_shim),
        SWAP_PATH=str(sock),
        SWAP_TARGET=str(precious),
        SWAP_AFTER="connect",
        SWAP_RENAME="1",
    )
    p = subprocess.Popen(
        [str(avhost), "serve", str(broken("none")), "--socket", str(sock), "--no-logs"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    code, recs, err = finish(p, timeout=30)
    assert os.path.isfile(sock) and sock.read_text() == "an administrator's file", err
    assert code == 2
    assert f"cannot listen on {sock}: it changed while avhost checked it" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_serve_and_removes_its_own_socket_only(avhost, broken, files, tmp_path, sig):
    sock = tmp_path / "avhost.sock"
    p = start_socket_serve(avhost, broken("none"), sock)
    assert talk(sock, f"SCAN {files / 'eicar.com'}\n".encode())[0]["verdict"] == "VIRUS_FOUND"
    p.send_signal(sig)
    code, recs, err = finish(p)
    assert not os.path.lexists(sock), "its socket is removed on " + sig.name
    assert [r.get("signal") for r in recs if r["event"] == "shutting_down"] == [sig.name]
    assert summary(recs)["files"] == 1 and code == 0, err

    # Someone else's socket at PATH by then is not ours to remove.
    p = start_socket_serve(avhost, broken("none"), sock)
    os.rename(sock, tmp_path / "moved.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
        stranger.bind(str(sock))
        ino = os.lstat(sock).st_ino
        p.send_signal(sig)
        code, recs, err = finish(p)
        assert os.lstat(sock).st_ino == ino, "a socket avhost did not make was removed"
    assert code == 0, err


# ---- for the author's kit (issue 23): realname, crash frames, one timeout per hang, codes


def test_realname_null_and_empty_reach_the_plugin(avhost, broken, files):
    """docs/ABI.md allows realname NULL or "": --realname hands the plugin either, and a
    plugin that reads a NULL realname crashes under avhost as it would in the product."""
    plugin = broken("realname")
    code, recs = run(avhost, "scan", plugin, files / "clean.txt")
    assert code == 0 and [r["verdict"] for r in recs if r["event"] == "scan"] == ["OK"]
    code, recs = run(avhost, "scan", plugin, files / "clean.txt", "--realname", "empty")
    assert code == 0 and [r["verdict"] for r in recs if r["event"] == "scan"] == ["OK"]
    code, recs = run(avhost, "scan", plugin, files / "clean.txt", "--realname", "null")
    assert code == 1
    assert [r["verdict"] for r in recs if r["event"] == "scan"] == ["CRASHED"]
    bad = client.run(avhost, "scan", plugin, files / "clean.txt", "--realname", "nothing")
    assert bad.returncode == 2 and "--realname (base, empty or null)" in bad.stderr


def build_id_of(path) -> str:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if section.name == ".note.gnu.build-id":
                for note in section.iter_notes():
                    return note["n_desc"]
    return ""


def test_a_crash_names_the_frames_of_the_plugin(avhost, broken, files):
    """The CRASHED record carries the dying process's stack: the innermost frame is the
    plugin's, as its absolute path, an offset from its load base and its build id; the
    process still dies of the signal (the violation names SIGSEGV)."""
    plugin = broken("crash3")
    names = ["eicar.com", "clean.txt", "empty.file", "clean.txt"]
    code, recs = run(avhost, "scan", plugin, *scan_files(files, *names))
    assert code == 1
    crashed = [r for r in recs if r["event"] == "scan" and r["verdict"] == "CRASHED"]
    assert len(crashed) == 1 and "signal 11 (SIGSEGV)" in crashed[0]["violations"][0]
    frames = crashed[0]["frames"]
    assert 1 <= len(frames) <= 32
    top = frames[0]
    assert top["object"] == str(plugin.resolve())
    assert top["offset"].startswith("0x") and int(top["offset"], 16) > 0
    assert top["build_id"] == build_id_of(plugin) != ""
    assert all(os.path.isabs(f["object"]) for f in frames)
    assert all("frames" not in r for r in recs if r["event"] == "scan" and r is not crashed[0])
    pretty = client.run(avhost, "scan", plugin, *scan_files(files, *names), "--pretty")
    lines = pretty.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "CRASHED" in line)
    assert lines[at + 1].split()[:4] == ["#0", top["offset"], "in", str(plugin.resolve())]


def test_a_hang_costs_one_timeout_not_one_per_file(avhost, broken, files, tmp_path):
    """After the first HUNG, the next scans that hang wait only --rehang-timeout and say
    so (short_timeout); one that completes restores the full timeout. Progress comes on
    stderr every 5 s while a scan is waited on."""
    hangs = [tmp_path / f"hang{i}.txt" for i in range(4)]
    for h in hangs:
        h.write_bytes(b"never answered")
    start = time.monotonic()
    r = client.run(
        avhost,
        "scan",
        broken("hangscan"),
        hangs[0],
        hangs[1],
        hangs[2],
        files / "clean.txt",
        hangs[3],
        "--scan-timeout",
        11,
        "--rehang-timeout",
        1,
        timeout=120,
    )
    took = time.monotonic() - start
    assert r.returncode == 1
    scans = r.events("scan")
    assert [s["verdict"] for s in scans] == ["HUNG", "HUNG", "HUNG", "OK", "HUNG"]
    assert [s.get("short_timeout", False) for s in scans] == [False, True, True, False, False]
    assert scans[1]["violations"] == [
        f"plugin_thread_test_file did not return within 1 s (--rehang-timeout: an earlier scan "
        f"hung and none completed since) for {hangs[1]}; the plugin process was killed, as the "
        "product would"
    ]
    # 11 + 1 + 1 + 11 s; a full timeout per hang would be 44 s.
    assert 23 <= took < 38, f"two full timeouts and two short ones, not four full: {took:.1f} s"
    waiting = [w for w in client.parse_records(r.stderr) if w.get("event") == "waiting"]
    assert {"path": str(hangs[0]), "seconds": 5, "timeout": 11.0}.items() <= waiting[0].items()
    assert [w["seconds"] for w in waiting if w["path"] == str(hangs[0])] == [5, 10]
    assert not [w for w in waiting if w["path"] in (str(hangs[1]), str(hangs[2]))]


def test_pretty_progress_while_a_scan_is_waited_on(avhost, broken, tmp_path):
    hang = tmp_path / "hang.txt"
    hang.write_bytes(b"never answered")
    r = client.run(
        avhost, "scan", broken("hangscan"), hang, "--scan-timeout", 6, "--pretty", timeout=60
    )
    assert f"still scanning {hang}: 5 s of 6 s" in r.stderr.splitlines()
    assert "HUNG" in r.stdout


def test_an_unknown_return_code_is_machine_readable(avhost, broken, files, tmp_path):
    """A plugin that returns -1 for a file it cannot open: the record says so in a field a
    tool can fail on, besides the violation's text."""
    missing = tmp_path / "gone.txt"
    code, recs = run(avhost, "scan", broken("unopened"), missing, files / "clean.txt")
    assert code == 1
    scans = {r["file"]: r for r in recs if r["event"] == "scan"}
    assert scans[str(missing)]["unknown_code"] == -1
    assert scans[str(missing)]["violations"] == [
        f"plugin_thread_test_file returned -1 for {missing} (valid: 0..5)"
    ]
    assert "unknown_code" not in scans[str(files / "clean.txt")]
    code, recs = run(avhost, "scan", broken("code7"), files / "eicar.com")
    assert [r["unknown_code"] for r in recs if r["event"] == "scan"] == [7]
