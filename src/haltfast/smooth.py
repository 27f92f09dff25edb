"""`Smooth`: the public API, after Cohen et al.'s reference code (predict, certify), plus batched certification."""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .certificate import ABSTAIN
from .certificate import Certificate
from .errors import HaltfastError
from .methods import cohen_predict
from .methods import run_method
from .methods import run_predict
from .predictors import Predictor
from .progress import Progress
from .progress import progress_bar
from .sampling import BaseClassifier
from .sampling import LiveStreams
from .sampling import NoiseSampler
from .sampling import check_image


class Smooth:
    """A smoothed classifier g(x) = argmax_c P(f(x + e) = c), e ~ N(0, sigma^2 I).

    `base_classifier` is any torch.nn.Module returning logits, or any callable
    mapping a numpy batch (N, C, H, W) to labels (N,) or logits (N, num_classes).
    Each call draws fresh noise; with a fixed `seed` the whole sequence of calls
    is bit-identical from run to run. Pass `key` to pin an input to its own
    noise stream (the CLI uses the data set index). `weights_sha256` (the model
    card's) lets a meta-learner prior check that it was fitted for this model.
    """

    ABSTAIN = ABSTAIN

    def __init__(
        self,
        base_classifier: nn.Module | Callable,
        num_classes: int,
        sigma: float,
        seed: int | None = None,
        batch_size: int = 1000,
        device: str = "cpu",
        value_range: tuple[float, float] | None = (0.0, 1.0),
        weights_sha256: str | None = None,
    ):
        if not isinstance(sigma, (int, float)) or not np.isfinite(sigma) or sigma <= 0:
            raise HaltfastError(f"sigma must be a positive number, got {sigma}")
        self.classifier = BaseClassifier(base_classifier, num_classes)
        self.num_classes = self.classifier.num_classes
        self.sigma = float(sigma)
        self.seed = int.from_bytes(os.urandom(7), "little") if seed is None else int(seed)
        self.value_range = value_range
        self.sampler = NoiseSampler(self.classifier, self.sigma, self.seed, batch_size, device)
        self.weights_sha256 = weights_sha256
        self._next_key = 0

    def streams(
        self, images, keys: Sequence[int] | np.ndarray | None = None, batch_size: int | None = None
    ) -> LiveStreams:
        """Live label streams of these images (checked), for any procedure, recording or triage.

        `images` is a sequence or array of images (C, H, W), or a lazy source (haltfast.data.open_dataset)
        whose images are read as the inputs are reached. Each image's stream is its canonical noise stream
        for (seed, key); keys default to fresh ones.
        """
        if batch_size is not None:
            self.sampler.set_batch_size(batch_size)
        count = len(images)
        if keys is None:
            keys = list(range(self._next_key, self._next_key + count))
            self._next_key += count
        if hasattr(images, "load"):
            return LiveStreams(self.sampler, images, keys, self.value_range)
        tensors = []
        for i, x in enumerate(images):
            try:
                tensors.append(check_image(x, None, self.value_range))
            except HaltfastError as exc:
                raise HaltfastError(f"image {i}: {exc}") from None
        if len({tuple(t.shape) for t in tensors}) > 1:
            raise HaltfastError("all images must have the same shape")
        return LiveStreams(self.sampler, torch.stack(tensors) if tensors else torch.empty(0), keys)

    def predict(self, x, n: int, alpha: float, batch_size: int | None = None, key: int | None = None) -> int:
        """Cohen's PREDICT: the top class, or ABSTAIN; returns a wrong class with probability at most alpha."""
        streams = self.streams([_one_image(x)], None if key is None else [key], batch_size)
        return cohen_predict(streams, 0, n, alpha)

    def predict_many(
        self,
        images,
        labels: Sequence[int] | np.ndarray | None = None,
        *,
        n: int = 100_000,
        alpha: float = 0.001,
        method: str = "anytime",
        batch_size: int | None = None,
        keys: Sequence[int] | np.ndarray | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        progress: bool | Progress = False,
        on_result: Callable[[Certificate], None] | None = None,
        **options,
    ) -> list[Certificate]:
        """PREDICT for many inputs: each result's `prediction` is a class, or ABSTAIN; a class other than the
        smoothed classifier's g(x) comes back with probability at most alpha for each input.

        method='anytime' (the default) stops each input as soon as an E-process establishes its class, at most n
        tested samples (options: test='runner-up' or 'half', selection='clean' or 'pilot', n0, switch, and the
        run's budget (evaluations) and seconds (a deadline), after which the open inputs abstain; see
        haltfast.methods.predict); method='cohen' is Cohen et al.'s PREDICT with n samples each. `decision` is
        'predicted', 'abstain' or 'error'; `evaluations` counts every model evaluation, the selection's included.
        """
        streams, items, indices = self._many(images, keys, indices, batch_size)
        with progress_bar(progress, len(items), desc="predict") as tick:
            return run_predict(
                method,
                streams,
                items,
                n=n,
                alpha=alpha,
                labels=labels,
                indices=indices,
                progress=tick,
                on_result=on_result,
                **options,
            )

    def certify(
        self,
        x,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: int | None = None,
        method: str = "cohen",
        key: int | None = None,
        **options,
    ) -> Certificate:
        """Certify one input. method='cohen' is Cohen et al.'s CERTIFY; the result unpacks as (prediction, radius).

        With probability >= 1 - alpha over the noise, a certified radius is
        correct: g predicts `prediction` on the whole L2 ball of that radius.
        """
        return self.certify_many(
            [_one_image(x)],
            n0=n0,
            n=n,
            alpha=alpha,
            batch_size=batch_size,
            method=method,
            keys=None if key is None else [key],
            progress=False,
            **options,
        )[0]

    def certify_many(
        self,
        images,
        labels: Sequence[int] | np.ndarray | None = None,
        *,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: int | None = None,
        method: str = "cohen",
        keys: Sequence[int] | np.ndarray | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        progress: bool | Progress = False,
        on_result: Callable[[Certificate], None] | None = None,
        **options,
    ) -> list[Certificate]:
        """Certify many inputs; each certificate holds with probability >= 1 - alpha on its own.

        `progress`: True for a progress bar, or a callback (inputs, evaluations); `on_result(cert)` is
        called as each input finishes, in completion order.
        """
        prior = options.get("prior")
        if isinstance(prior, Predictor) and getattr(prior, "weights_sha256", None) is not None:
            # a calibrated meta-learner (alone, or an online learner's start) belongs to its weights
            if self.weights_sha256 is None:
                raise HaltfastError(
                    "a meta-learner is tied to the weights it was fitted for: pass weights_sha256= "
                    "(the model card's, e.g. from load_base_model) to Smooth so it can be checked"
                )
            prior.check_model(self.weights_sha256)  # type: ignore[attr-defined]
        streams, items, indices = self._many(images, keys, indices, batch_size)
        with progress_bar(progress, len(items), evaluations=options.get("budget"), at_most=True) as tick:
            return run_method(
                method,
                streams,
                items,
                sigma=self.sigma,
                n0=n0,
                n=n,
                alpha=alpha,
                labels=labels,
                indices=indices,
                progress=tick,
                on_result=on_result,
                **options,
            )

    def _many(self, images, keys, indices, batch_size: int | None) -> tuple[LiveStreams, list[int], list | None]:
        """The images' streams, their items 0, 1, ... and their indices in the results (default: the keys)."""
        streams = self.streams(images, keys, batch_size)
        if indices is None and keys is not None:
            indices = list(keys)
        return streams, list(range(len(streams.keys))), indices


def _one_image(x):
    """One image for certify/predict; a batch of one (1, C, H, W) is refused with a pointer to certify_many."""
    shape = tuple(np.shape(x))
    if len(shape) == 4:
        raise HaltfastError(
            f"certify and predict take one image (C, H, W); got an array of shape {shape}: pass "
            f"x[0] for a batch of one, or use certify_many for many images"
        )
    return x
