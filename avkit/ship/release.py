"""The release: what `nox -s release` leaves in dist/release/ after builds, audit,
tests, packages and the smoke test.

    kerio-avir-plugins-<version>.tar.gz   the sources (source_archive.py, reproducible)
    kerio-avir-plugins-<version>.spdx.json the SBOM (sbom.py), checked against the DWARF
    provenance.json                        commit, dirty state, tools, input and output hashes
    RELEASE-NOTES.md                       the version's entry of packaging/changelog.json
    *.deb, *.rpm, dists/, yum/             the packages and their signed apt and yum
                                           repositories, as dist/packages/ has them
    signing-key.asc, signing-key.gpg       the public key (armored, binary)
    kerio-avir-plugins.list, .repo         the apt line and yum file a site copies
    SHA256SUMS, SHA256SUMS.asc             over all of the above, and its signature

The folder is verifiable on its own (docs/release.md, "Verifying a release"). A
snapshot may be unsigned: then its notes say so and its archive and SBOM are named
<name>-<version>-UNSIGNED.

Every release architecture's plugins (dist/i386/, dist/x86_64/: cmake/architectures.json)
are in the SBOM, the provenance and the notes, and their packages in the folder: a
release whose packages lack an architecture it ships is refused.

A tagged release (HEAD carries the tag VERSION or vVERSION) is refused, before
anything builds (preflight()), while packaging/project.json or repositories.json have
placeholders (packaging/placeholders.json), without a signing key, from a tree with
uncommitted changes (named), or without its changelog entry; a snapshot only warns.
The version is decided once (version.project_version()); packages of another version
are refused.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from avkit import elf, facts, paths
from avkit.errors import UserError
from avkit.ship import (
    audit,
    components,
    dwarf_sources,
    packages,
    provenance,
    repositories,
    sbom,
    source_archive,
)
from avkit.ship.version import ARCHIVE_VERSION_FILE, check_version, project_version

PLACEHOLDERS_FILE = paths.PACKAGING / "placeholders.json"
PROJECT_FILE = paths.PACKAGING / "project.json"
REPOSITORIES_FILE = paths.PACKAGING / "repositories.json"
OUTPUT_PATTERNS = [
    "*.tar.gz",
    "*.spdx.json",
    "provenance.json",
    "RELEASE-NOTES.md",
    "*.deb",
    "*.rpm",
    "SHA256SUMS",
    "SHA256SUMS.asc",
    "dists",
    "yum",
    "signing-key.asc",
    "signing-key.gpg",
    "*.list",
    "*.repo",
]
#: what of the package folder the release publishes besides the packages (its own
#: SHA256SUMS replaces the folder's)
REPOSITORY_FILES = ["dists", "yum", "signing-key.asc", "signing-key.gpg", "*.list", "*.repo"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- tagged release or snapshot ----------------------------------------------------------


def is_tagged(root: Path = paths.ROOT) -> bool:
    """Whether HEAD carries the tag of the VERSION file (VERSION or vVERSION)."""
    version = (Path(root) / "VERSION").read_text().strip()
    r = subprocess.run(
        ["git", "-C", str(root), "tag", "--points-at", "HEAD"], capture_output=True, text=True
    )
    return bool({version, f"v{version}"} & set(r.stdout.split()))


def reserved_host(value: str) -> str:
    """The reserved example domain a URL or address names, or ""."""
    data = json.loads(PLACEHOLDERS_FILE.read_text())
    for host in re.findall(r"(?:@|//)([A-Za-z0-9.-]+)", value):
        host = host.lower().rstrip(".")
        for reserved in data["reserved_domains"]:
            if host == reserved or host.endswith("." + reserved):
                return reserved
    return ""


def placeholders(
    project: dict[str, str], repos: dict[str, object] | None = None
) -> list[tuple[str, str, str]]:
    """[(file: field, value, why)] for each field still holding a placeholder: a reserved
    example domain in project.json's homepage or maintainer, or repositories.json's
    base_url that is a reserved domain or the default it ships with."""
    data = json.loads(PLACEHOLDERS_FILE.read_text())
    found = []
    for field in data["fields"]:
        value = project.get(field, "")
        reserved = reserved_host(value)
        if reserved:
            found.append(
                (
                    f"project.json: {field}",
                    value,
                    f"names {reserved!r}, a reserved example domain: fill in "
                    f"{data['fields'][field]}",
                )
            )
    if repos is not None:
        url = str(repos.get("base_url", ""))
        reserved = reserved_host(url)
        if reserved or url in data.get("default_base_urls", []) or not url:
            found.append(
                (
                    "repositories.json: base_url",
                    url,
                    "is a placeholder: fill in the URL the published dist/release/ "
                    "folder is served from (https://...)",
                )
            )
    return found


def check_placeholders(
    project: dict[str, str], tagged: bool, repos: dict[str, object] | None = None
) -> None:
    found = placeholders(project, repos)
    if not found:
        return
    lines = [f"  packaging/{f} = {v!r} {why}" for f, v, why in found]
    if tagged:
        raise UserError("a tagged release cannot carry placeholders:\n" + "\n".join(lines))
    log(
        "avkit release: warning: snapshot with placeholders (a tagged release is "
        "refused):\n" + "\n".join(lines)
    )


def check_clean_tree(tagged: bool) -> None:
    """A tagged release is `git archive` of its commit: a tree with changes to tracked
    files would build something else than what the archive holds."""
    changed = provenance.changed_paths()
    if tagged and changed:
        raise UserError(
            "a tagged release must be built from its commit unchanged; "
            "commit or revert: " + ", ".join(changed)
        )


def check_changelog(version: str, tagged: bool) -> None:
    entries = json.loads((paths.PACKAGING / "changelog.json").read_text())["entries"]
    if tagged and not any(e["version"] == version for e in entries):
        raise UserError(
            f"packaging/changelog.json has no entry for {version}: add "
            f'{{"version": "{version}", "date": "...Z", "changes": [...]}} on top'
        )


def signing_key_given(sign_key: str | None) -> bool:
    return bool(sign_key or os.environ.get("AVKIT_SIGNING_KEY"))


def check_signing(tagged: bool, sign_key: str | None) -> None:
    if tagged and not signing_key_given(sign_key):
        raise UserError(
            "a tagged release must be signed: give --sign-key KEY.asc (or the "
            "armored key in AVKIT_SIGNING_KEY); docs/release.md says how to "
            "make one"
        )
    if not tagged and not signing_key_given(sign_key):
        log("avkit release: warning: unsigned snapshot (its files are named -UNSIGNED)")


def release_version(version: str | None) -> str:
    """The one version of the release: the computed one; a --version that differs from
    a tag's version is refused."""
    computed = project_version()
    if version and is_tagged() and version != computed:
        raise UserError(f"--version {version} disagrees with the tag of HEAD ({computed})")
    return version or computed


def preflight(version: str | None, sign_key: str | None, key_checked_later: bool = False) -> str:
    """Everything that can refuse a release, before anything builds. Returns the version.
    key_checked_later: a CI build job, whose signing job checks the key."""
    tagged = is_tagged()
    version = release_version(version)
    check_version(version)
    check_placeholders(
        packages.load("project.json"), tagged, json.loads(REPOSITORIES_FILE.read_text())
    )
    if not key_checked_later:
        check_signing(tagged, sign_key)
    check_clean_tree(tagged)
    check_changelog(version, tagged)
    log(f"avkit release: {'tagged release' if tagged else 'snapshot'} {version}: checks passed")
    return version


# --- the pieces --------------------------------------------------------------------------


def plugin_arch(so: Path) -> str:
    return facts.arch_of(elf.header(so)) or "?"


def architecture_label(arch: str) -> str:
    """ "i386, 32-bit: i386 .deb, i686 .rpm" for the notes."""
    a = facts.architecture(arch)
    return f"{arch}, {a['elf_class']}-bit: {a['deb']} .deb, {a['rpm']} .rpm"


def notes(version: str, epoch: int, plugins: list, package_files: list, signed: bool = True) -> str:
    """RELEASE-NOTES.md: the changelog entry of the version, what each plugin of each
    architecture links, the packages."""
    entry = packages.changelog_entries(version, epoch)[0]
    name = components.policy()["project"]["name"]
    out = [f"# {name} {version}", "", f"Released {entry['date'][:10]}.", ""]
    out += [f"- {change}" for change in entry["changes"]]
    out += ["", "## What each plugin links", ""]
    for so in plugins:
        parts = ", ".join(
            f"{c['name']} {c['version']} ({c['license']})" for c in components.linked(so)
        )
        out.append(f"- `{so.name}` ({architecture_label(plugin_arch(so))}): {parts}")
    out += ["", "## Packages", ""] + [f"- `{f.name}`" for f in sorted(package_files)]
    if signed:
        out += [
            "",
            "Checksums in `SHA256SUMS`, signed in `SHA256SUMS.asc` by the key "
            "`signing-key.asc`; the apt and yum repositories are signed by it too. "
            "The SBOM (SPDX 2.3) and the provenance are beside these notes.",
            "",
        ]
    else:
        out += [
            "",
            "**UNSIGNED snapshot**: nothing here is signed (no `SHA256SUMS.asc`, "
            "no signed repositories); `SHA256SUMS` only detects damage. The SBOM "
            "(SPDX 2.3) and the provenance are beside these notes.",
            "",
        ]
    return "\n".join(out)


def clean(out: Path) -> None:
    for pattern in OUTPUT_PATTERNS:
        for p in out.glob(pattern):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def release_plugins(dists: list) -> list[Path]:
    """Every plugin of every dist folder (one per architecture)."""
    plugins = []
    for dist in dists:
        found = audit.plugins_in(dist)
        if not found:
            raise UserError(
                f"no avir_*.so in {dist}: build first (./nox -s build-i386, ./nox -s build-x86_64)"
            )
        plugins += found
    return plugins


def check_packages_cover(plugins: list, package_files: list, package_dir: Path) -> None:
    """Each architecture of the released plugins has its packages in the folder."""
    names = [f.name for f in package_files]
    for arch in sorted({plugin_arch(so) for so in plugins}):
        a = facts.architecture(arch)
        if not [n for n in names if n.endswith((f"_{a['deb']}.deb", f".{a['rpm']}.rpm"))]:
            raise UserError(
                f"no {a['deb']} .deb nor {a['rpm']} .rpm in {package_dir}, but "
                f"the release ships {arch} plugins: `python -m avkit package "
                f"--arch all` first"
            )


def package_version(f: Path) -> str:
    """The upstream version a .deb or .rpm carries (its own metadata, not its name)."""
    if f.suffix == ".deb":
        cmd = ["dpkg-deb", "-f", str(f), "Version"]
    else:
        cmd = ["rpm", "-qp", "--nosignature", "--nodigest", "--qf", "%{VERSION}", str(f)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"cannot read the version of {f}: {r.stderr.strip()}")
    full = r.stdout.strip()
    return full.rsplit("-", 1)[0] if f.suffix == ".deb" else full


def check_package_versions(package_files: list[Path], version: str) -> None:
    wrong = [f"{f.name} ({v})" for f in package_files if (v := package_version(f)) != version]
    if wrong:
        raise UserError(
            f"the release is {version} but these packages are not: "
            + ", ".join(wrong)
            + "; rebuild them (`python -m avkit package "
            "--arch all`) or release their version"
        )


def check_packages_signed(package_dir: Path, key_file: str) -> None:
    """The package folder's apt and yum repositories are signed by the release's key."""
    suite = json.loads(REPOSITORIES_FILE.read_text())["suite"]
    signed = [
        package_dir / "dists" / suite / "InRelease",
        *sorted(package_dir.glob("yum/*/repodata/repomd.xml.asc")),
    ]
    if not signed[0].is_file() or len(signed) < 2:
        raise UserError(
            f"{package_dir} is not signed (no InRelease or repomd.xml.asc): "
            f"`python -m avkit package --arch all --sign-key KEY.asc` first"
        )
    with repositories.gpg_home(key_file) as gpg, tempfile.TemporaryDirectory() as tmp:
        keyring = Path(tmp) / "key.gpg"
        gpg(["--export", "--output", keyring])
        r = subprocess.run(
            ["gpgv", "--keyring", str(keyring), str(signed[0])], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise UserError(
                f"{signed[0]} is not signed by the release's key: sign the "
                f"packages and the release with the same key"
            )


def copy_repositories(package_dir: Path, out: Path) -> None:
    """The signed apt and yum repositories, the public key and the site files."""
    for pattern in REPOSITORY_FILES:
        for p in sorted(package_dir.glob(pattern)):
            if p.is_dir():
                shutil.copytree(p, out / p.name)
            else:
                shutil.copy2(p, out / p.name)


def release(
    dist, package_dir: Path, out: Path, version: str | None = None, sign_key: str | None = None
) -> list[Path]:
    """Writes the release artifacts into out; returns them. dist: a dist folder, or a
    list of them (one per architecture)."""
    version = preflight(version, sign_key)
    package_dir = Path(package_dir)
    plugins = release_plugins([dist] if isinstance(dist, (str, Path)) else dist)
    package_files = sorted(p for p in package_dir.glob("*") if p.suffix in (".deb", ".rpm"))
    if not package_files:
        raise UserError(f"no packages in {package_dir}: run `python -m avkit package` first")
    check_packages_cover(plugins, package_files, package_dir)
    check_package_versions(package_files, version)
    key, temporary = packages.signing_key(sign_key)
    try:
        if key:
            check_packages_signed(package_dir, key)
        return write_release(plugins, package_dir, package_files, out, version, key)
    finally:
        if temporary:
            os.unlink(key)


def write_release(
    plugins: list[Path],
    package_dir: Path,
    package_files: list[Path],
    out: Path,
    version: str,
    key: str,
) -> list[Path]:
    epoch = packages.source_date_epoch()
    created = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.mkdir(parents=True, exist_ok=True)
    clean(out)
    name = components.policy()["project"]["name"]
    label = f"{name}-{version}" + ("" if key else "-UNSIGNED")
    log(f"release {version}: source archive, SBOM, packages, notes, provenance in {out}/")
    source_archive.write(
        out / f"{label}.tar.gz", f"{name}-{version}", extra={ARCHIVE_VERSION_FILE: version + "\n"}
    )
    spdx = sbom.write(plugins, version, created, out / f"{label}.spdx.json", package_files)
    sbom.check(spdx, plugins)  # the audit's SBOM check, on the file as written
    for f in package_files:
        shutil.copy2(f, out / f.name)
    copy_repositories(package_dir, out)
    (out / "RELEASE-NOTES.md").write_text(
        notes(version, epoch, plugins, package_files, signed=bool(key))
    )
    debug_files = [dwarf_sources.debug_file_of(so) for so in plugins]
    outputs = [*sorted(p for p in out.iterdir() if p.is_file()), *plugins, *debug_files]
    provenance.write(
        out / "provenance.json",
        version,
        epoch,
        outputs,
        paths.ROOT if all(paths.ROOT in p.parents for p in outputs) else Path("/"),
    )
    sums = packages.sha256sums(out)
    if key:
        repositories.sign_checksums(sums, key)
    return sorted(p for p in out.rglob("*") if p.is_file())
