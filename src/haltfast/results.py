"""Result files: one row per input, the same columns whatever the method or mode (haltfast's CSV), or Cohen et
al.'s TSV. The journal that makes a run resumable is haltfast.journal."""

from __future__ import annotations

import datetime
from pathlib import Path

from .certificate import ABSTAIN
from .certificate import CERTIFIED
from .certificate import Certificate
from .errors import UsageError
from .files import atomic_write

# ---------------------------------------------------------------------------------------------
# Result files: one row per input, the same columns whatever the method or mode
# ---------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "index",
    "label",
    "prediction",
    "correct",
    "radius",
    "decision",
    "evaluations",
    "tested",
    "stopped_at",
    "selected",
    "p_lower",
    "log_evalue",
    "stop_reason",
    "seconds",
    "error",
)
FORMATS = ("csv", "cohen")


def certificates_table(certs: list[Certificate]):
    """A pandas DataFrame of the certificates with CSV_COLUMNS (empty where a method has no such value)."""
    import pandas as pd

    return pd.DataFrame([c.row() for c in certs], columns=list(CSV_COLUMNS))


def write_results(path: str | Path, certs: list[Certificate], format: str = "csv") -> Path:
    """Write the certificates atomically: haltfast's CSV, or Cohen et al.'s TSV (idx label predict radius correct
    time) that their analyze.py reads; there an input that is not certified is an abstention (predict -1)."""
    if format == "csv":
        table = certificates_table(certs)
        return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    if format != "cohen":
        raise UsageError(f"unknown results format {format!r}; choose one of {', '.join(FORMATS)}")
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    for c in certs:
        certified = c.decision == CERTIFIED
        predict = c.prediction if certified else ABSTAIN
        correct = int(certified and c.label is not None and c.prediction == c.label)
        lines.append(
            f"{c.index}\t{c.label}\t{predict}\t{c.radius if certified else 0.0:.3}\t{correct}\t"
            f"{datetime.timedelta(seconds=c.seconds)}"
        )
    return atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
