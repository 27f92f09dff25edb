"""The base classifier under Gaussian noise: adapters, a reproducible noise sampler, and label streams.

Every input has a canonical stream of noise: sample j of the input with key k
uses block j // NOISE_BLOCK of noise drawn from a generator seeded by
(seed, k, block). Any consumer reads prefixes of that stream, so a result does
not depend on batch sizes, on which other inputs share a model batch, or on
the number of workers, and a recorded stream replays exactly what a live run saw.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .errors import HaltfastError
from .errors import ModelOutputError
from .streams import Stop
from .streams import Streams

NOISE_BLOCK = 32
_MASK63 = (1 << 63) - 1


class BaseClassifier:
    """Wrap a torch.nn.Module returning logits, or a callable mapping a numpy batch to labels or logits."""

    def __init__(self, model: nn.Module | Callable, num_classes: int):
        if not callable(model):
            raise HaltfastError(f"base classifier must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if int(num_classes) < 2:
            raise HaltfastError(f"num_classes must be at least 2, got {num_classes}")
        self.model = model
        self.num_classes = int(num_classes)
        self.is_module = isinstance(model, nn.Module)
        if isinstance(model, nn.Module):
            model.eval()

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Predicted labels (int64, one per row); raises ModelOutputError on non-finite or mis-shaped output."""
        out = self._raw(batch)
        if isinstance(out, torch.Tensor):
            out = out.detach()
            if out.ndim == 2:
                self._check_logits(out.shape, bool(torch.isfinite(out).all()), len(batch))
                return out.argmax(1).cpu().numpy()
            out = out.cpu().numpy()
        out = np.asarray(out)
        if out.ndim == 2:
            self._check_logits(out.shape, bool(np.isfinite(out).all()), len(batch))
            return out.argmax(1).astype(np.int64)
        if out.ndim != 1 or len(out) != len(batch):
            raise ModelOutputError(
                f"base classifier returned shape {out.shape} for a batch of {len(batch)}; "
                f"expected ({len(batch)},) labels or ({len(batch)}, {self.num_classes}) logits"
            )
        if not np.issubdtype(out.dtype, np.integer) and (not np.all(np.isfinite(out)) or np.any(out != np.round(out))):
            raise ModelOutputError("base classifier returned non-integer labels")
        labels = out.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ModelOutputError(f"base classifier returned labels outside [0, {self.num_classes})")
        return labels

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """Scores (float64, shape (N, num_classes)) whose argmax is the prediction; refuses label-only models."""
        out = self._raw(batch)
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        if out.ndim != 2:
            raise ModelOutputError(
                "the base classifier returns labels, not logits (N, num_classes): features "
                "such as the meta-learner's need its scores"
            )
        self._check_logits(out.shape, bool(np.isfinite(out).all()), len(batch))
        return out.astype(np.float64)

    def _raw(self, batch: torch.Tensor):
        return self.model(batch) if self.is_module else self.model(batch.cpu().numpy())

    def _check_logits(self, shape: tuple, finite: bool, rows: int) -> None:
        if shape[0] != rows or shape[1] != self.num_classes:
            raise ModelOutputError(
                f"base classifier returned logits of shape {tuple(shape)} for a batch of {rows}; "
                f"expected ({rows}, {self.num_classes}) (num_classes={self.num_classes})"
            )
        if not finite:
            raise ModelOutputError("base classifier returned non-finite logits (NaN or inf)")


def check_image(
    x: np.ndarray | torch.Tensor,
    shape: tuple[int, ...] | None = None,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """A finite float32 tensor of the expected shape and value range, or a clear HaltfastError."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().to(torch.float32).cpu()
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise HaltfastError(f"image has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if t.ndim == 0:
        raise HaltfastError("image must be an array, got a scalar")
    if not bool(torch.isfinite(t).all()):
        raise HaltfastError("image contains NaN or infinite pixels")
    if value_range is not None:
        lo, hi = value_range
        if t.numel() and (float(t.min()) < lo or float(t.max()) > hi):
            raise HaltfastError(
                f"image pixels lie in [{float(t.min()):.3g}, {float(t.max()):.3g}], outside the "
                f"expected range [{lo}, {hi}] (pass value_range=None to skip this check)"
            )
    return t


class NoiseSampler:
    """Evaluates the base classifier on x + N(0, sigma^2 I), filling model batches from many inputs at once."""

    def __init__(
        self,
        classifier: BaseClassifier,
        sigma: float,
        seed: int = 0,
        batch_size: int = 2000,
        device: str | torch.device = "cpu",
        cache_bytes: int = 256 << 20,
    ):
        if not sigma > 0 or not np.isfinite(sigma):
            raise HaltfastError(f"sigma must be a positive number, got {sigma}")
        self.classifier = classifier
        self.sigma = float(sigma)
        self.seed = int(seed)
        self.set_batch_size(batch_size)
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)
        self._buffer: torch.Tensor | None = None
        self._block: torch.Tensor | None = None
        self._cache: OrderedDict[int, tuple[int, torch.Tensor]] = OrderedDict()
        self._spare: list[torch.Tensor] = []  # blocks of finished inputs, refilled before any new one is allocated
        self._cache_bytes = cache_bytes
        self.last_seconds = np.zeros(0)  # sample_flat: each request's share of the model batches' time

    def set_batch_size(self, batch_size: int) -> None:
        """Evaluate the model on batches of this many noisy samples (results do not depend on it)."""
        if int(batch_size) < 1:
            raise HaltfastError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self._buffer = None

    def _block_seed(self, key: int, block: int) -> int:
        return hash((self.seed, int(key), int(block))) & _MASK63

    def _noise_block(self, key: int, block: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Block `block` of this key's noise (NOISE_BLOCK samples), cached until the key needs its next block."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] == block:
            return cached[1]
        full = (NOISE_BLOCK, *shape)
        # the key's previous block is done with (one block per key): its memory takes the next
        noise = cached[1] if cached is not None and cached[1].shape == full else self._free_block(full)
        self._cache.pop(key, None)
        self._generator.manual_seed(self._block_seed(key, block))
        torch.randn(noise.shape, generator=self._generator, out=noise)
        self._cache[key] = (block, noise)
        return noise

    def _free_block(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Memory for a new block: a finished input's, a new one while the cache has room, else the least recently
        used block's. The blocks are recycled, never freed and allocated again, so the allocator's heap does not
        fragment as inputs come and go: the cache holds at most cache_bytes // block bytes (at least one) blocks,
        one per active input, however many inputs a run certifies."""
        capacity = max(1, self._cache_bytes // (int(np.prod(shape)) * 4))
        while self._spare:
            spare = self._spare.pop()
            if spare.shape == shape:
                return spare
        if len(self._cache) < capacity:
            return torch.empty(shape, device=self.device)
        while self._cache:
            _, (_, evicted) = self._cache.popitem(last=False)
            if evicted.shape == shape and len(self._cache) < capacity:
                return evicted
        return torch.empty(shape, device=self.device)

    def forget(self, keys: Sequence[int] | np.ndarray) -> None:
        """Drop the cached noise blocks of these keys (inputs that are finished); their streams stay reproducible.
        Their memory is kept for the next inputs' blocks, and freed once no input holds a block."""
        for key in keys:
            cached = self._cache.pop(int(key), None)
            if cached is not None:
                self._spare.append(cached[1])
        if not self._cache:
            self._spare.clear()

    def _fill(self, dest: torch.Tensor, x: torch.Tensor, key: int, start: int, count: int) -> None:
        """dest[:count] = x + sigma * noise samples [start, start + count) of this input's stream."""
        pos, written = start, 0
        while written < count:
            block, offset = divmod(pos, NOISE_BLOCK)
            take = min(NOISE_BLOCK - offset, count - written)
            noise = self._noise_block(key, block, tuple(x.shape))
            torch.add(x, noise[offset : offset + take], alpha=self.sigma, out=dest[written : written + take])
            pos += take
            written += take

    def sample(
        self,
        images: torch.Tensor | Sequence[torch.Tensor],
        keys: Sequence[int] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        counts: Sequence[int] | np.ndarray,
    ) -> list[np.ndarray]:
        """Predicted labels for samples [starts[i], starts[i] + counts[i]) of each input's stream, one array each."""
        labels = self.sample_flat(images, keys, starts, counts)
        bounds = np.cumsum([0, *counts])
        return [labels[bounds[i] : bounds[i + 1]] for i in range(len(counts))]

    def sample_flat(
        self,
        images: torch.Tensor | Sequence[torch.Tensor],
        keys: Sequence[int] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        counts: Sequence[int] | np.ndarray,
        stop: Stop | None = None,
    ) -> np.ndarray:
        """Predicted labels for samples [starts[i], starts[i] + counts[i]) of each input's stream, back to back.

        Model batches hold samples of many inputs; a failure of the model raises
        ModelOutputError naming nothing else, so the caller decides which inputs it hits. `stop` is asked
        after every model batch: when it says True the labels drawn so far come back (a prefix).
        `last_seconds` then holds each request's share of the model batches it took part in (each batch's
        time, noise included, split by the samples each request has in it).
        """
        counts = [int(c) for c in counts]
        total = sum(counts)
        labels = np.empty(total, dtype=np.int64)
        self.last_seconds = np.zeros(len(counts))
        if total == 0:
            return labels
        shape = tuple(images[0].shape)
        if self._buffer is None or tuple(self._buffer.shape[1:]) != shape:
            self._buffer = torch.empty((self.batch_size, *shape), device=self.device)
        buf = self._buffer
        filled, done = 0, 0
        batch_times: list[float] = []
        started = time.perf_counter()
        with torch.inference_mode():
            for i, count in enumerate(counts):
                x = images[i].to(self.device)
                pos = 0
                while pos < count:
                    take = min(count - pos, self.batch_size - filled)
                    self._fill(buf[filled : filled + take], x, keys[i], int(starts[i]) + pos, take)
                    filled += take
                    pos += take
                    if filled == self.batch_size:
                        labels[done : done + filled] = self.classifier(buf[:filled])
                        done += filled
                        filled = 0
                        now = time.perf_counter()
                        batch_times.append(now - started)
                        started = now
                        if stop is not None and done < total and stop():
                            self.last_seconds = batch_shares(counts, self.batch_size, batch_times)
                            return labels[:done]
            if filled:
                labels[done : done + filled] = self.classifier(buf[:filled])
                batch_times.append(time.perf_counter() - started)
        self.last_seconds = batch_shares(counts, self.batch_size, batch_times)
        return labels


def batch_shares(counts: Sequence[int], batch_size: int, batch_times: Sequence[float]) -> np.ndarray:
    """Each request's share of the model batches' times: requests laid back to back in batches of batch_size
    samples, every batch's time split by the samples each request has in it."""
    if not batch_times:
        return np.zeros(len(counts))
    times = np.asarray(batch_times, dtype=float)
    ends = np.minimum(np.arange(1, times.size + 1) * batch_size, int(np.sum(counts)))
    sizes = np.diff(np.concatenate([[0], ends]))
    per_sample = np.cumsum(np.concatenate([[0.0], np.repeat(times / np.maximum(sizes, 1), sizes)]))
    bounds = np.minimum(np.cumsum(np.concatenate([[0], np.asarray(counts, dtype=np.int64)])), ends[-1])
    return np.diff(per_sample[bounds])


def prefix_counts(counts: np.ndarray, done: int) -> np.ndarray:
    """How many of each request's samples the first `done` of them, back to back, cover."""
    first = np.cumsum(counts) - counts
    return np.clip(done - first, 0, counts)


class ModelLabels:
    """The base classifier's labels under noise at any positions of each input's stream (a label source).

    `images` is a tensor (N, C, H, W), or a lazy source with `load(positions)` returning float32 images
    (haltfast.data's ImageSource): then only the images of unfinished inputs are held, read as they are
    first needed and dropped by `forget`, so memory does not grow with the number of inputs. Item i's
    stream is the noise stream of `keys[i]`.
    """

    def __init__(
        self,
        sampler: NoiseSampler,
        images,
        keys: Sequence[int] | np.ndarray,
        value_range: tuple[float, float] | None = (0.0, 1.0),
    ):
        self.sampler = sampler
        self._tensor = images if isinstance(images, torch.Tensor) else None
        self._source = None if self._tensor is not None else images
        self._cache: dict[int, torch.Tensor] = {}
        self._value_range = value_range
        self.keys = np.asarray(keys, dtype=np.int64)
        self.num_classes = sampler.classifier.num_classes
        self.item_cost = np.zeros(0)  # labels(): each item's seconds of model batches

    def images(self, items: Sequence[int] | np.ndarray, keep: bool = True) -> torch.Tensor:
        """The clean images of these items, (k, C, H, W); a lazy source reads the ones not held yet, and holds
        them until `forget` if `keep` (a clean evaluation does not keep them: a run selects every input's
        class up front, and holding every image until it is sampled would grow with the number of inputs)."""
        items = [int(i) for i in items]
        if self._tensor is not None:
            return self._tensor[items]
        missing = sorted({i for i in items if i not in self._cache})
        loaded: dict[int, torch.Tensor] = {}
        if missing:
            assert self._source is not None  # set whenever no tensor was given
            loaded = dict(zip(missing, check_image(self._source.load(missing), None, self._value_range)))
            if keep:
                self._cache.update(loaded)
        return (
            torch.stack([self._cache[i] if i in self._cache else loaded[i] for i in items]) if items else torch.empty(0)
        )

    def labels(
        self, items: np.ndarray, starts: np.ndarray, counts: np.ndarray, stop: Stop | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Item i's labels at positions starts[i] .. starts[i] + counts[i], back to back: (labels, drawn, errors).

        An item whose model call fails draws nothing (count 0) and gets a message; the others go on.
        `item_cost` then holds each item's seconds of model batches (its share of each batch it took part in).
        """
        item_list = [int(i) for i in items]
        wanted = np.asarray(counts, dtype=np.int64).reshape(-1)
        try:
            labels = self.sampler.sample_flat(self.images(item_list), self.keys[item_list], starts, wanted, stop)
            self.item_cost = self.sampler.last_seconds
        except Exception as exc:  # isolate the input(s) the model fails on; the rest of the run goes on
            if len(item_list) == 1:
                self.item_cost = np.zeros(1)
                return (
                    np.zeros(0, dtype=np.int64),
                    np.zeros(1, dtype=np.int64),
                    {item_list[0]: f"{type(exc).__name__}: {exc}"},
                )
            parts, cost = [], []
            for item, start, count in zip(item_list, starts, wanted):
                parts.append(self.labels(np.array([item]), np.array([start]), np.array([count])))
                cost.append(self.item_cost[0])
            self.item_cost = np.array(cost)
            labels = np.concatenate([p[0] for p in parts])
            drawn = np.concatenate([p[1] for p in parts])
            errors = {k: v for p in parts for k, v in p[2].items()}
            return labels, drawn, errors
        return labels, prefix_counts(wanted, len(labels)), {}

    def forget(self, items: Sequence[int] | np.ndarray) -> None:
        """These inputs are finished: free their cached noise and images (memory stays flat over long runs)."""
        self.sampler.forget(self.keys[np.asarray(items, dtype=np.int64)])
        for item in items:
            self._cache.pop(int(item), None)

    def clean(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        """The base classifier's prediction on each clean (noise-free) input: one evaluation each."""
        preds, errors = self._clean_eval(items, self.sampler.classifier, ())
        return preds.astype(np.int64), errors

    def clean_logits(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        """The base classifier's logits on each clean input (argmax = `clean`): one evaluation each."""
        return self._clean_eval(items, self.sampler.classifier.logits, (self.num_classes,))

    def _clean_eval(
        self, items: Sequence[int] | np.ndarray, evaluate, shape: tuple
    ) -> tuple[np.ndarray, dict[int, str]]:
        """evaluate() on clean inputs in model batches; a failing input gets -1 and an error, the rest go on."""
        items = [int(i) for i in items]
        out = np.full((len(items), *shape), -1.0)
        errors: dict[int, str] = {}
        with torch.inference_mode():
            for lo in range(0, len(items), self.sampler.batch_size):
                chunk = items[lo : lo + self.sampler.batch_size]
                batch = self.images(chunk, keep=False).to(self.sampler.device)
                try:
                    out[lo : lo + len(chunk)] = evaluate(batch)
                except Exception as exc:
                    if len(chunk) == 1:
                        errors[chunk[0]] = f"{type(exc).__name__}: {exc}"
                        continue
                    for k, item in enumerate(chunk):
                        one, e = self._clean_eval([item], evaluate, shape)
                        out[lo + k] = one[0]
                        errors.update(e)
        return out, errors


class LiveStreams(Streams):
    """Each input's label stream drawn live from the base classifier, consumed in order (see ModelLabels).

    `positions` counts every model evaluation of each input; `keys[i]` is input i's noise stream.
    """

    source: ModelLabels

    def __init__(
        self,
        sampler: NoiseSampler,
        images,
        keys: Sequence[int] | np.ndarray,
        value_range: tuple[float, float] | None = (0.0, 1.0),
    ):
        super().__init__(ModelLabels(sampler, images, keys, value_range), len(keys))
        self.keys = self.source.keys
        self.sampler = sampler
