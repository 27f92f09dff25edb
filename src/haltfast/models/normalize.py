"""Per-channel normalization inside the model, so that noise is added in [0, 1] pixel space.

Randomized smoothing certifies the function the noise is added to. Models trained on standardized inputs
((x - mean) / std) therefore get the standardization as their first layer, as in Cohen et al.'s NormalizeLayer:
haltfast adds N(0, sigma^2 I) to the [0, 1] image and the radius is in pixel units.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UsageError


@dataclass(frozen=True, init=False)
class Normalization:
    """Channel means and standard deviations (one value each: the same for every channel)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float):
        """Numbers or sequences of numbers (lists, tuples, tensors), stored as tuples of floats; checked here."""
        try:
            means, stds = tuple(float(m) for m in _values(mean)), tuple(float(s) for s in _values(std))
        except (TypeError, ValueError):
            raise UsageError(f"normalization values must be numbers, got mean {mean!r}, std {std!r}") from None
        if not means or len(means) != len(stds):
            raise UsageError(
                f"normalization needs as many means as standard deviations (got {len(means)} and {len(stds)})"
            )
        if not all(math.isfinite(v) for v in means + stds) or min(stds) <= 0:
            raise UsageError(
                f"normalization needs finite means and positive standard deviations, got mean {means}, std {stds}"
            )
        object.__setattr__(self, "mean", means)
        object.__setattr__(self, "std", stds)

    def to_json(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


def _values(v) -> tuple:
    return tuple(v) if isinstance(v, (Sequence, torch.Tensor)) and not isinstance(v, str) else (v,)


# The values of Cohen et al.'s code: their CIFAR-10 models were trained with these stds (not the data set's
# 0.2470, 0.2435, 0.2616), and a checkpoint must be evaluated with exactly what it was trained with.
NORMALIZE_PRESETS = {
    "cifar10": Normalization((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
NORMALIZE_SYNTAX = "cifar10, imagenet, or MEAN1,MEAN2,MEAN3/STD1,STD2,STD3 (':' may replace '/')"


def parse_normalize(text: str) -> Normalization:
    """Parse the CLI's --normalize: a preset name or 'M1,M2,M3/S1,S2,S3' ('M:S' also accepted)."""
    key = text.strip().lower().replace("-", "")
    if key in NORMALIZE_PRESETS:
        return NORMALIZE_PRESETS[key]
    halves = re.split(r"[/:]", text.strip())
    if len(halves) != 2:
        raise UsageError(f"--normalize {text!r}: expected {NORMALIZE_SYNTAX}")
    try:
        mean, std = ([float(v) for v in half.split(",")] for half in halves)
    except ValueError:
        raise UsageError(f"--normalize {text!r}: values must be numbers; expected {NORMALIZE_SYNTAX}") from None
    return Normalization(mean, std)


def as_normalization(value) -> Normalization | None:
    """A Normalization from None, a Normalization, a CLI string, a {'mean', 'std'} dict or a (mean, std) pair."""
    if value is None or isinstance(value, Normalization):
        return value
    if isinstance(value, str):
        return parse_normalize(value)
    if isinstance(value, dict) and set(value) == {"mean", "std"}:
        return Normalization(value["mean"], value["std"])
    if isinstance(value, Sequence) and len(value) == 2:
        return Normalization(value[0], value[1])
    raise UsageError(
        f"normalize must be (means, stds), a {{'mean', 'std'}} dict or a string ({NORMALIZE_SYNTAX}); got {value!r}"
    )


class NormalizeLayer(nn.Module):
    """(x - mean) / std per channel of an (N, C, H, W) batch: Cohen et al.'s NormalizeLayer."""

    mean: torch.Tensor  # registered as buffers in __init__
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        norm = Normalization(mean, std)
        self.channels = len(norm.mean)
        # buffers follow .to(device, dtype); not persistent, so a wrapped model's state dict gains no keys
        self.register_buffer("mean", torch.tensor(norm.mean).reshape(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm.std).reshape(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3 or (self.channels > 1 and x.shape[-3] != self.channels):
            raise ValueError(f"NormalizeLayer has {self.channels} channels; it got a batch of shape {tuple(x.shape)}")
        return (x - self.mean) / self.std


def with_normalization(model: nn.Module, normalization: Normalization | None) -> nn.Module:
    """model behind a NormalizeLayer (Cohen et al.'s Sequential(NormalizeLayer, model)); model itself if None."""
    if normalization is None:
        return model
    return nn.Sequential(NormalizeLayer(normalization.mean, normalization.std), model).eval()
