"""The QEMU smoke test (avkit.smoke): its host side alone, then whole runs in a booted VM.

The VM tests build their own small packages around the built plugins with dpkg-deb and
rpmbuild: good ones for both products, and deliberately broken ones (a plugin in the
wrong folder, a failing postinst) that must fail with the right check named. They need
root (the root filesystem build), qemu-system-i386, debootstrap and mkfs.ext4; the first
run builds the cached root filesystem (about 1.5 minutes), later runs reuse it.

The host side (root filesystem inputs, package choice, plan, guest configuration) is
checked for every release architecture; the VM runs with hand-made packages boot the
default (i386) guest only: `avkit smoke --arch x86_64` (in `./nox -s smoke` and
`./nox -s tests`) boots the x86_64 guest with the real packages, through the same code.
"""

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from avkit import facts, prereqs
from avkit.errors import UserError
from avkit.smoke import guest_files, mirror, plan, report, rootfs, vm
from avkit import smoke

CONNECT = plan.PRODUCTS["connect"]
CONTROL = plan.PRODUCTS["control"]
ARCHS = list(facts.architectures())


# --- the mirror comes from this machine's apt configuration ---------------------------


def test_mirror_from_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "off.sources").write_text(
        textwrap.dedent("""\
        Types: deb
        URIs: http://disabled.invalid/debian
        Suites: bookworm
        Components: main
        Enabled: no
        """)
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        textwrap.dedent("""\
        Types: deb-src
        URIs: http://src.invalid/debian
        Suites: bookworm
        Components: main

        Types: deb
        # a comment
        URIs: http://mirror.invalid/debian/
        Suites: bookworm bookworm-updates
        Components: main contrib
        Signed-By: /nonexistent/keyring.gpg
        """)
    )
    (tmp_path / "sources.list.d" / "ignored.list.disabled").write_text(
        "deb http://ignored.invalid/debian bookworm main\n"
    )
    uri, keyring = mirror.find_mirror("bookworm", etc=tmp_path)
    assert uri == "http://mirror.invalid/debian"
    assert keyring is None  # the named keyring does not exist: debootstrap's default


def test_mirror_from_one_line_list(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb http://security.invalid/debian-security bookworm-security main\n"
        "deb [arch=amd64,i386 signed-by=/x.gpg] http://one.invalid/debian bookworm main\n"
    )
    assert mirror.find_mirror("bookworm", etc=tmp_path)[0] == "http://one.invalid/debian"


def test_no_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no Debian mirror for 'bookworm'"):
        mirror.find_mirror("bookworm", etc=tmp_path)


def test_cache_key_follows_inputs_and_hides_the_mirror():
    a, b = rootfs.cache_key("http://a.invalid/debian"), rootfs.cache_key("http://b.invalid/debian")
    assert a != b and len(a) == 16
    assert "a.invalid" not in json.dumps(rootfs.inputs("http://a.invalid/debian"))


@pytest.mark.parametrize(
    "arch, deb_arch, kernel",
    [("i386", "i386", "linux-image-686"), ("x86_64", "amd64", "linux-image-amd64")],
)
def test_rootfs_inputs_follow_the_architecture(arch, deb_arch, kernel):
    """debootstrap's arch and the kernel come from the architecture's facts; each
    architecture has its own cache folder."""
    uri = "http://mirror.invalid/debian"
    got = rootfs.inputs(uri, arch)
    assert got["arch"] == deb_arch and kernel in got["packages"]
    assert [p for p in got["packages"] if p.startswith("linux-image-")] == [kernel]
    folder = rootfs.cache_folder(uri, arch)
    assert folder.name == f"rootfs-{arch}-{rootfs.cache_key(uri, arch)}"
    others = {rootfs.cache_folder(uri, a) for a in ARCHS if a != arch}
    assert folder not in others and len(others) == len(ARCHS) - 1


def test_the_smoke_facts_of_each_architecture_are_validated(tmp_path):
    """A guest fact missing from cmake/architectures.json is named when the table loads,
    before a root filesystem build would fail on it minutes later."""
    table = json.loads(facts.ARCH_FILE.read_text())
    del table["architectures"]["x86_64"]["smoke"]["kernel_flavour"]
    broken = tmp_path / "architectures.json"
    broken.write_text(json.dumps(table))
    with pytest.raises(
        UserError,
        match="architecture 'x86_64': smoke must give exactly qemu, kernel_package, kernel_flavour",
    ):
        facts.architectures(broken)
    del table["architectures"]["i386"]["smoke"]
    broken.write_text(json.dumps(table))
    with pytest.raises(UserError, match="architecture 'i386' has no smoke of type dict"):
        facts.architectures(broken)


def test_the_default_architecture_keeps_its_cache_key():
    """i386's inputs are those of before the x86_64 guest: its cached image stays valid."""
    uri = "http://mirror.invalid/debian"
    assert rootfs.cache_key(uri) == rootfs.cache_key(uri, "i386")
    assert rootfs.inputs(uri)["packages"] == sorted(
        [
            "clamav-daemon",
            "clamdscan",
            "c-icap",
            "libc-icap-mod-virus-scan",
            "rpm",
            "iproute2",
            "linux-image-686",
            "initramfs-tools",
        ]
    )


def test_a_new_rootfs_leaves_the_other_architectures_cache_alone(tmp_path):
    mine, older, other, legacy = (
        tmp_path / n
        for n in (
            "rootfs-x86_64-0000000000000001",
            "rootfs-x86_64-0000000000000002",
            "rootfs-i386-0000000000000003",
            "rootfs-00000000000000ab",
        )
    )
    for d in (mine, older, other, legacy):
        d.mkdir()
    assert sorted(rootfs._stale(tmp_path, "x86_64", mine)) == [legacy, older]
    assert sorted(rootfs._stale(tmp_path, "i386", other)) == [legacy]


# --- prerequisites ----------------------------------------------------------------------


def test_missing_tools_name_their_debian_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(UserError) as err:
        prereqs.require_commands("qemu-system-i386", "debootstrap", "mkfs.ext4")
    for pkg in ("qemu-system-x86", "debootstrap", "e2fsprogs"):
        assert pkg in str(err.value)


@pytest.mark.parametrize("arch", ARCHS)
def test_rootfs_build_says_it_needs_root(monkeypatch, tmp_path, arch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UserError, match="needs root"):
        rootfs.ensure("http://mirror.invalid/debian", cache_dir=tmp_path, arch=arch)


def test_smoke_refuses_an_avhost_of_the_other_architecture(tmp_path):
    """This machine's own programs are x86_64: staged into the i386 guest, every scan
    would fail for a reason that is not the packages'."""
    native = Path(shutil.which("true"))
    assert facts.arch_of(__import__("avkit.elf").elf.header(native)) == "x86_64"
    with pytest.raises(UserError, match=f"{native} is an x86_64 program, the smoke VM is i386"):
        smoke.smoke(fake_rootfs(tmp_path), tmp_path / "pkgs", native, tmp_path / "out", arch="i386")


# --- plan and parser, on made-up packages and consoles ------------------------------


def fake_packages():
    return [
        plan.Package(
            Path("c.deb"),
            "deb",
            "kerio-connect-avir-clam",
            ["/opt", "/opt/kerio", f"{CONNECT}/avir_clam.so"],
        ),
        plan.Package(
            Path("s.rpm"), "rpm", "kerio-control-avir-sample", [f"{CONTROL}/avir_sample.so"]
        ),
        plan.Package(Path("x.deb"), "deb", "kerio-avir-nothing", ["/usr/share/doc/x"]),
    ]


def icap_package(fmt="deb"):
    return plan.Package(
        Path(f"i.{fmt}"), fmt, "kerio-connect-avir-icap", [f"{CONNECT}/avir_icap.so"]
    )


def scan_json(file, verdict, name=None, violations=()):
    return json.dumps(
        {
            "event": "scan",
            "id": 1,
            "file": file,
            "code": 0,
            "verdict": verdict,
            "vir_info": name,
            "violations": list(violations),
        }
    )


def passing_console(the_plan):
    """What a guest that gets everything right prints (plus kernel noise)."""
    lines = ["[    1.0] Linux version 6.1.0-686", "AVSMOKE guest/boot PASS 6.1.0 i686"]
    for c in the_plan.checks:
        if c.id == "guest/boot" or c.host_failure:
            continue
        if c.admin_rows is not None:
            lines += [f"AVSMOKE {c.id} OUT " + line for line in admin_table(c.admin_rows)]
            lines.append(f"AVSMOKE {c.id} SCAN rc=0")
        elif c.expect is None:
            lines.append(f"AVSMOKE {c.id} PASS fine")
        else:
            lines.append(f"AVSMOKE {c.id} OUT " + json.dumps({"event": "load", "violations": []}))
            if c.expect.log:
                lines.append(
                    f"AVSMOKE {c.id} OUT "
                    + json.dumps(
                        {"event": "log", "level": "debug", "message": f"clamd at x: {c.expect.log}"}
                    )
                )
            lines.append(
                f"AVSMOKE {c.id} OUT "
                + scan_json(
                    c.expect.file,
                    c.expect.verdict,
                    c.expect.name or ("Some.Name" if c.expect.verdict == "VIRUS_FOUND" else None),
                )
            )
            for n in range(1, c.expect.reloads + 1):
                lines.append(
                    f"AVSMOKE {c.id} OUT "
                    + json.dumps({"event": "unload", "round": n, "violations": []})
                )
            lines.append(f"AVSMOKE {c.id} SCAN rc=0")
    return "\r\n".join(lines + ["AVSMOKE-END", "[    9.0] reboot: Power down"]) + "\r\n"


@pytest.mark.parametrize("arch", ARCHS)
def test_plan_covers_products_transports_and_cases(arch):
    p = plan.make_plan(fake_packages(), arch)
    ids = [c.id for c in p.checks]
    assert ids[:4] == ["guest/boot", "guest/arch", "guest/clamd", "guest/clamd-eicar"]
    # the guest first proves it is of the architecture under test
    assert f"arch guest/arch {facts.architecture(arch)['deb']}" in p.text().splitlines()
    assert "deb/kerio-connect-avir-clam/path/connect/clam" in ids
    for transport in ("tcp", "unix"):
        for case in ("eicar", "clean", "encrypted", "missing"):
            assert f"deb/kerio-connect-avir-clam/scan/connect/clam/{transport}/{case}" in ids
    assert "rpm/kerio-control-avir-sample/scan/control/sample/eicar" in ids
    assert "rpm/kerio-control-avir-sample/scan/control/sample/encrypted" not in ids
    # debs first, then rpms; each package: install ... remove, clean
    assert ids.index("deb/kerio-connect-avir-clam/clean") < ids.index(
        "rpm/kerio-control-avir-sample/install"
    )
    contents = p.by_id()["deb/kerio-avir-nothing/contents"]
    assert contents.host_failure == "no avir_*.so in the package"
    steps = p.text().splitlines()
    assert f"present deb/kerio-connect-avir-clam/path/connect/clam {CONNECT}/avir_clam.so" in steps
    assert (
        f"scan deb/kerio-connect-avir-clam/scan/connect/clam/unix/eicar "
        f"{CONNECT}/avir_clam.so {plan.CORPUS_DIR}/eicar.com "
        f"LocalSocket={guest_files.CLAMD_SOCKET} StartupTimeout=10 FdPass=on"
    ) in steps
    # over the UNIX socket the file goes as a descriptor, and the plugin's log must say so
    by_id = p.by_id()
    for case in ("eicar", "clean", "encrypted"):
        assert (
            by_id[f"deb/kerio-connect-avir-clam/scan/connect/clam/unix/{case}"].expect.log
            == plan.FILDES_LOG
        )
        assert (
            by_id[f"deb/kerio-connect-avir-clam/scan/connect/clam/tcp/{case}"].expect.log
            == plan.INSTREAM_LOG
        )
    assert by_id["deb/kerio-connect-avir-clam/scan/connect/clam/unix/missing"].expect.log is None
    assert "install deb/kerio-connect-avir-clam/install deb /smoke/pkgs/c.deb" in steps
    assert "remove rpm/kerio-control-avir-sample/remove rpm kerio-control-avir-sample" in steps
    clam_eicar = p.by_id()["deb/kerio-connect-avir-clam/scan/connect/clam/tcp/eicar"].expect
    assert (clam_eicar.verdict, clam_eicar.name) == ("VIRUS_FOUND", "Kerio.Test.EICAR.UNOFFICIAL")
    # each installed plugin is also unloaded and loaded again, as a plugin switch does
    reload = p.by_id()["deb/kerio-connect-avir-clam/reload/connect/clam/tcp"].expect
    assert (reload.verdict, reload.reloads) == ("VIRUS_FOUND", plan.RELOADS)
    assert "rpm/kerio-control-avir-sample/reload/control/sample" in ids
    assert (
        f"reload deb/kerio-connect-avir-clam/reload/connect/clam/tcp {CONNECT}/avir_clam.so "
        f"{plan.CORPUS_DIR}/eicar.com {plan.RELOADS} Address="
    ) in " ".join(steps)


@pytest.mark.parametrize("arch", ARCHS)
def test_plan_starts_c_icap_only_for_a_plugin_that_needs_it(arch):
    """The services come from the plugins' table: c-icap (after clamd, which it asks) for
    avir_icap; a plan without avir_icap starts no c-icap."""
    assert "guest/cicap" not in [c.id for c in plan.make_plan(fake_packages(), arch).checks]
    p = plan.make_plan([icap_package("rpm")], arch)
    ids = [c.id for c in p.checks]
    assert ids[:6] == [
        "guest/boot",
        "guest/arch",
        "guest/clamd",
        "guest/clamd-eicar",
        "guest/cicap",
        "guest/cicap-eicar",
    ]
    steps = p.text().splitlines()
    port, service = str(guest_files.CICAP_PORT), guest_files.CICAP_SERVICE
    assert f"cicap guest/cicap {port} {service}" in steps
    assert f"cicap-eicar guest/cicap-eicar {port} {service} {plan.CORPUS_DIR}/eicar.com" in steps
    base = "rpm/kerio-connect-avir-icap"
    by_id = p.by_id()
    for case, verdict in (
        ("eicar", "VIRUS_FOUND"),
        ("clean", "OK"),
        ("encrypted", "IMPOSSIBLE"),
        ("missing", "FAILED"),
    ):
        exp = by_id[f"{base}/scan/connect/icap/icap/{case}"].expect
        assert exp.verdict == verdict
        assert exp.log == (None if verdict == "FAILED" else plan.ICAP_LOG)
    assert by_id[f"{base}/scan/connect/icap/icap/eicar"].expect.name == guest_files.REPORTED_NAME
    assert by_id[f"{base}/reload/connect/icap/icap"].expect.reloads == plan.RELOADS
    assert (
        f"scan {base}/scan/connect/icap/icap/eicar {CONNECT}/avir_icap.so "
        f"{plan.CORPUS_DIR}/eicar.com Server=127.0.0.1 Port={port} Service={service} "
        f"StartupTimeout=20"
    ) in steps
    assert f"remove {base}/remove rpm kerio-connect-avir-icap" in steps
    assert f"{base}/clean" in ids


@pytest.mark.parametrize(
    "arch, modules",
    [("i386", "/usr/lib/i386-linux-gnu/c_icap"), ("x86_64", "/usr/lib/x86_64-linux-gnu/c_icap")],
)
def test_guest_c_icap_conf_asks_the_guest_clamd(tmp_path, arch, modules):
    guest_files.write_cicap(tmp_path, arch)
    conf = (tmp_path / "c-icap.conf").read_text().splitlines()
    assert f"ModulesDir {modules}" in conf  # Debian's multiarch folder of the guest
    assert f"Port 127.0.0.1:{guest_files.CICAP_PORT}" in conf
    assert f"clamd_mod.ClamdSocket {guest_files.CLAMD_SOCKET}" in conf
    assert any(
        line.startswith(f"ServiceAlias {guest_files.CICAP_SERVICE} virus_scan?")
        and "sizelimit=off" in line
        for line in conf
    )


def admin_table(rows, over="IMPOSSIBLE Heuristics.Limits.Exceeded.MaxFileSize", result="ok"):
    """kerio-avir-check's lines for a plugin whose verdicts are all as expected."""
    out = [
        "/opt/kerio/x/avir_clam.so (Kerio Connect, 32-bit)",
        "engine limit: 26214400 bytes, MaxFileSize 25M in /smoke/clamd.conf",
        "file        bytes      expected                 verdict                      result",
        "eicar       68         VIRUS_FOUND              VIRUS_FOUND Kerio.Test.EICAR.UNOFFICIAL ok",
        "clean       37         OK                       OK                           ok",
    ]
    if "over-limit" in rows:
        out.append(f"over-limit  26214401   IMPOSSIBLE/VIRUS_FOUND   {over} {result}")
    return out + ["all as expected"]


def tools_package(fmt="deb"):
    return plan.Package(
        Path(f"t.{fmt}"),
        fmt,
        plan.ADMIN_TOOLS,
        ["/usr/sbin/kerio-avir-check", "/usr/lib/kerio-avir-tools/avhost"],
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_plan_runs_the_admin_check_after_each_plugin(arch):
    """The tools .deb goes in first and checks every installed plugin (over its UNIX
    socket for clam, with the guest's clamd.conf); both tools packages leave no trace."""
    p = plan.make_plan(
        [tools_package("rpm"), tools_package()] + fake_packages()[:2] + [icap_package()], arch
    )
    ids = [c.id for c in p.checks]
    tools = f"deb/{plan.ADMIN_TOOLS}"
    assert ids.index(f"{tools}/install") < ids.index("deb/kerio-connect-avir-clam/install")
    rpm_tools = f"rpm/{plan.ADMIN_TOOLS}"
    assert ids[-6:] == [
        f"{tools}/remove",
        f"{tools}/clean",
        f"{rpm_tools}/install",
        f"{rpm_tools}/path/command",
        f"{rpm_tools}/remove",
        f"{rpm_tools}/clean",
    ]
    by_id = p.by_id()
    clam = by_id["deb/kerio-connect-avir-clam/admin-check/connect/clam"]
    assert set(clam.admin_rows) == {"eicar", "clean", "over-limit"}
    assert set(by_id["rpm/kerio-control-avir-sample/admin-check/control/sample"].admin_rows) == {
        "eicar",
        "clean",
    }
    assert "deb/kerio-connect-avir-icap/admin-check/connect/icap" in ids
    assert (
        f"admincheck deb/kerio-connect-avir-clam/admin-check/connect/clam "
        f"{CONNECT}/avir_clam.so LocalSocket={guest_files.CLAMD_SOCKET} StartupTimeout=10 "
        f"FdPass=on ClamdConf={guest_files.GUEST_ROOT}/clamd.conf"
    ) in p.text().splitlines()
    assert not [c for c in p.checks if c.host_failure]  # the tools are no plugin package


def test_parser_judges_the_admin_check_table():
    p = plan.make_plan([tools_package()] + fake_packages()[:1])
    good = passing_console(p)
    assert failing_ids(p, good) == []
    cid = "deb/kerio-connect-avir-clam/admin-check/connect/clam"
    passed = {r.check.id: r for r in report.judge(p, good)}[cid]
    assert passed.detail == "eicar VIRUS_FOUND, clean OK, over-limit IMPOSSIBLE"
    row = "over-limit  26214401   IMPOSSIBLE/VIRUS_FOUND   IMPOSSIBLE Heuristics.Limits.Exceeded.MaxFileSize ok"
    for bad, why in [
        (
            good.replace(row, "over-limit  26214401   IMPOSSIBLE/VIRUS_FOUND   OK UNEXPECTED"),
            "over-limit: 26214401 IMPOSSIBLE/VIRUS_FOUND OK UNEXPECTED",
        ),
        (good.replace(f"AVSMOKE {cid} OUT {row}\r\n", ""), "no row over-limit"),
        (good.replace(f"AVSMOKE {cid} SCAN rc=0", f"AVSMOKE {cid} SCAN rc=1"), "exit 1"),
    ]:
        assert failing_ids(p, bad) == [cid]
        assert why in {r.check.id: r for r in report.judge(p, bad)}[cid].detail


@pytest.mark.parametrize("arch", ARCHS)
def test_parser_passes_a_good_console(arch):
    p = plan.make_plan(fake_packages()[:2] + [icap_package()], arch)
    results = report.judge(p, passing_console(p))
    assert [r.check.id for r in report.failures(results)] == []
    assert len(results) == len(p.checks)
    table = report.table(results)
    assert "deb/kerio-connect-avir-clam/scan/connect/clam/unix/encrypted" in table
    assert "IMPOSSIBLE" in table


def failing_ids(p, console):
    return [r.check.id for r in report.failures(report.judge(p, console))]


def test_parser_names_each_kind_of_failure():
    p = plan.make_plan(fake_packages()[:2])
    good = passing_console(p)
    eicar = "deb/kerio-connect-avir-clam/scan/connect/clam/tcp/eicar"
    # a guest-decided check
    bad = good.replace(
        "AVSMOKE rpm/kerio-control-avir-sample/install PASS fine",
        "AVSMOKE rpm/kerio-control-avir-sample/install FAIL exit 1: postinst",
    )
    assert failing_ids(p, bad) == ["rpm/kerio-control-avir-sample/install"]
    # the wrong virus name
    bad = good.replace(
        scan_json(f"{plan.CORPUS_DIR}/eicar.com", "VIRUS_FOUND", "Kerio.Test.EICAR.UNOFFICIAL"),
        scan_json(f"{plan.CORPUS_DIR}/eicar.com", "VIRUS_FOUND", "Other"),
        1,
    )
    assert failing_ids(p, bad) == [eicar]
    res = {r.check.id: r for r in report.judge(p, bad)}[eicar]
    assert "expected VIRUS_FOUND Kerio.Test.EICAR.UNOFFICIAL, got VIRUS_FOUND Other" in res.detail
    # the wrong verdict, an ABI violation, a non-zero exit
    enc = "deb/kerio-connect-avir-clam/scan/connect/clam/unix/encrypted"
    enc_json = scan_json(f"{plan.CORPUS_DIR}/eicarpwd.zip", "IMPOSSIBLE")
    lines = good.split("\r\n")
    i = lines.index(f"AVSMOKE {enc} OUT {enc_json}")
    for replacement, why in [
        (
            f"AVSMOKE {enc} OUT " + scan_json(f"{plan.CORPUS_DIR}/eicarpwd.zip", "OK"),
            "expected IMPOSSIBLE, got OK",
        ),
        (
            f"AVSMOKE {enc} OUT "
            + scan_json(
                f"{plan.CORPUS_DIR}/eicarpwd.zip",
                "IMPOSSIBLE",
                violations=["vir_info not terminated"],
            ),
            "ABI violations: vir_info not terminated",
        ),
    ]:
        changed = "\r\n".join(lines[:i] + [replacement] + lines[i + 1 :])
        results = {r.check.id: r for r in report.judge(p, changed)}
        assert failing_ids(p, changed) == [enc]
        assert why in results[enc].detail
    changed = good.replace(f"AVSMOKE {enc} SCAN rc=0", f"AVSMOKE {enc} SCAN rc=1")
    assert failing_ids(p, changed) == [enc]


def test_parser_fails_a_unix_scan_that_did_not_pass_the_descriptor():
    """The right verdict is not enough over the UNIX socket: FILDES must have been used."""
    p = plan.make_plan(fake_packages()[:1])
    good = passing_console(p)
    eicar = "deb/kerio-connect-avir-clam/scan/connect/clam/unix/eicar"
    bad = "\r\n".join(
        line
        for line in good.split("\r\n")
        if not (line.startswith(f"AVSMOKE {eicar} OUT") and plan.FILDES_LOG in line)
    )
    assert failing_ids(p, bad) == [eicar]
    res = {r.check.id: r for r in report.judge(p, bad)}[eicar]
    assert f'never logged "{plan.FILDES_LOG}"' in res.detail


def test_parser_fails_a_reload_that_crashes_at_exit_or_stops_early():
    p = plan.make_plan(fake_packages()[:1])
    good = passing_console(p)
    rid = "deb/kerio-connect-avir-clam/reload/connect/clam/tcp"
    crash = json.dumps(
        {
            "event": "crash",
            "phase": "exit",
            "violations": ["the plugin process crashed with signal 11 (SIGSEGV) in exit()"],
        }
    )
    bad = good.replace(
        f"AVSMOKE {rid} SCAN rc=0", f"AVSMOKE {rid} OUT {crash}\r\nAVSMOKE {rid} SCAN rc=1"
    )
    assert failing_ids(p, bad) == [rid]
    assert "SIGSEGV) in exit()" in {r.check.id: r for r in report.judge(p, bad)}[rid].detail
    last = json.dumps({"event": "unload", "round": plan.RELOADS, "violations": []})
    short = good.replace(f"AVSMOKE {rid} OUT {last}\r\n", "")
    assert failing_ids(p, short) == [rid]
    assert (
        f"{plan.RELOADS - 1} of {plan.RELOADS} unload round(s) reported"
        in {r.check.id: r for r in report.judge(p, short)}[rid].detail
    )


def test_parser_reports_load_failures_and_unrun_checks():
    p = plan.make_plan(fake_packages()[:1])
    cut = passing_console(p).split(
        "AVSMOKE deb/kerio-connect-avir-clam/scan/connect/clam/tcp/clean"
    )[0]
    load_error = json.dumps(
        {"event": "init", "result": 0, "error": "cannot connect to clamd", "violations": []}
    )
    cut = cut.replace(
        scan_json(f"{plan.CORPUS_DIR}/eicar.com", "VIRUS_FOUND", "Kerio.Test.EICAR.UNOFFICIAL"),
        load_error
        + "\r\nAVSMOKE deb/kerio-connect-avir-clam/scan/connect/clam/tcp/eicar OUT "
        + json.dumps(
            {
                "event": "scan",
                "file": f"{plan.CORPUS_DIR}/eicar.com",
                "verdict": "NOT_SCANNED",
                "vir_info": "not initialised",
            }
        ),
    )
    results = {r.check.id: r for r in report.judge(p, cut)}
    eicar = results["deb/kerio-connect-avir-clam/scan/connect/clam/tcp/eicar"]
    assert not eicar.ok and "not initialised" in eicar.detail
    later = results["deb/kerio-connect-avir-clam/clean"]
    assert later.state == "not run" and "stopped before" in later.detail
    assert not report.parse(cut)[1]  # no AVSMOKE-END


# --- the VM runner's time limit, with a stand-in for qemu ---------------------------


def test_hung_vm_is_killed_at_the_limit(tmp_path):
    cmd = ["sh", "-c", "echo booting; echo 'AVSMOKE guest/boot PASS x'; echo last words; sleep 60"]
    seen = []
    booted = vm.boot(cmd, 2, tmp_path / "console.log", seen.append)
    assert booted.timed_out and 1.5 < booted.seconds < 10
    assert seen == ["booting", "AVSMOKE guest/boot PASS x", "last words"]
    assert "last words" in booted.last_lines()
    assert "killed the VM after 2 s" in (tmp_path / "console.log").read_text()


def fake_rootfs(tmp_path):
    fs = rootfs.Rootfs(tmp_path / "rootfs")
    fs.dir.mkdir()
    for f in (fs.image, fs.kernel, fs.initrd):
        f.write_bytes(b"")
    return fs


def deb_tree_package(tmp_path, name, files, postinst=None, arch="i386"):
    """A .deb built with dpkg-deb from a small tree: {install path: source file}."""
    deb_arch = facts.architecture(arch)["deb"]
    root = tmp_path / f"tree-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        textwrap.dedent(f"""\
        Package: {name}
        Version: 1.0.0-1
        Architecture: {deb_arch}
        Maintainer: avkit smoke test <smoke@invalid>
        Description: smoke test package {name}
        """)
    )
    if postinst is not None:
        script = root / "DEBIAN" / "postinst"
        script.write_text("#!/bin/sh\n" + postinst + "\n")
        script.chmod(0o755)
    for dest, src in files.items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        target.chmod(0o644)
    out = tmp_path / "pkgs" / f"{name}_1.0.0-1_{deb_arch}.deb"
    out.parent.mkdir(exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", root, out], check=True, capture_output=True
    )
    return out


def owned_dirs(files):
    """%dir lines for every folder below /opt that the files need (rpm removes only those)."""
    dirs = {
        str(parent) for f in files for parent in Path(f).parents if str(parent).startswith("/opt/")
    }
    return [f"%dir {d}" for d in sorted(dirs)]


def rpm_package(tmp_path, name, files, arch="i386"):
    """An .rpm (i686 by default) built with rpmbuild: {install path: source file}."""
    top = tmp_path / "rpmbuild"
    install = "\n".join(
        f"install -D -m 0644 {src} %{{buildroot}}{dest}" for dest, src in files.items()
    )
    spec = top / f"{name}.spec"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        textwrap.dedent(f"""\
        Name: {name}
        Version: 1.0.0
        Release: 1
        Summary: smoke test package {name}
        License: MIT
        %global debug_package %{{nil}}
        %global __strip /bin/true
        %global _build_id_links none
        %description
        smoke test package
        %install
        """)
        + install
        + "\n%files\n"
        + "\n".join(sorted(files) + owned_dirs(files))
        + "\n"
    )
    subprocess.run(
        [
            "rpmbuild",
            "-bb",
            "--target",
            facts.architecture(arch)["rpm"],
            "--define",
            f"_topdir {top}",
            spec,
        ],
        check=True,
        capture_output=True,
    )
    built = next((top / "RPMS").rglob(f"{name}-*.rpm"))
    out = tmp_path / "pkgs" / built.name
    out.parent.mkdir(exist_ok=True)
    shutil.copy(built, out)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_each_guest_takes_the_packages_of_its_architecture(tmp_path, arch):
    """One folder holds both architectures' packages (avkit package --arch i386 --arch
    x86_64): a guest installs its own by file name and leaves the other's out."""
    prereqs.require_commands("dpkg-deb", "rpmbuild")
    plugin = tmp_path / "avir_sample.so"
    plugin.write_bytes(b"\x7fELF")
    files = {f"{CONNECT}/avir_sample.so": plugin}
    made = {
        a: [
            deb_tree_package(
                tmp_path, f"kerio-connect-avir-{facts.architecture(a)['deb']}", files, arch=a
            ),
            rpm_package(
                tmp_path, f"kerio-connect-avir-{facts.architecture(a)['deb']}rpm", files, arch=a
            ),
        ]
        for a in ARCHS
    }
    deb_tree_package(tmp_path, "kerio-connect-avir-sample-dbgsym", files, arch=arch)
    chosen, debug, foreign = plan.find_packages(tmp_path / "pkgs", arch)
    assert sorted(p.path for p in chosen) == sorted(made[arch])
    assert [p.name for p in debug] == ["kerio-connect-avir-sample-dbgsym"]
    assert sorted(foreign) == sorted(f for a in ARCHS if a != arch for f in made[a])
    assert made[arch][0].name.endswith(f"_{facts.architecture(arch)['deb']}.deb")
    assert made[arch][1].name.endswith(f".{facts.architecture(arch)['rpm']}.rpm")


def test_a_folder_without_the_guests_architecture_says_so(tmp_path):
    plugin = tmp_path / "avir_sample.so"
    plugin.write_bytes(b"\x7fELF")
    deb_tree_package(tmp_path, "kerio-connect-avir-sample", {f"{CONNECT}/avir_sample.so": plugin})
    with pytest.raises(
        UserError,
        match=r"no \.deb or \.rpm for x86_64 in .*_amd64\.deb or "
        r"\.x86_64\.rpm.*--arch x86_64",
    ):
        plan.find_packages(tmp_path / "pkgs", "x86_64")


def test_smoke_reports_a_hung_guest_with_its_last_lines(tmp_path):
    prereqs.require_commands("mkfs.ext4", "dpkg-deb", "zip")
    plugin = tmp_path / "avir_sample.so"
    plugin.write_bytes(b"\x7fELF")
    deb_tree_package(tmp_path, "kerio-connect-avir-sample", {f"{CONNECT}/avir_sample.so": plugin})
    qemu = tmp_path / "qemu"
    qemu.write_text(
        "#!/bin/sh\necho 'AVSMOKE guest/boot PASS 6.1'\necho 'AVSMOKE-RUN guest/clamd'\n"
        "echo 'clamd: hanging here'\nsleep 60\n"
    )
    qemu.chmod(0o755)
    out = smoke.smoke(
        fake_rootfs(tmp_path),
        tmp_path / "pkgs",
        plugin,
        tmp_path / "out",
        timeout=3,
        qemu=str(qemu),
    )
    assert out["failed"]
    assert "hung in guest/clamd: killed after 3 s" in out["message"]
    assert "clamd: hanging here" in out["message"]
    states = {r.check.id: r.state for r in out["results"]}
    assert states["guest/clamd"] == "HUNG" and states["guest/clamd-eicar"] == "not run"
    assert "guest/clamd-eicar" in out["message"]  # named among the checks that never ran
    assert (tmp_path / "out" / "console.log").read_text().startswith("AVSMOKE guest/boot PASS")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["timed_out"] and saved["checks"][0] == {
        "id": "guest/boot",
        "what": "the guest booted and runs the plan",
        "result": "pass",
        "detail": "6.1",
    }


# --- whole runs in the VM ----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_rootfs():
    prereqs.require_commands("qemu-system-i386", "mkfs.ext4", "dpkg-deb", "rpmbuild", "zip")
    try:
        return rootfs.ensure()  # builds it when not cached: root and debootstrap needed then
    except UserError as exc:
        if "needs root" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="module")
def vm_run(smoke_rootfs, artifact, tmp_path_factory):
    """One boot with good and broken packages made from the built plugins (sample, clam,
    icap: the guest runs clamd and c-icap)."""
    tmp = tmp_path_factory.mktemp("smoke")
    sample = artifact("avir_sample.so")
    clam = artifact("avir_clam.so")
    icap = artifact("avir_icap.so")
    avhost = artifact("avhost")
    good = {
        f"{CONNECT}/avir_sample.so": sample,
        f"{CONNECT}/avir_clam.so": clam,
        f"{CONNECT}/avir_icap.so": icap,
    }
    deb_tree_package(tmp, "kerio-connect-avir-test", good)
    deb_tree_package(
        tmp,
        "kerio-control-avir-test",
        {f"{CONTROL}/avir_clam.so": clam},
        postinst='echo "configured $1"',
    )
    rpm_package(
        tmp,
        "kerio-control-avir-testrpm",
        {f"{CONTROL}/avir_sample.so": sample, f"{CONTROL}/avir_icap.so": icap},
    )
    # broken: the plugin in a folder avserver never reads (plugins/, not plugin/avserver/avirs/), a failing postinst
    deb_tree_package(
        tmp,
        "kerio-connect-avir-wrongpath",
        {"/opt/kerio/mailserver/plugins/avir_sample.so": sample},
    )
    deb_tree_package(
        tmp,
        "kerio-control-avir-badpostinst",
        {f"{CONTROL}/avir_sample.so": sample},
        postinst='echo "cannot configure" >&2; exit 1',
    )
    return smoke.smoke(smoke_rootfs, tmp / "pkgs", avhost, tmp / "out", timeout=480)


def test_vm_good_packages_pass_every_check(vm_run):
    print(vm_run["table"])
    results = vm_run["results"]
    ok = {r.check.id for r in results if r.ok}
    assert {
        "guest/boot",
        "guest/clamd",
        "guest/clamd-eicar",
        "guest/cicap",
        "guest/cicap-eicar",
    } <= ok
    for r in results:
        if "wrongpath" not in r.check.id and "badpostinst" not in r.check.id:
            assert r.ok, f"{r.check.id}: {r.detail}"
    assert "deb/kerio-connect-avir-test/scan/connect/clam/unix/encrypted" in ok
    assert "deb/kerio-connect-avir-test/reload/connect/clam/tcp" in ok
    assert "rpm/kerio-control-avir-testrpm/clean" in ok
    by_id = {r.check.id: r for r in results}
    assert (
        by_id["deb/kerio-connect-avir-test/scan/connect/clam/tcp/eicar"].detail
        == f'VIRUS_FOUND Kerio.Test.EICAR.UNOFFICIAL; logged "{plan.INSTREAM_LOG}"'
    )
    # the same clamd through its UNIX socket, the open file passed (FILDES)
    assert (
        by_id["deb/kerio-connect-avir-test/scan/connect/clam/unix/eicar"].detail
        == f'VIRUS_FOUND Kerio.Test.EICAR.UNOFFICIAL; logged "{plan.FILDES_LOG}"'
    )
    # avir_icap through the guest's c-icap (virus_scan asking the guest's clamd), from
    # the .deb and the .rpm, and its unload/load rounds
    for base, product in (
        ("deb/kerio-connect-avir-test", "connect"),
        ("rpm/kerio-control-avir-testrpm", "control"),
    ):
        assert (
            by_id[f"{base}/scan/{product}/icap/icap/eicar"].detail
            == f'VIRUS_FOUND Kerio.Test.EICAR.UNOFFICIAL; logged "{plan.ICAP_LOG}"'
        )
        assert by_id[f"{base}/scan/{product}/icap/icap/encrypted"].detail.startswith("IMPOSSIBLE")
        assert f"{base}/reload/{product}/icap/icap" in ok
    assert "Kerio.Test.EICAR.UNOFFICIAL" in by_id["guest/cicap-eicar"].detail
    assert vm_run["boot"].exit_code == 0 and not vm_run["boot"].timed_out


def test_vm_wrong_install_path_fails_the_path_check(vm_run):
    bad = {r.check.id: r for r in report.failures(vm_run["results"])}
    check = "deb/kerio-connect-avir-wrongpath/path/connect/sample"
    assert check in bad
    assert f"{CONNECT}/avir_sample.so is missing" in bad[check].detail
    assert check in vm_run["message"]
    # its package still installs and goes away cleanly
    assert "deb/kerio-connect-avir-wrongpath/install" not in bad
    assert "deb/kerio-connect-avir-wrongpath/clean" not in bad


def test_vm_failing_postinst_fails_the_install_check(vm_run):
    bad = {r.check.id: r for r in report.failures(vm_run["results"])}
    check = "deb/kerio-control-avir-badpostinst/install"
    assert check in bad
    assert "exit 1" in bad[check].detail
    assert "post-installation script subprocess returned error exit status 1" in bad[check].detail
    assert check in vm_run["message"]
    assert set(bad) <= {c for c in bad if "wrongpath" in c or "badpostinst" in c}


def test_vm_guest_that_dies_is_reported_with_its_last_lines(smoke_rootfs, artifact, tmp_path):
    """A guest script that stops half-way: the kernel panics, QEMU exits, the host says so."""
    deb_tree_package(
        tmp_path,
        "kerio-connect-avir-test",
        {f"{CONNECT}/avir_sample.so": artifact("avir_sample.so")},
    )
    dying = tmp_path / "guest.sh"
    dying.write_text("echo 'AVSMOKE guest/boot PASS dying'\necho 'about to give up'\nexit 3\n")
    out = smoke.smoke(
        smoke_rootfs,
        tmp_path / "pkgs",
        artifact("avhost"),
        tmp_path / "out",
        timeout=120,
        guest_script=dying,
    )
    assert out["failed"] and not out["boot"].timed_out
    assert "stopped before the end of its plan" in out["message"]
    assert "about to give up" in out["message"]
    assert "Attempted to kill init" in out["message"]
    not_run = [r.check.id for r in out["results"] if r.state == "not run"]
    assert not_run[0] == "guest/arch" and "deb/kerio-connect-avir-test/clean" in not_run
