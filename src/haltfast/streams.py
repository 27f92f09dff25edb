"""Label streams: each input's predicted labels under noise, read in order over any source of labels (numpy only).

A label source answers "the labels of item i at stream positions s .. s + m" (`labels`), and the clean
prediction or logits of an item (`clean`, `clean_logits`); it is stateless, so the same question always has
the same answer. The model under noise (haltfast.sampling), a recording (`RecordedLabels`), a pool of Ray
workers (haltfast.distributed) and a results journal that remembers what was drawn (haltfast.journal) are
label sources. `Streams` reads each item's stream from its start, in order, and counts every model
evaluation in `positions`: it is what every certification procedure draws from, so a run gives the same
certificates whatever source serves its labels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .errors import HaltfastError

Stop = Callable[[], bool]  # asked between model batches: True ends a draw early (a deadline passed)


class LabelSource(Protocol):
    """Labels at any positions of each item's stream; the same question always gets the same answer."""

    num_classes: int

    def labels(
        self, items: np.ndarray, starts: np.ndarray, counts: np.ndarray, stop: Stop | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """(labels back to back, drawn per item, errors): item i's labels at positions starts[i] onwards.

        drawn[i] == counts[i] unless item i failed (then 0, and errors[i] says why) or `stop` ended the draw
        early (a prefix of the request, no error)."""
        ...

    def clean(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        """The prediction on each clean item (one evaluation each); failed items get -1 and an error."""
        ...

    def clean_logits(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        """The logits (k, num_classes) on each clean item (one evaluation each); failed rows -1 and an error."""
        ...

    def forget(self, items: np.ndarray) -> None:
        """These items are finished: the source may free what it holds for them."""
        ...


def as_items(items: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(items, dtype=np.int64).reshape(-1)


class Streams:
    """Each item's label stream, consumed in order from its start; `positions` counts the evaluations drawn.

    `stop`, when set, is asked between model batches and ends a draw early (the items then draw a prefix of
    what was asked); it is how a deadline stops a run within a batch's time. `last_cost`, after a draw, is each
    item's share of the model work it took part in where the source measures it (a source's optional `item_cost`:
    the model's own labels report seconds of model batches, a journal 0 for the labels it holds), else None.
    """

    def __init__(self, source: LabelSource, n_items: int):
        self.source = source
        self.positions = np.zeros(int(n_items), dtype=np.int64)
        self.num_classes = int(source.num_classes)
        self.stop: Stop | None = None
        self.last_cost: np.ndarray | None = None

    def draw_flat(
        self, items: Sequence[int] | np.ndarray, counts: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """The next counts[i] labels of each item, back to back: (labels, counts drawn, errors).

        An item whose model call fails draws nothing (count 0) and gets a message; the others go on.
        """
        items = as_items(items)
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        labels, drawn, errors = self.source.labels(items, self.positions[items].copy(), counts, self.stop)
        self.positions[items] += drawn
        cost = getattr(self.source, "item_cost", None)
        self.last_cost = None if cost is None or len(cost) != len(items) else np.array(cost, dtype=float)
        return labels, drawn, errors

    def draw(
        self, items: Sequence[int] | np.ndarray, counts: Sequence[int] | np.ndarray
    ) -> tuple[list[np.ndarray | None], dict[int, str]]:
        """The next counts[i] labels of each item, one array each; items whose model call fails come back None."""
        labels, drawn, errors = self.draw_flat(items, counts)
        out: list[np.ndarray | None] = list(np.split(labels.astype(np.int64), np.cumsum(drawn)[:-1]))
        for k, item in enumerate(as_items(items)):
            if int(item) in errors:
                out[k] = None
        return out, errors

    def clean(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        """The prediction on each clean (noise-free) item: one evaluation each."""
        return self.source.clean(as_items(items))

    def clean_logits(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        """The logits on each clean item (argmax = `clean`): one evaluation each."""
        return self.source.clean_logits(as_items(items))

    def forget(self, items: Sequence[int] | np.ndarray) -> None:
        """These items are finished: their source may free their noise and images (memory stays flat)."""
        self.source.forget(as_items(items))


class RecordedLabels:
    """The label source of a recording: each stream's labels, kept back to back in one flat array."""

    def __init__(
        self,
        streams: Sequence[np.ndarray],
        num_classes: int,
        clean: Sequence[int] | np.ndarray | None = None,
        logits: np.ndarray | None = None,
    ):
        lengths = np.array([len(x) for x in streams], dtype=np.int64)
        self.flat: np.ndarray
        if isinstance(streams, np.ndarray) and streams.ndim == 2:
            self.flat = streams.reshape(-1)
        else:
            self.flat = np.concatenate([np.asarray(x).reshape(-1) for x in streams]) if len(streams) else np.zeros(0)
        self.offset = np.cumsum(lengths) - lengths
        self.length = lengths
        self.num_classes = int(num_classes)
        self.clean_predictions = None if clean is None else np.asarray(clean, dtype=np.int64)
        self.logits = None if logits is None else np.asarray(logits, dtype=np.float64)
        if self.logits is not None:
            if self.logits.shape != (len(lengths), self.num_classes):
                raise HaltfastError(
                    f"clean logits have shape {self.logits.shape}, expected ({len(lengths)}, {self.num_classes})"
                )
            if self.clean_predictions is not None and np.any(self.logits.argmax(1) != self.clean_predictions):
                raise HaltfastError("clean logits disagree with the recorded clean predictions: another model?")

    def labels(
        self, items: np.ndarray, starts: np.ndarray, counts: np.ndarray, stop: Stop | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        over = starts + counts > self.length[items]
        if over.any():
            k = int(np.argmax(over))
            raise HaltfastError(
                f"recorded stream of input {int(items[k])} holds {int(self.length[items[k]])} labels; "
                f"this method needs more than {int(starts[k] + counts[k])}: record longer streams "
                f"(haltfast record --n)"
            )
        total = int(counts.sum())
        first = np.repeat(self.offset[items] + starts - (np.cumsum(counts) - counts), counts)
        return self.flat[first + np.arange(total)], counts, {}

    def clean(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        if self.clean_predictions is None:
            raise HaltfastError("this recording holds no clean predictions")
        return self.clean_predictions[items], {}

    def clean_logits(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        if self.logits is None:
            raise HaltfastError(
                "this replay holds no clean logits: load the recording with its model "
                "(load_recording(..., with_logits=True)) to use features of the clean input"
            )
        return self.logits[items], {}

    def forget(self, items: np.ndarray) -> None:
        """Nothing to free: a recording is held whole."""


class RecordedStreams(Streams):
    """Replays recorded label streams: every method sees identical noise draws.

    `streams[i]` is item i's recorded labels; `clean_predictions` and `logits` its clean evaluation, if recorded.
    """

    source: RecordedLabels

    def __init__(
        self,
        streams: Sequence[np.ndarray],
        num_classes: int,
        clean: Sequence[int] | np.ndarray | None = None,
        logits: np.ndarray | None = None,
    ):
        super().__init__(RecordedLabels(streams, num_classes, clean, logits), len(streams))
        rec = self.source
        self.streams = [rec.flat[o : o + n] for o, n in zip(rec.offset, rec.length)]

    @property
    def clean_predictions(self) -> np.ndarray | None:
        return self.source.clean_predictions

    @property
    def logits(self) -> np.ndarray | None:
        return self.source.logits

    def rewound(self) -> RecordedStreams:
        """The same recording with every stream back at its start (shares the label arrays and logits)."""
        fresh = copy.copy(self)  # the flat labels are shared, not concatenated again
        fresh.positions = np.zeros(len(self.streams), dtype=np.int64)
        return fresh
