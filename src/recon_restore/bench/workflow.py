"""Where a workflow's time goes: job-seconds per rule, read from a Snakemake log (each job's
start, ``[date]`` before ``rule X:``/``localrule X:`` with its ``jobid``, and its
``Finished jobid: N``). Wall time is the first start to the last finish."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..errors import UserError

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def rule_seconds(log: str | Path) -> tuple[dict[str, dict], float]:
    """Per rule: jobs and job-seconds (sum over its jobs); and the run's wall seconds."""
    path = Path(log)
    if not path.is_file():
        raise UserError(f"{path}: Snakemake log does not exist")
    now, rule, start, out = None, None, {}, {}
    for line in path.read_text().splitlines():
        m = _STAMP.match(line.strip())
        if m:
            now = datetime.strptime(m.group(1).replace("  ", " "), "%a %b %d %H:%M:%S %Y")
            continue
        s = line.strip()
        m = re.match(r"^(?:local)?rule (\w+):$", s)
        if m:
            rule = m.group(1)
            continue
        m = re.match(r"^jobid: (\d+)$", s)
        if m and rule and now:
            start[int(m.group(1))] = (rule, now)
            rule = None
            continue
        m = re.match(r"^Finished jobid: (\d+)", s)
        if m and now and int(m.group(1)) in start:
            r, t0 = start.pop(int(m.group(1)))
            e = out.setdefault(r, {"jobs": 0, "seconds": 0.0, "first": t0, "last": now})
            e["jobs"] += 1
            e["seconds"] += (now - t0).total_seconds()
            e["first"], e["last"] = min(e["first"], t0), max(e["last"], now)
    if not out:
        raise UserError(f"{path}: no finished jobs found; expected a Snakemake log (.snakemake/log/*.snakemake.log)")
    wall = (max(e["last"] for e in out.values()) - min(e["first"] for e in out.values())).total_seconds()
    return out, wall


def table(rules: dict[str, dict], wall: float) -> str:
    """A Markdown table, largest job-seconds first."""
    total = sum(e["seconds"] for e in rules.values())
    rows = ["| rule | jobs | job-seconds | share |", "|---|---:|---:|---:|"]
    for r, e in sorted(rules.items(), key=lambda kv: -kv[1]["seconds"]):
        rows.append(f"| {r} | {e['jobs']} | {e['seconds']:,.0f} | {e['seconds'] / total:.0%} |")
    rows.append(f"| **all** ({wall / 60:.1f} min wall) | {sum(e['jobs'] for e in rules.values())} | {total:,.0f} | 100% |")
    return "\n".join(rows)
