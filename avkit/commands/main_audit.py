"""`avkit audit`: check built plugins against the portability policies, auditwheel-style.

Each plugin is checked against the policies of its own architecture (the one its ELF header
names: i386 or x86_64) and must satisfy that architecture's audit_policy, unless --policy
names another of its policies."""

import json
import sys
from pathlib import Path

from avkit import facts, paths
from avkit.errors import UserError
from avkit.hints import build_command
from avkit.ship.audit import (
    audit_file,
    default_files,
    format_report,
    passes,
    policies_of,
    policy_by_name,
)


def register(subparsers):
    p = subparsers.add_parser("audit", help="check the plugins against the portability policies")
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="plugins to audit (default: every avir_*.so of the toolchain's dist "
        "folder of each --arch)",
    )
    p.add_argument(
        "--toolchain",
        choices=paths.TOOLCHAINS,
        default="zig",
        help="whose dist folder to audit when no files are given (default zig)",
    )
    p.add_argument(
        "--arch",
        action="append",
        choices=list(facts.architectures()),
        help="whose dist folder to audit when no files are given (repeatable; "
        "default: every architecture)",
    )
    p.add_argument(
        "--policy",
        help="the policy each plugin must satisfy (default: its "
        "architecture's audit_policy, cmake/architectures.json)",
    )
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument(
        "--sbom",
        type=Path,
        help="also fail when this SBOM (SPDX JSON) lacks a component linked into a plugin",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    files = args.files or default_files(args.toolchain, args.arch or list(facts.architectures()))
    checked = []  # (report, policies, required policy)
    for f in files:
        if not Path(f).is_file():
            raise UserError(f"{f} does not exist: build it first ({build_command(Path(f))})")
        data = policies_of(Path(f))
        required = args.policy or data["default"]
        policy_by_name(data, required)
        checked.append((audit_file(f, data), data, required))
    if args.json:
        json.dump(
            {
                "required_policy": args.policy or {d["arch"]: req for _, d, req in checked},
                "reports": [dict(r, required_policy=req) for r, _, req in checked],
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print(
            "\n".join(
                f"[{data['arch']}] " + format_report(r, data, req) for r, data, req in checked
            )
        )
    failed = [
        f'{r["name"]} ({data["arch"]}, policy "{req}")'
        for r, data, req in checked
        if not passes(r, req)
    ]
    if args.sbom:
        from avkit.ship import sbom  # reads the DWARF: only when asked

        sbom.check(args.sbom, files)
        print(
            f"{args.sbom}: lists every component linked into {len(files)} plugin(s)",
            file=sys.stderr,
        )
    if failed:
        print(f"avkit audit: {', '.join(failed)} fail(s) its policy: see above", file=sys.stderr)
        return 1
    return 0
