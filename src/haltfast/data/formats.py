"""Array formats read lazily: MNIST idx, .npz, x.npy + y.npy, the CIFAR-10 binary batches, in-memory arrays.

Every file format is a run of fixed-size records after a header. A RecordFile reads the records it is asked for
by seeking (plain files) or by reading forward through the decompressed stream (gzip idx, compressed .npz),
never mapping or loading the whole file. Pickled data is never read.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import zipfile
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import ExitStack
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from typing import Protocol

import numpy as np

from ..errors import DataError
from .sources import HASH_CHUNK_BYTES
from .sources import Reader
from .sources import check_pixels
from .sources import hash_files
from .transforms import Transform

SCAN_CHUNK_BYTES = 8 << 20
LAYOUTS = ("NCHW", "NHWC")
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ByteStream(Protocol):
    """What the readers use of a binary stream: a plain file, a gzip stream or a zip member all qualify."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...


StreamOpener = Callable[[], AbstractContextManager[ByteStream]]


class ByteCursor:
    """Reads byte ranges of a stream: seeks when it can, else reads forward (reopening to go back)."""

    def __init__(self, open_stream: StreamOpener, seekable: bool, origin: str):
        self._open, self._seekable, self._origin = open_stream, seekable, origin
        self._stack = ExitStack()
        self._stream: ByteStream | None = None
        self._position = 0

    def close(self) -> None:
        self._stack.close()

    def read_at(self, position: int, size: int) -> bytes:
        if self._stream is None or (not self._seekable and position < self._position):
            self._stack.close()
            self._stream, self._position = self._stack.enter_context(self._open()), 0
        try:
            if self._seekable:
                self._stream.seek(position)
            else:
                while self._position < position:
                    skipped = len(self._stream.read(min(HASH_CHUNK_BYTES, position - self._position)))
                    if skipped == 0:
                        break
                    self._position += skipped
            data = self._stream.read(size)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read {self._origin}: {exc}") from exc
        self._position = position + len(data)
        if len(data) != size:
            raise DataError(f"{self._origin} is truncated: {size} bytes wanted at offset {position}, {len(data)} there")
        return data


class RecordFile:
    """`count` records of `record_bytes` from byte `offset` of a stream; each item is a record minus `skip_bytes`."""

    def __init__(
        self,
        origin: str,
        open_stream: StreamOpener,
        seekable: bool,
        offset: int,
        count: int,
        item_dtype: np.dtype,
        item_shape: tuple[int, ...],
        skip_bytes: int = 0,
    ):
        self.origin, self.count, self.offset = origin, count, offset
        self.item_dtype, self.item_shape, self.skip_bytes = np.dtype(item_dtype), tuple(item_shape), skip_bytes
        self.record_bytes = skip_bytes + int(np.prod(item_shape)) * self.item_dtype.itemsize
        self._open, self._seekable = open_stream, seekable

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        cursor = ByteCursor(self._open, self._seekable, self.origin)
        try:
            yield lambda rows: self._read(cursor, rows)
        finally:
            cursor.close()

    def _read(self, cursor: ByteCursor, rows: np.ndarray) -> np.ndarray:
        """Items of these sorted rows; one read per run of consecutive rows."""
        out = np.empty((len(rows), self.record_bytes), dtype=np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            data = cursor.read_at(
                self.offset + int(rows[start]) * self.record_bytes, int(stop - start) * self.record_bytes
            )
            out[start:stop] = np.frombuffer(data, dtype=np.uint8).reshape(-1, self.record_bytes)
        items = np.ascontiguousarray(out[:, self.skip_bytes :]) if self.skip_bytes else out
        return items.view(self.item_dtype).reshape(len(rows), *self.item_shape)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, items) for consecutive chunks of about 8 MiB: a streamed pass over the whole file."""
        step = max(1, SCAN_CHUNK_BYTES // self.record_bytes)
        with self.reader() as read:
            for start in range(0, self.count, step):
                yield start, read(np.arange(start, min(start + step, self.count)))


class MemoryStore:
    """Items of an array already in memory (scikit-learn's digits)."""

    def __init__(self, array: np.ndarray, origin: str):
        self.array, self.origin, self.count = array, origin, len(array)
        self.item_dtype, self.item_shape = array.dtype, array.shape[1:]

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        yield lambda rows: self.array[rows]

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        yield 0, self.array


class ConcatStore:
    """Several RecordFiles of one item type read as one (the CIFAR-10 training batches)."""

    def __init__(self, parts: list[RecordFile], origin: str):
        self.parts, self.origin = parts, origin
        self.bounds = np.cumsum([0] + [part.count for part in parts])
        self.count = int(self.bounds[-1])
        self.item_dtype, self.item_shape = parts[0].item_dtype, parts[0].item_shape

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        with ExitStack() as stack:
            readers = [stack.enter_context(part.reader()) for part in self.parts]

            def read(rows: np.ndarray) -> np.ndarray:
                part_of = np.searchsorted(self.bounds, rows, side="right") - 1
                return np.concatenate([readers[p](rows[part_of == p] - self.bounds[p]) for p in np.unique(part_of)])

            yield read

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        for bound, part in zip(self.bounds, self.parts):
            for start, items in part.chunks():
                yield int(bound) + start, items


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")


def plain_opener(path: Path) -> StreamOpener:
    return functools.partial(_open_binary, path)  # partials (not lambdas) keep sources picklable


def gzip_opener(path: Path) -> StreamOpener:
    return functools.partial(gzip.open, path, "rb")


@contextmanager
def _open_zip_member(path: Path, member: str) -> Iterator[ByteStream]:
    with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
        yield stream


def zip_member_opener(path: Path, member: str) -> StreamOpener:
    return functools.partial(_open_zip_member, path, member)


def detect_layout(shape: tuple[int, ...], layout: str | None, origin: str) -> str:
    """NHW for 3-d arrays; for 4-d ones the axis (second or last) of size 1, 3 or 4, else the given layout."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DataError(f"{origin}: images must be N x H x W, N x H x W x C or N x C x H x W; got shape {shape}")
    if layout is not None:
        if layout not in LAYOUTS:
            raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        return layout
    first, last = shape[1] in (1, 3, 4), shape[3] in (1, 3, 4)
    if first and last:
        raise DataError(
            f"{origin}: shape {shape} could be channels first or last; say which with "
            "layout='NCHW' or layout='NHWC' (--layout)"
        )
    if not (first or last):
        raise DataError(
            f"{origin}: shape {shape} has no channel axis of size 1, 3 or 4 in the second or last "
            "place; images must be N x C x H x W or N x H x W x C"
        )
    return "NCHW" if first else "NHWC"


class ArrayBackend:
    """Images stored as uint8 (scaled by 1/255) or float in [0, 1], in any of NHW, NHWC and NCHW."""

    def __init__(
        self,
        format: str,
        store: RecordFile | MemoryStore | ConcatStore,
        layout: str,
        transform: Transform,
        files: list[Path],
        settings: dict,
    ):
        self.format, self.store, self.layout, self.transform = format, store, layout, transform
        self._files, self._settings = files, settings
        self._digest: str | None = None
        if not (store.item_dtype == np.uint8 or store.item_dtype.kind == "f"):
            raise DataError(f"{store.origin}: images must be uint8 (0..255) or float (0..1), got {store.item_dtype}")
        item = tuple(store.item_shape)
        chw = (1, *item) if layout == "NHW" else (item[2], item[0], item[1]) if layout == "NHWC" else item
        self.shape = (chw[0], *transform.output_size(chw[1], chw[2], store.origin))

    def check_floats(self) -> None:
        """A streamed pass over float pixels: refuse NaN, infinities and values outside [0, 1] before any work."""
        if self.store.item_dtype.kind == "f":
            for start, items in self.store.chunks():
                check_pixels(items, self.store.origin, np.arange(start, start + len(items)))

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        with self.store.reader() as read:
            yield lambda rows: self._decode(read(rows), rows)

    def _decode(self, items: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if items.dtype.kind == "f":
            check_pixels(items, self.store.origin, rows)
        items = items[:, None] if self.layout == "NHW" else items
        items = items.transpose(0, 3, 1, 2) if self.layout == "NHWC" else items
        if self.transform.active:
            items = np.stack([self.transform.apply_array(image) for image in items])
        if items.dtype == np.uint8:
            return items.astype(np.float32) / np.float32(255)
        return np.ascontiguousarray(items, dtype=np.float32)

    def digest(self) -> str:
        if self._digest is None:
            settings = {**self._settings, **self.transform.settings(), "layout": self.layout}
            if isinstance(self.store, MemoryStore):
                self._digest = hashlib.sha256(
                    repr(sorted(settings.items())).encode() + np.ascontiguousarray(self.store.array).tobytes()
                ).hexdigest()
            else:
                self._digest = hash_files(self._files, settings)
        return self._digest

    def item_name(self, row: int) -> str:
        return f"{self.store.origin}[{row}]"


# ---------------------------------------------------------------- .npy and .npz


def _npy_header(stream: ByteStream, origin: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, leaving the stream at the data; refuses pickles and Fortran order."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise DataError(f"{origin}: unsupported .npy format version {version}; save it again with numpy")
        shape, fortran_order, dtype = read_header[version](stream)
    except ValueError as exc:
        raise DataError(f"{origin} is not a valid .npy array: {exc}") from exc
    if dtype.hasobject:
        raise DataError(
            f"{origin} holds Python objects, which only a pickle can restore; haltfast never reads "
            "pickles. Save a numeric array (uint8 or float images, integer labels)."
        )
    if fortran_order and len(shape) > 1:
        raise DataError(f"{origin} is stored in Fortran order; save np.ascontiguousarray(x) instead")
    return shape, dtype


def _records(
    origin: str, opener: StreamOpener, seekable: bool, offset: int, shape: tuple, dtype: np.dtype, available: int | None
) -> RecordFile:
    if len(shape) == 0 or shape[0] == 0:
        raise DataError(f"{origin} holds no images (shape {shape})")
    store = RecordFile(origin, opener, seekable, offset, shape[0], dtype, shape[1:])
    needed = offset + store.count * store.record_bytes
    if available is not None and available < needed:
        raise DataError(f"{origin} is truncated: shape {shape} needs {needed} bytes, the file has {available}")
    return store


def npy_images(path: Path) -> RecordFile:
    """The images array x.npy, read lazily by seeking."""
    with open(path, "rb") as fh:
        shape, dtype = _npy_header(fh, str(path))
        offset = fh.tell()
    return _records(str(path), plain_opener(path), True, offset, shape, dtype, os.path.getsize(path))


def npz_images(path: Path, member: str) -> RecordFile:
    """Array `member` of a .npz: seeked in place if stored, streamed forward if compressed (np.savez_compressed)."""
    origin = f"{path}:{member}"
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
            if info.flag_bits & 0x1:
                raise DataError(f"{origin} is encrypted; save the arrays with np.savez")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as stream:
                    shape, dtype = _npy_header(stream, origin)
                    offset = stream.tell()
                return _records(origin, zip_member_opener(path, member), False, offset, shape, dtype, None)
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise DataError(f"{path} is not a valid .npz file (bad local header for {member})")
            fh.seek(
                info.header_offset
                + 30
                + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little")
            )
            start = fh.tell()
            shape, dtype = _npy_header(fh, origin)
            offset = fh.tell()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc
    available = start + info.file_size
    return _records(origin, plain_opener(path), True, offset, shape, dtype, available)


def load_labels(path: Path, member: str | None = None) -> np.ndarray:
    """The label array y (small: read whole) with allow_pickle=False; a pickle is refused with a clear error."""
    origin = f"{path}:{member}" if member else str(path)
    try:
        if member is None:
            return np.asarray(np.load(path, allow_pickle=False))
        with np.load(path, allow_pickle=False) as archive:
            return np.asarray(archive[member])
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(
                f"{origin} holds Python objects, which only a pickle can restore; haltfast never reads "
                "pickles. Save the labels as an integer array."
            ) from exc
        raise DataError(f"{origin} is not a valid .npy array: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {origin}: {exc}") from exc


def npz_members(path: Path) -> list[str]:
    """The array names in a .npz (or a clear error if it is not a zip archive)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc


# ---------------------------------------------------------------- MNIST idx


def idx_header(stream: ByteStream, origin: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(element dtype, shape, header bytes) of an idx file, read from the start of its stream."""
    head = stream.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{origin} is not an idx file (bad magic number)")
    if head[2] not in IDX_DTYPES:
        raise DataError(f"{origin}: unknown idx element type 0x{head[2]:02x}")
    dims = stream.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        raise DataError(f"{origin} is not an idx file (header cut short)")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(head[3]))
    return np.dtype(IDX_DTYPES[head[2]]), shape, 4 + 4 * head[3]


def read_idx(path: str | Path) -> np.ndarray:
    """Read a whole idx file (optionally gzipped) into an array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            dtype, shape, _ = idx_header(fh, str(path))
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}") from exc
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: expected {expected} bytes of data for shape {shape}, found {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def idx_images(path: Path) -> RecordFile:
    """An idx3 image file (N x H x W bytes): seeked if plain, streamed forward if gzipped (never decompressed whole)."""
    gzipped = path.suffix == ".gz"
    opener = gzip_opener(path) if gzipped else plain_opener(path)
    try:
        with opener() as stream:
            dtype, shape, offset = idx_header(stream, str(path))
        if gzipped:  # the gzip trailer holds the uncompressed size modulo 2^32
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                available = int.from_bytes(fh.read(4), "little")
        else:
            available = os.path.getsize(path)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}") from exc
    if dtype != np.uint8 or len(shape) != 3:
        raise DataError(f"{path}: expected an idx3 file of unsigned bytes (N x H x W), got {dtype} of shape {shape}")
    expected = offset + int(np.prod(shape))
    if available != (expected % (1 << 32) if gzipped else expected):
        raise DataError(
            f"{path}: expected {expected - offset} bytes of data for shape {shape}, "
            f"found {available - offset}{' (modulo 2^32)' if gzipped else ''}"
        )
    return RecordFile(str(path), opener, not gzipped, offset, shape[0], np.dtype(np.uint8), shape[1:])


# ---------------------------------------------------------------- CIFAR-10 binary

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILES = ("test_batch.bin",)


def cifar_batches(paths: list[Path]) -> tuple[ConcatStore, np.ndarray]:
    """The batches' pixels (3 x 32 x 32 bytes per record, read lazily) and their labels (the first byte of each)."""
    parts = []
    for path in paths:
        size = os.path.getsize(path)
        if size == 0 or size % CIFAR_RECORD_BYTES:
            raise DataError(
                f"{path} is not a CIFAR-10 binary batch: its size ({size} bytes) is not a multiple of "
                f"{CIFAR_RECORD_BYTES} (1 label byte + 3072 pixel bytes per image)"
            )
        parts.append(
            RecordFile(
                str(path),
                plain_opener(path),
                True,
                0,
                size // CIFAR_RECORD_BYTES,
                np.dtype(np.uint8),
                (3, 32, 32),
                skip_bytes=1,
            )
        )
    labels = []
    for path, part in zip(paths, parts):
        head = RecordFile(str(path), plain_opener(path), True, 0, part.count, np.dtype(np.uint8), (CIFAR_RECORD_BYTES,))
        labels += [items[:, 0] for _, items in head.chunks()]
    return ConcatStore(parts, str(paths[0].parent)), np.concatenate(labels)
