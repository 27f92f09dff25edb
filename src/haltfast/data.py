"""Data sets: MNIST-format idx files (Fashion-MNIST) and scikit-learn's digits.

Splits follow the evaluation protocol (DESIGN section 4): base models train on
the first 50k images of the official training file, the last 10k are the
meta-learner's calibration split, and evaluation uses the official test file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataNotFoundError, HaltfastError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_DIR_ENV = "HALTFAST_DATA_DIR"
DATASETS = ("fashion-mnist", "digits")
SPLITS = ("train", "calibration", "test")
TRAIN_SIZE = 50_000
INSTALL_HINT = (
    "Fashion-MNIST is not installed. Install it with\n"
    "    apt-get update && apt-get install -y dataset-fashion-mnist\n"
    f"or point --data-dir (or ${DATA_DIR_ENV}) at a directory holding MNIST-format idx files "
    "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)."
)


@dataclass(frozen=True)
class Dataset:
    """Images as float32 (N, C, H, W) in [0, 1], integer labels, and each image's index in its split."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """SHA-256 of the images, labels and indices: identifies the data a results journal belongs to."""
        digest = hashlib.sha256()
        for array in (self.images, self.labels, self.indices):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def subset(self, skip: int = 1, max_items: int | None = None) -> "Dataset":
        """Every `skip`-th item (Cohen's protocol uses skip 20), at most `max_items` of them."""
        if skip < 1:
            raise HaltfastError(f"--skip must be at least 1, got {skip}")
        if max_items is not None and max_items < 1:
            raise HaltfastError(f"--max must be at least 1, got {max_items}")
        sel = np.arange(0, len(self), skip)[:max_items]
        return Dataset(self.name, self.split, self.images[sel], self.labels[sel], self.indices[sel], self.num_classes)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into an array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise HaltfastError(f"cannot read idx file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise HaltfastError(f"{path} is not an idx file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise HaltfastError(f"{path}: unknown idx element type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(dtypes[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise HaltfastError(f"{path}: expected {expected} bytes of data for shape {shape}, found {len(raw) - offset}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataNotFoundError(f"{stem}[.gz] not found in {directory}.\n{INSTALL_HINT}")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The idx directory: the argument, else ${HALTFAST_DATA_DIR}, else the Debian package's location."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or FASHION_MNIST_DIR
    directory = Path(chosen)
    if not directory.is_dir():
        raise DataNotFoundError(f"data directory {directory} does not exist.\n{INSTALL_HINT}")
    return directory


def _load_idx_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prefix = "t10k" if split == "test" else "train"
    images = read_idx(_find_idx(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise HaltfastError(f"{directory}: images {images.shape} and labels {labels.shape} do not match")
    indices = np.arange(len(labels))
    if split == "train":
        indices = indices[:TRAIN_SIZE]
    elif split == "calibration":
        indices = indices[TRAIN_SIZE:]
    return images[indices], labels[indices], indices


def _load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    n = len(order)
    bounds = {"train": (0, int(0.6 * n)), "calibration": (int(0.6 * n), int(0.8 * n)), "test": (int(0.8 * n), n)}
    lo, hi = bounds[split]
    sel = order[lo:hi]
    return digits.images[sel] / 16.0, digits.target[sel], sel


def load_dataset(name: str = "fashion-mnist", split: str = "test", data_dir: str | Path | None = None) -> Dataset:
    """Load a split of a known data set; raises DataNotFoundError with install instructions if it is missing."""
    if split not in SPLITS:
        raise HaltfastError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if name == "fashion-mnist" or (name == "idx" and data_dir is not None):
        images, labels, indices = _load_idx_split(resolve_data_dir(data_dir), split)
        scale = 255.0
    elif name == "digits":
        images, labels, indices = _load_digits_split(split)
        scale = 1.0
    else:
        raise HaltfastError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)} (or 'idx' with --data-dir)")
    images = (np.asarray(images, dtype=np.float32) / np.float32(scale))[:, None, :, :]
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = 10 if name in DATASETS else int(labels.max()) + 1
    return Dataset(name, split, np.ascontiguousarray(images), labels, np.asarray(indices, dtype=np.int64), num_classes)
