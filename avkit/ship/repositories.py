"""Repository metadata for a folder of packages, so a site can point apt or yum at it.

apt: a flat repository (`deb [arch=i386] file:/srv/kerio ./`): Packages, Packages.gz
and Release written here (the control fields come from `dpkg-deb -f`), dated
SOURCE_DATE_EPOCH so that the same packages give the same files. yum: `createrepo_c`
writes repodata/. With a signing key, Release gets InRelease and Release.gpg,
repomd.xml gets repomd.xml.asc, and the public key is exported as signing-key.asc.
"""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

from avkit import paths, prereqs
from avkit.errors import UserError

ORIGIN = "Kerio antivirus plugins"
HASHES = (("MD5sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"))


def _digests(data: bytes) -> dict:
    return {field: hashlib.new(algo, data).hexdigest() for field, algo in HASHES}


def packages_index(folder: Path) -> str:
    """The Packages file: each .deb's control fields plus Filename, Size and hashes."""
    prereqs.require_commands("dpkg-deb")
    stanzas = []
    for deb in sorted(folder.glob("*.deb")):
        r = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True)
        if r.returncode != 0:
            raise UserError(f"dpkg-deb cannot read {deb}: {r.stderr.strip()}")
        data = deb.read_bytes()
        fields = r.stdout.rstrip("\n")
        extra = [f"Filename: ./{deb.name}", f"Size: {len(data)}"]
        extra += [f"{field}: {value}" for field, value in _digests(data).items()]
        # Filename & co. go after the control fields, before Description, like apt-ftparchive.
        lines = fields.split("\n")
        at = next((i for i, line in enumerate(lines) if line.startswith("Description:")), len(lines))
        stanzas.append("\n".join(lines[:at] + extra + lines[at:]))
    return "\n\n".join(stanzas) + "\n"


def release_file(folder: Path, epoch: int) -> str:
    files = ["Packages", "Packages.gz"]
    archs = sorted({line.split(": ", 1)[1] for line in (folder / "Packages").read_text().splitlines()
                    if line.startswith("Architecture: ")})
    out = [f"Origin: {ORIGIN}", f"Label: {ORIGIN}", "Suite: stable", "Codename: stable",
           f"Architectures: {' '.join(archs)}",
           f"Date: {format_datetime(datetime.fromtimestamp(epoch, tz=timezone.utc), usegmt=True)}",
           "Acquire-By-Hash: no"]
    for field, algo in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        out.append(f"{field}:")
        for name in files:
            data = (folder / name).read_bytes()
            out.append(f" {hashlib.new(algo, data).hexdigest()} {len(data):>8} {name}")
    return "\n".join(out) + "\n"


def apt_repository(folder: Path, epoch: int, key_file: str = "") -> None:
    index = packages_index(folder).encode()
    (folder / "Packages").write_bytes(index)
    buf = gzip.compress(index, compresslevel=9, mtime=0)
    (folder / "Packages.gz").write_bytes(buf)
    (folder / "Release").write_text(release_file(folder, epoch))
    if key_file:
        with gpg_home(key_file) as gpg:
            gpg(["--clearsign", "--output", folder / "InRelease", folder / "Release"])
            gpg(["--detach-sign", "--armor", "--output", folder / "Release.gpg",
                 folder / "Release"])
            export_public_key(gpg, folder)
        site_config(folder)


def yum_repository(folder: Path, epoch: int, key_file: str = "") -> None:
    exe = shutil.which("createrepo_c")
    if exe is None:
        raise UserError("createrepo_c not found: `apt-get install createrepo-c`")
    # primary.xml records each rpm's mtime and repomd.xml its own time: pin both.
    for f in folder.glob("*.rpm"):
        os.utime(f, (epoch, epoch))
    r = subprocess.run([exe, "--quiet", "--no-database", "--simple-md-filenames",
                        "--revision", str(epoch), "--set-timestamp-to-revision", str(folder)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"createrepo_c failed on {folder}: {r.stderr.strip()}")
    if key_file:
        with gpg_home(key_file) as gpg:
            repomd = folder / "repodata" / "repomd.xml"
            gpg(["--detach-sign", "--armor", "--output", f"{repomd}.asc", repomd])
            export_public_key(gpg, folder)
        site_config(folder)


def export_public_key(gpg, folder: Path) -> None:
    gpg(["--export", "--armor", "--output", folder / "signing-key.asc"])
    gpg(["--export", "--output", folder / "signing-key.gpg"])


def site_config(folder: Path) -> None:
    """The apt sources line and the yum .repo file a site copies, both trusting only the
    project's key (only for a signed folder: an unsigned one is for tests)."""
    cfg = json.loads((paths.ROOT / "packaging" / "repositories.json").read_text())
    fill = dict(cfg)
    (folder / f"{cfg['id']}.list").write_text(
        "".join(line.format(**fill) + "\n" for line in cfg["apt_list"]))
    (folder / f"{cfg['id']}.repo").write_text(
        "".join(line.format(**fill) + "\n" for line in cfg["yum_repo"]))


def sign_checksums(sums: Path, key_file: str) -> Path:
    """SHA256SUMS.asc, a detached armored signature: `gpgv --keyring ./signing-key.gpg
    SHA256SUMS.asc SHA256SUMS && sha256sum -c SHA256SUMS`."""
    target = sums.with_name(sums.name + ".asc")
    with gpg_home(key_file) as gpg:
        gpg(["--detach-sign", "--armor", "--output", target, sums])
    return target


class gpg_home:
    """A throwaway GNUPGHOME holding only the signing key; yields a gpg runner."""

    def __init__(self, key_file: str):
        self.key_file = key_file

    def __enter__(self):
        prereqs.require_commands("gpg")
        self.tmp = tempfile.TemporaryDirectory(prefix="avkit-gpg-")
        home = self.tmp.name
        os.chmod(home, 0o700)
        passphrase = os.environ.get("AVKIT_SIGNING_PASSPHRASE", "")

        def gpg(args):
            cmd = ["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback"]
            if passphrase:
                cmd += ["--passphrase-fd", "0"]  # on stdin: never in argv (ps) nor a file
            cmd += [str(a) for a in args]
            r = subprocess.run(cmd, input=passphrase if passphrase else None,
                               stdin=None if passphrase else subprocess.DEVNULL,
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise UserError(f"gpg {' '.join(str(a) for a in args[:2])} failed: "
                                f"{r.stderr.strip()}")
            return r

        gpg(["--import", self.key_file])
        return gpg

    def __exit__(self, *exc):
        # gpg-agent may still run for this home: ask it to stop before removing the folder.
        subprocess.run(["gpgconf", "--homedir", self.tmp.name, "--kill", "gpg-agent"],
                       capture_output=True)
        self.tmp.cleanup()
        return False
