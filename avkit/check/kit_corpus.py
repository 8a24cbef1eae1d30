"""The plugin test kit's corpus: the vendor kit's files plus our own, and a manifest.

`generate(folder)` writes the files and `manifest.json`, which lists every case
with the verdicts each engine may give:

    {"version": 1, "seed": 1, "stream_limit": 31457280,
     "files": [{"name": "eicar.zip", "path": "/abs/eicar.zip",
                "expect": {"default": ["VIRUS_FOUND"], "sample": ["OK"], "clam": ["VIRUS_FOUND"],
                           "icap": ["VIRUS_FOUND"]},
                "why": "EICAR inside a zip"}, ...]}

Engines: "sample" (avir_sample finds only the raw EICAR string), "clam" (avir_clam
through clamd, which unpacks archives and flags encrypted ones), "icap" (avir_icap
through c-icap's virus_scan asking that clamd), and "default" (the vendor kit's
table, for any other plugin). An engine's verdicts differ from the default only
where that engine legitimately answers otherwise; they are data here, never branches
in the kit. Everything is derived from the
seed, so two runs give the same bytes; the one exception is eicarpwd.zip, whose
12-byte encryption header `zip -P` draws at random (its verdict does not depend on it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from avkit.errors import UserError
from avkit.facts import EICAR

DEFAULT_STREAM_LIMIT = 30 * 1024 * 1024
DEFAULT_SEED = 1
ENGINES = ("default", "sample", "clam", "icap")
ZIP_DATE = (2012, 1, 1, 0, 0, 0)
UTF8_NAME = "eicar-\u00fcn\u00efc\u00f8d\u00e9-\u6587\u4ef6.com"
FORMAT_NAME = "eicar-a%s%s%s%s%n.com"  # a plugin that logs it as a format crashes


def engine_for(plugin_name: str) -> str:
    """avir_sample -> sample, avir_clam -> clam, avir_icap -> icap, anything else -> default."""
    short = plugin_name.removeprefix("avir_")
    return short if short in ENGINES else "default"


def _zip_bytes(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED  # so the raw EICAR string is not visible
        info.external_attr = 0o644 << 16
        z.writestr(info, data)
    return buf.getvalue()


def _random_file(path: Path, size: int, rng: random.Random):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = rng.randbytes(min(left, 1 << 20))
            f.write(chunk.replace(b"EICAR", b"eicar"))
            left -= len(chunk)


def _encrypted_zip(folder: Path) -> None:
    zip_cmd = shutil.which("zip")
    if zip_cmd is None:
        raise UserError(
            "the zip command is missing: apt-get install zip "
            "(Python's zipfile cannot write encrypted archives)"
        )
    tmp = folder / ".pwd"
    tmp.mkdir(exist_ok=True)
    member = tmp / "eicar.com"
    member.write_bytes(EICAR)
    os.utime(member, (1325376000, 1325376000))
    out = folder / "eicarpwd.zip"
    out.unlink(missing_ok=True)
    subprocess.run(
        [zip_cmd, "-q", "-X", "-P", "infected", str(out), "eicar.com"], cwd=tmp, check=True
    )
    shutil.rmtree(tmp)


def _vendor_cases(folder: Path, rng: random.Random, stream_limit: int, case) -> None:
    """The files of the vendor's kit, with the verdicts its README expects."""
    _random_file(folder / "clean.exe", 64 * 1024, rng)
    case("clean.exe", "random bytes", ["OK"])
    (folder / "eicar.com").write_bytes(EICAR)
    case("eicar.com", "the 68-byte EICAR test string", ["VIRUS_FOUND"])
    (folder / "eicar.tmp").write_bytes(EICAR)
    case("eicar.tmp", "EICAR under another extension", ["VIRUS_FOUND"])
    (folder / "eicar.zip").write_bytes(_zip_bytes("eicar.com", EICAR))
    case("eicar.zip", "EICAR deflated inside a zip", ["VIRUS_FOUND"], sample=["OK"])
    _encrypted_zip(folder)
    case("eicarpwd.zip", "EICAR in a password-protected zip", ["IMPOSSIBLE"], sample=["OK"])
    (folder / "empty.file").write_bytes(b"")
    case("empty.file", "0 bytes", ["OK"])
    _random_file(folder / "huge.file", 2 * stream_limit, rng)
    # clam: the kit's clamd (AlertExceedsMax, MaxFileSize = StreamMaxLength) refuses it
    # in both of the plugin's modes, streamed or passed as a descriptor; icap: the same
    # clamd behind c-icap's avscan service (no size limit of its own) says the same.
    case(
        "huge.file",
        f"twice the stream limit ({2 * stream_limit} bytes)",
        ["OK", "IMPOSSIBLE"],
        sample=["OK"],
        clam=["IMPOSSIBLE"],
        icap=["IMPOSSIBLE"],
    )
    (folder / "nonexisting.file").unlink(missing_ok=True)
    case("nonexisting.file", "does not exist", ["FAILED"])


def _our_cases(folder: Path, rng: random.Random, stream_limit: int, case) -> None:
    """Cases the vendor's kit misses: nesting, names, unreadable paths, links, limits."""
    inner = _zip_bytes("eicar.com", EICAR)
    (folder / "eicar-nested.zip").write_bytes(_zip_bytes("inner.zip", inner))
    case("eicar-nested.zip", "EICAR two zips deep", ["VIRUS_FOUND"], sample=["OK"])
    (folder / UTF8_NAME).write_bytes(EICAR)
    case(UTF8_NAME, "EICAR under a UTF-8 file name", ["VIRUS_FOUND"])
    (folder / FORMAT_NAME).write_bytes(EICAR)
    case(FORMAT_NAME, "printf directives in the file name: never a format", ["VIRUS_FOUND"])
    # As root, mode 000 does not stop open(2) or read(2), so "unreadable" is made
    # honest another way: a directory opens, but read(2) fails with EISDIR.
    unreadable = folder / "unreadable.dir"
    unreadable.mkdir(exist_ok=True)
    case(
        "unreadable.dir",
        "a path whose content cannot be read (a directory: EISDIR)",
        ["FAILED"],
        clam=["FAILED", "IMPOSSIBLE"],
    )  # icap: a non-regular file is FAILED
    if os.geteuid() != 0:
        p = folder / "unreadable.file"
        p.write_bytes(EICAR)
        p.chmod(0)
        case("unreadable.file", "mode 000 (not run as root)", ["FAILED"])
    link = folder / "eicar-link.com"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("eicar.com")
    case("eicar-link.com", "a symlink to eicar.com", ["VIRUS_FOUND"])
    _random_file(folder / "just-over-limit.file", stream_limit + 1, rng)
    case(
        "just-over-limit.file",
        f"one byte over the stream limit ({stream_limit + 1} bytes)",
        ["OK", "IMPOSSIBLE"],
        sample=["OK"],
        clam=["IMPOSSIBLE"],
        icap=["IMPOSSIBLE"],
    )
    with open(folder / "eicar-at-limit.file", "wb") as f:
        f.write(b"\0" * (stream_limit - len(EICAR)))
        f.write(EICAR)
    case("eicar-at-limit.file", "EICAR in the last bytes below the stream limit", ["VIRUS_FOUND"])


def generate(
    folder, seed: int = DEFAULT_SEED, stream_limit: int = DEFAULT_STREAM_LIMIT
) -> dict[str, Any]:
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    cases = []

    def case(name, why, default, **engines):
        """A file and its verdicts: `default`, and per engine where it differs."""
        unknown = set(engines) - set(ENGINES)
        if unknown:
            raise ValueError(f"{name}: no engine {', '.join(sorted(unknown))}")
        cases.append(
            {
                "name": name,
                "path": str(folder / name),
                "why": why,
                "expect": {
                    "default": default,
                    **{e: engines.get(e) or default for e in ENGINES[1:]},
                },
            }
        )

    _vendor_cases(folder, rng, stream_limit, case)
    _our_cases(folder, rng, stream_limit, case)
    manifest = {"version": 1, "seed": seed, "stream_limit": stream_limit, "files": cases}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


# ---------- the author's own samples ----------

VERDICTS = ("OK", "VIRUS_FOUND", "VIRUS_CURED", "IMPOSSIBLE", "FAILED")


def load_samples(path) -> dict[str, Any]:
    """The author's manifest (JSON, or TOML by its .toml suffix):

        {"archives": false,
         "samples": [{"file": "mine-test.txt", "expect": "VIRUS_FOUND", "name": "^Mine\\."},
                     {"file": "harmless.txt", "expect": "OK"}]}

    file: relative to the manifest; expect: the verdict; name: an optional regular
    expression the virus name must match; archives: true when the engine opens zips
    (the kit then also hides each sample in a zip and two zips deep)."""
    import re

    path = Path(path).resolve()
    if not path.is_file():
        raise UserError(
            f'{path}: no such samples manifest (see docs/author.md, "Your own engine\'s samples")'
        )
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(
            f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}"
        ) from e
    samples = data.get("samples") if isinstance(data, dict) else None
    if not samples or not isinstance(samples, list):
        raise UserError(
            f'{path}: want a non-empty "samples" list of {{"file", "expect"[, "name"]}}'
        )
    out = []
    for i, s in enumerate(samples):
        where = f"{path}: samples[{i}]"
        if not isinstance(s, dict) or not s.get("file") or s.get("expect") not in VERDICTS:
            raise UserError(
                f'{where}: want "file" and "expect" (one of {", ".join(VERDICTS)}), got {s!r}'
            )
        file = (path.parent / s["file"]).resolve()
        if not file.is_file():
            raise UserError(f"{where}: {file} does not exist")
        if s.get("name") is not None:
            try:
                re.compile(s["name"])
            except re.error as e:
                raise UserError(
                    f"{where}: name {s['name']!r} is not a regular expression: {e}"
                ) from e
        out.append({"file": file, "expect": s["expect"], "name": s.get("name")})
    return {"archives": bool(data.get("archives", False)), "samples": out, "source": str(path)}


def _sample_cases(
    folder: Path, sample: dict, index: int, archives: bool, stream_limit: int, case
) -> None:
    """The hostile corpus around one sample: odd names, a symlink, a large file, and
    nested zips when the engine opens archives. Each expects the sample's verdict."""
    data = sample["file"].read_bytes()
    stem = f"s{index}-{sample['file'].name}"
    expect, name = [sample["expect"]], sample["name"]
    variants = [
        (stem, "the sample as given"),
        (
            f"s{index}-\u00fcn\u00efc\u00f8d\u00e9-\u6587\u4ef6-{sample['file'].name}",
            "the sample under a UTF-8 file name",
        ),
        (
            f"s{index}-a%s%s%n-{sample['file'].name}",
            "the sample under a name with printf directives",
        ),
    ]
    for file, why in variants:
        (folder / file).write_bytes(data)
        case(file, why, expect, vir_name=name, sample=str(sample["file"]))
    link = folder / f"{stem}.link"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(stem)
    case(link.name, "a symlink to the sample", expect, vir_name=name, sample=str(sample["file"]))
    if len(data) < stream_limit:
        padded = f"{stem}.padded"
        with open(folder / padded, "wb") as f:
            f.write(data)
            f.write(b"\0" * (stream_limit - 1 - len(data)))
        case(
            padded,
            f"the sample followed by zeros, {stream_limit - 1} bytes (one under the stream limit)",
            expect,
            vir_name=name,
            sample=str(sample["file"]),
        )
    if archives:
        inner = _zip_bytes(sample["file"].name, data)
        (folder / f"{stem}.zip").write_bytes(inner)
        case(
            f"{stem}.zip",
            "the sample deflated in a zip",
            expect,
            vir_name=name,
            sample=str(sample["file"]),
        )
        (folder / f"{stem}-nested.zip").write_bytes(_zip_bytes("inner.zip", inner))
        case(
            f"{stem}-nested.zip",
            "the sample two zips deep",
            expect,
            vir_name=name,
            sample=str(sample["file"]),
        )


#: the corpus's cases that hold no EICAR: kept around the author's samples
NEUTRAL_CASES = (
    "clean.exe",
    "empty.file",
    "huge.file",
    "nonexisting.file",
    "unreadable.dir",
    "unreadable.file",
    "just-over-limit.file",
)


def generate_with_samples(
    folder, samples: dict, seed: int = DEFAULT_SEED, stream_limit: int = DEFAULT_STREAM_LIMIT
) -> dict[str, Any]:
    """The corpus for an engine of the author's own: the cases without EICAR (clean,
    empty, over the limit, missing, unreadable) and the hostile variants of each of the
    author's samples, judged by the author's expectations (engine "default")."""
    folder = Path(folder).resolve()
    if folder.exists():
        shutil.rmtree(folder)
    base = generate(folder, seed=seed, stream_limit=stream_limit)
    cases = [c for c in base["files"] if c["name"] in NEUTRAL_CASES]
    for c in base["files"]:
        if c["name"] not in NEUTRAL_CASES:
            p = folder / c["name"]
            if p.is_symlink() or p.is_file():
                p.unlink()

    def case(name, why, expect, vir_name=None, sample=None):
        cases.append(
            {
                "name": name,
                "path": str(folder / name),
                "why": why,
                "expect": {e: expect for e in ENGINES},
                "vir_name": vir_name,
                "sample": sample,
            }
        )

    for i, s in enumerate(samples["samples"], 1):
        _sample_cases(folder, s, i, samples["archives"], stream_limit, case)
    probe = next((c["name"] for c in cases if c.get("sample")), None)
    digest = hashlib.sha256(json.dumps([str(s["file"]) for s in samples["samples"]]).encode())
    manifest = {
        "version": 1,
        "seed": seed,
        "stream_limit": stream_limit,
        "files": cases,
        "probe": probe,
        "samples": samples["source"],
        "digest": digest.hexdigest()[:16],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def load(folder) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not path.exists():
        raise UserError(
            f"{path} is missing: run `python -m avkit kit generate-test-data {folder}` first"
        )
    return json.loads(path.read_text())
