"""Label streams replayed from a recording: the interface of live streams, numpy only (no torch).

A stream source has `num_classes`, `positions` (evaluations drawn so far per item), `draw(items, counts)`
(the next labels of each item, consumed in order), `clean(items)` and `clean_logits(items)`. Live
streams (haltfast.sampling.LiveStreams) run the model; RecordedStreams replay what `haltfast record` stored,
so every method sees identical noise draws.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from .errors import HaltfastError


class RecordedStreams:
    """Replays recorded label streams: the same interface as LiveStreams, identical noise draws for every method."""

    def __init__(
        self,
        streams: Sequence[np.ndarray],
        num_classes: int,
        clean: Sequence[int] | np.ndarray | None = None,
        logits: np.ndarray | None = None,
    ):
        lengths = np.array([len(x) for x in streams], dtype=np.int64)
        self._flat: np.ndarray
        if isinstance(streams, np.ndarray) and streams.ndim == 2:
            self._flat = streams.reshape(-1)
        else:
            self._flat = np.concatenate([np.asarray(x).reshape(-1) for x in streams]) if len(streams) else np.zeros(0)
        self._offset = np.cumsum(lengths) - lengths
        self._length = lengths
        self.streams = [self._flat[o : o + n] for o, n in zip(self._offset, lengths)]
        self.positions = np.zeros(len(self.streams), dtype=np.int64)
        self.num_classes = int(num_classes)
        self.clean_predictions = None if clean is None else np.asarray(clean, dtype=np.int64)
        self.logits = None if logits is None else np.asarray(logits, dtype=np.float64)
        if self.logits is not None:
            if self.logits.shape != (len(self.streams), self.num_classes):
                raise HaltfastError(
                    f"clean logits have shape {self.logits.shape}, expected ({len(self.streams)}, {self.num_classes})"
                )
            if self.clean_predictions is not None and np.any(self.logits.argmax(1) != self.clean_predictions):
                raise HaltfastError("clean logits disagree with the recorded clean predictions: another model?")

    def rewound(self) -> RecordedStreams:
        """The same recording with every stream back at its start (shares the label arrays and logits)."""
        fresh = copy.copy(self)  # the flat labels are shared, not concatenated again
        fresh.positions = np.zeros(len(self.streams), dtype=np.int64)
        return fresh

    def clean(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        if self.clean_predictions is None:
            raise HaltfastError("this recording holds no clean predictions")
        return self.clean_predictions[np.asarray(items, dtype=np.int64)], {}

    def clean_logits(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        if self.logits is None:
            raise HaltfastError(
                "this replay holds no clean logits: load the recording with its model "
                "(load_recording(..., with_logits=True)) to use features of the clean input"
            )
        return self.logits[np.asarray(items, dtype=np.int64)], {}

    def draw_flat(
        self, items: Sequence[int] | np.ndarray, counts: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """The next counts[i] labels of each item, back to back; (labels, counts drawn, errors): nothing fails here."""
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        start = self.positions[items]
        over = start + counts > self._length[items]
        if over.any():
            k = int(np.argmax(over))
            raise HaltfastError(
                f"recorded stream of input {int(items[k])} holds {int(self._length[items[k]])} labels; "
                f"this method needs more than {int(start[k] + counts[k])}: record longer streams "
                f"(haltfast record --n)"
            )
        total = int(counts.sum())
        first = np.repeat(self._offset[items] + start - (np.cumsum(counts) - counts), counts)
        labels = self._flat[first + np.arange(total)]
        self.positions[items] = start + counts
        return labels, counts, {}

    def draw(
        self, items: Sequence[int] | np.ndarray, counts: Sequence[int] | np.ndarray
    ) -> tuple[list[np.ndarray | None], dict[int, str]]:
        """The next counts[i] labels of each item, one array per item."""
        labels, drawn, _ = self.draw_flat(items, counts)
        return list(np.split(labels.astype(np.int64), np.cumsum(drawn)[:-1])), {}
