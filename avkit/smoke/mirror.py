"""The Debian mirror of this machine's own apt configuration.

The smoke test's root filesystem comes from whatever mirror the machine already
uses, read at run time from /etc/apt/sources.list and /etc/apt/sources.list.d/
(one-line `*.list` and deb822 `*.sources` files), so that no mirror name is ever
written into the repository.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from avkit.errors import UserError

APT_ETC = Path("/etc/apt")
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple
    components: tuple
    signed_by: Optional[str]
    origin: str  # file it came from, for messages


def source_files(etc: Path = APT_ETC) -> List[Path]:
    files = []
    main = etc / "sources.list"
    if main.is_file():
        files.append(main)
    d = etc / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".list", ".sources"))
    return files


def _parse_one_line(text: str, origin: str) -> Iterable[Source]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        words = words[1:]
        options = {}
        if words and words[0].startswith("["):
            opts = []
            while words:
                w = words.pop(0)
                opts.append(w)
                if w.endswith("]"):
                    break
            for opt in " ".join(opts).strip("[] ").split():
                if "=" in opt:
                    k, v = opt.split("=", 1)
                    options[k.lower()] = v
        if len(words) < 2:
            continue
        yield Source(words[0], (words[1],), tuple(words[2:]), options.get("signed-by"), origin)


def _parse_deb822(text: str, origin: str) -> Iterable[Source]:
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key:
            fields[key] += " " + raw.strip()
            continue
        if ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    for f in stanzas:
        if f.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in f.get("types", "").split():
            continue
        signed_by = f.get("signed-by")
        if signed_by and not signed_by.startswith("/"):
            signed_by = None  # an inline key block: fall back to the archive keyring
        for uri in f.get("uris", "").split():
            yield Source(
                uri,
                tuple(f.get("suites", "").split()),
                tuple(f.get("components", "").split()),
                signed_by,
                origin,
            )


def sources(etc: Path = APT_ETC) -> List[Source]:
    found = []
    for path in source_files(etc):
        text = path.read_text(errors="replace")
        parse = _parse_deb822 if path.suffix == ".sources" else _parse_one_line
        found += list(parse(text, str(path)))
    return found


def find_mirror(suite: str, etc: Path = APT_ETC):
    """(uri, keyring) of the first enabled `deb` source that carries `suite` with `main`."""
    for src in sources(etc):
        if suite in src.suites and (not src.components or "main" in src.components):
            keyring = Path(src.signed_by) if src.signed_by else DEFAULT_KEYRING
            return src.uri.rstrip("/"), (keyring if keyring.is_file() else None)
    raise UserError(
        f"no Debian mirror for '{suite}' in this machine's apt configuration "
        f"({etc}/sources.list, {etc}/sources.list.d/*.list|*.sources): add a "
        f"`deb` source for {suite} main, or pass --mirror URI"
    )
