"""The release: what `nox -s release` leaves in dist/release/ after builds, audit,
tests, packages and the smoke test.

    kerio-avir-plugins-<version>.tar.gz   the sources (source_archive.py, reproducible)
    kerio-avir-plugins-<version>.spdx.json the SBOM (sbom.py), checked against the DWARF
    provenance.json                        commit, dirty state, tools, input and output hashes
    RELEASE-NOTES.md                       the version's entry of packaging/changelog.json
    *.deb, *.rpm                           the packages of dist/packages/
    SHA256SUMS                             over all of the above

Every release architecture's plugins (dist/i386/, dist/x86_64/: cmake/architectures.json)
are in the SBOM, the provenance and the notes, and their packages in the folder: a
release whose packages lack an architecture it ships is refused.

A tagged release (HEAD carries the tag VERSION or vVERSION) is refused while
packaging/project.json has placeholder addresses (packaging/placeholders.json); a
snapshot only warns.
"""
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from avkit import elf, facts, paths
from avkit.errors import UserError
from avkit.ship import audit, components, packages, provenance, sbom, source_archive

PLACEHOLDERS_FILE = paths.PACKAGING / "placeholders.json"
PROJECT_FILE = paths.PACKAGING / "project.json"
OUTPUT_PATTERNS = ["*.tar.gz", "*.spdx.json", "provenance.json", "RELEASE-NOTES.md", "*.deb",
                   "*.rpm", "SHA256SUMS"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- tagged release or snapshot ----------------------------------------------------------

def is_tagged(root: Path = paths.ROOT) -> bool:
    """Whether HEAD carries the tag of the VERSION file (VERSION or vVERSION)."""
    version = (Path(root) / "VERSION").read_text().strip()
    r = subprocess.run(["git", "-C", str(root), "tag", "--points-at", "HEAD"],
                       capture_output=True, text=True)
    return bool({version, f"v{version}"} & set(r.stdout.split()))


def placeholders(project: dict) -> list[tuple[str, str, str]]:
    """[(field, value, reserved name)] for the fields that name a reserved domain."""
    data = json.loads(PLACEHOLDERS_FILE.read_text())
    found = []
    for field in data["fields"]:
        value = project.get(field, "")
        for host in re.findall(r"(?:@|//)([A-Za-z0-9.-]+)", value):
            host = host.lower().rstrip(".")
            for reserved in data["reserved_domains"]:
                if host == reserved or host.endswith("." + reserved):
                    found.append((field, value, reserved))
    return found


def check_placeholders(project: dict, tagged: bool) -> None:
    found = placeholders(project)
    if not found:
        return
    hints = json.loads(PLACEHOLDERS_FILE.read_text())["fields"]
    lines = [f'  "{f}": {v!r} names {r!r}, a reserved example domain: fill in {hints[f]}'
             for f, v, r in found]
    where = PROJECT_FILE.relative_to(paths.ROOT)
    if tagged:
        raise UserError(f"a tagged release cannot carry placeholders; fill in {where}:\n"
                        + "\n".join(lines))
    log(f"avkit release: warning: snapshot with placeholders in {where} (a tagged release "
        f"is refused):\n" + "\n".join(lines))


# --- the pieces --------------------------------------------------------------------------

def plugin_arch(so: Path) -> str:
    return facts.arch_of(elf.header(so)) or "?"


def architecture_label(arch: str) -> str:
    """"i386, 32-bit: i386 .deb, i686 .rpm" for the notes."""
    a = facts.architecture(arch)
    return f"{arch}, {a['elf_class']}-bit: {a['deb']} .deb, {a['rpm']} .rpm"


def notes(version: str, epoch: int, plugins: list, package_files: list) -> str:
    """RELEASE-NOTES.md: the changelog entry of the version, what each plugin of each
    architecture links, the packages."""
    entry = packages.changelog_entries(version, epoch)[0]
    name = components.policy()["project"]["name"]
    out = [f"# {name} {version}", "", f"Released {entry['date'][:10]}.", ""]
    out += [f"- {change}" for change in entry["changes"]]
    out += ["", "## What each plugin links", ""]
    for so in plugins:
        parts = ", ".join(f"{c['name']} {c['version']} ({c['license']})"
                          for c in components.linked(so))
        out.append(f"- `{so.name}` ({architecture_label(plugin_arch(so))}): {parts}")
    out += ["", "## Packages", ""] + [f"- `{f.name}`" for f in sorted(package_files)]
    out += ["", "Checksums in `SHA256SUMS`; the SBOM (SPDX 2.3) and the provenance are "
                "beside these notes.", ""]
    return "\n".join(out)


def sha256sums(out: Path) -> Path:
    lines = [f"{components.sha256_file(f)}  {f.name}\n"
             for f in sorted(out.iterdir()) if f.is_file() and f.name != "SHA256SUMS"]
    target = out / "SHA256SUMS"
    target.write_text("".join(lines))
    return target


def clean(out: Path) -> None:
    for pattern in OUTPUT_PATTERNS:
        for p in out.glob(pattern):
            p.unlink()


def release_plugins(dists: list) -> list[Path]:
    """Every plugin of every dist folder (one per architecture)."""
    plugins = []
    for dist in dists:
        found = audit.plugins_in(dist)
        if not found:
            raise UserError(f"no avir_*.so in {dist}: build first (./nox -s build-i386, "
                            f"./nox -s build-x86_64)")
        plugins += found
    return plugins


def check_packages_cover(plugins: list, package_files: list, package_dir: Path) -> None:
    """Each architecture of the released plugins has its packages in the folder."""
    names = [f.name for f in package_files]
    for arch in sorted({plugin_arch(so) for so in plugins}):
        a = facts.architecture(arch)
        if not [n for n in names if n.endswith((f"_{a['deb']}.deb", f".{a['rpm']}.rpm"))]:
            raise UserError(f"no {a['deb']} .deb nor {a['rpm']} .rpm in {package_dir}, but "
                            f"the release ships {arch} plugins: `python -m avkit package "
                            f"--arch all` first")


def release(dist, package_dir: Path, out: Path, version: str = None) -> list[Path]:
    """Writes the release artifacts into out; returns them. dist: a dist folder, or a
    list of them (one per architecture)."""
    project = packages.load("project.json")
    check_placeholders(project, is_tagged())
    plugins = release_plugins([dist] if isinstance(dist, (str, Path)) else dist)
    package_files = sorted(p for p in Path(package_dir).glob("*") if p.suffix in (".deb", ".rpm"))
    if not package_files:
        raise UserError(f"no packages in {package_dir}: run `python -m avkit package` first")
    check_packages_cover(plugins, package_files, Path(package_dir))
    version = version or packages.project_version()
    epoch = packages.source_date_epoch()
    created = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.mkdir(parents=True, exist_ok=True)
    clean(out)
    name = components.policy()["project"]["name"]
    log(f"release {version}: source archive, SBOM, packages, notes, provenance in {out}/")
    source_archive.write(out / f"{name}-{version}.tar.gz", f"{name}-{version}")
    spdx = sbom.write(plugins, version, created, out / f"{name}-{version}.spdx.json")
    sbom.check(spdx, plugins)  # the audit's SBOM check, on the file as written
    for f in package_files:
        shutil.copy2(f, out / f.name)
    (out / "RELEASE-NOTES.md").write_text(notes(version, epoch, plugins, package_files))
    debug_files = [components.debug_file_of(so) for so in plugins]
    outputs = [*sorted(p for p in out.iterdir() if p.is_file()), *plugins, *debug_files]
    provenance.write(out / "provenance.json", version, epoch, outputs, paths.ROOT
                     if all(paths.ROOT in p.parents for p in outputs) else Path("/"))
    sha256sums(out)
    return sorted(p for p in out.iterdir() if p.is_file())
