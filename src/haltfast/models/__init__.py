"""Base classifiers: haltfast's StrideCNN and shipped models, and a loader for any PyTorch model.

Formats, checkpoint conventions, normalization, model cards and devices are described in docs/models-own.md.
"""

from .cards import read_model_card, user_card_path, write_model_card
from .devices import DTYPES, PreparedModel, prepare_model, resolve_device, resolve_dtype
from .factory import FactorySpec, build_from_factory, parse_factory_spec
from .loader import infer_num_classes, load_base_model, make_card
from .native import (
    DEFAULT_SIGMA,
    SHIPPED_SIGMAS,
    WEIGHTS_DIR,
    card_path,
    is_shipped_model_spec,
    load_model,
    resolve_model_path,
    save_model,
    shipped_model_path,
)
from .normalize import NORMALIZE_PRESETS, Normalization, NormalizeLayer, as_normalization, parse_normalize
from .stride_cnn import StrideCNN, build_model, measure_throughput, noisy_accuracy, train_model
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
