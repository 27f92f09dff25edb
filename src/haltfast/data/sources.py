"""Lazily read image data: ImageSource and the rules every format shares (labels, pixels, hashing).

An ImageSource holds its labels and indices only. Images are read from their files when `load` or `windows`
asks for them, so the memory a run needs grows with the window it reads, never with the data set.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from ..errors import DataError
from ..errors import UsageError

HASH_CHUNK_BYTES = 1 << 20
Reader = Callable[[np.ndarray], np.ndarray]


class Backend(Protocol):
    """What a format gives ImageSource: a reader of its items by row, their shape, and a content hash."""

    format: str
    shape: tuple[int, int, int]

    def reader(self) -> AbstractContextManager[Reader]:
        """A context whose reader maps sorted unique rows to float32 images (k, C, H, W) in [0, 1]."""

    def digest(self) -> str:
        """SHA-256 (hex) of every file the items come from and of the settings that shape them."""

    def item_name(self, row: int) -> str:
        """Where the item with this row lives, for messages and results."""


def subset_positions(length: int, skip: int, max_items: int | None) -> np.ndarray:
    """Positions 0, skip, 2 skip, ... below `length`, at most `max_items` of them (Cohen's protocol: skip 20)."""
    if skip < 1:
        raise UsageError(f"--skip must be at least 1, got {skip}")
    if max_items is not None and max_items < 1:
        raise UsageError(f"--max must be at least 1, got {max_items}")
    return np.arange(0, length, skip, dtype=np.int64)[:max_items]


def check_labels(labels: np.ndarray, num_classes: int | None, origin: str) -> tuple[np.ndarray, int]:
    """Labels as int64, every one in [0, num_classes); num_classes defaults to the largest label + 1."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{origin}: labels must be one-dimensional, got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{origin}: labels must be integer class numbers 0..K-1, got dtype {labels.dtype}")
    if len(labels) == 0:
        raise DataError(f"{origin} holds no images")
    if labels.dtype.kind == "u" and labels.max() > np.iinfo(np.int64).max:
        raise DataError(f"{origin}: label {labels.max()} is too large; labels must be class numbers 0..K-1")
    labels = labels.astype(np.int64, copy=False)
    if labels.min() < 0:
        at = int(np.argmin(labels))
        raise DataError(f"{origin}: label {labels[at]} of item {at} is negative; labels must be class numbers 0..K-1")
    largest = int(labels.max())
    if num_classes is None:
        return labels, largest + 1
    if num_classes < 1:
        raise UsageError(f"num_classes must be at least 1, got {num_classes}")
    if largest >= num_classes:
        at = int(np.argmax(labels))
        raise DataError(
            f"{origin}: label {largest} of item {at} is out of range for {num_classes} classes "
            f"(labels must be 0..{num_classes - 1}); pass the right number of classes"
        )
    return labels, num_classes


def check_pixels(images: np.ndarray, origin: str, rows: np.ndarray) -> None:
    """Refuse float pixels that are not finite or lie outside [0, 1]; the message names the first bad item's row."""
    bad = ~np.isfinite(images) | (images < 0) | (images > 1)
    if bad.any():
        item = int(np.flatnonzero(bad.reshape(len(images), -1).any(axis=1))[0])
        values = images[item][bad[item]]
        raise DataError(
            f"{origin}: item {rows[item]} has pixel value {float(values.flat[0])}; float pixels must "
            "lie in [0, 1] (store 0..255 images as uint8, or divide by 255)"
        )


def hash_files(paths: Iterable[str | os.PathLike], settings: dict, root: str | os.PathLike | None = None) -> str:
    """SHA-256 of the settings and of each file's name (relative to root, else its base name), size and bytes.

    Files are read in 1 MiB chunks, so memory stays O(1) whatever their number and size.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in paths:
        name = os.path.relpath(path, root) if root is not None else os.path.basename(path)
        digest.update(os.fsencode(name) + b"\0" + str(os.path.getsize(path)).encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


class ImageSource:
    """A data set's split, read lazily: labels and indices in memory, images read a window at a time.

    `indices[i]` is item i's index in its file (or sorted file list), which also keys its noise stream.
    """

    def __init__(
        self,
        name: str,
        split: str,
        backend: Backend,
        indices: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        classes: list[str] | None = None,
    ):
        self.name = name
        self.split = split
        self.classes = classes  # class names by label, where the data name them (image folders)
        self._backend = backend
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.indices.flags.writeable = False
        self.labels.flags.writeable = False

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return (
            f"ImageSource({self.name!r}, split={self.split!r}, format={self.format!r}, items={len(self)}, "
            f"shape={self.shape}, num_classes={self.num_classes})"
        )

    @property
    def format(self) -> str:
        """The file format the items come from (idx, digits, npz, npy, cifar-10-bin, imagefolder)."""
        return self._backend.format

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image, after resize and centre crop."""
        return self._backend.shape

    def with_classes(self, classes, num_classes: int) -> ImageSource:
        """This source with labels that mean the model's classes (num_classes of them): an image folder's labels
        are its folders' class indices by `folder_class_indices` (classes: the model's class names, 'sorted', or
        None where the folders are named by index); other formats' labels are class indices already, checked
        against num_classes."""
        from .folders import folder_class_indices

        if self.format != "imagefolder":
            check_labels(np.asarray(self.labels), num_classes, self.name)
            return self
        assert self.classes is not None  # an image folder names its classes
        index = folder_class_indices(self.classes, classes, num_classes, self.name)
        names: list[str] | None = None
        if classes is not None and not isinstance(classes, str):
            names = [str(c) for c in classes]
        elif isinstance(classes, str):  # 'sorted': the folders are the classes
            names = list(self.classes)
        return ImageSource(self.name, self.split, self._backend, self.indices, index[self.labels], num_classes, names)

    def subset(self, skip: int = 1, max_items: int | None = None) -> ImageSource:
        """A view of every `skip`-th item, at most `max_items` of them; nothing is read."""
        keep = subset_positions(len(self), skip, max_items)
        return ImageSource(
            self.name, self.split, self._backend, self.indices[keep], self.labels[keep], self.num_classes, self.classes
        )

    def item_name(self, position: int) -> str:
        """Where item `position` lives: a file path for image folders, `file[index]` for array files."""
        return self._backend.item_name(int(self.indices[self._positions([position])[0]]))

    def load(self, positions: Iterable[int] | np.ndarray) -> np.ndarray:
        """float32 images (k, C, H, W) in [0, 1] of these positions, in this order; reads only those items."""
        positions = self._positions(positions)
        with self._backend.reader() as read:
            return self._read(read, positions)

    def windows(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions, images) for consecutive windows of at most `size` items; one window is in memory at a time."""
        if size < 1:
            raise UsageError(f"window size must be at least 1, got {size}")
        with self._backend.reader() as read:
            for start in range(0, len(self), size):
                positions = np.arange(start, min(start + size, len(self)), dtype=np.int64)
                yield positions, self._read(read, positions)

    def fingerprint(self) -> str:
        """SHA-256 identifying the data: every file's bytes (streamed, see hash_files), settings, split, indices.

        A subset has another fingerprint than its full source: journal the full source's.
        """
        digest = hashlib.sha256(
            json.dumps(
                {"format": self.format, "split": self.split, "shape": self.shape, "num_classes": self.num_classes}
            ).encode()
        )
        digest.update(self._backend.digest().encode())
        digest.update(self.indices.tobytes())
        digest.update(self.labels.tobytes())
        return digest.hexdigest()

    def _positions(self, positions: Iterable[int] | np.ndarray) -> np.ndarray:
        positions = np.asarray(positions if isinstance(positions, np.ndarray) else list(positions))
        if positions.size and positions.dtype.kind not in "iu":
            raise UsageError(f"positions must be integers, got dtype {positions.dtype}")
        positions = positions.astype(np.int64).reshape(-1)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"positions must lie in [0, {len(self)}); got {positions.min()}..{positions.max()}")
        return positions

    def _read(self, read: Reader, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.empty((0, *self.shape), dtype=np.float32)
        rows, inverse = np.unique(self.indices[positions], return_inverse=True)
        images = read(rows)
        return (
            images
            if len(rows) == len(positions) and np.array_equal(rows, self.indices[positions])
            else images[inverse.reshape(-1)]
        )
