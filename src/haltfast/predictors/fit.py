"""Fitting the meta-learner: calibration data, the MLP, and the prior strengths tuned by stopping time.

Calibration (`calibrate`) runs the base model on the calibration split (held out
of training and of evaluation): one clean evaluation per image for the features,
and `samples` noisy evaluations for the target p (the rate at which the noisy
prediction equals the clean one, which is the class our default selection tests).
`fit_meta_learner` fits a small MLP from features to logit(p) and then chooses the
prior's shape, a Beta centred on the prediction with a strength per radius and
per predicted distance from the threshold, by
minimising the simulated mean stopping time of the E-process on calibration
images (not the error of p). The result is a MetaLearner (learner.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.special import logit
from scipy.stats import norm

from ..errors import HaltfastError
from ..files import atomic_write
from .features import FEATURES
from .features import features
from .learner import FORMAT_VERSION
from .learner import GAP_EDGES
from .learner import HEDGE
from .learner import LOGIT_CLIP
from .learner import MetaLearner
from .learner import beta_prior
from .learner import gap_bins

# Decision radii are tuned on this grid of z = Phi^-1(p0) = r / sigma (z = 0: p0 = 1/2).
Z_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
# Candidate strengths: 0 is the Jeffreys prior; a negative strength -s centres Beta(., .) of strength s
# just above the threshold p0 instead of at the prediction. For inputs predicted near the threshold,
# which dominate the mean cost, that is where the evidence against p <= p0 accrues fastest. Eight candidates
# rather than thirteen: with 1,000 calibration images the per-bin choice among more was mostly noise
# (sigma 0.25: 11,797 against 12,160 evaluations summed over r = 0.25, 0.5, 0.75; docs/meta-learner.md).
STRENGTHS = (0.0, 4.0, 16.0, 64.0, 256.0, 1024.0, -256.0, -1024.0)
FOLDS = 5  # cross-fitting: every calibration image tunes the strengths with a prediction made without it
# cross-fitting splits the images in FOLDS and the MLP keeps a tenth of each fit for early stopping (>= 2)
MIN_CALIBRATION_IMAGES = 25
CALIBRATION_IMAGES = 1000  # `haltfast calibrate`'s default number of images (all of them where a split holds fewer)


@dataclass
class CalibrationData:
    """Per calibration image: clean logits, and hits of the clean class among `samples` noisy predictions."""

    logits: np.ndarray
    hits: np.ndarray
    samples: int
    indices: np.ndarray
    labels: np.ndarray
    sigma: float
    seed: int
    weights_sha256: str
    model: str
    seconds: float = 0.0

    @property
    def evaluations(self) -> int:
        return int(len(self.hits) * (self.samples + 1))

    def p_hat(self) -> np.ndarray:
        """The posterior mean of each p under a Jeffreys prior (never exactly 0 or 1)."""
        return (self.hits + 0.5) / (self.samples + 1.0)

    def save(self, path: str | Path) -> Path:
        meta = {
            "samples": self.samples,
            "sigma": self.sigma,
            "seed": self.seed,
            "weights_sha256": self.weights_sha256,
            "model": self.model,
            "seconds": self.seconds,
        }
        return atomic_write(
            path,
            lambda tmp: np.savez_compressed(
                tmp,
                logits=self.logits,
                hits=self.hits,
                indices=self.indices,
                labels=self.labels,
                meta=np.array(json.dumps(meta)),
            ),
            suffix=".npz",
        )

    @classmethod
    def load(cls, path: str | Path) -> CalibrationData:
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                return cls(
                    f["logits"],
                    f["hits"],
                    int(meta["samples"]),
                    f["indices"],
                    f["labels"],
                    float(meta["sigma"]),
                    int(meta["seed"]),
                    meta["weights_sha256"],
                    meta["model"],
                    float(meta.get("seconds", 0.0)),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise HaltfastError(
                f"{path} is not a calibration file ({exc}); make one with `haltfast calibrate`"
            ) from exc


def calibrate(
    streams, samples: int = 1000, chunk: int = 50, progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clean logits (1 evaluation each) and hits of the clean class among `samples` noisy draws per input."""
    n = len(streams.keys)
    logits = np.zeros((n, streams.num_classes))
    hits = np.zeros(n, dtype=np.int64)
    for lo in range(0, n, chunk):
        items = list(range(lo, min(lo + chunk, n)))
        z, errors = streams.clean_logits(items)
        out, draw_errors = streams.draw(items, [samples] * len(items))
        errors.update(draw_errors)
        if errors:
            raise HaltfastError(f"the base classifier failed during calibration: {next(iter(errors.values()))}")
        logits[items] = z
        hits[items] = [int(np.sum(labels == c)) for labels, c in zip(out, z.argmax(axis=1))]
        if progress:
            progress(len(items), len(items) * (samples + 1))
    return logits, hits


def check_calibration_size(images: int) -> None:
    """Raise HaltfastError unless `images` calibration images are enough to fit a meta-learner."""
    if images < MIN_CALIBRATION_IMAGES:
        raise HaltfastError(
            f"the meta-learner needs at least {MIN_CALIBRATION_IMAGES} calibration images, got {images}: give "
            f"more held-out images (the default is 1,000, as for the shipped models)"
        )


def fit_meta_learner(
    calib: CalibrationData,
    alpha: float = 0.001,
    hidden: int = 16,
    max_samples: int = 20_000,
    tune_paths: int = 4000,
    seed: int = 0,
) -> tuple[MetaLearner, dict]:
    """Fit the MLP on all calibration images, then pick each (z, gap bin)'s strength by simulated mean stopping time.

    The strengths are tuned on cross-fitted predictions (each image predicted by an MLP fitted
    without it, FOLDS folds), so every calibration image serves both the fit and the tuning;
    an image's calibration estimate of p stands in for its truth, and each image is simulated
    often enough for `tune_paths` paths in all. Returns the learner and a report of the fit.
    """
    check_calibration_size(len(calib.hits))
    start = time.perf_counter()
    x = features(calib.logits)
    y = np.clip(logit(calib.p_hat()), -LOGIT_CLIP, LOGIT_CLIP)
    scaler, mlp = _fit_mlp(x, y, hidden, seed)
    held_out = _cross_fitted(x, y, hidden, seed)
    params = {
        "format": "haltfast-meta-learner",
        "version": FORMAT_VERSION,
        "features": list(FEATURES),
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": scaler.scale_.tolist(),
        "coefs": [w.tolist() for w in mlp.coefs_],
        "intercepts": [b.tolist() for b in mlp.intercepts_],
        "z_grid": list(Z_GRID),
        "gap_edges": list(GAP_EDGES),
        "hedge": HEDGE,
        "weights_sha256": calib.weights_sha256,
        "model": calib.model,
        "sigma": calib.sigma,
        "calibration_evaluations": calib.evaluations,
    }
    paths = _tuning_paths(len(y), tune_paths, seed)
    strengths, times = _tune_strengths(calib.p_hat()[paths], expit(held_out[paths]), alpha, max_samples, seed)
    params["strengths"] = strengths
    params["fit"] = {
        "calibration_images": len(y),
        "samples_per_image": calib.samples,
        "calibration_evaluations": calib.evaluations,
        "folds": FOLDS,
        "tune_paths": int(paths.size),
        "heldout_logit_mae": float(np.mean(np.abs(held_out - y))),
        "residual_sd": float(np.std(held_out - y)),
        "heldout_p_mae": float(np.mean(np.abs(expit(held_out) - expit(y)))),
        "alpha": alpha,
        "max_samples": max_samples,
        "mean_stopping_time": times,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return MetaLearner(params), params["fit"]


def _fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int, seed: int):
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    mlp = MLPRegressor(
        hidden_layer_sizes=(hidden,), alpha=1e-3, max_iter=2000, early_stopping=True, random_state=seed
    ).fit(scaler.transform(x), y)
    return scaler, mlp


def _cross_fitted(x: np.ndarray, y: np.ndarray, hidden: int, seed: int) -> np.ndarray:
    """Each image's predicted logit(p) from an MLP fitted on the other folds."""
    from sklearn.model_selection import KFold

    out = np.empty_like(y)
    for fit, held in KFold(FOLDS, shuffle=True, random_state=seed).split(x):
        scaler, mlp = _fit_mlp(x[fit], y[fit], hidden, seed)
        out[held] = np.clip(mlp.predict(scaler.transform(x[held])), -LOGIT_CLIP, LOGIT_CLIP)
    return out


# ---------------------------------------------------------------------------------------------
# Choosing the prior's strength by the stopping time it produces
# ---------------------------------------------------------------------------------------------


def _tuning_paths(images: int, paths: int, seed: int) -> np.ndarray:
    """Which image each simulated path follows: a random subset of the images, or each image equally often."""
    rng = np.random.default_rng(seed)
    if images >= paths:
        return np.sort(rng.choice(images, size=paths, replace=False))
    return np.repeat(np.arange(images), -(-paths // images))


def _tune_strengths(
    p_true: np.ndarray, mean: np.ndarray, alpha: float, max_samples: int, seed: int
) -> tuple[list[list[float]], dict]:
    """Per z in Z_GRID and predicted-gap bin, the strength of STRENGTHS with the least simulated mean stopping
    time; all zeros (Jeffreys, unhedged) where that beats the chosen strengths. Also the simulated means."""
    strengths, report = [], {}
    for z in Z_GRID:
        sim_rng = np.random.default_rng([seed, int(z * 100)])
        state = sim_rng.bit_generator.state  # every candidate sees the same Bernoulli draws
        half = np.full(p_true.size, 0.5)
        jeffreys_times = simulated_stopping_times(p_true, half, half, z, alpha, max_samples, sim_rng, hedge=None)
        bins = gap_bins(mean, z)
        runs = []
        for s in STRENGTHS:
            sim_rng.bit_generator.state = state
            a, b = beta_prior(mean, np.full(mean.shape, s), float(norm.cdf(z)))
            runs.append(simulated_stopping_times(p_true, a, b, z, alpha, max_samples, sim_rng))
        times = np.array(runs)  # (strengths, paths)
        per_bin = np.array(
            [
                times[:, bins == k].mean(axis=1) if np.any(bins == k) else np.zeros(len(STRENGTHS))
                for k in range(len(GAP_EDGES) + 1)
            ]
        )  # (bins, strengths)
        best = np.array(STRENGTHS)[per_bin.argmin(axis=1)]
        chosen = float(times[[STRENGTHS.index(v) for v in best[bins]], np.arange(p_true.size)].mean())
        if chosen >= jeffreys_times.mean():
            best = np.zeros_like(best)  # nothing beats the unhedged Jeffreys prior here
            chosen = float(jeffreys_times.mean())
        strengths.append(best.tolist())
        report[f"z={z:g}"] = {
            "jeffreys": float(jeffreys_times.mean()),
            "chosen": chosen,
            **{f"s={v:g}": float(t.mean()) for v, t in zip(STRENGTHS, times)},
        }
    return strengths, report


def simulated_stopping_times(
    p: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    z: float,
    alpha: float,
    max_samples: int,
    rng: np.random.Generator,
    hedge: float | None = HEDGE,
) -> np.ndarray:
    """Samples until the beta-mixture E-process with prior Beta(a, b) per input decides, for each true p.

    Decision at p0 = Phi(z) (certify, or refute with the mirrored test), hedged as in
    certification; z = 0 stands for radius mode's first question, p > 1/2. Capped at max_samples.
    """
    from ..statistics import hedged_mixture_test

    p0 = float(norm.cdf(z))
    n = len(p)
    cert = hedged_mixture_test(p0, alpha, a, b, n, hedge=hedge)
    fut = hedged_mixture_test(p0, alpha, a, b, n, alternative="less", hedge=hedge)
    stop = np.full(n, max_samples, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    t, step = 0, 16
    while t < max_samples and not done.all():
        m = min(step, max_samples - t)
        js = np.nonzero(~done)[0]
        x = rng.random((js.size, m)) < p[js, None]
        cert.update(x, js)
        fut.update(x, js)
        t += m
        decided = cert.rejected[js] | fut.rejected[js]
        hit = js[decided]
        times = np.minimum(
            np.where(cert.rejected[hit], cert.stopping_time[hit], max_samples),
            np.where(fut.rejected[hit], fut.stopping_time[hit], max_samples),
        )
        stop[hit] = times
        done[hit] = True
        step = max(16, t // 8)
    return stop
