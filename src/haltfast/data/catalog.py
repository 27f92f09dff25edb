"""Data sets: the protocol's (Fashion-MNIST idx files, scikit-learn's digits) and the user's own images.

`open_dataset` reads any supported format lazily as an ImageSource (see docs/data.md): Fashion-MNIST or any
MNIST-format idx directory, digits, a folder of images in class folders, an .npz file or a directory holding
x.npy and y.npy, and the CIFAR-10 binary batches. `load_dataset` loads a protocol split whole, as a Dataset.

Splits follow the evaluation protocol (docs/data.md): base models train on
the first 50k images of the official training file, the last 10k are the
meta-learner's calibration split, and evaluation uses the official test file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..errors import DataNotFoundError
from .folders import FolderBackend
from .formats import CIFAR_TEST_FILES
from .formats import CIFAR_TRAIN_FILES
from .formats import ArrayBackend
from .formats import MemoryStore
from .formats import cifar_batches
from .formats import detect_layout
from .formats import idx_images
from .formats import load_labels
from .formats import npy_images
from .formats import npz_images
from .formats import npz_members
from .formats import read_idx
from .sources import ImageSource
from .sources import check_labels
from .sources import subset_positions
from .transforms import Transform

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_DIR_ENV = "HALTFAST_DATA_DIR"
DATASETS = ("fashion-mnist", "digits")
SPLITS = ("train", "calibration", "test")
CIFAR_SPLITS = ("train", "test")
TRAIN_SIZE = 50_000
INSTALL_HINT = (
    "Fashion-MNIST is not installed. Install it with\n"
    "    apt-get update && apt-get install -y dataset-fashion-mnist\n"
    f"or point --data-dir (or ${DATA_DIR_ENV}) at a directory holding MNIST-format idx files "
    "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)."
)
FORMATS_HINT = (
    "--data accepts fashion-mnist, digits, idx (with --data-dir), or the path of: a folder of images in class "
    "folders (root/<class>/<image>.png|jpg), an .npz file with arrays x and y, a directory holding x.npy and y.npy, "
    "a directory of MNIST-format idx files, or the CIFAR-10 binary batches (cifar-10-batches-bin). See docs/data.md."
)
PICKLED_CIFAR = (
    "{path} is the Python version of CIFAR-10, whose batches are pickles; haltfast never reads pickles (loading one "
    "can run arbitrary code). Download the binary version, cifar-10-binary.tar.gz, and point --data at the "
    "cifar-10-batches-bin directory it unpacks to."
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

    def subset(self, skip: int = 1, max_items: int | None = None) -> Dataset:
        """Every `skip`-th item (Cohen's protocol uses skip 20), at most `max_items` of them."""
        sel = subset_positions(len(self), skip, max_items)
        return Dataset(self.name, self.split, self.images[sel], self.labels[sel], self.indices[sel], self.num_classes)


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


def _protocol_rows(split: str, count: int, origin: str) -> np.ndarray:
    """The rows of a protocol split: train = the first 50k training images, calibration = the rest, test = all."""
    rows = np.arange(count, dtype=np.int64)
    rows = rows[:TRAIN_SIZE] if split == "train" else rows[TRAIN_SIZE:] if split == "calibration" else rows
    if len(rows) == 0:
        raise DataError(
            f"{origin}: the {split} split is empty (calibration = training images {TRAIN_SIZE:,} "
            f"onward; this training file holds {count:,})"
        )
    return rows


def _open_idx(name: str, directory: Path, split: str, transform: Transform, num_classes: int | None) -> ImageSource:
    prefix = "t10k" if split == "test" else "train"
    image_path = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
    label_path = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = idx_images(image_path), read_idx(label_path)
    if labels.ndim != 1 or len(labels) != images.count:
        raise DataError(
            f"{directory}: images {(images.count, *images.item_shape)} and labels {labels.shape} do not match"
        )
    rows = _protocol_rows(split, images.count, str(directory))
    if name == "fashion-mnist" and num_classes is None:
        num_classes = 10
    labels, num_classes = check_labels(labels[rows], num_classes, str(label_path))
    backend = ArrayBackend("idx", images, "NHW", transform, [image_path, label_path], {"format": "idx"})
    return ImageSource(name, split, backend, rows, labels, num_classes)


def _open_digits(split: str, transform: Transform, num_classes: int | None) -> ImageSource:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    n = len(order)
    bounds = {"train": (0, int(0.6 * n)), "calibration": (int(0.6 * n), int(0.8 * n)), "test": (int(0.8 * n), n)}
    rows = order[slice(*bounds[split])]
    labels, num_classes = check_labels(digits.target[rows], 10 if num_classes is None else num_classes, "digits")
    backend = ArrayBackend("digits", MemoryStore(digits.images / 16.0, "digits"), "NHW", transform, [], {})
    return ImageSource("digits", split, backend, rows, labels, num_classes)


def _open_arrays(
    name: str, path: Path, transform: Transform, layout: str | None, num_classes: int | None
) -> ImageSource:
    """An .npz holding x and y, or a directory holding x.npy and y.npy (both read with pickles refused)."""
    if path.is_file():
        members = npz_members(path)
        if "x.npy" not in members or "y.npy" not in members:
            found = ", ".join(member.removesuffix(".npy") for member in members) or "nothing"
            raise DataError(
                f"{path} must hold an image array x and a label array y "
                f"(np.savez(path, x=images, y=labels)); it holds {found}"
            )
        store, labels, files, format = npz_images(path, "x.npy"), load_labels(path, "y"), [path], "npz"
    else:
        store, labels = npy_images(path / "x.npy"), load_labels(path / "y.npy")
        files, format = [path / "x.npy", path / "y.npy"], "npy"
    labels, num_classes = check_labels(labels, num_classes, f"{path} (y)")
    if len(labels) != store.count:
        raise DataError(
            f"{path}: x holds {store.count} images but y holds {len(labels)} labels; they must match one to one"
        )
    item_layout = detect_layout((store.count, *store.item_shape), layout, store.origin)
    backend = ArrayBackend(format, store, item_layout, transform, files, {"format": format})
    backend.check_floats()
    return ImageSource(name, "all", backend, np.arange(store.count, dtype=np.int64), labels, num_classes)


def _open_cifar(name: str, directory: Path, split: str, transform: Transform, num_classes: int | None) -> ImageSource:
    paths = [directory / file for file in (CIFAR_TEST_FILES if split == "test" else CIFAR_TRAIN_FILES)]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise DataNotFoundError(
            f"{directory} lacks {', '.join(missing)} (the {split} split of the CIFAR-10 binary "
            "version: data_batch_1.bin .. data_batch_5.bin and test_batch.bin)"
        )
    store, labels = cifar_batches(paths)
    if labels.max() > 9:
        raise DataError(
            f"{directory}: label byte {labels.max()} in a batch; CIFAR-10 labels are 0..9, so these "
            "are not CIFAR-10 binary batches (CIFAR-100's format is not supported)"
        )
    labels, num_classes = check_labels(labels, 10 if num_classes is None else num_classes, str(directory))
    backend = ArrayBackend("cifar-10-bin", store, "NCHW", transform, paths, {"format": "cifar-10-bin"})
    names_file = directory / "batches.meta.txt"  # the class names, one a line, shipped with the binary version
    names = names_file.read_text().split() if names_file.is_file() else None
    classes = names if names is not None and len(names) == num_classes else None
    return ImageSource(name, split, backend, np.arange(store.count, dtype=np.int64), labels, num_classes, classes)


def _detect_format(path: Path) -> tuple[str, Path]:
    """(format, path) of a user's data path: npz, npy, cifar-10-bin, idx or imagefolder."""
    if path.is_file():
        if path.suffix == ".npz":
            return "npz", path
        if path.suffix == ".npy":
            raise DataError(
                f"{path}: a single .npy holds no labels; give a directory holding x.npy (images) and "
                "y.npy (labels), or an .npz with arrays x and y"
            )
        raise DataError(f"unknown data set {str(path)!r}: not a format haltfast reads. {FORMATS_HINT}")
    pickled = ("data_batch_1", "test_batch", "batches.meta")
    if (
        path.name == "cifar-10-batches-py"
        or any((path / file).is_file() for file in pickled)
        or ((path / "cifar-10-batches-py").is_dir() and not (path / "cifar-10-batches-bin").is_dir())
    ):
        raise DataError(PICKLED_CIFAR.format(path=path))
    if (path / "cifar-10-batches-bin").is_dir():
        return "cifar-10-bin", path / "cifar-10-batches-bin"
    if any((path / file).is_file() for file in CIFAR_TRAIN_FILES + CIFAR_TEST_FILES):
        return "cifar-10-bin", path
    if (path / "x.npy").is_file() or (path / "y.npy").is_file():
        if not ((path / "x.npy").is_file() and (path / "y.npy").is_file()):
            raise DataError(f"{path} must hold both x.npy (images) and y.npy (labels)")
        return "npy", path
    if any((path / f"{prefix}-images-idx3-ubyte{gz}").is_file() for prefix in ("train", "t10k") for gz in ("", ".gz")):
        return "idx", path
    return "imagefolder", path


def _format_of(text: str) -> tuple[str, Path]:
    """(format, path) of a data set name or path; the path is meaningless for the names."""
    if text in ("fashion-mnist", "idx", "digits"):
        return ("digits" if text == "digits" else "idx"), Path(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"unknown data set {text!r}: not a known name and no such file or directory. {FORMATS_HINT}")
    return _detect_format(path)


def dataset_splits(spec: str | os.PathLike) -> tuple[str, ...]:
    """The splits `spec` (as for open_dataset) offers; () for folders and arrays, which are one data set."""
    format, _ = _format_of(os.fspath(spec))
    if format in ("npz", "npy", "imagefolder"):
        return ()
    return CIFAR_SPLITS if format == "cifar-10-bin" else SPLITS


def _split_for(format: str, split: str | None) -> str:
    if format in ("npz", "npy", "imagefolder"):
        if split is not None:
            what = "an image folder" if format == "imagefolder" else "x/y arrays"
            raise DataError(
                f"split {split!r} does not apply to {what}: the whole of it is one data set. "
                "Leave out --split (give each split its own folder or file)"
            )
        return "all"
    choices = CIFAR_SPLITS if format == "cifar-10-bin" else SPLITS
    split = "test" if split is None else split
    if split not in choices:
        raise DataError(f"unknown split {split!r} for {format}; choose one of {', '.join(choices)}")
    return split


def open_dataset(
    spec: str | os.PathLike,
    split: str | None = None,
    data_dir: str | Path | None = None,
    resize: int | tuple[int, int] | None = None,
    center_crop: int | tuple[int, int] | None = None,
    layout: str | None = None,
    num_classes: int | None = None,
    classes=None,
) -> ImageSource:
    """Open a data set lazily (see docs/data.md); every check that needs no pixels is done before this returns.

    `spec` is fashion-mnist, digits, idx (with data_dir) or a path. `split` defaults to test where the data have
    splits and must be left out where they have none (folders, x/y arrays). `layout` (NCHW or NHWC) settles an
    ambiguous 4-d array. `num_classes`, if given, is checked against every label (default: the largest + 1, or
    the number of class folders, or 10 for the known sets). An image folder's labels are its sorted folders'
    numbers unless `classes` (the model's class names in index order, e.g. its card's, or 'sorted') or
    `num_classes` ties them to the model's classes (ImageSource.with_classes: integer folder names are class
    indices, names are looked up, anything unmatched is refused).
    """
    transform = Transform.from_args(resize, center_crop)
    text = os.fspath(spec)
    format, path = _format_of(text)
    if layout is not None and format not in ("npz", "npy"):
        raise DataError(f"layout applies to .npz / .npy images only; {text!r} is {format}")
    split = _split_for(format, split)
    if text == "idx" and data_dir is None:
        raise DataError("--data idx needs --data-dir: the directory holding MNIST-format idx files")
    if text in ("fashion-mnist", "idx"):
        return _open_idx(text, resolve_data_dir(data_dir), split, transform, num_classes)
    if format == "digits":
        return _open_digits(split, transform, num_classes)
    if format == "idx":
        return _open_idx(text, path, split, transform, num_classes)
    if format == "cifar-10-bin":
        return _open_cifar(text, path, split, transform, num_classes)
    if format in ("npz", "npy"):
        return _open_arrays(text, path, transform, layout, num_classes)
    backend = FolderBackend(path, transform)
    labels, found = check_labels(backend.labels, None, str(path))
    source = ImageSource(text, split, backend, np.arange(len(labels), dtype=np.int64), labels, found, backend.classes)
    if classes is None and num_classes is None:
        return source  # the folder's own numbering, until the model's classes are known (with_classes)
    if num_classes is None:
        num_classes = len(classes) if not isinstance(classes, str) else found
    return source.with_classes(classes, num_classes)


def load_dataset(name: str = "fashion-mnist", split: str = "test", data_dir: str | Path | None = None) -> Dataset:
    """Load a whole split of a data set into memory; raises DataNotFoundError with install instructions if missing."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    source = open_dataset(name, split, data_dir)
    images = source.load(np.arange(len(source)))
    return Dataset(
        source.name, source.split, images, np.array(source.labels), np.array(source.indices), source.num_classes
    )
