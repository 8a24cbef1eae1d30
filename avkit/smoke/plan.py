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
        return sorted({PurePosixPath(f).name for f in self.files
                       if PurePosixPath(f).name.startswith("avir_") and f.endswith(".so")})

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


@dataclass
class Plan:
    steps: List[str] = field(default_factory=list)
    checks: List[Check] = field(default_factory=list)

    def add(self, step: str, check: Check, *args: str) -> None:
        for a in (check.id, *args):
            if not a or any(c.isspace() for c in a):
                raise UserError(f"smoke plan: {a!r} is empty or holds white space "
                                f"(in step {step} of {check.id})")
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
        files = [f for f in _out(["rpm", "-qlp", "--nosignature", path]).splitlines()
                 if f.startswith("/")]
        return Package(path, "rpm", name, files)
    raise UserError(f"{path}: not a .deb or .rpm")


DEBUG_SUFFIXES = ("-dbgsym", "-dbg", "-debuginfo", "-debugsource")


def find_packages(folder: Path):
    """(packages to test, debug symbol packages left out) of a folder."""
    folder = Path(folder)
    found = sorted(folder.glob("*.deb")) + sorted(folder.glob("*.rpm"))
    if not found:
        raise UserError(f"no .deb or .rpm in {folder}: build the packages first "
                        f"(python -m avkit package), or pass --packages DIR")
    packages = [inspect(p) for p in found]
    debug = [p for p in packages if p.name.endswith(DEBUG_SUFFIXES)]
    return [p for p in packages if p not in debug], debug


#: what avir_clam logs when a file went to clamd as a descriptor (FILDES) or was streamed
FILDES_LOG = "took a file descriptor (FILDES)"
INSTREAM_LOG = "files streamed (INSTREAM)"


def plugin_transports(plugin: str):
    """(label, plugin options, log of a scan clamd answered) to scan with; avir_clam goes
    through TCP (streamed) and the UNIX socket (the open file passed with FILDES)."""
    if plugin == "avir_clam.so":
        return [("tcp", [f"Address={guest_files.CLAMD_ADDRESS}", f"Port={guest_files.CLAMD_PORT}",
                         "LocalSocket=", "StartupTimeout=10"], INSTREAM_LOG),
                ("unix", [f"LocalSocket={guest_files.CLAMD_SOCKET}", "StartupTimeout=10",
                          "FdPass=on"], FILDES_LOG)]
    return [("", [], None)]


def scan_cases(plugin: str):
    """(case, file in the guest, Expect) for a plugin."""
    f = guest_files.FILES
    if plugin == "avir_clam.so":
        eicar = Expect("VIRUS_FOUND", guest_files.REPORTED_NAME)
        extra = [("encrypted", Expect("IMPOSSIBLE"))]
    else:  # the sample plugin and any other: EICAR by any name
        eicar = Expect("VIRUS_FOUND")
        extra = []
    cases = [("eicar", eicar), ("clean", Expect("OK"))] + extra + [("missing", Expect("FAILED"))]
    out = []
    for case, exp in cases:
        exp.file = f"{CORPUS_DIR}/{f[case]}"
        out.append((case, exp.file, exp))
    return out


RELOADS = 10


def plan_reload(plan: Plan, base: str, product: str, short: str, installed: str) -> None:
    """Unload and load the installed plugin again, as a plugin switch does, then exit():
    every round must scan EICAR and leave no thread, descriptor or exit handler behind."""
    transport, opts, _ = plugin_transports(f"avir_{short}.so")[0]
    (case, file, exp), = [c for c in scan_cases(f"avir_{short}.so") if c[0] == "eicar"]
    exp.reloads = RELOADS
    cid = "/".join(x for x in (base, "reload", product, short, transport) if x)
    plan.add("reload", Check(cid, f"{short}: {RELOADS} x load, scan, close, dlclose, then exit", exp),
             installed, file, str(RELOADS), *opts)


def make_plan(packages: List[Package]) -> Plan:
    plan = Plan()
    plan.checks.append(Check("guest/boot", "the guest booted and runs the plan"))
    plan.add("clamd", Check("guest/clamd", "clamd starts (loopback TCP + UNIX socket), answers PING"))
    plan.add("clamdscan", Check("guest/clamd-eicar", "clamdscan finds EICAR with the test DB"),
             f"{CORPUS_DIR}/{guest_files.FILES['eicar']}")
    for pkg in sorted(packages, key=lambda p: (p.fmt != "deb", p.name)):
        base = f"{pkg.fmt}/{pkg.name}"
        install = "rpm -i --nodeps" if pkg.fmt == "rpm" else "dpkg -i"
        plan.add("install", Check(f"{base}/install",
                                  f"{install} {pkg.path.name} (maintainer scripts included)"),
                 pkg.fmt, f"{PKG_DIR}/{pkg.path.name}")
        products = pkg.products
        if not products or not pkg.plugins:
            plan.checks.append(Check(
                f"{base}/contents", "the package holds a plugin for a product",
                host_failure=("no avir_*.so in the package" if not pkg.plugins else
                              "neither the name nor the paths say Kerio Connect or Control")))
        for product in products:
            for plugin in pkg.plugins:
                installed = f"{PRODUCTS[product]}/{plugin}"
                short = plugin[len("avir_"):-len(".so")]
                plan.add("present", Check(f"{base}/path/{product}/{short}",
                                          f"{installed} installed"), installed)
                for transport, opts, log in plugin_transports(plugin):
                    for case, file, exp in scan_cases(plugin):
                        cid = "/".join(x for x in (base, "scan", product, short, transport, case) if x)
                        how = " (FILDES)" if log == FILDES_LOG else ""
                        what = (f"{short}{' via ' + transport if transport else ''}{how}: "
                                f"{case} -> {exp.verdict}")
                        if exp.verdict != "FAILED":  # a missing file never reaches clamd
                            exp.log = log
                        plan.add("scan", Check(cid, what, exp), installed, file, *opts)
                plan_reload(plan, base, product, short, installed)
        remove = "rpm -e" if pkg.fmt == "rpm" else "dpkg -r, dpkg --purge"
        plan.add("remove", Check(f"{base}/remove", remove), pkg.fmt, pkg.name)
        plan.add("clean", Check(f"{base}/clean", "nothing left: database, files, /opt/kerio"),
                 pkg.fmt, pkg.name)
    return plan


def _out(cmd) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"{' '.join(str(c) for c in cmd)} failed: {r.stderr.strip()}")
    return r.stdout
