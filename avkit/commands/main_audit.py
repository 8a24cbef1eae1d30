"""`avkit audit`: check built plugins against the portability policies, auditwheel-style."""
import json
import sys
from pathlib import Path

from avkit import paths
from avkit.errors import UserError
from avkit.ship.audit import audit_file, format_report, load_policies, passes, plugins_in, policy_by_name


def register(subparsers):
    p = subparsers.add_parser("audit", help="check the plugins against the portability policies")
    p.add_argument("files", nargs="*", type=Path,
                   help="plugins to audit (default: every avir_*.so of the toolchain's dist folder)")
    p.add_argument("--toolchain", choices=paths.TOOLCHAINS, default="zig",
                   help="whose dist folder to audit when no files are given (default zig)")
    p.add_argument("--policy", help="the policy each plugin must satisfy (default: the "
                                    "default of packaging/audit-policies.json)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--sbom", type=Path, help="also fail when this SBOM (SPDX JSON) lacks a "
                                             "component linked into a plugin")
    p.set_defaults(func=run)


def run(args) -> int:
    data = load_policies()
    required = args.policy or data["default"]
    policy_by_name(data, required)
    files = args.files or plugins_in(paths.dist_dir(args.toolchain))
    if not files:
        raise UserError(f"no avir_*.so in {paths.dist_dir(args.toolchain)}: build first "
                        f"(./nox -s build-i386)")
    reports = [audit_file(f, data) for f in files]
    if args.json:
        json.dump({"required_policy": required, "reports": reports}, sys.stdout, indent=2)
        print()
    else:
        print("\n".join(format_report(r, data, required) for r in reports))
    failed = [r["name"] for r in reports if not passes(r, required)]
    if args.sbom:
        from avkit.ship import sbom  # reads the DWARF: only when asked
        sbom.check(args.sbom, files)
        print(f"{args.sbom}: lists every component linked into {len(files)} plugin(s)",
              file=sys.stderr)
    if failed:
        print(f"avkit audit: {', '.join(failed)} fail(s) policy \"{required}\": see above",
              file=sys.stderr)
        return 1
    return 0
