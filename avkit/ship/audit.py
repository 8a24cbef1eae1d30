"""The audit: built plugins against the portability policies (packaging/audit-policies.json).

Like auditwheel's `show`: for each plugin the verdict names the strictest policy it
satisfies and, for every policy it misses, what pushes it over (a too-recent
versioned symbol and the library that must provide it, an extra export, a
forbidden library, missing hardening). The audit also derives the package
dependencies (`Depends: libc6 (>= X)` and the RPM requirements) from the symbol
versions the plugin really needs.
"""

from pathlib import Path
from typing import Any

from avkit import elf, facts, paths
from avkit import facts as project
from avkit.facts import AUDIT_POLICY_FILE, policies as read_policies
from avkit.errors import UserError

#: hardening name -> (test on elf.hardening() facts, explanation when missing, fix)
HARDENING = {
    "relro": (lambda h: h["relro"], "no PT_GNU_RELRO segment", "link with -Wl,-z,relro"),
    "bind_now": (lambda h: h["bind_now"], "lazy binding (no BIND_NOW)", "link with -Wl,-z,now"),
    "noexec_stack": (
        lambda h: not h["exec_stack"],
        "executable stack (PT_GNU_STACK has PF_X, or is missing)",
        "link with -Wl,-z,noexecstack and find the object without .note.GNU-stack",
    ),
    "no_textrel": (
        lambda h: not h["textrel"],
        "text relocations (DT_TEXTREL)",
        "compile every object with -fPIC",
    ),
    "no_rpath": (
        lambda h: not h["rpath"],
        "RPATH/RUNPATH set",
        "drop -Wl,-rpath; the plugin must find its libraries like avserver does",
    ),
    "stripped": (
        lambda h: h["stripped"],
        "not stripped (.symtab or .debug_* sections present)",
        "ship the stripped file the build stages in dist/ (`./nox -s build-ARCH`, "
        "or `avkit plugin FOLDER` for your own plugin)",
    ),
    "build_id": (
        lambda h: bool(h["build_id"]),
        "no GNU build-id note",
        "link with -Wl,--build-id=sha1",
    ),
}


def load_policies(path: Path = AUDIT_POLICY_FILE, arch: str | None = None) -> dict[str, Any]:
    """The policies of one architecture (default: the default one), strictest first, with
    "arch", "default" (the policy its plugins must satisfy) and "elf" (the header they have)."""
    arch = arch or project.default_arch()
    facts = project.architecture(arch)
    data = read_policies(path)
    data["arch"] = arch
    data["default"] = facts["audit_policy"]
    data["elf"] = {**data["elf"], "class": facts["elf_class"], "machine": facts["elf_machine"]}
    data["policies"] = sorted(
        (p for p in data["policies"] if p["arch"] == arch), key=lambda p: -p["priority"]
    )
    return data


def policies_for(path: Path | str) -> dict[str, Any]:
    """The policies of the architecture a plugin's ELF header names (an ELF file of no
    release architecture is checked against the default one's, and fails its "elf" check)."""
    return load_policies(arch=project.arch_of(elf.header(path)))


def policy_by_name(data: dict[str, Any], name: str) -> dict[str, Any]:
    for p in data["policies"]:
        if p["name"] == name:
            return p
    raise UserError(
        f"no audit policy named {name!r}; known: {', '.join(p['name'] for p in data['policies'])}"
    )


def _vkey(text: str) -> tuple:
    return tuple(int(x) for x in text.split("."))


def _vstr(key: tuple) -> str:
    return ".".join(str(x) for x in key)


def _too_new(facts: dict, limits: dict) -> dict:
    """{"NS_x.y": [(symbol, library)]} for every symbol version above the policy's limits."""
    too_new: dict[str, list[tuple[str, str]]] = {}
    for symbol, version, library in facts["imports"]:
        key = elf.version_key(version)
        if key is None:
            continue
        ns, ver = key
        if ns not in limits or ver > limits[ns]:
            too_new.setdefault(version, []).append((symbol, library))
    # Versions a library requires without a symbol of ours bound to them (rare) count too.
    for library, versions in facts["required_versions"].items():
        for version in versions:
            key = elf.version_key(version)
            if key and (key[0] not in limits or key[1] > limits[key[0]]) and version not in too_new:
                too_new[version] = [("(version reference only)", library)]
    return too_new


def check(
    facts: dict[str, Any], policy: dict[str, Any], data: dict[str, Any]
) -> list[dict[str, Any]]:
    """Violations of one policy: list of {"check", "message", "symbols", "reason"}; the
    reason is the message without what is particular to this policy."""
    out = []

    def bad(kind, message, symbols=(), reason=None):
        out.append(
            {
                "check": kind,
                "message": message,
                "symbols": list(symbols),
                "reason": reason or message,
            }
        )

    want = data["elf"]
    if facts["class"] != want["class"] or facts["machine"] != want["machine"]:
        bad(
            "elf",
            f"ELFCLASS{facts['class']} {facts['machine']}, but an {data['arch']} avserver "
            f"loads only ELFCLASS{want['class']} {want['machine']} (build it with "
            f"`./nox -s build-{data['arch']}` in this clone, or `avkit plugin FOLDER "
            f"--arch {data['arch']}` for your own plugin)",
        )
    if facts["type"] != want["type"]:
        bad("elf", f"{facts['type']} is not a shared object ({want['type']})")

    allowed = set(policy["exports"])
    extra = sorted(set(facts["exports"]) - allowed)
    missing = sorted(allowed - set(facts["exports"]))
    if extra:
        bad(
            "exports",
            f"exports {len(extra)} symbol(s) besides {', '.join(sorted(allowed))}, which "
            f"can collide with avserver's own: {', '.join(extra[:10])}"
            f"{' ...' if len(extra) > 10 else ''} (link with api/exports.map)",
            extra,
        )
    if missing:
        bad("exports", f"does not export {', '.join(missing)}: avserver cannot load it", missing)

    for lib in facts["needed"]:
        if lib not in policy["needed"]:
            bad(
                "needed",
                f"needs {lib}, which is not on the policy's list of system libraries "
                f"(link it statically, or dlopen() it at run time)",
                [lib],
            )

    limits = {ns: _vkey(v) for ns, v in policy["symbol_versions"].items()}
    too_new = _too_new(facts, limits)
    for version in sorted(too_new, key=lambda v: elf.version_key(v)):
        ns, ver = elf.version_key(version)
        pairs = too_new[version]
        limit = (
            f"above {ns} {policy['symbol_versions'][ns]}"
            if ns in limits
            else f"no {ns} symbols are allowed"
        )
        listed = ", ".join(f"{s}@{version} from {lib}" for s, lib in pairs[:8])
        more = " ..." if len(pairs) > 8 else ""
        # The reason without this policy's limit reads the same under every policy it
        # fails: format_report prints it once, with them.
        bad(
            "symbol_versions",
            f"{version} is too recent ({limit}): {listed}{more}",
            [f"{s}@{version} ({lib})" for s, lib in pairs],
            reason=f"{version} is too recent: {listed}{more}" if ns in limits else None,
        )

    for name in policy["hardening"]:
        test, why, fix = HARDENING[name]
        if not test(facts["hardening"]):
            detail = why
            if name == "no_rpath":
                detail += f": {', '.join(facts['hardening']['rpath'])}"
            bad(name, f"{detail}; {fix}")
    return out


def package_deps(facts: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Dependencies for the packages, derived from what the plugin really needs.

    deb: libc6 (>= highest GLIBC_x); rpm: each needed soname and soname(highest version)
    per namespace, as rpm's own elfdeps writes them: bare for 32-bit files (provided only by
    the 32-bit glibc, so a 64-bit system's glibc does not satisfy them), with "()(64bit)" /
    "(64bit)" for 64-bit files (provided only by the 64-bit glibc).
    """
    mark = "(64bit)" if facts["class"] == 64 else ""
    highest: dict[tuple[str, str], tuple[int, ...]] = {}  # (library, namespace) -> version tuple
    glibc: tuple[int, ...] = ()
    for library, versions in facts["required_versions"].items():
        for version in versions:
            key = elf.version_key(version)
            if not key:
                continue
            ns, ver = key
            if ver > highest.get((library, ns), ()):
                highest[(library, ns)] = ver
            if ns == "GLIBC" and ver > glibc:
                glibc = ver
    deb: dict[str, Any] = {}
    for library in facts["needed"]:
        info = data["packages"].get(library)
        if info is None:
            raise UserError(
                f"no package is known to provide {library}: add it to {AUDIT_POLICY_FILE}"
            )
        pkg = info["deb"]
        if info.get("deb_version_from") == "GLIBC" and glibc:
            deb[pkg] = f"{pkg} (>= {_vstr(glibc)})"
        else:
            deb.setdefault(pkg, pkg)
    rpm = []
    for library in facts["needed"]:
        rpm.append(f"{library}(){mark}" if mark else library)
        for (lib, ns), ver in sorted(highest.items()):
            if lib == library:
                rpm.append(f"{library}({ns}_{_vstr(ver)}){mark}")
    return {"glibc": _vstr(glibc) if glibc else None, "deb": sorted(deb.values()), "rpm": rpm}


def audit_file(path: Path | str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of one plugin: facts, violations per policy, verdict and package deps.
    Without data, against the policies of the plugin's own architecture."""
    path = Path(path)
    if not path.is_file():
        from avkit.hints import build_command

        raise UserError(f"{path} does not exist: build it first ({build_command(path)})")
    if not elf.is_elf(path):
        raise UserError(f"{path} is not an ELF file")
    data = data or policies_for(path)
    found = elf.facts(path)
    results = {p["name"]: check(found, p, data) for p in data["policies"]}
    satisfied = [p["name"] for p in data["policies"] if not results[p["name"]]]
    return {
        "file": str(path),
        "name": path.name,
        "facts": found,
        "policy": satisfied[0] if satisfied else None,  # the strictest one satisfied
        "arch": data["arch"],
        "default_policy": data["default"],
        "violations": results,
        "dependencies": package_deps(found, data),
    }


def passes(report: dict[str, Any], policy_name: str) -> bool:
    return not report["violations"][policy_name]


def reasons(report: dict[str, Any], data: dict[str, Any]) -> dict[str, list[str]]:
    """{reason: the policies it fails, strictest first}: each reason once, in the order
    the policies first meet it."""
    out: dict[str, list[str]] = {}
    for p in data["policies"]:
        for v in report["violations"][p["name"]]:
            names = out.setdefault(v["reason"], [])
            if p["name"] not in names:
                names.append(p["name"])
    return out


def format_report(report: dict[str, Any], data: dict[str, Any], required: str) -> str:
    f = report["facts"]
    h = f["hardening"]
    lines = []
    ok = passes(report, required)
    best = report["policy"]
    verdict = f'satisfies "{best}" (strictest)' if best else "satisfies no policy"
    lines.append(f'{report["name"]}: {"OK" if ok else "FAIL"} for policy "{required}"; {verdict}')
    lines.append(
        f"  ELFCLASS{f['class']} {f['machine']} {f['type']}; exports: "
        f"{', '.join(f['exports']) or '(none)'}"
    )
    versions = {
        lib: max(v, key=lambda x: elf.version_key(x) or ("", ()))
        for lib, v in f["required_versions"].items()
        if v
    }
    lines.append(
        "  needs: "
        + ", ".join(
            f"{lib}" + (f" (up to {versions[lib]})" if lib in versions else "")
            for lib in f["needed"]
        )
    )
    lines.append(
        f"  hardening: relro={h['relro']} bind_now={h['bind_now']} "
        f"exec_stack={h['exec_stack']} textrel={h['textrel']} "
        f"rpath={h['rpath'] or None} stripped={h['stripped']} build-id={h['build_id'] or None}"
    )
    deps = report["dependencies"]
    lines.append(
        f"  package deps: deb Depends: {', '.join(deps['deb'])}; "
        f"rpm Requires: {', '.join(deps['rpm'])}"
    )
    for message, names in reasons(report, data).items():
        lines.append(f"  - {message}")
        lines.append(f"    fails: {', '.join(names)}")
    return "\n".join(lines)


def plugins_in(folder: Path) -> list[Path]:
    """The plugins a release ships: every avir_*.so of a dist folder (avhost is a test tool)."""
    return sorted(p for p in Path(folder).glob("avir_*.so") if p.is_file())


def default_files(toolchain: str, archs: list[str]) -> list[Path]:
    files = []
    for arch in archs:
        found = plugins_in(paths.dist_dir(toolchain, arch=arch))
        if not found:
            raise UserError(
                f"no avir_*.so in {paths.dist_dir(toolchain, arch=arch)}: build "
                f"first (./nox -s build-{arch})"
            )
        files += found
    return files


def policies_of(path: Path) -> dict[str, Any]:
    """The policies of the plugin's architecture (the default one's for a foreign ELF file,
    which then fails its "elf" check)."""
    return load_policies(arch=facts.arch_of(elf.header(path)) if elf.is_elf(path) else None)
