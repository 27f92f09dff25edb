"""The meta-learner: a per-input Beta prior for the E-process, predicted from the clean input's logits.

A MetaLearner is a small MLP from the clean-logit features to logit(p) and a Beta strength per radius and
per predicted distance from the threshold (fitted and tuned by `fit`). It is plain numbers in a JSON file
beside the base model, tied to the weights' SHA-256: no pickle, and a meta-learner is refused for any other
base model.

Any prior keeps every certificate valid (each input's prior is fixed before its
tested stream starts); a good prior only makes the test stop sooner.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from ..errors import HaltfastError
from ..files import data_home
from .features import features
from .priors import Parts
from .priors import jeffreys

FORMAT_VERSION = 1
EDGE_OFFSET = 1e-3
# Strengths are tuned per bin of the predicted gap Phi^-1(predicted p) - z: how sure the prediction is
# that the input is far from the threshold.
GAP_EDGES = (-1.0, -0.25, 0.25, 0.75, 1.5, 2.5)
LOGIT_CLIP = 12.0
HEDGE = 0.9  # the learned prior's share of alpha; Jeffreys keeps the rest (statistics.hedged_mixture_test)


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
        a negative strength centres the prior just above the threshold instead (see fit.STRENGTHS).
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
