"""Reading data: every format haltfast reads, opened lazily as an ImageSource (see docs/data.md).

What it guarantees: `open_dataset` checks everything that needs no decoded pixels (labels, shapes, image
headers, one size after resize and crop, and every float pixel of an array file, in one streamed pass) before
it returns; images are then read a window at a time, so memory grows with the window, never with the data set;
no pickle is ever read; and an item's index in its file keys its noise stream, so a certificate does not depend
on the subset it was computed in.

Inside, imports point one way: `sources` (ImageSource and the rules every format shares) and `transforms`
(resize, centre crop) <- `formats` (idx, .npz, .npy, CIFAR-10 binary) and `folders` (image folders) <-
`catalog` (names and paths to sources, the protocol's splits) <- this module, the public face.
"""

from .catalog import CIFAR_SPLITS
from .catalog import DATA_DIR_ENV
from .catalog import DATASETS
from .catalog import FASHION_MNIST_DIR
from .catalog import SPLITS
from .catalog import TRAIN_SIZE
from .catalog import Dataset
from .catalog import dataset_splits
from .catalog import load_dataset
from .catalog import open_dataset
from .catalog import resolve_data_dir
from .formats import read_idx
from .sources import Backend
from .sources import ImageSource
from .sources import check_labels
from .sources import check_pixels
from .sources import hash_files
from .sources import subset_positions
from .transforms import Transform

__all__ = [
    "CIFAR_SPLITS",
    "DATASETS",
    "DATA_DIR_ENV",
    "FASHION_MNIST_DIR",
    "SPLITS",
    "TRAIN_SIZE",
    "Backend",
    "Dataset",
    "ImageSource",
    "Transform",
    "check_labels",
    "check_pixels",
    "dataset_splits",
    "hash_files",
    "load_dataset",
    "open_dataset",
    "read_idx",
    "resolve_data_dir",
    "subset_positions",
]
