"""haltfast's own base classifier: a throughput-first CNN and its noise-augmented training."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import ModelError


class StrideCNN(nn.Module):
    """Two stride-2 3x3 convolutions (16 and 32 channels) and a 128-unit dense layer.

    No pooling and no padding-heavy stages: on 2 CPU cores it evaluates about
    50k noisy 28x28 images per second, which is what randomized smoothing needs.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: int = 16):
        super().__init__()
        side = (image_size + 1) // 2
        side = (side + 1) // 2
        self.config = {
            "arch": "stride-cnn",
            "in_channels": in_channels,
            "image_size": image_size,
            "num_classes": num_classes,
            "width": width,
        }
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(config: dict) -> nn.Module:
    """The architecture a model card describes."""
    arch = config.get("arch") if isinstance(config, dict) else None
    if arch != "stride-cnn":
        raise ModelError(f"unknown architecture {arch!r} in model card")
    try:
        return StrideCNN(config["in_channels"], config["image_size"], config["num_classes"], config.get("width", 16))
    except KeyError as exc:
        raise ModelError(f"the model card's architecture lacks {exc.args[0]!r}") from None


def noisy_accuracy(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, sigma: float, seed: int = 0, batch_size: int = 2000
) -> float:
    """Fraction of images the base model classifies correctly under one draw of N(0, sigma^2) noise each."""
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(labels), batch_size):
            x = torch.from_numpy(images[lo : lo + batch_size])
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=gen)
            correct += int((model(x).argmax(1).numpy() == labels[lo : lo + batch_size]).sum())
    return correct / len(labels)


def measure_throughput(model: nn.Module, shape: tuple[int, ...], batch_size: int = 2000, seconds: float = 3.0) -> float:
    """Noisy evaluations per second (noise drawing included) at the given batch size."""
    buf = torch.empty((batch_size, *shape))
    x = torch.rand(shape)
    done, start = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - start < seconds or done == 0:
            torch.randn(buf.shape, out=buf)
            model(buf.add_(x)).argmax(1)
            done += batch_size
    return done / (time.perf_counter() - start)


def train_model(
    train: Dataset,
    sigma: float,
    epochs: int = 15,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 16,
    progress: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train a StrideCNN with Gaussian noise augmentation (fresh noise for every batch) at the given sigma.

    The shipped models' recipe (AdamW, one-cycle schedule, no held-out split) on the shared training loop
    (haltfast.models.training); the same seed gives the shipped weights bit for bit.
    """
    from .training import STRIDE_CNN_RECIPE
    from .training import train_classifier
    from .training import with_recipe

    torch.manual_seed(seed)
    _, channels, height, _ = train.images.shape
    model = StrideCNN(channels, height, train.num_classes, width)
    recipe = with_recipe(STRIDE_CNN_RECIPE, epochs=epochs, batch_size=batch_size, lr=lr)
    on_epoch = None if progress is None else (lambda record: progress(record.epoch, record.train_loss))
    return train_classifier(model, train, sigma, recipe, seed=seed, on_epoch=on_epoch).model
