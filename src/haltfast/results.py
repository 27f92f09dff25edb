"""Durable, resumable results: an append-only journal of certificates beside the output CSV.

The journal (`<out>.journal`, JSON lines) starts with a header holding the run's
configuration (model hash, sigma, alpha, method and its options, seed, data);
every further line is one finished input's certificate, appended and flushed as
the input finishes (fsync at most every `sync_seconds` and on close). A killed run
loses at most the line it was writing; rerunning the same command reads the
journal back, drops a truncated last line, skips the finished inputs and
certifies the rest. A journal whose configuration differs is refused, never mixed.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import time
from pathlib import Path

from .certificate import ABSTAIN
from .certificate import CERTIFIED
from .certificate import Certificate
from .errors import JournalError
from .errors import UsageError
from .files import atomic_write

JOURNAL_FORMAT = 1


def journal_path(out: str | Path) -> Path:
    """Where the journal of the results CSV `out` lives: `<out>.journal`."""
    out = Path(out)
    return out.with_name(out.name + ".journal")


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a results journal")


def _normalized(config: dict) -> dict:
    return json.loads(json.dumps(config, default=_json_default))


class ResultsJournal:
    """An open journal: `finished` maps data set index to its certificate (error rows are retried, not kept)."""

    def __init__(self, path: Path, config: dict, handle, finished: dict[int, Certificate], sync_seconds: float):
        self.path, self.config, self._handle = path, config, handle
        self.finished = finished
        self.sync_seconds = sync_seconds
        self._last_sync = time.monotonic()

    @classmethod
    def open(cls, path: str | Path, config: dict, sync_seconds: float = 1.0) -> ResultsJournal:
        """Open `path` for appending, creating it or resuming it.

        Resuming keeps every complete row of a journal with the same configuration and
        cuts off a truncated last line; a journal with another configuration and at
        least one row raises JournalError naming what changed (one without rows is
        replaced). Only one process may hold a journal at a time.
        """
        path = Path(path)
        config = _normalized(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - held open (and locked) for the whole run, closed by close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise JournalError(
                f"another haltfast run is writing {path}; wait for it to finish or choose another --out"
            ) from None
        try:
            handle.seek(0)
            rows, keep = _read_rows(path, handle.read(), config)
            if keep is None:  # new file, or a journal without results: start it over
                handle.truncate(0)
                handle.write(json.dumps({"haltfast_journal": JOURNAL_FORMAT, "config": config}).encode() + b"\n")
            else:
                handle.truncate(keep)  # drop a line a killed run left half-written
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            raise
        finished: dict[int, Certificate] = {}
        for row in rows:
            cert = Certificate.from_row(row)
            if cert.decision == "error":
                finished.pop(cert.index, None)
            else:
                finished[cert.index] = cert
        return cls(path, config, handle, finished, sync_seconds)

    def append(self, cert: Certificate) -> None:
        """Write one finished input's row and flush it (it survives the process being killed from now on)."""
        line = json.dumps(cert.row(), default=_json_default).encode() + b"\n"
        self._handle.write(line)
        self._handle.flush()
        if time.monotonic() - self._last_sync >= self.sync_seconds:
            os.fsync(self._handle.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()  # also releases the lock

    def __enter__(self) -> ResultsJournal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_rows(path: Path, data: bytes, config: dict) -> tuple[list[dict], int | None]:
    """The complete rows of a journal and the byte length to keep, or ([], None) when it should start over."""
    if not data:
        return [], None
    end = data.rfind(b"\n") + 1  # a last line without its newline was cut off mid-write
    lines = data[:end].splitlines()
    if not lines:
        return [], None
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict) or "haltfast_journal" not in header:
            raise ValueError("no journal header")
    except ValueError:
        raise JournalError(f"{path} is not a haltfast results journal; move it away or choose another --out") from None
    if header["haltfast_journal"] != JOURNAL_FORMAT:
        raise JournalError(
            f"{path} has journal format {header['haltfast_journal']}, this haltfast writes "
            f"{JOURNAL_FORMAT}; delete it (its results are lost) or choose another --out"
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "index" not in row or "decision" not in row:
                raise ValueError("not a certificate row")
        except ValueError:
            raise JournalError(
                f"{path} is corrupt at line {number}; delete it to start over (its results are "
                f"lost) or choose another --out"
            ) from None
        rows.append(row)
    if not rows:
        return [], None
    old = header.get("config", {})
    if old != config:
        changed = ", ".join(
            f"{k}: {old.get(k)!r} -> {config.get(k)!r}"
            for k in sorted(set(old) | set(config))
            if old.get(k) != config.get(k)
        )
        raise JournalError(
            f"{path} holds {len(rows)} results of a run with a different configuration ({changed}); "
            f"rerun with the original options to resume it, choose another --out, or delete "
            f"{path.name} to start over"
        )
    return rows, end


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
