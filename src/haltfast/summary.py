"""What a certify run reports: certified accuracy on a radius grid, ACR, abstain rate, evaluations per input."""

from __future__ import annotations

import numpy as np

from .certificate import ABSTAINED
from .certificate import CERTIFIED
from .certificate import DECISIONS
from .certificate import FAILED
from .certificate import Certificate


def summarize(certs: list[Certificate], radii=(0.0, 0.25, 0.5, 0.75, 1.0), seconds: float | None = None) -> dict:
    """Certified accuracy on a radius grid, average certified radius, abstain rate, evaluations per input."""
    if not certs:
        return {"inputs": 0}
    radius = np.array([c.radius if c.decision == CERTIFIED else 0.0 for c in certs])
    certified = np.array([c.decision == CERTIFIED for c in certs])
    correct = np.array([bool(c.correct) for c in certs])
    decisions = {d: int(sum(c.decision == d for c in certs)) for d in DECISIONS}
    return {
        "inputs": len(certs),
        "certified_accuracy": {f"{r:g}": float(np.mean(certified & correct & (radius >= r))) for r in radii},
        "average_certified_radius": float(np.mean(np.where(certified & correct, radius, 0.0))),
        "abstain_rate": float(np.mean([c.decision == ABSTAINED for c in certs])),
        "decisions": {d: k for d, k in decisions.items() if k},
        **spending(certs, seconds),
    }


def spending(certs: list[Certificate], seconds: float | None = None) -> dict:
    """What a run spent: inputs the model failed on, model evaluations per input (mean, median, total) and, given
    its seconds, the time and the rate (a certify or a predict run)."""
    evals = np.array([c.evaluations for c in certs], dtype=float)
    out = {
        "errors": int(sum(c.decision == FAILED for c in certs)),
        "mean_evaluations": float(evals.mean()),
        "median_evaluations": float(np.median(evals)),
        "total_evaluations": int(evals.sum()),
    }
    if seconds:
        out["seconds"] = seconds
        out["evaluations_per_second"] = float(evals.sum() / seconds)
    return out


def format_summary(summary: dict) -> str:
    """The summary of a certify run as the lines `haltfast certify` prints."""
    if not summary.get("inputs"):
        return "no inputs"
    acc = summary["certified_accuracy"]
    options = summary.get("options", {})
    # in decision mode a certificate's radius is the required one, so an average radius would say nothing
    if options.get("radius") is not None:
        radius_line = "decision mode: each certificate is at the required radius"
    elif options.get("radii") is not None:
        radius_line = "grid mode: each input is certified at the largest grid radius it supports"
    else:
        radius_line = f"average certified radius: {summary['average_certified_radius']:.4f}"
    if options.get("radii") is not None:
        accuracy = [
            "certified accuracy:",
            "  radius   " + "".join(f"{float(r):>8.2f}" for r in acc),
            "  accuracy " + "".join(f"{v:>8.3f}" for v in acc.values()),
        ]
    else:
        accuracy = ["certified accuracy at radius " + "  ".join(f"r={r}: {v:.3f}" for r, v in acc.items())]
    lines = [
        f"inputs: {summary['inputs']}   decisions: " + ", ".join(f"{k} {v}" for k, v in summary["decisions"].items()),
        *accuracy,
        f"{radius_line}   abstain rate: {summary['abstain_rate']:.3f}",
        *spending_lines(summary),
    ]
    return "\n".join(lines)


def spending_lines(summary: dict) -> list[str]:
    """The lines of a summary that say what the run spent (its `spending`), and what an earlier run finished."""
    lines = [
        f"model evaluations per input: mean {summary['mean_evaluations']:,.0f}, median "
        f"{summary['median_evaluations']:,.0f}  (total {summary['total_evaluations']:,})",
    ]
    if "seconds" in summary:
        lines.append(
            f"time: {summary['seconds']:.1f} s, {summary['evaluations_per_second']:,.0f} evaluations/s"
            + (" (this run)" if summary.get("resumed") else "")
        )
    if summary.get("resumed"):
        lines.append(f"resumed: {summary['resumed']} inputs were finished by an earlier run (read from the journal)")
    return lines
