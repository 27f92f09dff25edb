"""What continuing an input is worth: predictions from a Beta distribution of its p.

The distribution is a prediction made before the input's tested stream started (Jeffreys', or a
meta-learner's) updated with the input's own past labels only. From it come the chance that the input's
test certifies within the samples it has left and the samples that takes, by Wald's approximation (the
E-process's remaining gap over KL(p || p0)) at a few quantiles of p.

Stopping an input on these predictions only ever turns its decision into "undecided": it never creates a
certificate, whatever the predictions say, so every certificate stays valid at alpha.
"""

from __future__ import annotations

import numpy as np
from scipy import special as sc

from ..statistics import bernoulli_kl

QUADRATURE = 64  # quantiles of p over which chances and costs are averaged (tails of 1/128 count)


def p_quantiles(a, b, k: int = QUADRATURE) -> np.ndarray:
    """(n, k) midpoint quantiles of Beta(a, b) for each of n inputs."""
    u = (np.arange(k) + 0.5) / k
    return sc.betaincinv(np.asarray(a, float)[:, None], np.asarray(b, float)[:, None], u[None, :])


def remaining_costs(p: np.ndarray, p0, gap_certify, gap_futility) -> np.ndarray:
    """Samples each input still needs to decide if its rate were p (n, k): its E-process's gap to the threshold
    over KL(p || p0) on the side p falls, never below the fewest samples that could close that gap; inf at p0."""
    p0 = np.asarray(p0, float).reshape(-1, 1) * np.ones((1, p.shape[1]))
    up = p > p0
    gap_c = np.maximum(np.asarray(gap_certify, float), 0.0)[:, None]
    gap_f = np.maximum(np.asarray(gap_futility, float), 0.0)[:, None]
    gap = np.where(up, gap_c, gap_f)
    floor = np.where(up, gap_c / -np.log(p0), gap_f / -np.log1p(-p0))
    kl = bernoulli_kl(p, p0)
    with np.errstate(divide="ignore"):
        cost = np.where(kl > 0, gap / np.where(kl > 0, kl, 1.0), np.inf)
    return np.maximum(np.maximum(cost, floor), 1.0)


def certification_value(a, b, p0, gap_certify, gap_futility, horizon) -> tuple[np.ndarray, np.ndarray]:
    """Per input: the chance that it certifies at p0 within `horizon` more samples, and the samples it is
    expected to spend on trying (capped at the horizon), under Beta(a, b) beliefs about p.

    At each quantile p above p0 the log E-value is taken as a random walk with the drift KL(p || p0) and the
    variance of the log-likelihood ratio; its chance to cross the remaining gap within the horizon is the
    first-passage probability of Brownian motion (the inverse Gaussian law), so borderline inputs keep
    their fair chance instead of the all-or-nothing of the mean crossing time.
    """
    p = p_quantiles(a, b)
    cost = remaining_costs(p, p0, gap_certify, gap_futility)
    horizon = np.asarray(horizon, float)[:, None]
    p0 = np.asarray(p0, float).reshape(-1, 1) * np.ones((1, p.shape[1]))
    gap = np.maximum(np.asarray(gap_certify, float), 0.0)[:, None] * np.ones((1, p.shape[1]))
    chance = np.where(p > p0, first_passage(p, p0, gap, horizon), 0.0).mean(axis=1)
    spend = np.mean(np.minimum(cost, horizon), axis=1)
    return chance, spend


def first_passage(p, p0, gap, horizon) -> np.ndarray:
    """P(a random walk with the log-likelihood ratio's increments of Bernoulli(p) against p0 rises by `gap`
    within `horizon` steps), by Brownian motion with that drift and variance; for p > p0."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    step = np.log(q / p0) - np.log1p(-q) + np.log1p(-p0)  # success increment minus failure increment
    drift = bernoulli_kl(q, p0)
    sd = np.sqrt(q * (1 - q)) * np.abs(step) * np.sqrt(horizon)
    sd = np.maximum(sd, 1e-300)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        first = sc.log_ndtr((drift * horizon - gap) / sd)
        second = 2 * drift * gap / np.maximum(q * (1 - q) * step**2, 1e-300) + sc.log_ndtr(
            (-drift * horizon - gap) / sd
        )
    out = np.exp(np.logaddexp(first, second))
    return np.where(gap <= 0, 1.0, np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0))


def worst_first(chance: np.ndarray, spend: np.ndarray, allowance: float) -> np.ndarray:
    """Which inputs to give up so that their chances of a certificate sum to at most `allowance`: the lowest
    chance per expected evaluation first, as long as the running sum of chances fits (a boolean mask)."""
    order = np.argsort(chance / np.maximum(spend, 1.0), kind="stable")
    chosen = np.zeros(chance.size, dtype=bool)
    chosen[order[np.cumsum(chance[order]) <= allowance]] = True
    return chosen


def price_for_loss(chance: np.ndarray, spend: np.ndarray, allowance: float) -> float:
    """The worth (evaluations per certificate) under which the inputs given up, those whose chance per
    expected evaluation falls below 1/worth, are the worst-first ones whose chances sum to at most
    `allowance`: the price a run with a target loss sets from its inputs' predictions before it starts."""
    ratio = chance / np.maximum(spend, 1.0)
    order = np.argsort(ratio, kind="stable")
    admitted = int(np.count_nonzero(np.cumsum(chance[order]) <= allowance))
    if admitted == chance.size:  # every input fits: none is worth its cost
        return 1.0 / max(float(ratio[order[-1]]) * (1 + 1e-9), 1e-300)
    return 1.0 / max(float(ratio[order[admitted]]), 1e-300)
