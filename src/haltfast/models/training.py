"""Noise-augmented training of any PyTorch classifier on any data set haltfast reads (Cohen et al.'s recipe).

`train_classifier` trains an nn.Module on an ImageSource (haltfast.data.open_dataset) or a Dataset with
Gaussian noise N(0, sigma^2 I) added to every training image in [0, 1] pixel space (fresh noise for every
batch): the base classifier that randomized smoothing at that sigma needs. It holds out a split to report
accuracy on, runs SGD or AdamW with a cosine (or one-cycle) schedule, and writes a checkpoint after every
epoch from which an interrupted run resumes with the same result as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import OutputError
from ..errors import UsageError
from ..files import atomic_write
from .weight_files import load_tensor_file
from .weight_files import read_file_bytes

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "one-cycle")
IN_MEMORY_BYTES = 4 << 30  # training images up to this size are read once; larger sets are read batch by batch
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: optimizer, peak learning rate, schedule, epochs, batch size and held-out fraction.

    The default is Cohen et al.'s (SGD, momentum 0.9, learning rate 0.1, weight decay 1e-4), with a cosine
    schedule in place of their step decay; `channels_last` speeds up convolutions on the CPU.
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    epochs: int = 30
    batch_size: int = 128
    holdout: float = 0.1
    channels_last: bool = True

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"the learning rate must be a number > 0, got {self.lr}")
        if not (0 <= self.momentum < 1) or not (self.weight_decay >= 0):
            raise UsageError(
                f"momentum must lie in [0, 1) and weight decay be >= 0, got {self.momentum} and {self.weight_decay}"
            )
        if int(self.epochs) != self.epochs or self.epochs < 1 or int(self.batch_size) != self.batch_size:
            raise UsageError(f"epochs and batch size must be whole numbers >= 1, got {self.epochs}, {self.batch_size}")
        if self.batch_size < 1:
            raise UsageError(f"the batch size must be >= 1, got {self.batch_size}")
        if not 0 <= self.holdout < 1:
            raise UsageError(f"the held-out fraction must lie in [0, 1), e.g. 0.1, got {self.holdout}")


COHEN_RECIPE = Recipe()
# The shipped StrideCNNs' recipe (their model cards' commands reproduce them bit for bit with it).
STRIDE_CNN_RECIPE = Recipe(
    optimizer="adamw", lr=2e-3, weight_decay=1e-4, schedule="one-cycle", holdout=0.0, channels_last=False
)


@dataclass
class EpochRecord:
    """One epoch's figures: mean training loss and accuracy (on noisy images), held-out accuracies, seconds."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    heldout_clean_accuracy: float | None
    heldout_noisy_accuracy: float | None
    seconds: float


@dataclass
class TrainingResult:
    """The trained model (eval mode), the history of its epochs, and which positions of the data were held out."""

    model: nn.Module
    history: list[EpochRecord] = field(default_factory=list)
    heldout: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    resumed_from: int = 0  # epochs a checkpoint held when this run started


class _Images:
    """The training images as tensors: read once when they fit in memory, else batch by batch from the source."""

    def __init__(self, data):
        self.data = data
        self.labels = torch.as_tensor(np.array(data.labels, dtype=np.int64))
        self.shape = tuple(data.images.shape[1:]) if hasattr(data, "images") else tuple(data.shape)
        size = len(self.labels) * int(np.prod(self.shape)) * 4
        self.memory: torch.Tensor | None = None
        if hasattr(data, "images"):
            self.memory = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))
        elif size <= IN_MEMORY_BYTES:
            self.memory = torch.from_numpy(data.load(np.arange(len(self.labels))))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, positions: torch.Tensor) -> torch.Tensor:
        if self.memory is not None:
            return self.memory[positions]
        return torch.from_numpy(self.data.load(positions.numpy()))


def split_heldout(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, held-out positions): a seeded random `fraction` of the positions is held out."""
    held = round(count * fraction)
    if fraction > 0 and held == 0:
        held = 1
    if held >= count:
        raise UsageError(f"holding out {fraction:g} of {count} images leaves none to train on")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def train_classifier(
    model: nn.Module,
    data,
    sigma: float,
    recipe: Recipe = COHEN_RECIPE,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    identity: dict | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainingResult:
    """Train `model` in place on images with N(0, sigma^2) noise added in [0, 1] pixel space; returns it in eval mode.

    `data` is an ImageSource or Dataset (float32 images (N, C, H, W) in [0, 1], integer labels). A seeded random
    `recipe.holdout` of it is held out and scored after every epoch (clean and under one noise draw). With a
    `checkpoint` path the state is saved after every epoch and a run with the same `identity` (what the caller
    says defines the run: model, data, sigma, seed, recipe) resumes from it, reaching the weights an
    uninterrupted run reaches; a checkpoint of another identity is refused. The same seed gives the same
    weights on the same machine and device.
    """
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise UsageError(f"sigma must be a number >= 0, got {sigma}")
    device = torch.device(device)
    images = _Images(data)
    train_positions, heldout = split_heldout(len(images), recipe.holdout, seed)
    config = {
        "checkpoint": CHECKPOINT_FORMAT,
        "sigma": float(sigma),
        "seed": seed,
        **asdict(recipe),
        **(identity or {}),
    }
    state = _read_checkpoint(Path(checkpoint), config) if checkpoint is not None else None
    memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model.to(device)
    model.to(memory_format=memory_format)  # type: ignore[call-overload]  # in torch, missing from its stubs
    steps_per_epoch = (len(train_positions) + recipe.batch_size - 1) // recipe.batch_size
    optimizer, scheduler = _optimizer(model, recipe, recipe.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)  # batch order and noise, on the CPU: the same on every device
    result = TrainingResult(model, heldout=heldout)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        result.history = [EpochRecord(**record) for record in state["history"]]
        result.resumed_from = len(result.history)
        if log is not None and result.resumed_from:
            log(f"resuming {checkpoint}: {result.resumed_from} of {recipe.epochs} epochs done")
    positions = torch.as_tensor(train_positions)
    loss_fn = nn.CrossEntropyLoss()
    bar = _bar(progress, recipe.epochs * steps_per_epoch, result.resumed_from * steps_per_epoch)
    try:
        for epoch in range(result.resumed_from, recipe.epochs):
            start = time.perf_counter()
            model.train()
            order = positions[torch.randperm(len(positions), generator=generator)]
            total_loss, correct, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
            for lo in range(0, len(order), recipe.batch_size):
                idx = order[lo : lo + recipe.batch_size]
                x = images.batch(idx)
                x = x + sigma * torch.randn(x.shape, generator=generator)
                x = x.to(device=device, memory_format=memory_format)
                y = images.labels[idx].to(device)
                logits = model(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += float(loss.detach()) * len(idx)
                correct += int((logits.detach().argmax(1) == y).sum())
                if bar is not None:
                    bar.set_postfix(
                        epoch=f"{epoch + 1}/{recipe.epochs}", loss=f"{total_loss / (lo + len(idx)):.4f}", refresh=False
                    )
                    bar.update(1)
            clean, noisy = _heldout_accuracy(model, images, heldout, sigma, seed, device, memory_format)
            record = EpochRecord(
                epoch + 1,
                lr,
                total_loss / len(order),
                correct / len(order),
                clean,
                noisy,
                time.perf_counter() - start,
            )
            result.history.append(record)
            if checkpoint is not None:
                _write_checkpoint(Path(checkpoint), config, model, optimizer, scheduler, generator, result.history)
            if log is not None:
                log(format_epoch(record, recipe.epochs))
            if on_epoch is not None:
                on_epoch(record)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return result


def format_epoch(record: EpochRecord, epochs: int) -> str:
    """One line per epoch, as Cohen et al.'s training log has it."""
    held = (
        ""
        if record.heldout_clean_accuracy is None
        else f", held-out accuracy {record.heldout_clean_accuracy:.4f} clean, {record.heldout_noisy_accuracy:.4f} noisy"
    )
    return (
        f"epoch {record.epoch}/{epochs}: lr {record.lr:.4g}, loss {record.train_loss:.4f}, "
        f"accuracy {record.train_accuracy:.4f} (noisy training images){held}, {record.seconds:.0f} s"
    )


def _optimizer(model: nn.Module, recipe: Recipe, total_steps: int):
    if recipe.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if recipe.schedule == "one-cycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    return optimizer, scheduler


def _heldout_accuracy(model, images: _Images, heldout: np.ndarray, sigma: float, seed: int, device, memory_format):
    """(clean, noisy) accuracy on the held-out positions; the noise is the same draw every epoch."""
    if not len(heldout):
        return None, None
    model.eval()
    generator = torch.Generator().manual_seed(seed + 1)
    clean = noisy = 0
    with torch.inference_mode():
        for lo in range(0, len(heldout), 1000):
            idx = torch.as_tensor(heldout[lo : lo + 1000])
            x, y = images.batch(idx), images.labels[idx].to(device)
            noise = sigma * torch.randn(x.shape, generator=generator)
            for batch, counter in ((x, "clean"), (x + noise, "noisy")):
                hits = int((model(batch.to(device=device, memory_format=memory_format)).argmax(1) == y).sum())
                if counter == "clean":
                    clean += hits
                else:
                    noisy += hits
    model.train()
    return clean / len(heldout), noisy / len(heldout)


def checkpoint_path(out: str | Path) -> Path:
    """Where `haltfast train --out OUT` keeps its checkpoint while it runs: `OUT.ckpt`."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def _read_checkpoint(path: Path, config: dict) -> dict | None:
    """The checkpoint's state, None if there is none; one of another configuration is refused."""
    if not path.exists():
        return None
    state = load_tensor_file(read_file_bytes(path, "training checkpoint"), path)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise OutputError(f"{path} is not a haltfast training checkpoint; move it away or choose another --out")
    old = state["config"]
    if old != config:
        changed = ", ".join(
            f"{k}: {old.get(k)!r} -> {config.get(k)!r}"
            for k in sorted(set(old) | set(config))
            if old.get(k) != config.get(k)
        )
        raise OutputError(
            f"{path} is the checkpoint of another training run ({changed}); rerun with its options to resume it, "
            f"choose another --out, or delete {path.name} to start over"
        )
    return state


def _write_checkpoint(path: Path, config: dict, model, optimizer, scheduler, generator, history) -> None:
    state = {
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [asdict(record) for record in history],
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _bar(progress: bool, total: int, done: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="batch", desc="train", dynamic_ncols=True)


def with_recipe(recipe: Recipe, **changes) -> Recipe:
    """The recipe with the given fields changed (None values keep the recipe's)."""
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})
