"""What the guest scans, and the servers it scans with: test files, a signature DB,
clamd.conf, c-icap.conf.

The signature database and the names it reports are the project's shared ones
(avkit.check.clamd, used by the tests and the test kit too), and c-icap's lines are
those of the tests' private c-icap (avkit.check.icap); only the files are written here,
because in the guest the servers run as daemons with guest paths.
"""

import hashlib
import subprocess
from pathlib import Path

from avkit import facts, prereqs
from avkit.check import clamd, icap
from avkit.facts import EICAR

#: what avir_clam must report for eicar.com (clamd appends .UNOFFICIAL)
REPORTED_NAME = clamd.EICAR_NAME
ZIP_PASSWORD = "infected"

#: where the staging disk shows up in the guest (see guest/init.sh)
GUEST_ROOT = "/smoke"
CLAMD_SOCKET = "/run/clamav/clamd.ctl"
# Not clamd's default 3310: with Address and Port at the plugin's defaults the plugin
# looks for a stock socket first (discovery), and the TCP checks would use the socket.
CLAMD_PORT = 3311
CLAMD_ADDRESS = "127.0.0.1"
#: c-icap in the guest: virus_scan's avscan alias over clamd_mod, asking the guest's clamd
CICAP_ADDRESS = "127.0.0.1"
CICAP_PORT = 1344
CICAP_SERVICE = "avscan"
CICAP_RUN = "/run/c-icap"


def cicap_modules(arch: str = None) -> str:
    """c-icap's module folder in the guest: Debian's multiarch folder of its architecture."""
    return f"/usr/lib/{facts.architecture(arch)['library_architecture']}/c_icap"


FILES = {
    "eicar": "eicar.com",
    "clean": "clean.exe",
    "encrypted": "eicarpwd.zip",
    "missing": "nonexisting.file",  # never created
}


def write_corpus(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / FILES["eicar"]).write_bytes(EICAR)
    # reproducible "random" bytes: a hash chain
    block, data = b"avkit-smoke", bytearray()
    while len(data) < 64 * 1024:
        block = hashlib.sha256(block).digest()
        data += block
    (dest / FILES["clean"]).write_bytes(bytes(data))
    prereqs.require_commands("zip")
    zipped = dest / FILES["encrypted"]
    zipped.unlink(missing_ok=True)
    r = subprocess.run(
        ["zip", "-q", "-j", "-X", "-P", ZIP_PASSWORD, zipped.name, FILES["eicar"]],
        cwd=dest,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"zip -P failed: {r.stderr.strip()}")


def write_clamd(dest: Path, guest_dir: str = GUEST_ROOT) -> None:
    """dest/clamd.conf and dest/db/ (the shared test signatures) for the guest's clamd."""
    db = dest / "db"
    db.mkdir(parents=True, exist_ok=True)
    (db / "kerio-test.ndb").write_text(clamd.signature_database())
    (dest / "clamd.conf").write_text(
        "\n".join(
            [
                "# clamd for the smoke test: loopback TCP and a UNIX socket, the test DB only",
                f"LocalSocket {CLAMD_SOCKET}",
                "LocalSocketMode 666",
                f"TCPSocket {CLAMD_PORT}",
                f"TCPAddr {CLAMD_ADDRESS}",
                f"DatabaseDirectory {guest_dir}/db",
                "LogFile /run/clamav/clamd.log",
                "PidFile /run/clamav/clamd.pid",
                "TemporaryDirectory /tmp",
                "Foreground no",
                "AlertEncrypted yes",  # an encrypted zip is Heuristics.Encrypted.Zip, not OK
                "StreamMaxLength 25M",
                "MaxFileSize 25M",  # what FILDES meets instead of StreamMaxLength: the same limit
                "AlertExceedsMax yes",  # over a limit is Heuristics.Limits.Exceeded.*, not OK
                "ReadTimeout 30",
                "Bytecode no",
                "SelfCheck 0",
                "",
            ]
        )
    )


def write_cicap(dest: Path, arch: str = None) -> None:
    """dest/c-icap.conf for the guest's c-icap (of `arch`): virus_scan through the
    guest's clamd."""
    lines = icap.config_lines(
        port=CICAP_PORT,
        address=CICAP_ADDRESS,
        modules=cicap_modules(arch),
        clamd_socket=CLAMD_SOCKET,
        tmp_dir="/tmp",
        run_dir=CICAP_RUN,
        log_path=f"{CICAP_RUN}/server.log",
    )
    (dest / "c-icap.conf").write_text(
        "# c-icap for the smoke test: loopback only, virus_scan over the guest's clamd\n"
        + "\n".join(lines)
        + "\n"
    )
