"""haltfast: certified robustness by randomized smoothing, stopped as soon as the evidence is in."""

from .errors import HaltfastError
from .models import load_model, shipped_model_path
from .smooth import Smooth

__version__ = "0.1.0"

__all__ = ["HaltfastError", "Smooth", "load_model", "shipped_model_path", "__version__"]
