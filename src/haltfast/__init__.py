"""haltfast: certified robustness by randomized smoothing, stopped as soon as the evidence is in.

The package imports lazily: `haltfast.statistics`, `haltfast.recording` and the replay path
(`haltfast.methods` on recorded streams) need no torch; `Smooth`, `load_model` and
`shipped_model_path` import it on first use.
"""

import os
from importlib import import_module

# oneDNN caches compiled kernels per input shape (1,024 by default); certification feeds the model batches of
# ever-changing sizes, so that cache alone grew a long run's memory by hundreds of MiB. A few entries keep the
# full-batch kernel hot at no measurable cost. Set before the first model call; a user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

from .errors import HaltfastError

__version__ = "0.1.0"

_LAZY = {"Smooth": "smooth", "load_base_model": "models", "load_model": "models", "shipped_model_path": "models"}

__all__ = ["HaltfastError", "Smooth", "__version__", "load_base_model", "load_model", "shipped_model_path"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
