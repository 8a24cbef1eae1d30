"""What the guest does and what the host expects: packages -> plan steps + checks.

The host reads each package under test (name, file list), and writes the guest's
plan: one step a line, `<step> <check-id> <args...>`, executed by guest/guest.sh.
The expectations stay on the host (report.py compares them with the console).
"""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional

from avkit import facts, prereqs
from avkit.errors import UserError
from avkit.smoke import guest_files

#: where each product's avserver looks for plugins (packaging/products.json)
PRODUCTS = {name: product["plugin_dir"] for name, product in facts.products().items()}
G = guest_files.GUEST_ROOT
PKG_DIR = f"{G}/pkgs"
CORPUS_DIR = f"{G}/corpus"


@dataclass
class Package:
    path: Path
    fmt: str  # deb | rpm
    name: str
    files: List[str]

    @property
    def plugins(self) -> List[str]:
        return sorted(
            {
                PurePosixPath(f).name
                for f in self.files
                if PurePosixPath(f).name.startswith("avir_") and f.endswith(".so")
            }
        )

    @property
    def products(self) -> List[str]:
        """The products the package is for: named in the package name, else by its paths."""
        named = [p for p in PRODUCTS if p in self.name.lower()]
        if named:
            return named
        return [p for p, d in PRODUCTS.items() if any(f.startswith(d + "/") for f in self.files)]


@dataclass
class Expect:
    verdict: str  # FAILED | OK | VIRUS_FOUND | IMPOSSIBLE ...
    name: Optional[str] = None  # exact vir_info wanted with VIRUS_FOUND (None: any non-empty)
    file: Optional[str] = None  # the guest path scanned
    reloads: int = 1  # load..dlclose rounds in one avhost process (a plugin switch)
    log: Optional[str] = None  # a text one of the plugin's log records must hold


@dataclass
class Check:
    id: str
    what: str  # a short human description for the table
    expect: Optional[Expect] = None  # None: the guest decides PASS/FAIL
    host_failure: Optional[str] = None  # set: failed on the host, nothing to run
    #: set: a kerio-avir-check run; its table's rows and the verdicts each may have
    admin_rows: Optional[Dict[str, tuple]] = None


@dataclass
class Plan:
    steps: List[str] = field(default_factory=list)
    checks: List[Check] = field(default_factory=list)

    def add(self, step: str, check: Check, *args: str) -> None:
        for a in (check.id, *args):
            if not a or any(c.isspace() for c in a):
                raise UserError(
                    f"smoke plan: {a!r} is empty or holds white space "
                    f"(in step {step} of {check.id})"
                )
        self.steps.append(" ".join([step, check.id, *args]))
        self.checks.append(check)

    def text(self) -> str:
        return "\n".join(self.steps) + "\n"

    def by_id(self) -> Dict[str, Check]:
        return {c.id: c for c in self.checks}


def inspect(path: Path) -> Package:
    path = Path(path)
    if path.suffix == ".deb":
        prereqs.require_commands("dpkg-deb")
        name = _out(["dpkg-deb", "-f", path, "Package"]).strip()
        files = []
        for line in _out(["dpkg-deb", "-c", path]).splitlines():
            # drwxr-xr-x root/root 0 2024-01-01 00:00 ./opt/kerio/  [-> target]
            entry = line.split(None, 5)[-1].split(" -> ")[0]
            entry = "/" + entry.lstrip("./").rstrip("/")
            if entry != "/":
                files.append(entry)
        return Package(path, "deb", name, files)
    if path.suffix == ".rpm":
        prereqs.require_commands("rpm")
        name = _out(["rpm", "-qp", "--nosignature", "--qf", "%{NAME}", path]).strip()
        files = [
            f
            for f in _out(["rpm", "-qlp", "--nosignature", path]).splitlines()
            if f.startswith("/")
        ]
        return Package(path, "rpm", name, files)
    raise UserError(f"{path}: not a .deb or .rpm")


DEBUG_SUFFIXES = ("-dbgsym", "-dbg", "-debuginfo", "-debugsource")


def file_suffixes(arch: str = None) -> tuple:
    """How the package files of an architecture end: _amd64.deb, .x86_64.rpm..."""
    a = facts.architecture(arch)
    return (f"_{a['deb']}.deb", f".{a['rpm']}.rpm")


def other_architectures(paths, arch: str = None) -> list[Path]:
    """The files among `paths` that are another release architecture's packages (one
    folder holds both): a guest never installs those."""
    arch = arch or facts.default_arch()
    others = tuple(s for name in facts.architectures() if name != arch for s in file_suffixes(name))
    return [p for p in paths if Path(p).name.endswith(others)]


def find_packages(folder: Path, arch: str = None):
    """(packages to test, debug symbol packages left out, other architectures' files
    left out) of a folder, for a guest of `arch` (default: i386)."""
    folder = Path(folder)
    found = sorted(folder.glob("*.deb")) + sorted(folder.glob("*.rpm"))
    foreign = other_architectures(found, arch)
    found = [p for p in found if p not in foreign]
    if not found:
        raise UserError(
            f"no .deb or .rpm for {arch or facts.default_arch()} in {folder} "
            f"(files ending {' or '.join(file_suffixes(arch))}): build the packages "
            f"first (python -m avkit package --arch {arch or facts.default_arch()}), "
            f"or pass --packages DIR"
        )
    packages = [inspect(p) for p in found]
    debug = [p for p in packages if p.name.endswith(DEBUG_SUFFIXES)]
    return [p for p in packages if p not in debug], debug, foreign


#: what avir_clam logs when a file went to clamd as a descriptor (FILDES) or was streamed
FILDES_LOG = "took a file descriptor (FILDES)"
INSTREAM_LOG = "files streamed (INSTREAM)"
#: what avir_icap logs once the ICAP server answered OPTIONS (in plugin_init)
ICAP_LOG = "ISTag"


@dataclass
class Transport:
    label: str  # part of the check id ("" when the plugin has one way only)
    options: List[str]  # plugin options, Name=Value
    log: Optional[str] = None  # a text the plugin must log when a server answered
    note: str = ""  # shown in the check's description


@dataclass
class Profile:
    """How the guest scans with one plugin: the guest services it needs, the ways it
    reaches them, the verdict each test file must get (verdict, exact name or None)."""

    services: List[str]
    transports: List[Transport]
    verdicts: Dict[str, tuple]


GF = guest_files  # short, for the table below
_SERVER_VERDICTS = {
    "eicar": ("VIRUS_FOUND", GF.REPORTED_NAME),
    "clean": ("OK", None),
    "encrypted": ("IMPOSSIBLE", None),
    "missing": ("FAILED", None),
}
#: one row per plugin: a new plugin is a new row, never a branch in the plan
PROFILES = {
    # avir_clam goes through TCP (streamed) and the UNIX socket (the open file passed)
    "avir_clam.so": Profile(
        ["clamd"],
        [
            Transport(
                "tcp",
                [
                    f"Address={GF.CLAMD_ADDRESS}",
                    f"Port={GF.CLAMD_PORT}",
                    "LocalSocket=",
                    "StartupTimeout=10",
                ],
                INSTREAM_LOG,
            ),
            Transport(
                "unix",
                [f"LocalSocket={GF.CLAMD_SOCKET}", "StartupTimeout=10", "FdPass=on"],
                FILDES_LOG,
                note=" (FILDES)",
            ),
        ],
        _SERVER_VERDICTS,
    ),
    # avir_icap through the guest's c-icap, whose virus_scan asks the guest's clamd
    "avir_icap.so": Profile(
        ["clamd", "cicap"],
        [
            Transport(
                "icap",
                [
                    f"Server={GF.CICAP_ADDRESS}",
                    f"Port={GF.CICAP_PORT}",
                    f"Service={GF.CICAP_SERVICE}",
                    "StartupTimeout=20",
                ],
                ICAP_LOG,
                note=" (c-icap, virus_scan, clamd)",
            )
        ],
        _SERVER_VERDICTS,
    ),
    # the sample plugin and any other: EICAR by any name, no server
    "default": Profile(
        [],
        [Transport("", [])],
        {"eicar": ("VIRUS_FOUND", None), "clean": ("OK", None), "missing": ("FAILED", None)},
    ),
}


def profile(plugin: str) -> Profile:
    return PROFILES.get(plugin, PROFILES["default"])


#: the guest's services, in start order: (plan step, check id, what, its arguments);
#: clamd always runs (its check proves the guest can scan at all), others when a
#: plugin under test needs them
EICAR_IN_GUEST = f"{CORPUS_DIR}/{GF.FILES['eicar']}"
SERVICES = {
    "clamd": [
        ("clamd", "guest/clamd", "clamd starts (loopback TCP + UNIX socket), answers PING", []),
        (
            "clamdscan",
            "guest/clamd-eicar",
            "clamdscan finds EICAR with the test DB",
            [EICAR_IN_GUEST],
        ),
    ],
    "cicap": [
        (
            "cicap",
            "guest/cicap",
            "c-icap starts (virus_scan over clamd), answers OPTIONS of its avscan service",
            [str(GF.CICAP_PORT), GF.CICAP_SERVICE],
        ),
        (
            "cicap-eicar",
            "guest/cicap-eicar",
            "c-icap-client: avscan names EICAR (RESPMOD, X-Infection-Found)",
            [str(GF.CICAP_PORT), GF.CICAP_SERVICE, EICAR_IN_GUEST],
        ),
    ],
}
ALWAYS_SERVICES = ["clamd"]


def plugin_transports(plugin: str):
    """(label, plugin options, log of a scan the server answered) to scan with."""
    return [(t.label, t.options, t.log) for t in profile(plugin).transports]


def scan_cases(plugin: str):
    """(case, file in the guest, Expect) for a plugin."""
    out = []
    for case, (verdict, name) in profile(plugin).verdicts.items():
        exp = Expect(verdict, name, file=f"{CORPUS_DIR}/{guest_files.FILES[case]}")
        out.append((case, exp.file, exp))
    return out


def plan_services(plan: Plan, packages: List[Package]) -> None:
    """Starts (and checks) the services the plugins under test need, in SERVICES order."""
    wanted = set(ALWAYS_SERVICES)
    for pkg in packages:
        for plugin in pkg.plugins:
            wanted.update(profile(plugin).services)
    for service, steps in SERVICES.items():
        if service not in wanted:
            continue
        for step, cid, what, args in steps:
            plan.add(step, Check(cid, what), *args)


RELOADS = 10


def plan_reload(plan: Plan, base: str, product: str, short: str, installed: str) -> None:
    """Unload and load the installed plugin again, as a plugin switch does, then exit():
    every round must scan EICAR and leave no thread, descriptor or exit handler behind."""
    transport, opts, _ = plugin_transports(f"avir_{short}.so")[0]
    ((case, file, exp),) = [c for c in scan_cases(f"avir_{short}.so") if c[0] == "eicar"]
    exp.reloads = RELOADS
    cid = "/".join(x for x in (base, "reload", product, short, transport) if x)
    plan.add(
        "reload",
        Check(cid, f"{short}: {RELOADS} x load, scan, close, dlclose, then exit", exp),
        installed,
        file,
        str(RELOADS),
        *opts,
    )


#: the administrator's package (packaging/tools/) and its command
ADMIN_TOOLS = "kerio-avir-tools"
ADMIN_CHECK = "/usr/sbin/kerio-avir-check"
#: the rows of kerio-avir-check's table and the verdicts each may have; the over-limit
#: row is there when the plugin has an engine limit (clamd.conf's MaxFileSize 25M here)
ADMIN_ROWS = {
    "eicar": ("VIRUS_FOUND",),
    "clean": ("OK",),
    "over-limit": ("IMPOSSIBLE", "VIRUS_FOUND"),
}


def admin_check_options(plugin: str) -> List[str]:
    """The options kerio-avir-check passes: the plugin's first way to its server, the UNIX
    socket for avir_clam (with the guest's clamd.conf, where the check reads the limit)."""
    transports = profile(plugin).transports
    chosen = next((t for t in transports if t.label == "unix"), transports[0])
    extra = [f"ClamdConf={guest_files.GUEST_ROOT}/clamd.conf"] if plugin == "avir_clam.so" else []
    return chosen.options + extra


def plan_admin_check(plan: Plan, base: str, product: str, short: str, installed: str) -> None:
    plugin = f"avir_{short}.so"
    rows = (
        dict(ADMIN_ROWS)
        if plugin in ("avir_clam.so", "avir_icap.so")
        else {k: v for k, v in ADMIN_ROWS.items() if k != "over-limit"}
    )
    plan.add(
        "admincheck",
        Check(
            f"{base}/admin-check/{product}/{short}",
            f"kerio-avir-check {short}: " + ", ".join(rows) + " as expected",
            admin_rows=rows,
        ),
        installed,
        *admin_check_options(plugin),
    )


def make_plan(packages: List[Package], arch: str = None) -> Plan:
    """The guest's steps and the checks, for a guest of `arch` (default: i386). The
    administrator's package (.deb) is installed first and checks each plugin installed
    after it; its .rpm is installed and removed on its own at the end."""
    plan = Plan()
    plan.checks.append(Check("guest/boot", "the guest booted and runs the plan"))
    deb_arch = facts.architecture(arch)["deb"]
    plan.add("arch", Check("guest/arch", f"the guest's dpkg architecture is {deb_arch}"), deb_arch)
    tools = sorted((p for p in packages if p.name == ADMIN_TOOLS), key=lambda p: p.fmt != "deb")
    packages = [p for p in packages if p.name != ADMIN_TOOLS]
    plan_services(plan, packages)
    tools_deb = next((t for t in tools if t.fmt == "deb"), None)
    if tools_deb:
        plan_install(plan, tools_deb)
    for pkg in sorted(packages, key=lambda p: (p.fmt != "deb", p.name)):
        base = f"{pkg.fmt}/{pkg.name}"
        install = "rpm -i --nodeps" if pkg.fmt == "rpm" else "dpkg -i"
        plan.add(
            "install",
            Check(f"{base}/install", f"{install} {pkg.path.name} (maintainer scripts included)"),
            pkg.fmt,
            f"{PKG_DIR}/{pkg.path.name}",
        )
        products = pkg.products
        if not products or not pkg.plugins:
            plan.checks.append(
                Check(
                    f"{base}/contents",
                    "the package holds a plugin for a product",
                    host_failure=(
                        "no avir_*.so in the package"
                        if not pkg.plugins
                        else "neither the name nor the paths say Kerio Connect or Control"
                    ),
                )
            )
        for product in products:
            for plugin in pkg.plugins:
                installed = f"{PRODUCTS[product]}/{plugin}"
                short = plugin[len("avir_") : -len(".so")]
                plan.add(
                    "present",
                    Check(f"{base}/path/{product}/{short}", f"{installed} installed"),
                    installed,
                )
                for t in profile(plugin).transports:
                    for case, file, exp in scan_cases(plugin):
                        cid = "/".join(
                            x for x in (base, "scan", product, short, t.label, case) if x
                        )
                        what = (
                            f"{short}{' via ' + t.label if t.label else ''}{t.note}: "
                            f"{case} -> {exp.verdict}"
                        )
                        if exp.verdict != "FAILED":  # a missing file never reaches a server
                            exp.log = t.log
                        plan.add("scan", Check(cid, what, exp), installed, file, *t.options)
                plan_reload(plan, base, product, short, installed)
                if tools_deb:
                    plan_admin_check(plan, base, product, short, installed)
        plan_remove(plan, pkg)
    for tool in tools:  # the tools packages, each on its own
        if tool is not tools_deb:
            plan_install(plan, tool)
        plan_remove(plan, tool)
    return plan


def plan_install(plan: Plan, pkg: Package) -> None:
    """Install an administrator's package and see its command in place."""
    base = f"{pkg.fmt}/{pkg.name}"
    install = "rpm -i --nodeps" if pkg.fmt == "rpm" else "dpkg -i"
    plan.add(
        "install",
        Check(f"{base}/install", f"{install} {pkg.path.name}"),
        pkg.fmt,
        f"{PKG_DIR}/{pkg.path.name}",
    )
    plan.add("present", Check(f"{base}/path/command", f"{ADMIN_CHECK} installed"), ADMIN_CHECK)


def plan_remove(plan: Plan, pkg: Package) -> None:
    base = f"{pkg.fmt}/{pkg.name}"
    remove = "rpm -e" if pkg.fmt == "rpm" else "dpkg -r, dpkg --purge"
    plan.add("remove", Check(f"{base}/remove", remove), pkg.fmt, pkg.name)
    plan.add(
        "clean",
        Check(f"{base}/clean", "nothing left: database, files, /opt/kerio"),
        pkg.fmt,
        pkg.name,
    )


def _out(cmd) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"{' '.join(str(c) for c in cmd)} failed: {r.stderr.strip()}")
    return r.stdout
