"""Exact validation tools: rejection boundaries, exact crossing probabilities, Wald's SPRT.

Used by the tests and benchmarks to know, not estimate, how often a test rejects: the boundary of a
test that rejects iff S_t >= c_t, and the exact probability that an i.i.d. Bernoulli(p) stream ever
crosses it within a horizon. Torch-free.
"""

from __future__ import annotations

import numpy as np

from .batches import least_integer
from .statistics import clopper_pearson_lower
from .statistics import log_beta_mixture_evalue

__all__ = [
    "beta_mixture_boundary",
    "boundary_crossing_probability",
    "clopper_pearson_boundary",
    "crossing_probabilities",
    "decision_probabilities",
    "sprt_stopping_time",
]

# ----------------------------------------------------------------------------------------------
# Wald's SPRT (known p) for comparison
# ----------------------------------------------------------------------------------------------


def sprt_stopping_time(outcomes, p1, p0, alpha, beta=0.0):
    """Wald's SPRT of p = p0 against p = p1 (> p0) on recorded outcome streams (1-D, or 2-D rows).

    Stops at the first t with log LR >= log((1-beta)/alpha) (decision 1) or <= log(beta/(1-alpha))
    (decision 0; never when beta = 0).  Returns (decision, samples_used); decision -1 and
    samples_used = stream length if neither boundary is reached.  The optimal test when p is known:
    the benchmark's reference for Wald's bound.
    """
    if np.any(np.asarray(p1) <= np.asarray(p0)):
        raise ValueError("sprt_stopping_time needs p1 > p0 (mirror the stream for the futility side)")
    X = np.asarray(outcomes).astype(bool)
    scalar = X.ndim == 1
    X2 = X[None, :] if scalar else X
    k, m = X2.shape
    p1 = np.broadcast_to(np.asarray(p1, float), (k,))[:, None]
    p0 = np.broadcast_to(np.asarray(p0, float), (k,))[:, None]
    alpha = np.broadcast_to(np.asarray(alpha, float), (k,))[:, None]
    beta = np.broadcast_to(np.asarray(beta, float), (k,))[:, None]
    with np.errstate(divide="ignore"):
        up = np.log1p(-beta) - np.log(alpha)
        down = np.log(beta) - np.log1p(-alpha)
        inc = np.where(X2, np.log(p1) - np.log(p0), np.log1p(-p1) - np.log1p(-p0))
    llr = np.cumsum(inc, axis=1)
    hit_up = llr >= up
    hit_dn = llr <= down
    any_up, any_dn = hit_up.any(axis=1), hit_dn.any(axis=1)
    i_up = np.where(any_up, hit_up.argmax(axis=1), m)
    i_dn = np.where(any_dn, hit_dn.argmax(axis=1), m)
    dec = np.where(i_up < i_dn, 1, np.where(i_dn < i_up, 0, -1))
    used = np.where(dec == -1, m, np.minimum(i_up, i_dn) + 1).astype(np.int64)
    return (dec[0], used[0]) if scalar else (dec, used)


# ----------------------------------------------------------------------------------------------
# Rejection boundaries and exact crossing probabilities (validation tools)
# ----------------------------------------------------------------------------------------------


def beta_mixture_boundary(trials, p0, alpha, a=0.5, b=0.5):
    """Smallest number of successes c_t at which the truncated beta mixture rejects p <= p0 after t
    trials (log E >= log 1/alpha), for each t in ``trials``; t + 1 if no count rejects.

    log E is increasing in the number of successes at fixed t, so the rule "reject iff S_t >= c_t" is
    exactly the E-process test; with ``boundary_crossing_probability`` it gives exact error rates.
    """
    t = np.asarray(trials, dtype=np.int64)
    p0, alpha, a, b = (np.broadcast_to(np.asarray(v, float), t.shape) for v in (p0, alpha, a, b))
    thr = -np.log(alpha)

    def rejects(s, sel):
        return log_beta_mixture_evalue(s, t[sel], p0[sel], a[sel], b[sel]) >= thr[sel]

    return least_integer(rejects, t)


def clopper_pearson_boundary(trials, p0, alpha):
    """Smallest number of successes at which the one-sided Clopper-Pearson lower bound at level alpha
    exceeds p0 after t trials, for each t; t + 1 if none (a fixed-n test, NOT anytime-valid)."""
    t = np.asarray(trials, dtype=np.int64)
    p0, alpha = (np.broadcast_to(np.asarray(v, float), t.shape) for v in (p0, alpha))

    def rejects(s, sel):
        return clopper_pearson_lower(s, t[sel], alpha[sel]) > p0[sel]

    return least_integer(rejects, t)


def boundary_crossing_probability(boundary, p, prune=1e-17):
    """Exact P(S_t >= boundary[t-1] for some t <= len(boundary)) for i.i.d. Bernoulli(p) draws.

    Mass in the far lower tail (cumulative < ``prune`` per step) is dropped to bound the work; the dropped
    mass is returned so that the exact probability lies in [prob, prob + dropped]. Returns (prob, dropped).
    """
    upper, _, dropped = crossing_probabilities(p, boundary, prune=prune)
    return upper, dropped


def crossing_probabilities(p, upper, lower=None, prune=1e-17):
    """Exact probabilities that an i.i.d. Bernoulli(p) path first reaches S_t >= upper[t-1] (t + 1: never), or
    first reaches S_t <= lower[t-1] (-1: never), within len(upper) steps.

    Forward recursion over the distribution of S_t on the paths that have crossed neither boundary yet.
    Without a lower boundary, mass in the far lower tail (cumulative < ``prune`` per step) is dropped to
    bound the work. Returns (P(upper first), P(lower first), dropped mass).
    """
    c = np.asarray(upper, dtype=np.int64)
    f = None if lower is None else np.asarray(lower, dtype=np.int64)
    p = float(p)
    dist = np.array([1.0])  # masses of S = s_lo .. s_lo + len - 1
    s_lo, hit_upper, hit_lower, dropped = 0, 0.0, 0.0, 0.0
    for t in range(1, c.size + 1):
        new = np.zeros(dist.size + 1)
        new[:-1] = dist * (1.0 - p)
        new[1:] += dist * p
        dist = new
        k = int(c[t - 1]) - s_lo  # kill the paths at or above the upper boundary
        if k < dist.size:
            hit_upper += float(dist[max(k, 0) :].sum())
            dist = dist[: max(k, 0)]
        if f is not None and dist.size:
            j = min(int(f[t - 1]) - s_lo + 1, dist.size)  # and those at or below the lower one
            if j > 0:
                hit_lower += float(dist[:j].sum())
                dist, s_lo = dist[j:], s_lo + j
        if not dist.size:
            break
        if f is None and prune > 0 and dist.size > 64 and dist[0] < prune:
            cm = np.cumsum(dist)
            j = int(np.searchsorted(cm, prune, side="right"))
            if j > 0:
                dropped += float(cm[j - 1])
                dist, s_lo = dist[j:], s_lo + j
    return hit_upper, hit_lower, dropped


def decision_probabilities(p, p0, alpha, parts, horizon: int, futility_alpha=None, futility_parts=None):
    """The exact law of a decision-mode E-process certifier on a Bernoulli(p) stream capped at `horizon`.

    `parts` are the prior's components (share of alpha, a, b), as the engine builds its tests: certified when
    any certification component reaches its threshold before any futility component does (ties certify).
    `futility_parts`: the futility test's own components (default: `parts`; the online learner fits each
    test's prior apart). Returns (P(certified), P(not certified), dropped mass): at p <= p0, P(certified) is the
    false-certification probability, which must be at most alpha.
    """
    t = np.arange(1, horizon + 1)
    fut = alpha if futility_alpha is None else futility_alpha
    fut_parts = parts if futility_parts is None else futility_parts
    upper = np.min([beta_mixture_boundary(t, p0, alpha * w, a, b) for w, a, b in parts], axis=0)
    lower = np.max([t - beta_mixture_boundary(t, 1.0 - p0, fut * w, b, a) for w, a, b in fut_parts], axis=0)
    return crossing_probabilities(p, upper, lower)
