"""Certificates, the outcome vocabulary, radius arithmetic and the argument checks every method shares."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields

import numpy as np
from scipy.stats import norm

from .errors import UsageError

ABSTAIN = -1  # the prediction of an input no class could be certified for (Cohen et al.'s convention)

# Outcomes of one input, the same words in certify, triage, the CSV and the docs.
CERTIFIED = "certified"  # the claim holds with probability >= 1 - alpha
NOT_CERTIFIED = "not certified"  # the futility test rejected p >= Phi(r/sigma) for the selected class
UNDECIDED = "undecided"  # the input's budget ran out (or it was given up) before either test decided
ABSTAINED = "abstain"  # no class could be certified (radius mode, Cohen)
FAILED = "error"  # the base model failed on this input: no certificate
PENDING = "pending"  # triage only: still being sampled when the run stopped
DECISIONS = (CERTIFIED, NOT_CERTIFIED, UNDECIDED, ABSTAINED, FAILED)


class StopReason:
    """Why an input stopped, as written in the `stop_reason` column."""

    EVALUE = "e-value reached 1/alpha"
    UPPER_BELOW = "upper confidence bound below Phi(r/sigma)"
    LOWER_ABOVE = "lower confidence bound above Phi(r/sigma)"
    MAX_SAMPLES = "max_samples reached"
    MODEL_ERROR = "model error"
    FIXED_N = "budget spent"
    HALF = "p <= 1/2 established"
    CONVERGED = "radius converged within tolerance"
    CP_LOWER = "Clopper-Pearson lower bound reached Phi(r/sigma)"
    CP_UPPER = "Clopper-Pearson upper bound below Phi(r/sigma)"
    LAST_STAGE = "last stage did not certify"
    BUCKET_DECIDED = "grid bucket decided"
    OUT_OF_REACH = "certificate out of reach: max_samples cannot reach 1/alpha even if every sample hits"
    NEXT_OUT_OF_REACH = "next grid radius out of reach: max_samples cannot certify it even if every sample hits"
    GIVEN_UP = "given up: the next certificate was not worth its expected evaluations"
    BUDGET = "given up: the run's budget went to inputs more likely to certify"
    DEADLINE = "given up: the run's deadline passed"


@dataclass
class Certificate:
    """One input's result. Unpacks as (prediction, radius), like Cohen et al.'s certify.

    `evaluations` counts every model evaluation spent on this input (class
    selection included). With probability >= 1 - alpha, a certificate with
    decision "certified" is correct: the smoothed classifier predicts
    `prediction` everywhere within L2 distance `radius` of the input.
    """

    prediction: int
    radius: float
    decision: str
    evaluations: int
    p_lower: float = 0.0
    log_evalue: float = float("nan")
    stop_reason: str = ""
    seconds: float = 0.0
    index: int = -1
    label: int | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator:
        yield self.prediction
        yield self.radius

    @property
    def correct(self) -> bool | None:
        return None if self.label is None else bool(self.prediction == self.label)

    @property
    def tested(self) -> int | None:
        """Tested samples drawn (selection not included); None for Cohen's CERTIFY, which tests n."""
        value = self.extra.get("tested")
        return None if value is None else int(value)

    @property
    def stopped_at(self) -> int | None:
        """The tested sample at which the deciding test crossed (docs/certification.md); `tested` where none did,
        None where the method records none."""
        value = self.extra.get("stopped_at")
        return None if value is None else int(value)

    def row(self) -> dict:
        """A flat dict for CSV/JSON output: index, label, prediction, correct, the other fields, then `extra`."""
        front = {"index": self.index, "label": self.label, "prediction": self.prediction, "correct": self.correct}
        rest = {name: getattr(self, name) for name in _ROW_FIELDS}
        return {**front, **rest, **self.extra}

    @classmethod
    def from_row(cls, row: dict) -> Certificate:
        """The certificate a `row()` dict describes (the inverse of `row`, e.g. for rows read back from a journal)."""
        row = dict(row)
        row.pop("correct", None)
        names = set(cls.__dataclass_fields__) - {"extra"}
        fields = {k: row.pop(k) for k in list(row) if k in names}
        return cls(**fields, extra=row)


# the row's fields after index, label, prediction and correct: the others in declaration order (extra last)
_ROW_FIELDS = tuple(f.name for f in fields(Certificate) if f.name not in ("index", "label", "prediction", "extra"))


def failed_certificate(message: str) -> Certificate:
    """The certificate-free result of an input the base model failed on."""
    return Certificate(ABSTAIN, 0.0, FAILED, 0, stop_reason=StopReason.MODEL_ERROR, error=message)


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return float(alpha)


def validate_count(name: str, value: int) -> int:
    if int(value) != value or int(value) < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def validate_budget(budget) -> int | None:
    """A run's budget: None, or a whole number of evaluations >= 1."""
    if budget is None:
        return None
    if (
        isinstance(budget, bool)
        or not isinstance(budget, (int, np.integer, float))
        or not budget == budget // 1
        or budget < 1
    ):
        raise UsageError(f"budget must be a whole number of evaluations >= 1, got {budget!r}")
    return int(budget)


def validate_seconds(seconds) -> float:
    """A run's deadline: a number of seconds > 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not np.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"seconds must be a number > 0, got {seconds!r}")
    return float(seconds)


def validate_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise UsageError(f"tolerance must be a number >= 0, got {tolerance}")
    return float(tolerance)


def radius_from_p(p_lower, sigma: float):
    """Certified L2 radius sigma * Phi^-1(p_lower) (Cohen et al. 2019), 0 where p_lower <= 1/2."""
    p = np.asarray(p_lower, dtype=float)
    r = sigma * norm.ppf(np.clip(p, 0.5, 1.0))
    return float(r) if r.ndim == 0 else r


def p_for_radius(radius: float, sigma: float) -> float:
    """The smallest top-class probability that certifies `radius`: Phi(radius / sigma)."""
    return float(norm.cdf(radius / sigma))


def max_certifiable_radius(max_samples: int, alpha: float, sigma: float) -> float:
    """Largest radius n samples can certify if every one hits: sigma * Phi^-1(alpha^(1/n)) (Clopper-Pearson)."""
    return float(sigma * norm.ppf(math.exp(math.log(alpha) / max_samples)))


def check_radius(radius: float, max_samples: int, alpha: float, sigma: float, what: str = "radius") -> None:
    """Raise a UsageError unless `radius` is finite, >= 0 and certifiable with max_samples samples."""
    if not (isinstance(radius, (int, float)) and np.isfinite(radius) and radius >= 0):
        raise UsageError(f"{what} must be a finite number >= 0, got {radius}")
    r_max = max_certifiable_radius(max_samples, alpha, sigma)
    if radius >= r_max:
        log_p = float(norm.logcdf(radius / sigma))
        need_n = math.log(alpha) / log_p if log_p < 0 else math.inf
        need = f"max_samples >= {math.ceil(need_n):,}" if need_n < 1e12 else "more than 10^12 samples"
        raise UsageError(
            f"{what} {radius:g} can never be certified with max_samples={max_samples:,} at "
            f"alpha={alpha:g} and sigma={sigma:g}: even if every sample hits, the largest "
            f"certifiable radius is {r_max:.4f}; it needs {need}"
        )


def check_grid(radii, max_samples: int, alpha: float, sigma: float) -> tuple[float, ...]:
    """The radii of a grid, each checked by check_radius; raise a UsageError unless they are non-empty and
    strictly increasing (no duplicates), naming the offending radius."""
    try:
        grid = tuple(float(r) for r in radii)
    except (TypeError, ValueError):
        raise UsageError(f"radii must be numbers, got {radii!r}") from None
    if not grid:
        raise UsageError("the radius grid is empty: give at least one radius, e.g. 0.25,0.5,0.75")
    for r in grid:
        check_radius(r, max_samples, alpha, sigma, what="grid radius")
    for lo, hi in itertools.pairwise(grid):
        if hi == lo:
            raise UsageError(f"the radius grid lists {lo:g} twice; give each radius once")
        if hi < lo:
            raise UsageError(f"the radius grid must be increasing: {hi:g} comes after {lo:g}")
    return grid
