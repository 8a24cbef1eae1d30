"""rpm 4.8 compatibility: is a .rpm one that CentOS 6's rpm can read and install?

rpm refuses a package that requires an rpmlib(...) feature it lacks, a payload it cannot
decompress or a file digest it cannot compute; a version with a tilde it installs but
orders wrongly. This module reads those facts from the package's headers (with the
machine's rpm) and checks them against packaging/rpm-compat.json, the list of what rpm
4.8 supports (the file says where each list comes from).

`python -m avkit.ship.rpm_compat FILE.rpm...` prints the listing.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from avkit import facts, paths, prereqs
from avkit.errors import UserError

POLICY = paths.PACKAGING / "rpm-compat.json"
#: Header and signature-header fields read with one `rpm -qp --qf`, one a line.
FIELDS = {
    "version": "%{VERSION}",
    "release": "%{RELEASE}",
    "payload_compressor": "%{PAYLOADCOMPRESSOR}",
    "payload_format": "%{PAYLOADFORMAT}",
    "file_digest_algorithm": "%{FILEDIGESTALGO}",
    "SHA1HEADER": "%{SHA1HEADER}",
    "SIGMD5": "%{SIGMD5}",
    "SHA256HEADER": "%{SHA256HEADER}",
    "RSAHEADER": "%{RSAHEADER:pgpsig}",
    "DSAHEADER": "%{DSAHEADER:pgpsig}",
    "SIGPGP": "%{SIGPGP:pgpsig}",
    "SIGGPG": "%{SIGGPG:pgpsig}",
}
DEPENDENCY = re.compile(r"^(rpmlib\([^)]+\))(?:\s+(\S+)\s+(\S+))?$")


def load_policy() -> dict[str, Any]:
    return facts.load_json(POLICY)


def _rpm(*args) -> str:
    r = subprocess.run(["rpm", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"rpm {' '.join(args[:-1])} cannot read {args[-1]}: {r.stderr.strip()}")
    return r.stdout


def inspect(path: Path) -> dict[str, Any]:
    """The facts of one .rpm that decide whether rpm 4.8 reads it."""
    prereqs.require_commands("rpm")
    out = _rpm("-qp", "--qf", "\n".join(FIELDS.values()) + "\n", str(path)).split("\n")
    info: dict[str, Any] = {key: value.strip() for key, value in zip(FIELDS, out)}
    info["rpmlib"] = []
    for line in _rpm("-qp", "--requires", str(path)).splitlines():
        m = DEPENDENCY.match(line.strip())
        if m:
            info["rpmlib"].append(
                {"name": m.group(1), "flags": m.group(2) or "", "version": m.group(3) or ""}
            )
    return info


def _evr(text: str) -> tuple:
    # rpmlib EVRs are numbers and dots ("4.6.0-1"): compared as numbers.
    return tuple(int(n) for n in re.findall(r"\d+", text))


def problems(info: dict, policy: dict) -> list[str]:
    """What rpm 4.8 would refuse or get wrong, one sentence each (empty: compatible)."""
    out = []
    for req in info["rpmlib"]:
        provided = policy["rpmlib"].get(req["name"])
        if provided is None:
            out.append(f"requires {req['name']}, which rpm 4.8 does not provide")
        elif req["version"] and _evr(req["version"]) > _evr(provided):
            out.append(
                f"requires {req['name']} {req['flags']} {req['version']}, "
                f"rpm 4.8 provides {provided}"
            )
    if info["payload_compressor"] not in policy["payload_compressors"]:
        out.append(
            f"payload compressed with {info['payload_compressor']}: rpm 4.8 reads "
            f"{', '.join(policy['payload_compressors'])}"
        )
    if info["payload_format"] not in policy["payload_formats"]:
        out.append(f"payload format {info['payload_format']}: rpm 4.8 reads cpio")
    algo = info["file_digest_algorithm"]
    if algo != "(none)" and algo not in policy["file_digest_algorithms"]:
        out.append(
            f"file digests with OpenPGP hash algorithm {algo}: rpm 4.8 packages use "
            + ", ".join(policy["file_digest_algorithms"].values())
        )
    if all(info[tag] in ("", "(none)") for tag in policy["header_digests"]):
        out.append(f"no header digest rpm 4.8 verifies ({', '.join(policy['header_digests'])})")
    for tag in policy["signature_tags"]:
        sig = info[tag]
        if (
            sig not in ("", "(none)")
            and sig.split("/")[0] not in policy["signature_key_algorithms"]
        ):
            out.append(
                f"{tag} signature {sig.split(',')[0]}: rpm 4.8 verifies "
                f"{', '.join(policy['signature_key_algorithms'])} keys"
            )
    for field in ("version", "release"):
        bad = sorted(set(info[field]) & set(policy["version_chars_not_ordered"]))
        if bad:
            out.append(
                f"{field} {info[field]} has {' '.join(bad)}: rpm before 4.10 does not "
                f"order it (use VERSION+git..., see README)"
            )
    return out


def listing(path: Path, info: dict, policy: dict) -> str:
    lines = [f"{path.name}:"]
    for req in info["rpmlib"]:
        provided = policy["rpmlib"].get(req["name"], "not provided")
        lines.append(
            f"  {req['name']} {req['flags']} {req['version']}".rstrip() + f"  (rpm 4.8: {provided})"
        )
    algo = info["file_digest_algorithm"]
    lines.append(
        f"  payload {info['payload_compressor']} {info['payload_format']}, file "
        f"digests {policy['file_digest_algorithms'].get(algo, algo)} ({algo})"
    )
    digests = [t for t in ("SHA1HEADER", "SIGMD5", "SHA256HEADER") if info[t] not in ("", "(none)")]
    sigs = [
        f"{t} {info[t].split(',')[0]}"
        for t in policy["signature_tags"]
        if info[t] not in ("", "(none)")
    ]
    lines.append(
        f"  header digests {' '.join(digests) or 'none'}; signatures {', '.join(sigs) or 'none'}"
    )
    lines.append(f"  version {info['version']}-{info['release']}")
    return "\n".join(lines)


def require_compatible(files) -> None:
    """Refuses (UserError) any .rpm that rpm 4.8 cannot read or orders wrongly."""
    policy = load_policy()
    bad = []
    for f in files:
        found = problems(inspect(Path(f)), policy)
        if found:
            bad.append(f"{Path(f).name}: " + "; ".join(found))
    if bad:
        raise UserError(
            "CentOS 6 (rpm 4.8) cannot use these packages "
            "(packaging/rpm-compat.json):\n  " + "\n  ".join(bad)
        )


def main(argv) -> int:
    policy = load_policy()
    status = 0
    for f in argv:
        info = inspect(Path(f))
        print(listing(Path(f), info, policy))
        for p in problems(info, policy):
            print(f"  NOT rpm 4.8: {p}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
