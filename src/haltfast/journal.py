"""Durable runs: an append-only journal beside the results file that remembers every label a run drew.

The journal (`<out>.journal`, JSON lines) starts with a header holding what a certificate depends on (model
hash, sigma, alpha, method and its options, seed, data); every session then appends a `run` line with its
spending options (the cap per input, the budget, deadline, worth and target loss), a `draw` line per draw
with the labels the model returned (compressed), a `clean` line per clean evaluation, and one row per finished
input. Lines are flushed as written and fsynced at most every `sync_seconds` and on close; a killed run
loses at most the line it was writing, which is dropped when the journal is read again.

A label stream is a pure function of (seed, input, position), so the journal is a cache of model
evaluations: a rerun of the same command reads every input's stream from the journal as far as it goes and
asks the model only beyond. That makes a resumed or extended run the run it continues, to the last digit:
the engine replays what it did before on the same labels, and no sample is evaluated twice. A journal
whose header differs is refused, never mixed. `read_journal` reads a journal's results without taking it
(haltfast analyze).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np

from .certificate import Certificate
from .errors import JournalError
from .streams import LabelSource
from .streams import Stop

JOURNAL_FORMAT = 2


def journal_path(out: str | Path) -> Path:
    """Where the journal of the results file `out` lives: `<out>.journal`."""
    out = Path(out)
    return out.with_name(out.name + ".journal")


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a results journal")


def _normalized(config: dict | None) -> dict | None:
    return None if config is None else json.loads(json.dumps(config, default=_json_default))


def _pack(array: np.ndarray) -> dict:
    return {"dtype": array.dtype.str, "data": base64.b64encode(zlib.compress(array.tobytes(), 1)).decode()}


def _unpack(packed: dict) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype=np.dtype(packed["dtype"]))


def label_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds every label."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.uint32)


class LabelCache:
    """The labels and clean evaluations a journal holds, by noise key: each key's stream from position 0 on."""

    def __init__(self):
        self._blocks: dict[int, list[np.ndarray]] = {}  # each key's blocks, joined when first read
        self._length: dict[int, int] = {}
        self.clean_logits: dict[int, np.ndarray] = {}
        self.clean_predictions: dict[int, int] = {}

    def add(self, keys, starts, counts, labels: np.ndarray) -> None:
        """Labels of keys[i] at positions starts[i] .. starts[i] + counts[i], back to back; a block that does not
        continue its key's stream where it ends (none should) is ignored."""
        offset = 0
        for key, start, count in zip(keys, starts, counts):
            key, count = int(key), int(count)
            if start == self._length.get(key, 0):
                self._blocks.setdefault(key, []).append(labels[offset : offset + count])
                self._length[key] = start + count
            offset += count

    def length(self, key: int) -> int:
        """How many labels of this key's stream, from its start, the journal holds."""
        return self._length.get(key, 0)

    def lengths(self, keys: np.ndarray) -> np.ndarray:
        return np.array([self._length.get(int(k), 0) for k in keys], dtype=np.int64)

    def take(self, key: int, start: int, count: int) -> np.ndarray:
        assert start + count <= self.length(key)
        blocks = self._blocks[key]
        if len(blocks) > 1:
            blocks[:] = [np.concatenate(blocks)]
        return blocks[0][start : start + count]

    def keep_only(self, keys) -> None:
        """Forget every key but these (a resumed run that needs the others no more)."""
        wanted = {int(k) for k in keys}
        for store in (self._blocks, self._length, self.clean_logits, self.clean_predictions):
            for key in [k for k in store if k not in wanted]:
                del store[key]

    def drop(self, keys) -> None:
        """A finished input's labels are read no more."""
        for key in keys:
            self._blocks.pop(int(key), None)
            self._length.pop(int(key), None)

    @property
    def evaluations(self) -> int:
        """Every model evaluation the journal holds (labels and clean evaluations)."""
        return sum(self._length.values()) + len(set(self.clean_logits) | set(self.clean_predictions))


class ResultsJournal:
    """An open journal: `finished` maps data set index to its final certificate, `labels` what was drawn.

    Rows count as final when written under the same spending options as this session's (`knobs`): a run
    extended with a larger cap or budget replays its inputs instead (error rows are always retried).
    """

    def __init__(self, path: Path, config: dict, handle, sync_seconds: float):
        self.path, self.config, self._handle = path, config, handle
        self.finished: dict[int, Certificate] = {}
        self.labels = LabelCache()
        self.runs: list[dict | None] = []  # each session's spending options, in order
        self.sync_seconds = sync_seconds
        self._last_sync = time.monotonic()

    @classmethod
    def open(
        cls, path: str | Path, config: dict, sync_seconds: float = 1.0, knobs: dict | None = None
    ) -> ResultsJournal:
        """Open `path` for appending, creating it or resuming it, for a session with spending options `knobs`.

        Resuming keeps every complete line of a journal with the same configuration and cuts off a
        truncated last line; a journal with another configuration that holds results or labels raises
        JournalError naming what changed (one holding neither is replaced). Only one process may hold a
        journal at a time. `knobs` None (a caller without spending options): every row is final.
        """
        path = Path(path)
        config = _normalized(config) or {}
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - held open (and locked) for the whole run, closed by close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise JournalError(
                f"another haltfast run is writing {path}; wait for it to finish or choose another --out"
            ) from None
        journal = cls(path, config, handle, sync_seconds)
        try:
            handle.seek(0)
            keep = journal._read(handle.read(), _normalized(knobs))
            if keep is None:  # new file, or a journal without results or labels: start it over
                handle.truncate(0)
                handle.write(json.dumps({"haltfast_journal": JOURNAL_FORMAT, "config": config}).encode() + b"\n")
            else:
                handle.truncate(keep)  # drop a line a killed run left half-written
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            raise
        return journal

    def _read(self, data: bytes, knobs: dict | None) -> int | None:
        """Read the complete lines; the byte length to keep, or None when the journal should start over."""
        if not data:
            return None
        end = data.rfind(b"\n") + 1  # a last line without its newline was cut off mid-write
        lines = data[:end].splitlines()
        if not lines:
            return None
        header = _header(self.path, lines[0])
        labels = LabelCache()
        sessions, held = _sessions(self.path, lines, labels)
        if not held:
            return None
        _check_config(self.path, header.get("config", {}), self.config, sessions)
        self.labels = labels
        self.runs = [k for k, _ in sessions]
        final = sessions if knobs is None else _same_knobs_suffix(sessions, knobs)
        for _, rows in final:
            for row in rows:
                cert = Certificate.from_row(row)
                if cert.decision == "error":
                    self.finished.pop(cert.index, None)
                else:
                    self.finished[cert.index] = cert
        return end

    def start_run(self, knobs: dict) -> None:
        """Record that a session with these spending options starts (rows it writes are final for them)."""
        self._write({"run": _normalized(knobs)})

    def append(self, cert: Certificate) -> None:
        """Write one finished input's row and flush it (it survives the process being killed from now on)."""
        self._write(cert.row())

    def append_draw(self, keys, starts, counts, labels: np.ndarray, num_classes: int) -> None:
        """Write the labels just drawn: keys[i]'s stream at starts[i] .. starts[i] + counts[i], back to back."""
        self._write(
            {
                "draw": {
                    "keys": np.asarray(keys).tolist(),
                    "starts": np.asarray(starts).tolist(),
                    "counts": np.asarray(counts).tolist(),
                    "labels": _pack(np.asarray(labels).astype(label_dtype(num_classes))),
                }
            }
        )

    def append_clean(self, keys, logits: np.ndarray | None = None, predictions: np.ndarray | None = None) -> None:
        """Write clean evaluations: logits (float32 where that is exact, else float64) or predictions."""
        if logits is not None:
            logits = np.asarray(logits, dtype=np.float64)
            narrow = logits.astype(np.float32)
            stored = narrow if np.array_equal(narrow.astype(np.float64), logits) else logits
            entry = {"keys": np.asarray(keys).tolist(), "logits": _pack(stored)}
        else:
            entry = {"keys": np.asarray(keys).tolist(), "predictions": np.asarray(predictions).tolist()}
        self._write({"clean": entry})

    def _write(self, entry: dict) -> None:
        self._handle.write(json.dumps(entry, default=_json_default).encode() + b"\n")
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


def _header(path: Path, line: bytes, formats: tuple[int, ...] = (JOURNAL_FORMAT,)) -> dict:
    try:
        header = json.loads(line)
        if not isinstance(header, dict) or "haltfast_journal" not in header:
            raise ValueError("no journal header")
    except ValueError:
        raise JournalError(f"{path} is not a haltfast results journal; move it away or choose another --out") from None
    if header["haltfast_journal"] not in formats:
        raise JournalError(
            f"{path} has journal format {header['haltfast_journal']}, this haltfast writes "
            f"{JOURNAL_FORMAT}; delete it (its results are lost) or choose another --out"
        )
    return header


Session = tuple[dict | None, list[dict]]  # a session's spending options (None before any) and its rows
START_OVER = "; delete it to start over (its results are lost) or choose another --out"


def _sessions(
    path: Path, lines: list[bytes], labels: LabelCache | None, advice: str = START_OVER
) -> tuple[list[Session], bool]:
    """The sessions of a journal's complete lines (the header first), and whether it holds results, labels or
    clean evaluations. Labels drawn and clean evaluations go to `labels` (None: they are skipped undecoded)."""
    sessions: list[Session] = []
    held = False
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            if "run" in entry:
                sessions.append((entry["run"], []))
            elif "draw" in entry or "clean" in entry:
                if labels is not None:
                    _cache(labels, entry)
                held = True
            elif "index" in entry and "decision" in entry:
                if not sessions:
                    sessions.append((None, []))
                sessions[-1][1].append(entry)
                held = True
            else:
                raise ValueError("not a journal line")
        except (ValueError, KeyError, TypeError, zlib.error):
            raise JournalError(f"{path} is corrupt at line {number}{advice}") from None
    return sessions, held


def _cache(labels: LabelCache, entry: dict) -> None:
    """Add a `draw` line's labels or a `clean` line's evaluations to the cache."""
    if "draw" in entry:
        d = entry["draw"]
        labels.add(d["keys"], d["starts"], d["counts"], _unpack(d["labels"]))
        return
    c = entry["clean"]
    if "logits" in c:
        values = _unpack(c["logits"]).astype(np.float64).reshape(len(c["keys"]), -1)
        labels.clean_logits.update(zip(c["keys"], values))
    else:
        labels.clean_predictions.update(zip(c["keys"], c["predictions"]))


def read_journal(path: str | Path) -> tuple[dict, list[Certificate]]:
    """A results journal's configuration and the latest certificate of each input it holds, in index order.

    Read only, without the lock (a journal still being written may be read): rows of inputs the model failed on
    are skipped, a last line cut off mid-write is ignored, and the labels it holds are not decoded. Format 1
    journals (rows only) are read too. Anything that is not a haltfast journal is one JournalError.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"cannot read results journal {path}: {exc.strerror or exc}") from None
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    header = _header(path, lines[0] if lines else b"", formats=(1, JOURNAL_FORMAT))
    sessions, _ = _sessions(path, lines, None, advice="")
    latest: dict[int, Certificate] = {}
    for _, rows in sessions:
        for row in rows:
            cert = Certificate.from_row(row)
            if cert.decision != "error":
                latest[cert.index] = cert
    return dict(header.get("config", {})), [latest[index] for index in sorted(latest)]


def _check_config(path: Path, old: dict, new: dict, sessions: list) -> None:
    if old == new:
        return
    changed = ", ".join(
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    )
    rows = sum(len(rows) for _, rows in sessions)
    raise JournalError(
        f"{path} holds {rows} results (and the labels drawn for them) of a run with a different configuration "
        f"({changed}); rerun with the original options to resume it, choose another --out, or delete "
        f"{path.name} to start over"
    )


def _same_knobs_suffix(sessions: list, knobs: dict) -> list:
    """The sessions at the end of the journal that ran with these spending options."""
    out: list = []
    for session in reversed(sessions):
        if session[0] != knobs:
            break
        out.append(session)
    return out[::-1]


class JournaledLabels:
    """A label source that answers from the journal as far as it holds each stream and asks `inner` beyond,
    journaling what `inner` returns: no position of a stream is evaluated twice, across sessions too."""

    def __init__(self, inner: LabelSource, keys, journal: ResultsJournal):
        self.inner, self.journal = inner, journal
        self.keys = np.asarray(keys, dtype=np.int64)
        self.num_classes = inner.num_classes
        self.cache = journal.labels
        self.item_cost = np.zeros(0)  # labels(): each item's model work (the inner source's, 0 for journaled labels)

    def labels(
        self, items: np.ndarray, starts: np.ndarray, counts: np.ndarray, stop: Stop | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        keys = self.keys[items]
        cached = np.clip(self.cache.lengths(keys) - starts, 0, counts)
        live = np.nonzero(cached < counts)[0]
        live_drawn = np.zeros(items.size, dtype=np.int64)
        errors: dict[int, str] = {}
        fresh = np.zeros(0, dtype=np.int64)
        self.item_cost = np.zeros(items.size)  # the journal's labels cost no model time
        if live.size:
            fresh, got, errors = self.inner.labels(
                items[live], starts[live] + cached[live], counts[live] - cached[live], stop
            )
            live_drawn[live] = got
            cost = getattr(self.inner, "item_cost", None)
            self.item_cost[live] = got if cost is None or len(cost) != live.size else cost
            kept = got > 0
            if kept.any():
                self.journal.append_draw(
                    keys[live][kept], (starts + cached)[live][kept], got[kept], fresh, self.num_classes
                )
        failed = np.array([int(i) in errors for i in items], dtype=bool)
        drawn = np.where(failed, 0, cached + live_drawn)
        parts, offset = [], 0
        for k in range(items.size):
            if drawn[k]:
                if cached[k]:
                    parts.append(self.cache.take(int(keys[k]), int(starts[k]), int(cached[k])))
                parts.append(fresh[offset : offset + live_drawn[k]])
            offset += live_drawn[k]
        labels = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
        return labels, drawn, errors

    def clean_logits(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        return self._clean(items, logits=True)

    def clean(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        return self._clean(items, logits=False)

    def _clean(self, items: np.ndarray, logits: bool) -> tuple[np.ndarray, dict[int, str]]:
        keys = self.keys[items]
        known = [self._known(int(k), logits) for k in keys]
        missing = np.array([v is None for v in known], dtype=bool)
        out = np.zeros((items.size, self.num_classes) if logits else items.size)
        errors: dict[int, str] = {}
        if missing.any():
            got, errors = (self.inner.clean_logits if logits else self.inner.clean)(items[missing])
            got = np.asarray(got)
            out[missing] = got
            ok = np.array([int(i) not in errors for i in items[missing]], dtype=bool)
            if ok.any():
                new_keys = keys[missing][ok]
                if logits:
                    self.journal.append_clean(new_keys, logits=got[ok])
                    self.cache.clean_logits.update(zip(new_keys.tolist(), got[ok].astype(float)))
                else:
                    self.journal.append_clean(new_keys, predictions=got[ok])
                    self.cache.clean_predictions.update(zip(new_keys.tolist(), got[ok].tolist()))
        for k in np.nonzero(~missing)[0]:
            out[k] = known[k]
        return (out if logits else out.astype(np.int64)), errors

    def _known(self, key: int, logits: bool):
        """The journaled clean evaluation of this key (logits, or a prediction), or None."""
        if key in self.cache.clean_logits:
            values = self.cache.clean_logits[key]
            return values if logits else int(np.argmax(values))
        return None if logits else self.cache.clean_predictions.get(key)

    def forget(self, items: np.ndarray) -> None:
        self.inner.forget(items)
        self.cache.drop(self.keys[items])
