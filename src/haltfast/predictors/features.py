"""The meta-learner's features: numbers computed from each clean input's logits, its only input.

The clean evaluation that gives the logits is the one that selects the class in haltfast's default selection,
so the features cost no extra model evaluation there; they never look at a noisy sample.
"""

from __future__ import annotations

import numpy as np

from ..errors import HaltfastError

FEATURES = ("log_top_prob", "log_margin_prob", "logit_gap", "entropy", "log_second_prob", "top_logit", "logit_std")


def features(logits: np.ndarray) -> np.ndarray:
    """Features of each clean input's logits (shape (n, FEATURES)): the clean evaluation is their only cost."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise HaltfastError(f"features need logits of shape (n, num_classes >= 2), got {z.shape}")
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    top2 = np.sort(log_p, axis=1)[:, -2:]
    second, top = top2[:, 0], top2[:, 1]
    prob = np.exp(log_p)
    margin = np.exp(top) - np.exp(second)
    entropy = -(prob * log_p).sum(axis=1)
    return np.column_stack(
        [top, np.log(np.maximum(margin, 1e-300)), top - second, entropy, second, z.max(axis=1), z.std(axis=1)]
    )
