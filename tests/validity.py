"""Validity checks that can fail.

Each simulated case has a known rejection probability (computed exactly by haltfast.validation's forward
recursion), so a check compares the count of false certificates with Binomial(n, exact): a correct
implementation fails with probability at most FALSE_ALARM, and the design is asserted to catch a
false-certification rate of 1.2 alpha with probability at least POWER.
"""

import numpy as np
from scipy.special import logit
from scipy.stats import binom

from haltfast.predictors import FEATURES
from haltfast.predictors import FORMAT_VERSION
from haltfast.predictors import GAP_EDGES
from haltfast.predictors import Z_GRID
from haltfast.predictors import MetaLearner
from haltfast.streams import RecordedStreams

FALSE_ALARM = 1e-4  # probability that a correct implementation fails one check
POWER = 0.99  # probability that a rate of 1.2 alpha fails it


def check_false_certifications(
    count: int, n: int, alpha: float, exact: float | None = None, exact_is_bound: bool = False
) -> None:
    """Fail unless `count` of n false certificates is what a valid method gives.

    With `exact` (the case's exact rejection probability, <= alpha), the count must lie in Binomial(n, exact)'s
    central range (both sides: fewer would show a changed test); with exact_is_bound, only above. Without
    it, exact = alpha is assumed (the largest valid rate).
    """
    rate = alpha if exact is None else exact
    assert rate <= alpha, f"the case's exact rejection probability {rate:.4g} exceeds alpha = {alpha:g}"
    high = binom.isf(FALSE_ALARM, n, rate)
    assert binom.sf(high, n, 1.2 * alpha) >= POWER, (
        f"too few trials: a rate of 1.2 alpha passes with probability > {1 - POWER:g} (n = {n}, exact = {rate:.4g})"
    )
    assert count <= high, f"{count} of {n} false certificates; at most {high:.0f} fit a rate of {rate:.4g}"
    if exact is not None and not exact_is_bound:
        low = binom.ppf(FALSE_ALARM, n, rate)
        assert count >= low, f"{count} of {n} certificates where about {n * rate:.0f} were due (exact {rate:.4g})"


def bernoulli_recording(p: float, n: int, length: int, seed: int, logits: bool = False) -> RecordedStreams:
    """n recorded streams whose label is 1 with probability p (class 1 the clean prediction): the tested
    stream of every input is i.i.d. Bernoulli(p), as for a base model with top-class probability p."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, length)) < p).astype(np.uint8)
    clean_logits = np.tile([[-1.0, 1.0]], (n, 1)) if logits else None
    return RecordedStreams(labels, 2, clean=np.ones(n, dtype=np.int64), logits=clean_logits)


def pilot_mixture(p0: float, n0: int, law) -> float:
    """The exact probability of an event when n0 pilot samples at p = p0 choose the class (majority, ties to
    class 0) and fix the prior: the sum over the pilot's count k of class-1 labels of
    P(k) * law(p of the chosen class, hits of the chosen class among the n0)."""
    from scipy.stats import binom as binomial

    total = 0.0
    for k in range(n0 + 1):
        hits, p = (k, p0) if k > n0 - k else (n0 - k, 1 - p0)
        total += binomial.pmf(k, n0, p0) * law(p, hits)
    return total


def forced_meta(p_center: float, strength: float, sha: str = "0" * 64, sigma: float = 0.5) -> MetaLearner:
    """A meta-learner forced to predict the same prior Beta(p*s, (1-p)*s) for every input."""
    f = len(FEATURES)
    return MetaLearner(
        {
            "format": "haltfast-meta-learner",
            "version": FORMAT_VERSION,
            "features": list(FEATURES),
            "scaler_mean": [0.0] * f,
            "scaler_scale": [1.0] * f,
            "coefs": [[[0.0]] * f, [[0.0]]],
            "intercepts": [[0.0], [float(logit(p_center))]],
            "z_grid": list(Z_GRID),
            "strengths": [[strength] * (len(GAP_EDGES) + 1)] * len(Z_GRID),
            "weights_sha256": sha,
            "model": "forced",
            "sigma": sigma,
        }
    )


def poisson_binomial(rates) -> np.ndarray:
    """The exact law of a sum of independent Bernoulli(rates[i]): its pmf over 0 .. len(rates)."""
    values, counts = np.unique(np.asarray(rates, dtype=float), return_counts=True)
    pmf = np.array([1.0])
    for q, k in zip(values, counts):
        pmf = np.convolve(pmf, binom.pmf(np.arange(k + 1), k, q))
    return pmf


def check_false_certifications_exact(count: int, rates, alpha: float) -> None:
    """check_false_certifications for inputs whose exact rejection probabilities differ (rates[i], each <= alpha):
    the count must lie in their Poisson-binomial law's central range, and a false-certification rate of
    1.2 alpha must fail the check with probability at least POWER."""
    rates = np.asarray(rates, dtype=float)
    assert np.all(rates <= alpha), f"an exact rejection probability {rates.max():.4g} exceeds alpha = {alpha:g}"
    cdf = np.cumsum(poisson_binomial(rates))
    high = int(np.searchsorted(cdf, 1 - FALSE_ALARM))  # P(count > high) <= FALSE_ALARM
    low = int(np.searchsorted(cdf, FALSE_ALARM, side="right"))  # P(count < low) <= FALSE_ALARM
    n = rates.size
    assert binom.sf(high, n, 1.2 * alpha) >= POWER, f"too few trials: a rate of 1.2 alpha passes (n = {n})"
    assert count <= high, f"{count} of {n} false certificates; at most {high} fit rates averaging {rates.mean():.4g}"
    assert count >= low, f"{count} of {n} certificates where about {rates.sum():.0f} were due"
