import gzip

import numpy as np
import pytest

from haltfast.data import FASHION_MNIST_DIR
from haltfast.data import load_dataset
from haltfast.data import read_idx


def _write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(">u1").tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx" + (".gz" if gz else ""))
    _write_idx(path, arr, gz)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_custom_idx_directory_with_splits(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50_010), ("t10k", 7)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 2, 2)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), gz=True)
    train = load_dataset("idx", "train", tmp_path)
    calib = load_dataset("idx", "calibration", tmp_path)
    test = load_dataset("idx", "test", tmp_path)
    assert (len(train), len(calib), len(test)) == (50_000, 10, 7)
    assert set(train.indices).isdisjoint(calib.indices)
    assert train.images.shape[1:] == (1, 2, 2) and train.images.dtype == np.float32
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0


def test_digits_splits_are_disjoint_and_cover_everything():
    parts = [load_dataset("digits", s) for s in ("train", "calibration", "test")]
    idx = np.concatenate([p.indices for p in parts])
    assert len(idx) == len(set(idx)) == 1797
    assert parts[0].images.shape[1:] == (1, 8, 8) and parts[0].num_classes == 10


def test_subset_follows_cohens_skip():
    test = load_dataset("digits", "test")
    sub = test.subset(skip=20, max_items=5)
    np.testing.assert_array_equal(sub.indices, test.indices[::20][:5])


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_protocol_splits():
    train = load_dataset("fashion-mnist", "train")
    calib = load_dataset("fashion-mnist", "calibration")
    test = load_dataset("fashion-mnist", "test")
    assert (len(train), len(calib), len(test)) == (50_000, 10_000, 10_000)
    assert len(test.subset(skip=20)) == 500
    assert train.images.shape[1:] == (1, 28, 28)
