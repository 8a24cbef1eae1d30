"""Test files for avir_clam: the vendor kit's corpus, written without outside tools.

`write_corpus(folder)` returns {name: path}. The encrypted zip is made here
with the traditional PKWARE ("ZipCrypto") cipher because Python's zipfile can
read such archives but not write them.
"""

import os
import struct
import zipfile
import zlib
from pathlib import Path

from avkit.check.clamd import TEST_SIGNATURE
from avkit.facts import EICAR


def _crc_byte(crc: int, b: int) -> int:
    return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


class _ZipCrypto:
    def __init__(self, password: bytes):
        self.k = [0x12345678, 0x23456789, 0x34567890]
        for b in password:
            self._update(b)

    def _update(self, b: int):
        k0, k1, k2 = self.k
        k0 = _crc_byte(k0, b)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = _crc_byte(k2, k1 >> 24)
        self.k = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for p in data:
            t = (self.k[2] | 2) & 0xFFFF
            out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            self._update(p)
        return bytes(out)


def encrypted_zip(name: str, data: bytes, password: bytes = b"infected") -> bytes:
    """A one-member, stored (uncompressed), password-protected zip archive."""
    crc = zlib.crc32(data) & 0xFFFFFFFF
    header = os.urandom(11) + bytes([crc >> 24])  # the last byte lets unzip check the password
    body = _ZipCrypto(password).encrypt(header + data)
    fname = name.encode()
    flags, method, mtime, mdate = 1, 0, 0, 0x21  # bit 0: encrypted; 1980-01-01
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            flags,
            method,
            mtime,
            mdate,
            crc,
            len(body),
            len(data),
            len(fname),
            0,
        )
        + fname
        + body
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            flags,
            method,
            mtime,
            mdate,
            crc,
            len(body),
            len(data),
            len(fname),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + fname
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def write_corpus(folder) -> dict:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "clean.exe": os.urandom(64 * 1024),
        "eicar.com": EICAR,
        "eicar.tmp": EICAR,
        "empty.file": b"",
        "testsig.txt": b"some text around " + TEST_SIGNATURE + b" and after",
        "eicarpwd.zip": encrypted_zip("eicar.com", EICAR),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(folder / "eicar.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("eicar.com", EICAR)
    paths = {name: folder / name for name in [*files, "eicar.zip"]}
    paths["nonexisting.file"] = folder / "nonexisting.file"
    return paths


def write_random(path, size: int, block: int = 1 << 20) -> Path:
    """A file of `size` pseudo-random bytes, written in blocks (no big buffer)."""
    path = Path(path)
    seed = os.urandom(block)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, block)
            f.write(seed[:n])
            seed = seed[1:] + seed[:1]  # blocks differ, so no trivially compressible pattern
            left -= n
    return path


def write_sparse(path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a hole), for sizes over 4 GiB."""
    path = Path(path)
    with open(path, "wb") as f:
        f.truncate(size)
    return path
