"""Triage reports: every input's state at one moment, the summary per class, and its printed form."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from ..certificate import CERTIFIED
from ..certificate import FAILED
from ..certificate import NOT_CERTIFIED
from ..certificate import PENDING
from ..certificate import UNDECIDED
from ..files import atomic_write

STATES = (CERTIFIED, NOT_CERTIFIED, PENDING, UNDECIDED, FAILED)


@dataclass
class TriageReport:
    """Every input's state at one moment, plus the run's bookkeeping (policy, evaluations, budget, stop reason)."""

    _rows: list = field(repr=False)
    meta: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One flat dict per input, in input order (for pandas / CSV)."""
        return [dict(r) for r in self._rows]

    @property
    def stop_reason(self) -> str:
        return self.meta.get("stop_reason", "")

    @property
    def evaluations(self) -> int:
        return int(self.meta.get("evaluations", 0))

    def summary(self) -> dict:
        """Counts per class and state, decided inputs, evaluations used against the budget."""
        states = {s: sum(r["state"] == s for r in self._rows) for s in STATES}
        per_class = {}
        for c in self.meta.get("classes", []):
            mine = [r for r in self._rows if r["class"] == c["name"]]
            entry = {**c, "inputs": len(mine)}
            entry.update({s: sum(r["state"] == s for r in mine) for s in STATES})
            entry["decided"] = entry[CERTIFIED] + entry[NOT_CERTIFIED]
            entry["evaluations"] = int(sum(r["evaluations"] for r in mine))
            if mine and mine[0]["label"] is not None:
                entry["certified_correct"] = sum(r["state"] == "certified" and bool(r["correct"]) for r in mine)
            per_class[c["name"]] = entry
        keys = (
            "policy",
            "sigma",
            "n0",
            "evaluations",
            "budget_evaluations",
            "budget_seconds",
            "seconds",
            "rounds",
            "stop_reason",
        )
        out = {"inputs": len(self._rows), **{k: self.meta.get(k) for k in keys}}
        out["decided"] = states[CERTIFIED] + states[NOT_CERTIFIED]
        out["states"] = states
        out["classes"] = per_class
        return out

    def write_csv(self, path: str | Path) -> None:
        """Write rows() as CSV through a temporary file (never a half-written file)."""
        import pandas as pd

        atomic_write(path, lambda tmp: pd.DataFrame(self.rows()).to_csv(tmp, index=False))


def format_triage_summary(summary: dict) -> str:
    """A human-readable summary: run line, then one line per class with counts per state."""
    if not summary.get("inputs"):
        return "no inputs"
    budget = summary.get("budget_evaluations")
    used = summary.get("evaluations") or 0
    lines = [
        f"policy {summary['policy']}: {summary['decided']} of {summary['inputs']} inputs decided, "
        f"{used:,} evaluations"
        + (f" of a budget of {budget:,}" if budget is not None else "")
        + f" in {summary.get('seconds') or 0:.1f} s, {summary.get('rounds')} rounds; stopped: "
        f"{summary.get('stop_reason')}"
    ]
    head = (
        f"{'class':<14}{'radius':>7}{'alpha':>9}{'prio':>6}{'inputs':>8}{'certified':>11}{'not cert.':>11}"
        f"{'pending':>9}{'undecided':>11}{'error':>7}{'evaluations':>14}"
    )
    lines.append(head)
    for name, c in summary["classes"].items():
        lines.append(
            f"{name[:13]:<14}{c['radius']:>7g}{c['alpha']:>9.0e}{c['priority']:>6g}{c['inputs']:>8}"
            f"{c[CERTIFIED]:>11}{c[NOT_CERTIFIED]:>11}{c['pending']:>9}{c['undecided']:>11}{c['error']:>7}"
            f"{c['evaluations']:>14,}"
        )
    s = summary["states"]
    lines.append(
        f"{'all':<14}{'':>7}{'':>9}{'':>6}{summary['inputs']:>8}{s[CERTIFIED]:>11}{s[NOT_CERTIFIED]:>11}"
        f"{s['pending']:>9}{s['undecided']:>11}{s['error']:>7}{used:>14,}"
    )
    return "\n".join(lines)
