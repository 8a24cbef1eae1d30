"""The host's side of the guest's console: parse the AVSMOKE lines, judge, print a table.

Line grammar (see guest/guest.sh): `AVSMOKE <check> <status> <detail>`, status one of
PASS, FAIL (decided by the guest), OUT, ERR (a line of avhost's stdout or stderr),
SCAN (end of a scan, `rc=<n>`); `AVSMOKE-END` when the plan ran to its end.
"""

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from avkit.check import avhost
from avkit.smoke.plan import Check, Plan

LINE = re.compile(r"AVSMOKE (?P<id>\S+) (?P<status>PASS|FAIL|OUT|ERR|SCAN)(?: (?P<detail>.*))?$")
END = "AVSMOKE-END"


@dataclass
class Observed:
    status: Optional[str] = None  # PASS | FAIL | SCAN
    detail: str = ""
    out: List[str] = field(default_factory=list)
    err: List[str] = field(default_factory=list)


@dataclass
class Result:
    check: Check
    ok: bool
    detail: str
    state: str = ""  # pass | FAIL | not run

    def __post_init__(self):
        if not self.state:
            self.state = "pass" if self.ok else "FAIL"


def running(console: str) -> Optional[str]:
    """The check the guest started last (AVSMOKE-RUN <check>): where a hung guest hangs."""
    last = None
    for raw in console.splitlines():
        words = raw.replace("\r", "").split()
        if len(words) == 2 and words[0] == "AVSMOKE-RUN":
            last = words[1]
    return last


def parse(console: str):
    """{check id: Observed}, and whether the guest reached the end of its plan."""
    seen: Dict[str, Observed] = {}
    finished = False
    for raw in console.splitlines():
        line = raw.replace("\r", "").rstrip()
        if line.strip() == END:
            finished = True
            continue
        start = line.find("AVSMOKE ")
        if start < 0:
            continue
        m = LINE.match(line[start:])
        if not m:
            continue
        obs = seen.setdefault(m["id"], Observed())
        status, detail = m["status"], (m["detail"] or "").strip()
        if status == "OUT":
            obs.out.append(detail)
        elif status == "ERR":
            obs.err.append(detail)
        else:
            obs.status, obs.detail = status, detail
    return seen, finished


def scan_record(obs: Observed, file: Optional[str]):
    """avhost's JSON record of the scan of `file` (event "scan"), or None."""
    for rec in records(obs):
        if rec.get("event") == "scan" and (file is None or rec.get("file") == file):
            return rec
    return None


def records(obs: Observed) -> List[dict]:
    """avhost's records among the guest's OUT lines."""
    return avhost.parse_records("\n".join(obs.out))


def judge_scan(check: Check, obs: Observed) -> Result:
    """avhost's records (README: host/README.md) against the expected verdict and name."""
    exp = check.expect
    recs = records(obs)
    rc = obs.detail.replace("rc=", "")
    violations = [v for r in recs for v in (r.get("violations") or [])]
    problems = [f"{r['event']}: {r['error']}" for r in recs if r.get("error")]
    rec = scan_record(obs, exp.file)
    if rec is None or rec.get("verdict") == "NOT_SCANNED":
        why = "; ".join(problems + [(rec or {}).get("vir_info") or ""] + obs.err[-3:]).strip("; ")
        return Result(check, False, f"avhost exit {rc}, no verdict: {why or 'no output'}")
    verdict = str(rec.get("verdict"))
    name = rec.get("vir_info") or ""
    got = verdict + (f" {name}" if name else "")
    if verdict != exp.verdict:
        return Result(check, False, f"expected {exp.verdict}, got {got}")
    if exp.verdict == "VIRUS_FOUND" and not name:
        return Result(check, False, "VIRUS_FOUND without a virus name")
    if exp.name is not None and name != exp.name:
        return Result(check, False, f"expected {exp.verdict} {exp.name}, got {got}")
    if violations:
        return Result(check, False, f"{got}, but ABI violations: {'; '.join(violations)}")
    logs = [str(r.get("message", "")) for r in recs if r.get("event") == "log"]
    if exp.log and not any(exp.log in m for m in logs):
        return Result(check, False, f'{got}, but the plugin never logged "{exp.log}"')
    unloads = [r for r in recs if r.get("event") == "unload"]
    if len(unloads) != exp.reloads:
        return Result(
            check, False, f"{got}, but {len(unloads)} of {exp.reloads} unload round(s) reported"
        )
    if rc != "0":
        return Result(
            check, False, f"{got}, but avhost exit {rc}: " + "; ".join(problems + obs.err[-3:])
        )
    return Result(check, True, got + (f'; logged "{exp.log}"' if exp.log else ""))


def judge_admin_check(check: Check, obs: Observed) -> Result:
    """kerio-avir-check's table: each expected row there, with an allowed verdict and
    "ok", and the command's exit status 0."""
    rows = {line.split()[0]: line.split() for line in obs.out if line.split()}
    rc = obs.detail.replace("rc=", "")
    got = []
    for label, allowed in (check.admin_rows or {}).items():
        words = rows.get(label)
        if words is None or len(words) < 5:
            return Result(check, False, f"exit {rc}, no row {label}: {' | '.join(obs.out[-6:])}")
        if words[3] not in allowed or words[-1] != "ok":
            return Result(
                check,
                False,
                f"{label}: {' '.join(words[1:])}; "
                f"expected {' or '.join(allowed)}: {' | '.join(obs.out[-4:])}",
            )
        got.append(f"{label} {words[3]}")
    if rc != "0":
        return Result(check, False, f"{', '.join(got)}, but exit {rc}: {' | '.join(obs.out[-4:])}")
    return Result(check, True, ", ".join(got))


def judge(plan: Plan, console: str, finished_hint: Optional[str] = None) -> List[Result]:
    """One Result per planned check, in plan order."""
    seen, finished = parse(console)
    results = []
    for check in plan.checks:
        obs = seen.get(check.id)
        if check.host_failure:
            results.append(Result(check, False, check.host_failure))
        elif obs is None or obs.status is None:
            why = finished_hint or (
                "the guest finished without reporting it"
                if finished
                else "the guest stopped before this check"
            )
            results.append(Result(check, False, why, state="not run"))
        elif check.admin_rows is not None:
            if obs.status != "SCAN":
                results.append(Result(check, False, f"{obs.status} {obs.detail}".strip()))
            else:
                results.append(judge_admin_check(check, obs))
        elif check.expect is not None:
            if obs.status != "SCAN":
                results.append(Result(check, False, f"{obs.status} {obs.detail}".strip()))
            else:
                results.append(judge_scan(check, obs))
        else:
            results.append(Result(check, obs.status == "PASS", obs.detail))
    # the guest may report checks the host did not plan (its own stage failure)
    planned = {c.id for c in plan.checks}
    for cid, obs in seen.items():
        if cid not in planned and obs.status == "FAIL":
            results.append(Result(Check(cid, "guest"), False, obs.detail))
    return results


def table(results: List[Result], width: int = 150) -> str:
    idw = max([len(r.check.id) for r in results] + [5])
    lines = [f"{'check':<{idw}}  {'result':<7}  detail", f"{'-' * idw}  {'-' * 7}  {'-' * 6}"]
    for r in results:
        detail = r.detail if r.ok else (r.detail or r.check.what)
        if not r.ok and r.check.what and r.state != "not run":
            detail = f"{r.check.what}: {detail}"
        room = max(20, width - idw - 11)
        if len(detail) > room:
            detail = detail[: room - 3] + "..."
        lines.append(f"{r.check.id:<{idw}}  {r.state:<7}  {detail}")
    return "\n".join(lines)


def failures(results: List[Result]) -> List[Result]:
    return [r for r in results if not r.ok]
