"""Base classifiers: haltfast's StrideCNN and shipped models, and a loader for any PyTorch model.

Formats, checkpoint conventions, normalization, model cards and devices are described in docs/models-own.md.
"""

from .cards import read_model_card
from .cards import user_card_path
from .cards import write_model_card
from .devices import DTYPES
from .devices import PreparedModel
from .devices import prepare_model
from .devices import resolve_device
from .devices import resolve_dtype
from .factory import FactorySpec
from .factory import build_from_factory
from .factory import parse_factory_spec
from .loader import infer_num_classes
from .loader import load_base_model
from .loader import make_card
from .native import DEFAULT_SIGMA
from .native import SHIPPED_SIGMAS
from .native import WEIGHTS_DIR
from .native import card_path
from .native import is_shipped_model_spec
from .native import load_model
from .native import resolve_model_path
from .native import save_model
from .native import shipped_model_path
from .normalize import NORMALIZE_PRESETS
from .normalize import Normalization
from .normalize import NormalizeLayer
from .normalize import as_normalization
from .normalize import parse_normalize
from .stride_cnn import StrideCNN
from .stride_cnn import build_model
from .stride_cnn import measure_throughput
from .stride_cnn import noisy_accuracy
from .stride_cnn import train_model
from .weight_files import weights_hash

__all__ = [
    "DEFAULT_SIGMA",
    "DTYPES",
    "NORMALIZE_PRESETS",
    "SHIPPED_SIGMAS",
    "WEIGHTS_DIR",
    "FactorySpec",
    "Normalization",
    "NormalizeLayer",
    "PreparedModel",
    "StrideCNN",
    "as_normalization",
    "build_from_factory",
    "build_model",
    "card_path",
    "infer_num_classes",
    "is_shipped_model_spec",
    "load_base_model",
    "load_model",
    "make_card",
    "measure_throughput",
    "noisy_accuracy",
    "parse_factory_spec",
    "parse_normalize",
    "prepare_model",
    "read_model_card",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_path",
    "save_model",
    "shipped_model_path",
    "train_model",
    "user_card_path",
    "weights_hash",
    "write_model_card",
]
