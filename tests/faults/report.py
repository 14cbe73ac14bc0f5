"""Markdown tables from fault-suite reports, for bench/FAULTS.md.

python tests/faults/report.py .stellara/faults-report.json [more reports…]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _answers(answers: dict[str, int]) -> str:
    unsure = {k: n for k, n in answers.items() if not k.endswith((" 200", " 201", " 202", " ack"))}
    return ", ".join(f"{k} ×{n}" for k, n in sorted(unsure.items())) or "—"


def render(reports: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        lines += [
            f"### FAULTS_SEED={report['seed']}",
            "",
            "| schedule | faults | acked usage (unsure) | tenants (unsure) | invitations "
            "| lag drained | invariants |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for s in report["schedules"]:
            usage = s["figures"].get("usage", {})
            tenants = s["figures"].get("tenants", {})
            invitations = s["figures"].get("invitations", {})
            lines.append(
                f"| {s['name']} | {'; '.join(s['faults'])} | {usage.get('acknowledged', '?')} "
                f"({usage.get('unsure', '?')}) | {tenants.get('acknowledged', '?')} "
                f"({tenants.get('unsure', '?')}) | {invitations.get('acknowledged', '?')} "
                f"| {s['lag_drained_s']} s | "
                + ("held" if not s["broken"] else "**broke**: " + "; ".join(s["broken"]))
                + " |"
            )
            for fault in s.get("per_fault", []):
                by_kind.setdefault(fault["kind"], []).append(fault)
        lines.append("")
    lines += [
        "### Recovery per fault kind",
        "",
        "Outage: from inflicting the fault until it is healed (a killed component "
        "restarted and ready). Answering: from then until every service is ready, a usage "
        "batch is acknowledged and a read answers. Unsure answers: what the load was "
        "answered other than success, during the fault and its recovery.",
        "",
        "| fault | runs | outage (s) | answering again after (s), median / max | unsure answers seen |",
        "|---|---:|---|---|---|",
    ]
    for kind in sorted(by_kind):
        faults = by_kind[kind]
        outages = [f["outage_s"] for f in faults]
        after = [f["answering_after_s"] for f in faults if f["answering_after_s"] is not None]
        seen: dict[str, int] = {}
        for f in faults:
            for k, n in f["answers"].items():
                seen[k] = seen.get(k, 0) + n
        lines.append(
            f"| {kind} | {len(faults)} | {min(outages):.1f}–{max(outages):.1f} | "
            f"{statistics.median(after):.2f} / {max(after):.2f} | {_answers(seen)} |"
            if after
            else f"| {kind} | {len(faults)} | {min(outages):.1f}–{max(outages):.1f} | never | "
            f"{_answers(seen)} |"
        )
    details: dict[str, list[str]] = {}
    for report in reports:
        for s in report["schedules"]:
            for k, texts in s.get("details", {}).items():
                seen = details.setdefault(k, [])
                for text in [texts] if isinstance(texts, str) else texts:
                    if text not in seen:
                        seen.append(text)
    lines += ["", "### Texts of the unsure answers", ""]
    lines += [
        f"- `{k}`: " + " / ".join(f"“{t}”" for t in texts) for k, texts in sorted(details.items())
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render([json.loads(Path(p).read_text()) for p in sys.argv[1:]]), end="")
