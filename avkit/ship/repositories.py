"""Repository metadata for a folder of packages, so a site can point apt or yum at it.

The packages stay where `avkit package` put them (the folder's top); each architecture
gets its own index beside them. apt: Debian's layout, `deb [signed-by=...] <url> stable
main` — dists/stable/main/binary-<arch>/Packages(.gz) for each architecture of the
.debs (with the arch "all" ones in each), dists/stable/Release listing them all (the
control fields come from `dpkg-deb -f`), dated SOURCE_DATE_EPOCH so that the same
packages give the same files. yum: one repository per architecture, yum/<basearch>/
(what yum and dnf's $basearch says on that system: i386 on an i686 one), whose
repodata/ (createrepo_c) lists that architecture's .rpms and the noarch ones, at
../../<file>. With a signing key, Release gets InRelease and Release.gpg, each
repomd.xml gets repomd.xml.asc, and the public key is exported as signing-key.asc.
"""

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from avkit import facts, paths, prereqs
from avkit.errors import UserError

ORIGIN = "Kerio antivirus plugins"
HASHES = (("MD5sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"))
#: the yum repositories' folder; its repodata lists each package at ../../<file>
YUM_DIR = "yum"


def _digests(data: bytes) -> dict:
    return {field: hashlib.new(algo, data).hexdigest() for field, algo in HASHES}


def config() -> dict[str, Any]:
    """packaging/repositories.json: the suite, component and the site files' lines."""
    return facts.load_json(paths.PACKAGING / "repositories.json")


def dists_dir(folder: Path) -> Path:
    return folder / "dists" / config()["suite"]


def deb_controls(folder: Path) -> dict[Path, str]:
    """{.deb: its control fields (text)}, sorted by file name."""
    prereqs.require_commands("dpkg-deb")
    out = {}
    for deb in sorted(folder.glob("*.deb")):
        r = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True)
        if r.returncode != 0:
            raise UserError(f"dpkg-deb cannot read {deb}: {r.stderr.strip()}")
        out[deb] = r.stdout.rstrip("\n")
    return out


def field(control: str, name: str) -> str:
    return next(
        (line.split(": ", 1)[1] for line in control.splitlines() if line.startswith(f"{name}: ")),
        "",
    )


def deb_architectures(controls: dict) -> list[str]:
    """The architectures of the .debs (not "all"), in cmake/architectures.json's order."""
    present = {field(c, "Architecture") for c in controls.values()}
    return [a["deb"] for a in facts.architectures().values() if a["deb"] in present]


def packages_index(controls: dict, arch: str) -> str:
    """The Packages file of one architecture: each of its .debs' and each arch "all"
    one's control fields plus Filename (from the repository's root), Size and hashes."""
    stanzas = []
    for deb, fields in controls.items():
        if field(fields, "Architecture") not in (arch, "all"):
            continue
        data = deb.read_bytes()
        extra = [f"Filename: {deb.name}", f"Size: {len(data)}"]
        extra += [f"{name}: {value}" for name, value in _digests(data).items()]
        # Filename & co. go after the control fields, before Description, like apt-ftparchive.
        lines = fields.split("\n")
        at = next(
            (i for i, line in enumerate(lines) if line.startswith("Description:")), len(lines)
        )
        stanzas.append("\n".join(lines[:at] + extra + lines[at:]))
    return "\n\n".join(stanzas) + "\n"


def release_file(dists: Path, archs: list, epoch: int) -> str:
    """dists/<suite>/Release: every architecture's index with its hashes."""
    cfg = config()
    files = sorted(p.relative_to(dists).as_posix() for p in dists.rglob("Packages*"))
    out = [
        f"Origin: {ORIGIN}",
        f"Label: {ORIGIN}",
        f"Suite: {cfg['suite']}",
        f"Codename: {cfg['suite']}",
        f"Components: {cfg['component']}",
        f"Architectures: {' '.join(archs)}",
        f"Date: {format_datetime(datetime.fromtimestamp(epoch, tz=timezone.utc), usegmt=True)}",
        "Acquire-By-Hash: no",
    ]
    for name, algo in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        out.append(f"{name}:")
        for rel in files:
            data = (dists / rel).read_bytes()
            out.append(f" {hashlib.new(algo, data).hexdigest()} {len(data):>8} {rel}")
    return "\n".join(out) + "\n"


def apt_repository(folder: Path, epoch: int, key_file: str = "") -> None:
    controls = deb_controls(folder)
    archs = deb_architectures(controls)
    dists = dists_dir(folder)
    for arch in archs:
        index_dir = dists / config()["component"] / f"binary-{arch}"
        index_dir.mkdir(parents=True, exist_ok=True)
        index = packages_index(controls, arch).encode()
        (index_dir / "Packages").write_bytes(index)
        (index_dir / "Packages.gz").write_bytes(gzip.compress(index, compresslevel=9, mtime=0))
    release = dists / "Release"
    release.write_text(release_file(dists, archs, epoch))
    if key_file:
        with gpg_home(key_file) as gpg:
            gpg(["--clearsign", "--output", dists / "InRelease", release])
            gpg(["--detach-sign", "--armor", "--output", dists / "Release.gpg", release])
            export_public_key(gpg, folder)
        site_config(folder)


def rpm_architectures(folder: Path) -> list[tuple[str, str]]:
    """(rpm arch, yum basearch) of the architectures the folder has .rpms of."""
    return [
        (a["rpm"], a["yum_basearch"])
        for a in facts.architectures().values()
        if list(folder.glob(f"*.{a['rpm']}.rpm"))
    ]


def yum_repository(folder: Path, epoch: int, key_file: str = "") -> None:
    exe = shutil.which("createrepo_c")
    if exe is None:
        raise UserError("createrepo_c not found: `apt-get install createrepo-c`")
    # primary.xml records each rpm's mtime and repomd.xml its own time: pin both.
    for f in folder.glob("*.rpm"):
        os.utime(f, (epoch, epoch))
    repos = []
    with tempfile.TemporaryDirectory(prefix="avkit-yum-") as tmp:
        for rpm_arch, basearch in rpm_architectures(folder):
            repo = folder / YUM_DIR / basearch
            repo.mkdir(parents=True, exist_ok=True)
            listed = Path(tmp) / f"{basearch}.txt"
            listed.write_text(
                "".join(
                    f"{f.name}\n"
                    for f in sorted(folder.glob("*.rpm"))
                    if f.name.endswith((f".{rpm_arch}.rpm", ".noarch.rpm"))
                )
            )
            r = subprocess.run(
                [
                    exe,
                    "--quiet",
                    "--no-database",
                    "--simple-md-filenames",
                    "--revision",
                    str(epoch),
                    "--set-timestamp-to-revision",
                    "--pkglist",
                    str(listed),
                    "--outputdir",
                    str(repo),
                    "--location-prefix",
                    "../../",
                    str(folder),
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise UserError(f"createrepo_c failed on {folder} ({rpm_arch}): {r.stderr.strip()}")
            repos.append(repo)
    if key_file:
        with gpg_home(key_file) as gpg:
            for repo in repos:
                repomd = repo / "repodata" / "repomd.xml"
                gpg(["--detach-sign", "--armor", "--output", f"{repomd}.asc", repomd])
            export_public_key(gpg, folder)
        site_config(folder)


def export_public_key(gpg, folder: Path) -> None:
    gpg(["--export", "--armor", "--output", folder / "signing-key.asc"])
    gpg(["--export", "--output", folder / "signing-key.gpg"])


def site_config(folder: Path) -> None:
    """The apt sources line and the yum .repo file a site copies, both trusting only the
    project's key (only for a signed folder: an unsigned one is for tests)."""
    cfg = config()
    fill = dict(cfg)
    (folder / f"{cfg['id']}.list").write_text(
        "".join(line.format(**fill) + "\n" for line in cfg["apt_list"])
    )
    (folder / f"{cfg['id']}.repo").write_text(
        "".join(line.format(**fill) + "\n" for line in cfg["yum_repo"])
    )


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
            r = subprocess.run(
                cmd,
                input=passphrase if passphrase else None,
                stdin=None if passphrase else subprocess.DEVNULL,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise UserError(
                    f"gpg {' '.join(str(a) for a in args[:2])} failed: {r.stderr.strip()}"
                )
            return r

        gpg(["--import", self.key_file])
        return gpg

    def __exit__(self, *exc):
        # gpg-agent may still run for this home: ask it to stop before removing the folder.
        subprocess.run(
            ["gpgconf", "--homedir", self.tmp.name, "--kill", "gpg-agent"], capture_output=True
        )
        self.tmp.cleanup()
        return False
