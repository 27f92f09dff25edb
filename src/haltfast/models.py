"""Base classifiers: a throughput-first CNN, noise-augmented training, safe persistence with model cards."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import Dataset
from .errors import HaltfastError

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_SIGMAS = (0.12, 0.25, 0.5, 1.0)
DEFAULT_SIGMA = 0.25


class StrideCNN(nn.Module):
    """Two stride-2 3x3 convolutions (16 and 32 channels) and a 128-unit dense layer.

    No pooling and no padding-heavy stages: on 2 CPU cores it evaluates about
    50k noisy 28x28 images per second, which is what randomized smoothing needs.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: int = 16):
        super().__init__()
        side = (image_size + 1) // 2
        side = (side + 1) // 2
        self.config = {"arch": "stride-cnn", "in_channels": in_channels, "image_size": image_size,
                       "num_classes": num_classes, "width": width}
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(config: dict) -> nn.Module:
    """The architecture a model card describes."""
    if config.get("arch") != "stride-cnn":
        raise HaltfastError(f"unknown architecture {config.get('arch')!r} in model card")
    return StrideCNN(config["in_channels"], config["image_size"], config["num_classes"], config.get("width", 16))


def weights_hash(path: str | Path) -> str:
    """SHA-256 of a weights file: the identity a meta-learner and recorded streams are tied to."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def card_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_model(model: nn.Module, path: str | Path, card: dict) -> dict:
    """Write the state dict (tensors only) and a JSON model card beside it; returns the card with its hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    card = {**card, "model": model.config, "weights_file": path.name, "weights_sha256": weights_hash(path)}
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Load weights with torch.load(weights_only=True): a file that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise HaltfastError(f"model file {path} not found")
    cpath = card_path(path)
    if not cpath.is_file():
        raise HaltfastError(f"model card {cpath} not found (every model needs its JSON card beside the weights)")
    try:
        card = json.loads(cpath.read_text())
    except json.JSONDecodeError as exc:
        raise HaltfastError(f"model card {cpath} is not valid JSON: {exc}") from exc
    digest = weights_hash(path)
    if card.get("weights_sha256") not in (None, digest):
        raise HaltfastError(f"{path} does not match its model card (sha256 {digest[:12]}..., card says "
                            f"{str(card['weights_sha256'])[:12]}...): corrupt or replaced weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # the weights-only unpickler stops at the first thing that is not plain tensor data: nothing has run
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise HaltfastError(f"refusing to load {path}: it holds an object other than tensors ({found.group(1)}), "
                                f"which could run code when unpickled; nothing was run. Save weights with "
                                f"torch.save(model.state_dict(), ...) (haltfast train does)") from None
        raise HaltfastError(f"refusing to load {path}: it is corrupt or truncated, or holds pickled objects other than "
                            f"tensors (which could run code); nothing was run") from None
    except Exception as exc:  # truncated zip, garbage bytes, ...
        raise HaltfastError(f"cannot read model file {path}: corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HaltfastError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    model = build_model(card.get("model", {}))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise HaltfastError(f"{path} does not fit the architecture in its card: {exc}") from exc
    model.eval()
    card["weights_sha256"] = digest
    return model, card


def shipped_model_path(sigma: float = DEFAULT_SIGMA) -> Path:
    """Path of the shipped noise-trained Fashion-MNIST model for a sigma in SHIPPED_SIGMAS."""
    if float(sigma) not in SHIPPED_SIGMAS:
        raise HaltfastError(f"no shipped model for sigma={sigma}; shipped: {', '.join(map(str, SHIPPED_SIGMAS))}")
    return WEIGHTS_DIR / f"fashion-mnist-sigma{float(sigma)!r}.pt"


def resolve_model_path(spec: str | None, sigma: float | None = None) -> Path:
    """A model given as a file path, or as 'shipped' / 'fashion-mnist-sigma0.25' (a shipped one)."""
    if spec is None or spec == "shipped":
        return shipped_model_path(DEFAULT_SIGMA if sigma is None else sigma)
    if "/" not in spec and (WEIGHTS_DIR / f"{spec}.pt").is_file():
        return WEIGHTS_DIR / f"{spec}.pt"
    return Path(spec)


def noisy_accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, sigma: float,
                   seed: int = 0, batch_size: int = 2000) -> float:
    """Fraction of images the base model classifies correctly under one draw of N(0, sigma^2) noise each."""
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(labels), batch_size):
            x = torch.from_numpy(images[lo:lo + batch_size])
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=gen)
            correct += int((model(x).argmax(1).numpy() == labels[lo:lo + batch_size]).sum())
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


def train_model(train: Dataset, sigma: float, epochs: int = 15, seed: int = 0, batch_size: int = 128,
                lr: float = 2e-3, width: int = 16,
                progress: Callable[[int, float], None] | None = None) -> nn.Module:
    """Train a StrideCNN with Gaussian noise augmentation (fresh noise for every batch) at the given sigma."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    _, channels, height, _ = train.images.shape
    model = StrideCNN(channels, height, train.num_classes, width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    images = torch.from_numpy(train.images)
    labels = torch.from_numpy(train.labels)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=gen)
        total = 0.0
        for lo in range(0, len(labels), batch_size):
            idx = order[lo:lo + batch_size]
            x = images[idx]
            x = x + sigma * torch.randn(x.shape, generator=gen)
            loss = loss_fn(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if progress is not None:
            progress(epoch + 1, total / len(labels))
    model.eval()
    return model
