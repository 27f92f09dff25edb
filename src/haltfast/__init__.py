"""haltfast: certified robustness by randomized smoothing, stopped as soon as the evidence is in."""

import os

# oneDNN caches compiled kernels per input shape (1,024 by default); certification feeds the model batches of
# ever-changing sizes, so that cache alone grew a long run's memory by hundreds of MiB. A few entries keep the
# full-batch kernel hot at no measurable cost. Set before the first model call; a user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

from .errors import HaltfastError  # noqa: E402
from .models import load_base_model, load_model, shipped_model_path
from .smooth import Smooth

__version__ = "0.1.0"

__all__ = ["HaltfastError", "Smooth", "load_base_model", "load_model", "shipped_model_path", "__version__"]
