"""The meta-learner: a per-input Beta prior for the E-process, predicted from the clean input's logits.

Calibration (`calibrate`) runs the base model on the calibration split (held out
of training and of evaluation): one clean evaluation per image for the features,
and `samples` noisy evaluations for the target p (the rate at which the noisy
prediction equals the clean one, which is the class our default selection tests).
`fit_meta_learner` fits a small MLP from features to logit(p) and then chooses the
prior's shape, a Beta centred on the prediction with a strength per radius and
per predicted distance from the threshold, by
minimising the simulated mean stopping time of the E-process on calibration
images (not the error of p). The result is plain numbers in a JSON file beside
the base model, tied to the weights' SHA-256: no pickle, and a meta-learner is
refused for any other base model.

Any prior keeps every certificate valid (each input's prior is fixed before its
tested stream starts); a good prior only makes the test stop sooner.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.special import logit
from scipy.stats import norm

from .errors import HaltfastError
from .files import atomic_write
from .files import data_home
from .priors import Parts
from .priors import jeffreys

FORMAT_VERSION = 1
FEATURES = ("log_top_prob", "log_margin_prob", "logit_gap", "entropy", "log_second_prob", "top_logit", "logit_std")
# Decision radii are tuned on this grid of z = Phi^-1(p0) = r / sigma (z = 0: p0 = 1/2).
Z_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
# Candidate strengths: 0 is the Jeffreys prior; a negative strength -s centres Beta(., .) of strength s
# just above the threshold p0 instead of at the prediction. For inputs predicted near the threshold,
# which dominate the mean cost, that is where the evidence against p <= p0 accrues fastest. Eight candidates
# rather than thirteen: with 1,000 calibration images the per-bin choice among more was mostly noise
# (sigma 0.25: 11,797 against 12,160 evaluations summed over r = 0.25, 0.5, 0.75; docs/meta-learner.md).
STRENGTHS = (0.0, 4.0, 16.0, 64.0, 256.0, 1024.0, -256.0, -1024.0)
EDGE_OFFSET = 1e-3
# Strengths are tuned per bin of the predicted gap Phi^-1(predicted p) - z: how sure the prediction is
# that the input is far from the threshold.
GAP_EDGES = (-1.0, -0.25, 0.25, 0.75, 1.5, 2.5)
LOGIT_CLIP = 12.0
FOLDS = 5  # cross-fitting: every calibration image tunes the strengths with a prediction made without it
HEDGE = 0.9  # the learned prior's share of alpha; Jeffreys keeps the rest (statistics.hedged_mixture_test)
# cross-fitting splits the images in FOLDS and the MLP keeps a tenth of each fit for early stopping (>= 2)
MIN_CALIBRATION_IMAGES = 25


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


# ---------------------------------------------------------------------------------------------
# Choosing the prior's strength by the stopping time it produces
# ---------------------------------------------------------------------------------------------


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
    from .statistics import hedged_mixture_test

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


def beta_prior(mean: np.ndarray, strength: np.ndarray, p0: float) -> tuple[np.ndarray, np.ndarray]:
    """Beta(m s, (1 - m) s) with m = mean (s > 0) or m just above p0 (s < 0, strength |s|); Jeffreys where s = 0."""
    strength = np.broadcast_to(strength, mean.shape)
    centre = np.where(strength < 0, p0 + min(EDGE_OFFSET, (1.0 - p0) / 2), mean)
    s = np.abs(strength)
    jeffreys = s == 0
    return np.where(jeffreys, 0.5, centre * s), np.where(jeffreys, 0.5, (1.0 - centre) * s)


def gap_bins(mean: np.ndarray, z: float, edges=GAP_EDGES) -> np.ndarray:
    """Bin of each input's predicted probit gap Phi^-1(mean) - z (see GAP_EDGES)."""
    return np.digitize(norm.ppf(np.clip(mean, 1e-9, 1 - 1e-9)) - z, edges)


# ---------------------------------------------------------------------------------------------
# The meta-learner
# ---------------------------------------------------------------------------------------------


class MetaLearner:
    """A small MLP from clean-logit features to logit(p), and a tuned Beta strength per z = r / sigma and gap bin.

    `prior(logits, radius)` returns Beta(a, b) per input. Inference is a few numpy
    matrix products (microseconds per input); the parameters are plain numbers.
    """

    def __init__(self, params: dict):
        self.params = params
        self.mean_ = np.asarray(params["scaler_mean"], dtype=float)
        self.scale_ = np.asarray(params["scaler_scale"], dtype=float)
        self.weights = [np.asarray(w, dtype=float) for w in params["coefs"]]
        self.biases = [np.asarray(b, dtype=float) for b in params["intercepts"]]
        self.z_grid = np.asarray(params["z_grid"], dtype=float)
        self.gap_edges = np.asarray(params.get("gap_edges", GAP_EDGES), dtype=float)
        self.strengths = np.asarray(params["strengths"], dtype=float).reshape(len(self.z_grid), len(self.gap_edges) + 1)
        self.weights_sha256 = params["weights_sha256"]
        self.sigma = float(params["sigma"])
        self.hedge = float(params.get("hedge", HEDGE))

    def predict_logit(self, logits: np.ndarray) -> np.ndarray:
        """The predicted logit(p) of each input, clipped to +-LOGIT_CLIP."""
        h = (features(logits) - self.mean_) / self.scale_
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if k < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return np.clip(h[:, 0], -LOGIT_CLIP, LOGIT_CLIP)

    def _z_row(self, z: float) -> int:
        return int(np.argmin(np.abs(self.z_grid - z)))

    def prior(self, logits: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Beta(a, b) per input, centred on the predicted p, with the strength tuned for this radius and gap.

        Strength 0 means calibration found nothing better than Jeffreys there: Beta(1/2, 1/2);
        a negative strength centres the prior just above the threshold instead (see STRENGTHS).
        """
        return self._prior_at(logits, radius / self.sigma)

    def _prior_at(self, logits: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        row = self._z_row(z)
        mean = expit(self.predict_logit(logits))
        strength = self.strengths[row][gap_bins(mean, float(self.z_grid[row]), self.gap_edges)]
        return beta_prior(mean, strength, float(norm.cdf(z)))

    def _hedge_at(self, z: float) -> float | None:
        return None if not np.any(self.strengths[self._z_row(z)] != 0) else self.hedge

    needs_logits = True

    def parts(self, z, logits: np.ndarray | None, n: int) -> Parts:
        """The Predictor interface: the learned prior at `hedge` of alpha beside Jeffreys at the rest (one
        Jeffreys component where calibration found nothing better); z = r / sigma.

        Radius mode (z None) keeps Jeffreys: its inputs run tens of thousands of samples, where a prior
        learned from clean logits adds little and its hedge cost 1-4% more evaluations on the shipped
        models (docs/meta-learner.md)."""
        if z is None:
            return [(1.0, *jeffreys(n))]
        if logits is None:
            raise HaltfastError("the meta-learner predicts priors from the clean logits; none were computed")
        a, b = self._prior_at(logits, float(z))
        hedge = self._hedge_at(float(z))
        if hedge is None:
            return [(1.0, a, b)]
        return [(hedge, a, b), (1.0 - hedge, *jeffreys(n))]

    def belief(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A Beta(a, b) belief about each input's p, predicted from its clean logits: the MLP's logit(p) with the
        held-out error as a normal spread, moment-matched to a Beta. A prediction for spending decisions (the
        value rule), not the prior of the tests; it never touches a certificate's validity."""
        fit = self.params.get("fit", {})
        spread = float(fit.get("residual_sd") or 1.25 * fit.get("heldout_logit_mae", 1.0))
        nodes, weights = np.polynomial.hermite_e.hermegauss(24)
        weights = weights / weights.sum()
        p = expit(self.predict_logit(logits)[:, None] + spread * nodes[None, :])
        mean = p @ weights
        var = np.maximum((p**2) @ weights - mean**2, 1e-12)
        size = np.clip(mean * (1 - mean) / var - 1.0, 1.0, 1e6)
        return mean * size, (1 - mean) * size

    @property
    def calibration_evaluations(self) -> int:
        """Model evaluations its calibration cost (clean and noisy), a one-off per model."""
        fit = self.params.get("fit", {})
        default = fit.get("calibration_images", 0) * (fit.get("samples_per_image", 0) + 1)
        return int(self.params.get("calibration_evaluations", default))

    def check_model(self, weights_sha256: str, what: str = "this base model") -> None:
        """Refuse a base model other than the one this meta-learner was calibrated on."""
        if weights_sha256 != self.weights_sha256:
            raise HaltfastError(
                f"the meta-learner was calibrated for weights sha256 {self.weights_sha256[:12]}, not "
                f"{what} ({weights_sha256[:12]}): run `haltfast calibrate` for this model, or use "
                f"--prior jeffreys"
            )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.params, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, weights_sha256: str | None = None) -> MetaLearner:
        """Load a meta-learner; with weights_sha256, refuse it unless it belongs to those weights."""
        path = Path(path)
        try:
            params = json.loads(path.read_text())
            if params.get("format") != "haltfast-meta-learner" or params.get("version") != FORMAT_VERSION:
                raise ValueError("not a haltfast meta-learner of this version")
            meta = cls(params)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HaltfastError(f"cannot load meta-learner {path}: {exc}") from exc
        if weights_sha256 is not None:
            meta.check_model(weights_sha256, "the model it is used with")
        return meta


def format_strengths(learner: MetaLearner) -> str:
    """The tuned priors as a table: one row per r / sigma, one column per predicted-gap bin."""
    edges = learner.gap_edges
    bins = [f"< {edges[0]:g}"] + [f"{lo:g}..{hi:g}" for lo, hi in itertools.pairwise(edges)] + [f">= {edges[-1]:g}"]

    def word(v: float) -> str:
        return "Jeffreys" if v == 0 else (f"pred.x{v:g}" if v > 0 else f"edge x{-v:g}")

    lines = [
        "prior per r/sigma (rows) and predicted probit gap Phi^-1(p) - r/sigma (columns): Jeffreys; "
        "pred.xS = Beta centred on the predicted p with strength S; edge xS = centred just above the threshold",
        f"{'r/sigma':>8} " + " ".join(f"{b:>12}" for b in bins),
    ]
    for z, row in zip(learner.z_grid, learner.strengths):
        lines.append(f"{z:>8g} " + " ".join(f"{word(v):>12}" for v in row))
    return "\n".join(lines)


def meta_learner_path(weights_path: str | Path) -> Path:
    """Where a base model's meta-learner lives beside the weights: `<name>.meta.json`."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.stem + ".meta.json")


def user_meta_learner_path(weights_sha256: str) -> Path:
    """Where `haltfast calibrate` puts a meta-learner by default: the user's haltfast folder, keyed by the weights."""
    return data_home() / "meta-learners" / f"{weights_sha256[:16]}.meta.json"


def find_meta_learner(weights_path: str | Path | None, weights_sha256: str) -> Path | None:
    """The meta-learner of these weights, if there is one: beside them, else in the user's haltfast folder."""
    candidates = [meta_learner_path(weights_path)] if weights_path is not None else []
    candidates.append(user_meta_learner_path(weights_sha256))
    return next((path for path in candidates if path.is_file()), None)


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


def oracle_prior(streams, items=None) -> np.ndarray:
    """Benchmarks only: Beta(hits + 1/2, misses + 1/2) of each recorded stream's whole length, clean class.

    It looks at the very samples it then tests, so it is not a valid prior for real
    use; it shows how far a perfect prediction of p could take the E-process.
    """
    items = range(len(streams.streams)) if items is None else items
    c_hat, _ = streams.clean(list(items))
    hits = np.array([np.count_nonzero(streams.streams[i] == c) for i, c in zip(items, c_hat)], dtype=float)
    length = np.array([len(streams.streams[i]) for i in items], dtype=float)
    return np.column_stack([hits + 0.5, length - hits + 0.5])
