"""Anytime-valid bounds on p from the beta mixture: the bound functions and the running confidence sequences.

With probability >= 1 - alpha the bounds hold at every time at once, so they may be read at any subset of
times, and their running max (lower) and min (upper) stay valid.
"""

from __future__ import annotations

import numpy as np
from scipy import special as sc

from ..batches import broadcast_params
from ..batches import check_open_unit
from ..batches import check_positive
from ..batches import outcome_batch
from .closed_form import log_beta_mixture_evalue
from .mixture_test import OutcomeBatch

_LOGIT_LO = -40.0  # p0 = 4e-18: below this the lower bound is reported as 0
_LOGIT_HI = 36.7  # 1 - p0 = 1.1e-16, the largest double below 1 (p0 -> 1 - ulp)


def beta_mixture_lower_bound(successes, trials, alpha, a=0.5, b=0.5, truncated=True, xtol=1e-10, near=None):
    """Anytime-valid lower confidence bound L_t = inf{p0 : log E_t(p0) < log(1/alpha)}.

    E_t(p0) is the truncated Beta(a, b) mixture (truncated=False: the untruncated, point-null mixture,
    whose bound is the lower end of the two-sided confidence sequence {p : E_t(p) < 1/alpha}). With
    probability >= 1 - alpha the true p is >= L_t at every t simultaneously (so the running max of L_t is
    also valid). log E_t(p0) decreases in p0, so L_t is the root of log E_t - log(1/alpha) in logit(p0) on
    (4e-18, S/t], found by the Illinois variant of regula falsi to `xtol` in logit space, from a bracket
    around `near` (a guess such as the last bound) where that bracket holds the root; the returned value
    is the rejected end of the final bracket (conservative). 0 when no p0 > 4e-18 is rejected.
    """
    s, t, alpha, a, b = np.broadcast_arrays(*(np.asarray(v, float) for v in (successes, trials, alpha, a, b)))
    shape = s.shape
    s, t, alpha, a, b = (v.ravel() for v in (s, t, alpha, a, b))
    check_open_unit("alpha", alpha)
    out = np.zeros(s.size)
    idx = np.nonzero((s > 0) & (t > 0))[0]
    if idx.size:
        s_, t_, a_, b_, thr = s[idx], t[idx], a[idx], b[idx], -np.log(alpha[idx])

        def excess(z, sel):  # log E - log(1/alpha) at p0 = expit(z): > 0 where p0 is rejected
            return log_beta_mixture_evalue(s_[sel], t_[sel], sc.expit(z), a_[sel], b_[sel], truncated) - thr[sel]

        with np.errstate(divide="ignore"):
            top = np.minimum(sc.logit(s_ / t_), _LOGIT_HI)  # E <= 1 for p0 >= S/t
        guess = None if near is None else np.broadcast_to(np.asarray(near, float).ravel(), s.shape)[idx]
        lo, hi, f_lo, f_hi = _bracket(excess, top, guess)
        found = np.nonzero((f_lo >= 0) & (f_hi < 0))[0]
        out[idx[found]] = sc.expit(_illinois(excess, found, lo[found], hi[found], f_lo[found], f_hi[found], xtol))
        everything = (f_lo >= 0) & (f_hi >= 0)
        out[idx[everything]] = sc.expit(hi[everything])
    out = out.reshape(shape)
    return out[()] if out.ndim == 0 else out


def _bracket(excess, top: np.ndarray, guess: np.ndarray | None, width: float = 0.25):
    """[lo, hi] in logit space with excess(lo) >= 0 > excess(hi) where the root exists: within `width` of the
    guess where that holds, else the whole range (4e-18, S/t]."""
    every = np.arange(top.size)
    lo, hi = np.full(top.size, _LOGIT_LO), top.copy()
    if guess is not None:
        with np.errstate(divide="ignore"):
            z = sc.logit(np.clip(guess, 0.0, 1.0))
        usable = np.nonzero((z - width > _LOGIT_LO) & (z + width < top))[0]
        lo[usable], hi[usable] = z[usable] - width, z[usable] + width
    f_lo, f_hi = excess(lo, every), excess(hi, every)
    retry = np.nonzero((lo > _LOGIT_LO) & ((f_lo < 0) | (f_hi >= 0)))[0]  # the guess missed: the whole range
    if retry.size:
        lo[retry], hi[retry] = _LOGIT_LO, top[retry]
        f_lo[retry], f_hi[retry] = excess(lo[retry], retry), excess(hi[retry], retry)
    return lo, hi, f_lo, f_hi


def _illinois(f, sel, lo, hi, f_lo, f_hi, xtol, maxiter=200):
    """The root of decreasing f(z, sel) on each bracket [lo, hi] (f(lo) >= 0 > f(hi)); returns the bracket's
    end where f >= 0 once the bracket is narrower than xtol (Illinois: regula falsi that halves a stale end)."""
    lo, hi, f_lo, f_hi = lo.copy(), hi.copy(), f_lo.copy(), f_hi.copy()
    side = np.zeros(lo.size, dtype=np.int8)  # which end moved last: +1 lo, -1 hi
    act = np.nonzero(hi - lo > xtol)[0]
    for _ in range(maxiter):
        if not act.size:
            break
        width = hi[act] - lo[act]
        z = lo[act] + width * np.clip(f_lo[act] / (f_lo[act] - f_hi[act]), 0.05, 0.95)
        fz = f(z, sel[act])
        up = fz >= 0  # z is rejected: the root lies above
        moved_lo, moved_hi = act[up], act[~up]
        f_hi[moved_lo] = np.where(side[moved_lo] == 1, f_hi[moved_lo] / 2, f_hi[moved_lo])
        f_lo[moved_hi] = np.where(side[moved_hi] == -1, f_lo[moved_hi] / 2, f_lo[moved_hi])
        lo[moved_lo], f_lo[moved_lo], side[moved_lo] = z[up], fz[up], 1
        hi[moved_hi], f_hi[moved_hi], side[moved_hi] = z[~up], fz[~up], -1
        act = act[hi[act] - lo[act] > xtol]
    return lo


def beta_mixture_upper_bound(successes, trials, alpha, a=0.5, b=0.5, truncated=True, xtol=1e-10, near=None):
    """Anytime-valid upper confidence bound U_t = sup{p0 : mirrored log E_t(p0) < log(1/alpha)}.

    The mirror image of ``beta_mixture_lower_bound`` (failures as successes, prior Beta(b, a) on 1 - p):
    with probability >= 1 - alpha, p <= U_t at every t.  1 when no p0 < 1 - 4e-18 is rejected.
    """
    s = np.asarray(successes, float)
    t = np.asarray(trials, float)
    mirror = None if near is None else 1.0 - np.asarray(near, float)
    out = 1.0 - beta_mixture_lower_bound(t - s, t, alpha, b, a, truncated=truncated, xtol=xtol, near=mirror)
    return out


class RunningBounds:
    """Running bounds on p for many streams: `lower` and `upper`, at level alpha on one side, or alpha/2 on each."""

    SIDES = ("two-sided", "lower", "upper")

    def __init__(self, alpha, n_streams=None, side="two-sided", **params):
        if side not in self.SIDES:
            raise ValueError("side must be 'two-sided', 'lower' or 'upper'")
        n, prm = broadcast_params(n_streams, alpha=alpha, **params)
        check_open_unit("alpha", prm["alpha"])
        self.n_streams, self.side, self.alpha = n, side, prm["alpha"]
        self.alpha_side = self.alpha / 2.0 if side == "two-sided" else self.alpha
        self.successes = np.zeros(n, dtype=np.int64)
        self.trials = np.zeros(n, dtype=np.int64)
        self.lower = np.zeros(n, dtype=float)
        self.upper = np.ones(n, dtype=float)
        self.params = prm  # every parameter broadcast to one value per stream


class ConfidenceSequence(RunningBounds):
    """Anytime-valid bounds on p for many streams, from the truncated beta-mixture E-process.

    ``lower`` is the running max of ``beta_mixture_lower_bound`` and ``upper`` the running min of
    ``beta_mixture_upper_bound``, recomputed at the end of each ``update`` batch.  Evaluating the
    bounds on a subset of times keeps them valid: with probability >= 1 - alpha, lower <= p <= upper
    at every time (two-sided: alpha/2 per side; side='lower' or 'upper': alpha on that side and the
    other bound stays at 0 or 1).
    """

    def __init__(self, alpha, a=0.5, b=0.5, n_streams=None, side="two-sided"):
        super().__init__(alpha, n_streams, side, a=a, b=b)
        self.last_lower = np.full(self.n_streams, np.nan)  # the last bounds, where the next search starts
        self.last_upper = np.full(self.n_streams, np.nan)
        prm = self.params
        check_positive("a", prm["a"])
        check_positive("b", prm["b"])
        self.a, self.b = prm["a"], prm["b"]

    def update(self, outcomes, streams=None):
        """Add outcomes (k, m) or (m,) to streams (k,) and refresh their bounds; returns None."""
        X, rows, _ = outcome_batch(outcomes, streams, self.n_streams)
        self.update_flat(X.reshape(-1), rows, np.full(rows.size, X.shape[1], dtype=np.int64))

    def update_flat(self, outcomes, streams, lengths):
        """Add each stream's segment of the flat outcomes (see BetaMixtureTest.update_flat) and refresh its bounds."""
        self.update_batch(OutcomeBatch(outcomes, streams, lengths, self.n_streams))

    def update_batch(self, batch: OutcomeBatch):
        """``update_flat`` on a batch checked once (OutcomeBatch)."""
        batch.check_streams(self.n_streams)
        fed = batch.lengths > 0
        if not fed.any():
            return None
        rows, lengths, ones = batch.rows[fed], batch.lengths[fed], batch.running_count(True)
        starts = batch.starts[fed]
        self.successes[rows] += ones[batch.ends[fed]] - np.where(starts > 0, ones[starts - 1], 0)
        self.trials[rows] += lengths
        s, t = self.successes[rows], self.trials[rows]
        al, a, b = self.alpha_side[rows], self.a[rows], self.b[rows]
        if self.side in ("two-sided", "lower"):
            self.last_lower[rows] = beta_mixture_lower_bound(s, t, al, a, b, near=self.last_lower[rows])
            self.lower[rows] = np.maximum(self.lower[rows], self.last_lower[rows])
        if self.side in ("two-sided", "upper"):
            self.last_upper[rows] = beta_mixture_upper_bound(s, t, al, a, b, near=self.last_upper[rows])
            self.upper[rows] = np.minimum(self.upper[rows], self.last_upper[rows])
        return None
