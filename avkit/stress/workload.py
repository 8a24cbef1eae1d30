"""The mixed workload of the stress jobs: clean files of several sizes, EICAR, the test signature."""

import os
from pathlib import Path

from avkit.check.clamd import TEST_SIGNATURE
from avkit.facts import EICAR


def mixed_files(folder: Path, count: int = 20) -> list[Path]:
    """The mixed corpus: clean random files of several sizes, EICAR, a test-signature file."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    sizes = [100, 4096, 65536, 300_000, 1 << 20]
    for i in range(count):
        kind = i % 4
        p = folder / f"f{i:03d}.{['clean', 'eicar', 'sig', 'clean'][kind]}"
        if kind == 1:
            data = os.urandom(sizes[i % len(sizes)] // 2) + EICAR
        elif kind == 2:
            data = b"text " * 50 + TEST_SIGNATURE + os.urandom(sizes[i % len(sizes)] // 3)
        else:
            data = os.urandom(sizes[i % len(sizes)])
        p.write_bytes(data)
        out.append(p)
    return out


def expected_verdict(path: str) -> str:
    return "OK" if path.endswith(".clean") else "VIRUS_FOUND"
