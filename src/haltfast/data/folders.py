"""Image folders (root/<class>/<file>.png|jpg|...), read with Pillow one window at a time.

Classes are the sorted names of root's sub-folders (label 0..K-1 by that order, as torchvision's ImageFolder numbers
them, until `folder_class_indices` ties each to the model's class index) and each class's files are found as
ImageFolder finds them (walked recursively, sorted). Every file's header is read when the folder is opened
(Pillow's Image.open decodes no pixels), so an unreadable file, an unsupported pixel mode or images of different
sizes are refused before any work; pixels are decoded only when a window asks for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DataError
from .sources import Reader
from .sources import hash_files
from .transforms import Transform

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GREY_MODES = ("1", "L", "LA")
COLOUR_MODES = ("RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


class PathTable:
    """Many relative paths in two arrays (UTF-8 bytes and offsets) instead of a list of Python strings."""

    def __init__(self, paths: list[str]):
        encoded = [os.fsencode(path) for path in paths]
        self.blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.offsets = np.cumsum([0] + [len(path) for path in encoded], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> str:
        return os.fsdecode(self.blob[self.offsets[row] : self.offsets[row + 1]].tobytes())


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def scan_folder(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(class names, file paths relative to root, labels); hidden files and folders are skipped."""
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        loose = [name for name in os.listdir(root) if _is_image(name)]
        if loose:
            raise DataError(
                f"{root} holds images but no class folders; put each class's images in its own "
                f"folder, {root}/<class>/<image> (e.g. {root}/{Path(loose[0]).stem}-class/{loose[0]})"
            )
        raise DataError(f"{root} is empty: no class folders with images ({', '.join(IMAGE_EXTENSIONS)}) in it")
    paths: list[str] = []
    counts = []
    for name in classes:
        walked = []
        for folder, subfolders, files in os.walk(root / name, followlinks=True):
            subfolders[:] = [sub for sub in subfolders if not sub.startswith(".")]
            walked.append((folder, sorted(file for file in files if _is_image(file))))
        found = [
            os.path.relpath(os.path.join(folder, file), root) for folder, files in sorted(walked) for file in files
        ]
        if not found:
            raise DataError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add some or remove the folder (every class folder counts as a class)"
            )
        paths += found
        counts.append(len(found))
    return classes, paths, np.repeat(np.arange(len(classes), dtype=np.int64), counts)


SORTED = "sorted"  # classes=: the user confirms that the sorted class folders are the model's classes in order


def folder_class_indices(folders: list[str], classes, num_classes: int, root) -> np.ndarray:
    """The model's class index of each class folder (sorted names), so that a label means the model's class.

    Folders named by integers are those class indices. Otherwise `classes` decides: the model's class names in
    index order (its card's, or a file's), to which every folder name must belong; or SORTED, the user's word that
    the folders are exactly the model's classes in sorted order (their number must be num_classes). Anything
    else is one DataError: a folder of 3 of 10 classes numbered 0, 1, 2 would be compared with the model's class
    indices and misstate every accuracy.
    """
    if all(name.isdigit() for name in folders):
        index = np.array([int(name) for name in folders], dtype=np.int64)
        if np.unique(index).size != index.size:
            raise DataError(f"{root}: class folders {', '.join(folders)} name the same class index twice")
        if index.max() >= num_classes:
            bad = folders[int(np.argmax(index))]
            raise DataError(
                f"{root}: class folder {bad!r} names class {int(bad)}, but the model predicts {num_classes} classes "
                f"(0..{num_classes - 1})"
            )
        return index
    if isinstance(classes, str) and classes == SORTED:
        if len(folders) != num_classes:
            raise DataError(
                f"{root} holds {len(folders)} class folders but the model predicts {num_classes} classes, so they "
                f"cannot be its classes in sorted order: name the folders by class index (0..{num_classes - 1}) or "
                "give the model's class names (--classes FILE, or haltfast card --classes)"
            )
        return np.arange(num_classes, dtype=np.int64)
    if classes is not None:
        names = [str(c) for c in classes]
        if len(names) != num_classes:
            raise DataError(f"{len(names)} class names given for a model of {num_classes} classes")
        lookup = {name: k for k, name in enumerate(names)}
        unknown = [name for name in folders if name not in lookup]
        if unknown:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise DataError(
                f"{root}: class folder {unknown[0]!r} is none of the model's classes ({shown}); rename it to one of "
                "them or to its class index"
            )
        return np.array([lookup[name] for name in folders], dtype=np.int64)
    raise DataError(
        f"{root}: its class folders ({', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''}) cannot be "
        f"matched to the model's {num_classes} classes: name them by class index (0..{num_classes - 1}), give the "
        "model's class names (haltfast card --classes FILE, or --classes FILE), or, if they are exactly its classes "
        "in sorted order, say so with --classes sorted"
    )


def _header(path: Path) -> tuple[int, int, str]:
    """(width, height, mode) from the file's header; no pixels are decoded."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from exc


class FolderBackend:
    """Pixels of an image folder: 8-bit grey (1 channel) if every image is grey, else RGB (grey ones converted)."""

    format = "imagefolder"

    def __init__(self, root: Path, transform: Transform):
        self.root, self.transform = root, transform
        self.classes, paths, self.labels = scan_folder(root)
        self.paths = PathTable(paths)
        self.mode, height, width = self._check_headers(paths)
        self.shape = (1 if self.mode == "L" else 3, height, width)
        self._digest: str | None = None

    def _check_headers(self, paths: list[str]) -> tuple[str, int, int]:
        """The common pixel mode and output size; refuses unreadable files, odd modes and mixed sizes."""
        first = None
        colour = False
        for path in paths:
            width, height, mode = _header(self.root / path)
            if mode not in GREY_MODES + COLOUR_MODES:
                raise DataError(
                    f"{self.root / path} has pixel mode {mode!r} (e.g. 16-bit or float); haltfast reads "
                    "8-bit grey or colour images: convert it to 8 bits per channel"
                )
            colour = colour or mode not in GREY_MODES
            size = self.transform.output_size(height, width, str(self.root / path))
            if first is None:
                first = (path, width, height, size)
            elif size != first[3]:
                done = " after resize and crop" if self.transform.active else ""
                raise DataError(
                    f"images have different sizes{done}: {self.root / first[0]} is {first[1]}x{first[2]} and "
                    f"{self.root / path} is {width}x{height} (width x height); pass resize and/or center_crop "
                    "(--resize, --center-crop) to bring every image to one size"
                )
        assert first is not None  # scan_folder refuses a folder without images
        return ("RGB" if colour else "L"), *first[3]

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        yield self._read

    def _read(self, rows: np.ndarray) -> np.ndarray:
        channels, height, width = self.shape
        out = np.empty((len(rows), height, width, channels), dtype=np.uint8)
        for i, row in enumerate(rows):
            out[i] = self._decode(int(row)).reshape(height, width, channels)
        return out.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)

    def _decode(self, row: int) -> np.ndarray:
        from PIL import Image

        path = self.root / self.paths[row]
        try:
            with Image.open(path) as image:
                pixels = np.asarray(self.transform.apply(image.convert(self.mode)))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {path}: {exc}; replace or remove the file") from exc
        if pixels.shape[:2] != self.shape[1:]:
            raise DataError(
                f"{path} changed since the folder was opened: it is now {pixels.shape[1]}x"
                f"{pixels.shape[0]} (width x height); open the folder again"
            )
        return pixels

    def digest(self) -> str:
        if self._digest is None:
            settings = {"classes": self.classes, "mode": self.mode, **self.transform.settings()}
            files = (self.root / self.paths[row] for row in range(len(self.paths)))
            self._digest = hash_files(files, settings, root=self.root)
        return self._digest

    def item_name(self, row: int) -> str:
        return str(self.root / self.paths[row])
