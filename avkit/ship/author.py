"""A plugin author's own packages (`avkit package --plugin ... --components ...`): the
author's project, components and licenses in place of this repository's.

The author's components file (docs/author.md, 'Packaging your own plugin') has the project's name, the
path prefix its debug information gives the author's sources, where those sources are,
copyright and license, and the package metadata (maintainer, vendor, homepage,
version). The packaging policy is then the author's project, the SDK's API glue the
author copied (api/avCommon.c and the headers: this repository's, BSD-3-Clause), the
author's own components and this repository's (Boost, zig's runtime...), and the
licenses of all of them: what the author's plugin links is classified as ours is.
"""

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avkit.errors import UserError
from avkit.ship import components

#: The SDK files an author copies (api/): linked in as this repository's component.
SDK_FILES = ("api/avCommon.c", "api/avCommon.h", "api/avPlugin.h", "api/avApi.h")
SDK_COMPONENT = "kerio-avir-plugins-api"
REQUIRED = {
    "project": ("name", "path_prefixes", "sources", "copyright", "license"),
    "package": ("maintainer", "vendor", "homepage", "version"),
}


@dataclass
class AuthorProject:
    """The author's components file, read and checked."""

    file: Path
    data: dict[str, Any]

    @property
    def sources(self) -> Path:
        return (self.file.parent / self.data["project"]["sources"]).resolve()

    @property
    def version(self) -> str:
        return str(self.data["package"]["version"])

    def project_metadata(self, ours: dict[str, Any], plugin: str) -> dict[str, Any]:
        """packaging/project.json with the author's maintainer, vendor, homepage and
        license, and a debug sources package named after the plugin (as its -dbgsym is)."""
        given = {k: v for k, v in self.data["package"].items() if k not in ("version", "changes")}
        return {
            **ours,
            **given,
            "license": self.data["project"]["license"],
            "debugsource_package": f"kerio-avir-{plugin}-debugsource",
            "debugsource_summary": f"Sources of the {plugin} antivirus plugin, for debugging",
        }


def read(file: Path) -> AuthorProject:
    try:
        data = json.loads(Path(file).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the components file {file}: {exc}") from None
    for section, keys in REQUIRED.items():
        missing = [k for k in keys if k not in data.get(section, {})]
        if missing:
            raise UserError(
                f'{file}: "{section}" needs {", ".join(missing)} '
                f"(docs/author.md, 'Packaging your own plugin' has an example)"
            )
    author = AuthorProject(Path(file).resolve(), data)
    if not author.sources.is_dir():
        raise UserError(
            f"{file}: project.sources {author.sources} is not a folder: name the "
            f"folder of the plugin's sources, relative to {file}"
        )
    return author


def sdk_component() -> dict[str, Any]:
    ours = components.policy()["project"]
    return {
        "name": SDK_COMPONENT,
        "title": "the Kerio antivirus plugin API glue (api/ of kerio-avir-plugins)",
        "segments": [f"/{f}" for f in SDK_FILES],
        "version_from": "kerio-avir-plugins",
        "dep5_files": "api/*",
        "copyright": ours["copyright"],
        "license": ours["license"],
    }


def _author_licenses(author: AuthorProject) -> dict[str, Any]:
    """The author's license texts, read relative to the working folder (the copyright file
    names where each text is from: no machine's path)."""
    out = {}
    for license_id, spec in author.data.get("licenses", {}).items():
        parts = []
        for part in spec["text"]:
            path = author.file.parent / part["path"]
            if not path.is_file():
                raise UserError(f"{author.file}: license text of {license_id} missing: {path}")
            parts.append({**part, "from": "system", "path": os.path.relpath(path)})
        out[license_id] = {**spec, "text": parts}
    return out


def merged_policy(author: AuthorProject) -> dict[str, Any]:
    ours = components.policy()
    project = {k: author.data["project"][k] for k in REQUIRED["project"] if k != "sources"}
    project["dep5_files"] = author.data["project"].get("dep5_files", "*")
    theirs = _author_licenses(author)
    shared = sorted(set(theirs) & set(ours["licenses"]))
    if shared:
        raise UserError(
            f"{author.file}: the license {', '.join(shared)} is one the SDK's "
            f"components already have, with their own text: name yours "
            f'"LicenseRef-<name>" or use another SPDX identifier'
        )
    licenses = {**theirs, **ours["licenses"]}
    if project["license"] not in licenses:
        raise UserError(
            f"{author.file}: the project's license {project['license']} has no "
            f'entry in "licenses" (its text)'
        )
    return {
        "project": project,
        "components": [sdk_component(), *author.data.get("components", []), *ours["components"]],
        "licenses": licenses,
    }


@contextmanager
def policy(author: AuthorProject) -> Iterator[AuthorProject]:
    """components.py reads the author's merged policy while this lasts."""
    merged = merged_policy(author)
    previous = components.COMPONENTS_FILE
    with tempfile.TemporaryDirectory(prefix="avkit-author-") as tmp:
        file = Path(tmp) / "components.json"
        file.write_text(json.dumps(merged))
        _use(file)
        try:
            yield author
        finally:
            _use(previous)


def _use(file: Path) -> None:
    components.COMPONENTS_FILE = file
    components.policy.cache_clear()
    components._linked.cache_clear()


def fix_sdk_entry(linked: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """The SDK glue's version (this repository's: `version`) and origin; components.py
    knows the toolchains' only."""
    return [
        {
            **c,
            "version": version,
            "origin": "copied from kerio-avir-plugins into the author's folder",
        }
        if c["name"] == SDK_COMPONENT
        else c
        for c in linked
    ]


def license_ids(author: AuthorProject) -> list[str]:
    """The author's SPDX identifiers, for rpmlint's list of valid licenses."""
    return sorted({author.data["project"]["license"], *author.data.get("licenses", {})})
