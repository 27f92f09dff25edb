"""What a PREDICT run reports and writes: accuracy, abstain rate and evaluations; haltfast's CSV or Cohen's TSV."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from .certificate import ABSTAIN
from .certificate import ABSTAINED
from .certificate import Certificate
from .errors import UsageError
from .files import atomic_write
from .methods.predict import PREDICTED
from .summary import spending
from .summary import spending_lines

PREDICTION_COLUMNS = (
    "index",
    "label",
    "prediction",
    "correct",
    "decision",
    "evaluations",
    "tested",
    "stopped_at",
    "selected",
    "log_evalue",
    "stop_reason",
    "seconds",
    "error",
)
PREDICTION_FORMATS = ("csv", "cohen")


def summarize_predictions(results: list[Certificate], seconds: float | None = None) -> dict:
    """Accuracy (correct predictions over all inputs), abstain and error rates, wrong predictions, evaluations."""
    if not results:
        return {"inputs": 0}
    predicted = np.array([r.decision == PREDICTED for r in results])
    correct = np.array([r.decision == PREDICTED and bool(r.correct) for r in results])
    return {
        "inputs": len(results),
        "accuracy": float(correct.mean()),
        "abstain_rate": float(np.mean([r.decision == ABSTAINED for r in results])),
        "wrong_rate": float(np.mean(predicted & ~correct)) if results[0].label is not None else None,
        **spending(results, seconds),
    }


def format_prediction_summary(summary: dict) -> str:
    """The summary of a predict run as the lines `haltfast predict` prints."""
    if not summary.get("inputs"):
        return "no inputs"
    wrong = "" if summary["wrong_rate"] is None else f"   wrong: {summary['wrong_rate']:.3f}"
    lines = [
        f"inputs: {summary['inputs']}   accuracy: {summary['accuracy']:.3f}   abstain rate: "
        f"{summary['abstain_rate']:.3f}{wrong}" + (f"   errors: {summary['errors']}" if summary["errors"] else ""),
        *spending_lines(summary),
    ]
    return "\n".join(lines)


def write_predictions(path: str | Path, results: list[Certificate], format: str = "csv") -> Path:
    """Write the predictions atomically: haltfast's CSV (PREDICTION_COLUMNS), or Cohen et al.'s predict.py TSV
    (idx label predict correct time; an abstention is predict -1)."""
    if format == "csv":
        import pandas as pd

        rows = [{"correct": r.correct if r.decision == PREDICTED else False, **_row(r)} for r in results]
        table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
        return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    if format != "cohen":
        raise UsageError(f"unknown predictions format {format!r}; choose one of {', '.join(PREDICTION_FORMATS)}")
    lines = ["idx\tlabel\tpredict\tcorrect\ttime"]
    for r in results:
        predict = r.prediction if r.decision == PREDICTED else ABSTAIN
        correct = int(r.decision == PREDICTED and r.label is not None and r.prediction == r.label)
        lines.append(f"{r.index}\t{r.label}\t{predict}\t{correct}\t{datetime.timedelta(seconds=r.seconds)}")
    return atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def _row(r: Certificate) -> dict:
    row = r.row()
    row.pop("correct", None)
    return row
