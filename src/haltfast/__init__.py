"""haltfast: certified robustness by randomized smoothing, stopped as soon as the evidence is in."""

from .errors import HaltfastError

__version__ = "0.1.0"

__all__ = ["HaltfastError", "__version__"]
