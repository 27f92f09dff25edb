"""open_dataset / ImageSource: every format read lazily, pixels and labels exactly as written, and one clear
error for each kind of bad data. All data are made on the fly in tmp_path."""

import gzip
import pickle
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from haltfast.data import Transform
from haltfast.data import check_pixels
from haltfast.data import load_dataset
from haltfast.data import open_dataset
from haltfast.data.formats import ByteCursor
from haltfast.errors import DataError
from haltfast.errors import DataNotFoundError
from haltfast.errors import HaltfastError

RNG = np.random.default_rng(0)


def _folder(root, images_by_class, suffix=".png"):
    """Write {class: [HxWxC or HxW uint8 array]} as root/<class>/<i>.png; returns root."""
    for name, images in images_by_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(images):
            Image.fromarray(pixels).save(root / name / f"{i:03d}{suffix}")
    return root


def _rgb(n, h=8, w=8):
    return [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _chw(pixels):
    return (pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]).astype(np.float32) / np.float32(255)


def _cifar_records(n, labels=None):
    labels = RNG.integers(0, 10, n) if labels is None else np.asarray(labels)
    return np.concatenate([labels[:, None], RNG.integers(0, 256, (n, 3072))], axis=1).astype(np.uint8)


def _write_idx(path, array):
    data = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data += array.astype(np.uint8).tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


# ---------------------------------------------------------------- image folders


def test_folder_pixels_labels_and_classes_are_exact(tmp_path):
    written = {"zebra": _rgb(2), "ant": _rgb(3), "moth": _rgb(1)}
    source = open_dataset(_folder(tmp_path, written))
    assert source.classes == ["ant", "moth", "zebra"] and source.num_classes == 3
    assert source.split == "all" and source.format == "imagefolder" and source.shape == (3, 8, 8)
    np.testing.assert_array_equal(source.labels, [0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(source.indices, np.arange(6))
    expected = np.stack([_chw(p) for name in ("ant", "moth", "zebra") for p in written[name]])
    np.testing.assert_array_equal(source.load(range(6)), expected)
    np.testing.assert_array_equal(source.load([5, 0, 5]), expected[[5, 0, 5]])
    assert source.item_name(3).endswith("moth/000.png")


def test_grey_folder_has_one_channel_and_grey_in_colour_folder_becomes_rgb(tmp_path):
    grey = [RNG.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(2)]
    only_grey = open_dataset(_folder(tmp_path / "grey", {"a": grey}))
    assert only_grey.shape == (1, 8, 8)
    np.testing.assert_array_equal(only_grey.load([1])[0], _chw(grey[1]))
    mixed = open_dataset(_folder(tmp_path / "mixed", {"a": grey, "b": _rgb(1)}))
    assert mixed.shape == (3, 8, 8)
    np.testing.assert_array_equal(mixed.load([0])[0], np.repeat(_chw(grey[0]), 3, axis=0))


def test_jpeg_of_one_colour_reads_back_that_colour(tmp_path):
    pixels = np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)
    source = open_dataset(_folder(tmp_path, {"a": [pixels]}, suffix=".jpg"))
    np.testing.assert_allclose(source.load([0])[0], _chw(pixels), atol=3 / 255)


def test_folder_reads_only_the_files_asked_for(tmp_path, monkeypatch):
    source = open_dataset(_folder(tmp_path, {"a": _rgb(4), "b": _rgb(4)}))
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))
    source.load([3])
    assert len(opened) == 1 and opened[0].endswith("a/003.png")
    opened.clear()
    windows = source.subset(skip=3).windows(2)
    positions, images = next(windows)
    assert positions.tolist() == [0, 1] and images.shape == (2, 3, 8, 8) and len(opened) == 2


def test_subset_follows_skip_and_max(tmp_path):
    source = open_dataset(_folder(tmp_path, {"a": _rgb(5), "b": _rgb(6)}))
    sub = source.subset(skip=3, max_items=3)
    np.testing.assert_array_equal(sub.indices, [0, 3, 6])
    np.testing.assert_array_equal(sub.labels, source.labels[[0, 3, 6]])
    np.testing.assert_array_equal(sub.load([0, 1, 2]), source.load([0, 3, 6]))
    windows = list(sub.windows(2))
    assert [p.tolist() for p, _ in windows] == [[0, 1], [2]]
    np.testing.assert_array_equal(np.concatenate([w for _, w in windows]), sub.load(range(3)))
    with pytest.raises(HaltfastError, match="--skip"):
        source.subset(skip=0)


# ---------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    "size, hw, expected",
    [
        (5, (10, 20), (5, 10)),
        (8, (30, 20), (12, 8)),
        (4, (7, 10), (4, 5)),
        ((4, 6), (9, 3), (4, 6)),
        (7, (7, 9), (7, 9)),
    ],
)
def test_resize_sizes_follow_torchvision(size, hw, expected):
    assert Transform.from_args(size, None).resized_size(*hw) == expected


@given(st.integers(1, 64), st.integers(1, 200), st.integers(1, 200))
def test_resize_int_sets_the_shorter_side_and_keeps_the_aspect(size, height, width):
    new_h, new_w = Transform.from_args(size, None).resized_size(height, width)
    assert min(new_h, new_w) == size
    long, new_long = max(height, width), max(new_h, new_w)
    assert new_long <= size * long / min(height, width) < new_long + 1


def test_center_crop_takes_the_middle_with_torchvisions_rounding(tmp_path):
    pixels = RNG.integers(0, 256, (7, 8, 3), dtype=np.uint8)
    source = open_dataset(_folder(tmp_path, {"a": [pixels]}), center_crop=(4, 3))
    assert source.shape == (3, 4, 3)
    # top = round(1.5) = 2, left = round(2.5) = 2 (Python rounds halves to even, as torchvision does)
    np.testing.assert_array_equal(source.load([0])[0], _chw(pixels[2:6, 2:5]))


def test_resize_then_crop_gives_one_size_for_mixed_sizes_and_one_colour_stays(tmp_path):
    colours = [
        np.full((h, w, 3), (10 * i, 100, 250 - i), dtype=np.uint8)
        for i, (h, w) in enumerate([(20, 30), (31, 17), (12, 12)])
    ]
    source = open_dataset(_folder(tmp_path, {"a": colours}), resize=10, center_crop=8)
    assert source.shape == (3, 8, 8)
    for i, colour in enumerate(colours):
        np.testing.assert_array_equal(source.load([i])[0], _chw(np.broadcast_to(colour[0, 0], (8, 8, 3))))


def test_arrays_and_folders_resize_alike(tmp_path):
    images = _rgb(3, 12, 20)
    folder = open_dataset(_folder(tmp_path / "f", {"a": images}), resize=7, center_crop=(6, 9))
    np.savez(tmp_path / "a.npz", x=np.stack(images), y=np.zeros(3, dtype=np.int64))
    arrays = open_dataset(tmp_path / "a.npz", resize=7, center_crop=(6, 9))
    assert folder.shape == arrays.shape == (3, 6, 9)
    np.testing.assert_array_equal(folder.load(range(3)), arrays.load(range(3)))


# ---------------------------------------------------------------- .npz and .npy


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
@pytest.mark.parametrize(
    "shape, to_nchw",
    [((9, 8, 6), lambda x: x[:, None]), ((9, 8, 6, 3), lambda x: x.transpose(0, 3, 1, 2)), ((9, 1, 8, 6), lambda x: x)],
)
def test_npz_uint8_reads_back_exactly_in_every_layout(tmp_path, save, shape, to_nchw):
    x, y = RNG.integers(0, 256, shape, dtype=np.uint8), RNG.integers(0, 4, shape[0])
    save(tmp_path / "d.npz", x=x, y=y)
    source = open_dataset(tmp_path / "d.npz")
    expected = to_nchw(x).astype(np.float32) / np.float32(255)
    assert source.shape == expected.shape[1:] and source.num_classes == y.max() + 1
    np.testing.assert_array_equal(source.labels, y)
    np.testing.assert_array_equal(source.load([8, 0, 4, 5]), expected[[8, 0, 4, 5]])
    np.testing.assert_array_equal(np.concatenate([w for _, w in source.windows(4)]), expected)


def test_npy_directory_of_floats(tmp_path):
    x = RNG.random((7, 3, 5, 5)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(7, dtype=np.int32))
    source = open_dataset(tmp_path, num_classes=10)
    assert source.format == "npy" and source.num_classes == 10
    np.testing.assert_array_equal(source.load([6, 2]), x[[6, 2]].astype(np.float32))


def test_arrays_read_only_the_records_asked_for(tmp_path, monkeypatch):
    x = RNG.integers(0, 256, (50, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(50, dtype=np.int64))
    source = open_dataset(tmp_path / "d.npz")
    reads = []
    real_read = ByteCursor.read_at
    monkeypatch.setattr(ByteCursor, "read_at", lambda self, at, size: reads.append(size) or real_read(self, at, size))
    np.testing.assert_array_equal(source.load([9, 3, 4]), x[[9, 3, 4], None] / np.float32(255))
    assert sorted(reads) == [16, 32]  # records 3-4 in one read, record 9 in another


def test_ambiguous_channels_need_a_layout(tmp_path):
    x = RNG.integers(0, 256, (2, 3, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(2, dtype=np.int64))
    with pytest.raises(DataError, match="layout='NCHW' or layout='NHWC'"):
        open_dataset(tmp_path / "d.npz")
    source = open_dataset(tmp_path / "d.npz", layout="NHWC")
    assert source.shape == (3, 3, 8)
    np.testing.assert_array_equal(source.load([1])[0], x[1].transpose(2, 0, 1) / np.float32(255))


# ---------------------------------------------------------------- CIFAR-10 binary and idx


def test_cifar_binary_test_and_train_splits(tmp_path):
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    test = _cifar_records(20)
    test.tofile(root / "test_batch.bin")
    batches = [_cifar_records(3) for _ in range(5)]
    for i, batch in enumerate(batches, 1):
        batch.tofile(root / f"data_batch_{i}.bin")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (root / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    source = open_dataset(tmp_path)  # the parent of cifar-10-batches-bin works too
    assert source.classes == names
    assert (source.split, source.format, source.shape, source.num_classes) == ("test", "cifar-10-bin", (3, 32, 32), 10)
    np.testing.assert_array_equal(source.labels, test[:, 0])
    np.testing.assert_array_equal(source.load([7]), test[[7], 1:].reshape(1, 3, 32, 32) / np.float32(255))
    train = open_dataset(root, split="train")
    stacked = np.concatenate(batches)
    np.testing.assert_array_equal(train.indices, np.arange(15))
    np.testing.assert_array_equal(train.labels, stacked[:, 0])
    picks = [14, 2, 3, 9]  # across files, in any order
    np.testing.assert_array_equal(train.load(picks), stacked[picks, 1:].reshape(-1, 3, 32, 32) / np.float32(255))
    with pytest.raises(HaltfastError, match="choose one of train, test"):
        open_dataset(root, split="calibration")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_directory_is_read_lazily_with_protocol_splits(tmp_path, suffix):
    train, test = RNG.integers(0, 256, (50_003, 2, 3), np.uint8), RNG.integers(0, 256, (6, 2, 3), np.uint8)
    for prefix, images in (("train", train), ("t10k", test)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(len(images)) % 10)
    calibration = open_dataset(tmp_path, split="calibration")
    np.testing.assert_array_equal(calibration.indices, [50_000, 50_001, 50_002])
    np.testing.assert_array_equal(calibration.load([2, 0]), train[[50_002, 50_000], None] / np.float32(255))
    source = open_dataset("idx", data_dir=tmp_path)
    assert source.split == "test" and source.num_classes == 6
    np.testing.assert_array_equal(source.load([5, 1]), test[[5, 1], None] / np.float32(255))
    assert load_dataset("idx", "test", tmp_path).fingerprint() == load_dataset("idx", "test", tmp_path).fingerprint()


def test_digits_source_matches_the_loaded_dataset():
    source = open_dataset("digits", "calibration")
    whole = load_dataset("digits", "calibration")
    np.testing.assert_array_equal(source.indices, whole.indices)
    np.testing.assert_array_equal(source.load([10, 3]), whole.images[[10, 3]])


def test_sources_survive_pickling_for_worker_processes(tmp_path):
    np.savez_compressed(tmp_path / "d.npz", x=RNG.integers(0, 256, (5, 4, 4), np.uint8), y=np.arange(5))
    for source in (open_dataset(tmp_path / "d.npz").subset(2), open_dataset(_folder(tmp_path / "f", {"a": _rgb(3)}))):
        copy = pickle.loads(pickle.dumps(source))
        np.testing.assert_array_equal(copy.load(range(len(copy))), source.load(range(len(source))))
        assert copy.fingerprint() == source.fingerprint()


# ---------------------------------------------------------------- fingerprints


def test_fingerprint_follows_the_content_not_the_location(tmp_path):
    root = _folder(tmp_path / "one", {"a": _rgb(2), "b": _rgb(2)})
    first = open_dataset(root).fingerprint()
    shutil.copytree(root, tmp_path / "two")
    assert open_dataset(tmp_path / "two").fingerprint() == first
    assert open_dataset(root).subset(skip=2).fingerprint() != first
    assert open_dataset(root, resize=4).fingerprint() != first
    pixels = np.asarray(Image.open(root / "b" / "001.png")).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(root / "b" / "001.png")
    assert open_dataset(root).fingerprint() != first


# ---------------------------------------------------------------- bad data: one clear error each


def _npz(path, x, y, **kw):
    np.savez(path, x=x, y=y, **kw)
    return path


def test_negative_or_too_large_labels(tmp_path):
    x = np.zeros((3, 4, 4), dtype=np.uint8)
    with pytest.raises(DataError, match="label -1 of item 1 is negative"):
        open_dataset(_npz(tmp_path / "a.npz", x, np.array([0, -1, 2])))
    with pytest.raises(DataError, match="label 5 of item 2 is out of range for 3 classes"):
        open_dataset(_npz(tmp_path / "b.npz", x, np.array([0, 1, 5])), num_classes=3)
    with pytest.raises(DataError, match="integer class numbers"):
        open_dataset(_npz(tmp_path / "c.npz", x, np.array([0.0, 1.0, 2.0])))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 12]))
    with pytest.raises(DataError, match="label 12 of item 1 is out of range for 10 classes"):
        open_dataset("idx", data_dir=tmp_path, num_classes=10)
    root = _folder(tmp_path / "f", {"a": _rgb(1), "b": _rgb(1), "c": _rgb(1)})
    with pytest.raises(DataError, match="cannot be matched to the model's 2 classes"):
        open_dataset(root, num_classes=2)


def test_class_folders_mean_the_models_classes(tmp_path):
    """Issue 21: a folder of 3 of 10 classes was numbered 0, 1, 2 by folder order and compared with the model's
    class indices. Integer folder names are class indices, names are looked up among the model's class names,
    'sorted' needs all of its classes, and anything else is one error before any pixel is read."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    named = _folder(tmp_path / "named", {"cat": _rgb(2), "dog": _rgb(1), "ship": _rgb(1)})
    assert open_dataset(named, classes=names).labels.tolist() == [3, 3, 5, 8]
    assert open_dataset(named).labels.tolist() == [0, 0, 1, 2]  # the folder's own numbering until a model is given
    with pytest.raises(DataError, match="cannot be matched to the model's 10 classes"):
        open_dataset(named, num_classes=10)
    with pytest.raises(DataError, match="holds 3 class folders but the model predicts 10 classes"):
        open_dataset(named, classes="sorted", num_classes=10)
    assert open_dataset(named, classes="sorted", num_classes=3).labels.tolist() == [0, 0, 1, 2]
    with pytest.raises(DataError, match="'ship' is none of the model's classes"):
        open_dataset(named, classes=[*names[:8], "boat", "truck"])
    numbered = _folder(tmp_path / "numbered", {"3": _rgb(1), "5": _rgb(2), "8": _rgb(1)})
    assert open_dataset(numbered, num_classes=10).labels.tolist() == [3, 5, 5, 8]
    with pytest.raises(DataError, match="class folder '8' names class 8, but the model predicts 5 classes"):
        open_dataset(numbered, num_classes=5)


def test_certify_matches_class_folders_to_the_card_or_refuses(tmp_path, digits_model, capsys):
    """The command line: a digits folder of 3 of the 10 classes is refused (one line, nothing evaluated) until
    --classes names them or the folders are named by index; then every label is the digit's class."""
    from sklearn.datasets import load_digits

    from haltfast.cli import main

    digits = load_digits()
    for root, folder_of in ((tmp_path / "named", {3: "three", 5: "five", 8: "eight"}), (tmp_path / "index", None)):
        for digit in (3, 5, 8):
            folder = root / (folder_of[digit] if folder_of else str(digit))
            folder.mkdir(parents=True)
            for k in np.nonzero(digits.target == digit)[0][:2]:
                pixels = (digits.images[k] * 255 / 16).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(folder / f"{k}.png")
    (tmp_path / "names.txt").write_text(
        "\n".join(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    )
    base = ["certify", "--model", str(digits_model), "--skip", "1", "--radius", "0.1", "--max-samples", "200"]
    out = tmp_path / "r.csv"
    assert main([*base, "--data", str(tmp_path / "named"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot be matched to the model's 10 classes" in err and err.count("\n") == 1
    assert main([*base, "--data", str(tmp_path / "named"), "--classes", "sorted", "--quiet"]) == 2
    assert "holds 3 class folders but the model predicts 10" in capsys.readouterr().err
    named = [*base, "--data", str(tmp_path / "named"), "--classes", str(tmp_path / "names.txt")]
    assert main([*named, "--out", str(out), "--quiet"]) == 0
    import pandas as pd

    assert sorted(pd.read_csv(out)["label"].tolist()) == [3, 3, 5, 5, 8, 8]
    assert main([*base, "--data", str(tmp_path / "index"), "--out", str(tmp_path / "i.csv"), "--quiet"]) == 0
    assert sorted(pd.read_csv(tmp_path / "i.csv")["label"].tolist()) == [3, 3, 5, 5, 8, 8]
    assert main([*base, "--data", "digits", "--classes", "sorted", "--max", "2", "--quiet"]) == 2
    assert "--classes names the class folders of an image folder" in capsys.readouterr().err


def test_mixed_sizes_name_two_files(tmp_path):
    root = _folder(tmp_path, {"a": _rgb(2), "b": _rgb(1, 9, 8)})
    with pytest.raises(DataError, match=r"different sizes: .*a/000.png is 8x8 and .*b/000.png is 8x9"):
        open_dataset(root)
    assert open_dataset(root, resize=(8, 8)).shape == (3, 8, 8)
    wide = _folder(tmp_path / "w", {"a": _rgb(1, 8, 8), "b": _rgb(1, 8, 16)})
    with pytest.raises(DataError, match="different sizes after resize and crop"):
        open_dataset(wide, resize=4)


def test_empty_folders(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        open_dataset(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="class folder .*a holds no images"):
        open_dataset(tmp_path)
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.fromarray(_rgb(1)[0]).save(loose / "x.png")
    with pytest.raises(DataError, match="no class folders"):
        open_dataset(loose)


def test_undecodable_images_are_named(tmp_path, monkeypatch):
    root = _folder(tmp_path / "bad", {"a": _rgb(2)})
    (root / "a" / "001.png").write_bytes(b"definitely not a png")
    with pytest.raises(DataError, match="cannot read image .*001.png"):
        open_dataset(root)
    root = _folder(tmp_path / "cut", {"a": _rgb(2, 32, 32)})
    data = (root / "a" / "001.png").read_bytes()
    (root / "a" / "001.png").write_bytes(data[: len(data) // 2])  # the header survives, the pixels do not
    source = open_dataset(root)
    np.testing.assert_array_equal(source.load([0]).shape, (1, 3, 32, 32))
    with pytest.raises(DataError, match="cannot decode image .*001.png"):
        source.load([1])


def test_unsupported_pixel_modes_and_oversized_crops(tmp_path):
    root = tmp_path / "deep"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 40_000, dtype=np.uint16)).save(root / "a" / "x.png")
    with pytest.raises(DataError, match="pixel mode .*8 bits per channel"):
        open_dataset(root)
    with pytest.raises(DataError, match="center crop 9x9 .* is larger than the image, 8x8"):
        open_dataset(_folder(tmp_path / "small", {"a": _rgb(1)}), center_crop=9)
    with pytest.raises(HaltfastError, match="resize must be a positive integer"):
        open_dataset(_folder(tmp_path / "s2", {"a": _rgb(1)}), resize=0)


def test_length_mismatch_and_bad_pixels(tmp_path):
    with pytest.raises(DataError, match="x holds 3 images but y holds 2 labels"):
        open_dataset(_npz(tmp_path / "a.npz", np.zeros((3, 4, 4), np.uint8), np.array([0, 1])))
    x = np.full((4, 4, 4), 0.5, dtype=np.float32)
    x[2, 1, 1] = 1.5
    with pytest.raises(DataError, match="item 2 has pixel value 1.5"):
        open_dataset(_npz(tmp_path / "b.npz", x, np.zeros(4, np.int64)))  # refused when opened, not when read
    x[2, 1, 1] = np.nan
    with pytest.raises(DataError, match="item 2 has pixel value nan"):
        open_dataset(_npz(tmp_path / "c.npz", x, np.zeros(4, np.int64)))
    with pytest.raises(DataError, match="uint8 .* or float"):
        open_dataset(_npz(tmp_path / "d.npz", np.zeros((2, 4, 4), np.int16), np.zeros(2, np.int64)))


def test_bad_pixel_message_names_the_items_row():
    images = np.full((3, 1, 2, 2), 0.5, dtype=np.float32)
    images[2, 0, 1, 0] = -0.25
    with pytest.raises(DataError, match="item 40 has pixel value -0.25"):
        check_pixels(images, "x", np.array([7, 12, 40]))
    check_pixels(images[:2], "x", np.array([7, 12]))


def test_pickles_are_refused(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [np.zeros((4, 4)), np.ones((4, 4))]
    with pytest.raises(DataError, match="never reads pickles"):
        open_dataset(_npz(tmp_path / "a.npz", objects, np.zeros(2, np.int64)))
    with pytest.raises(DataError, match="never reads pickles"):
        open_dataset(_npz(tmp_path / "b.npz", np.zeros((2, 4, 4), np.uint8), objects))
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 4), np.uint8))
    np.save(tmp_path / "y.npy", objects, allow_pickle=True)
    with pytest.raises(DataError, match="never reads pickles"):
        open_dataset(tmp_path)
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    (pickled / "data_batch_1").write_bytes(b"\x80\x04pickle")
    with pytest.raises(DataError, match="Download the binary version"):
        open_dataset(pickled)


def test_unknown_specs_and_splits(tmp_path):
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        open_dataset("imagenet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unknown data set"):
        open_dataset(tmp_path / "notes.txt")
    np.save(tmp_path / "lonely.npy", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="holds no labels"):
        open_dataset(tmp_path / "lonely.npy")
    root = _folder(tmp_path / "f", {"a": _rgb(1)})
    with pytest.raises(DataError, match="does not apply to an image folder"):
        open_dataset(root, split="test")
    with pytest.raises(DataError, match="layout applies to .npz"):
        open_dataset(root, layout="NCHW")
    with pytest.raises(DataError, match="needs --data-dir"):
        open_dataset("idx")
    with pytest.raises(DataNotFoundError, match="lacks data_batch_1.bin"):
        _cifar_records(2).tofile(tmp_path / "test_batch.bin")
        open_dataset(tmp_path, split="train")


def test_truncated_and_foreign_array_files(tmp_path):
    path = _npz(tmp_path / "a.npz", np.zeros((3, 4, 4), np.uint8), np.zeros(3, np.int64))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable .npz"):
        open_dataset(path)
    np.save(tmp_path / "x.npy", np.zeros((30, 4, 4), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(30, np.int64))
    (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        open_dataset(tmp_path)
    np.save(tmp_path / "x.npy", np.asfortranarray(np.zeros((30, 4, 4), np.uint8)))
    with pytest.raises(DataError, match="Fortran order"):
        open_dataset(tmp_path)
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    _cifar_records(2, labels=[1, 50]).tofile(cifar / "test_batch.bin")
    with pytest.raises(DataError, match="not CIFAR-10 binary batches"):
        open_dataset(cifar)
    (cifar / "test_batch.bin").write_bytes(b"\0" * 3000)
    with pytest.raises(DataError, match="not a multiple of 3073"):
        open_dataset(cifar)
