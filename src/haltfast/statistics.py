"""The statistics core: anytime-valid tests and confidence sequences for a Bernoulli rate.

Pure numpy/scipy (no torch). Everything is vectorised over many streams and computed in log space,
so it stays finite for streams of up to 1e7 draws, for p0 up to 1 - 1e-6 and for all-successes streams.

The stream is X_t = 1[f(x + e_t) = c_hat], i.i.d. Bernoulli(p). A certificate at radius r is the
claim p > p0 = Phi(r / sigma). The tools:

* ``log_beta_mixture_evalue``: the E-process of a Beta(a, b) prior restricted to [p0, 1] (valid for
  the composite null p <= p0), and the point-null (untruncated) variant.
* ``BetaMixtureTest``: a stateful sequential test over many streams, fed in batches; it reports the
  exact sample at which the E-process first reached 1/alpha.
* ``ConfidenceSequence``, ``beta_mixture_lower_bound`` / ``beta_mixture_upper_bound``: anytime-valid
  bounds on p obtained by inverting the beta-mixture test.
* ``UnionTest`` / ``hedged_mixture_test`` / ``UnionConfidenceSequence``: Bonferroni unions that hedge
  an informative prior with Jeffreys'.
* One-sided Clopper-Pearson bounds (the fixed-n baseline) and Wald's lower bound on E[tau].

The mathematics, the numerical choices and their validation are in docs/statistics.md; the published
baselines' statistics live with their methods (haltfast.methods), the exact validation tools in
haltfast.validation.
"""

from __future__ import annotations

import numpy as np
from scipy import special as sc

from .batches import broadcast_params
from .batches import check_open_unit
from .batches import check_positive
from .batches import flat_batch
from .batches import outcome_batch
from .batches import ragged_positions
from .special import log_betaincc

_ALTERNATIVES = ("greater", "less")

__all__ = [
    "BetaMixtureTest",
    "ConfidenceSequence",
    "OutcomeBatch",
    "RunningBounds",
    "UnionConfidenceSequence",
    "UnionTest",
    "bernoulli_kl",
    "beta_mixture_lower_bound",
    "beta_mixture_upper_bound",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "hedged_mixture_test",
    "log_beta_mixture_evalue",
    "log_betaincc",
    "wald_expected_samples",
]

# ----------------------------------------------------------------------------------------------
# Closed-form quantities
# ----------------------------------------------------------------------------------------------


def bernoulli_kl(p, q):
    """KL(Bernoulli(p) || Bernoulli(q)) in nats; 0 <= p <= 1, 0 < q < 1 (inf at q in {0,1} unless p == q)."""
    p = np.asarray(p, float)
    q = np.asarray(q, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sc.xlogy(p, p) - sc.xlogy(p, q) + sc.xlog1py(1.0 - p, -p) - sc.xlog1py(1.0 - p, -q)
    out = np.maximum(out, 0.0)
    return out[()] if np.ndim(out) == 0 else out


def clopper_pearson_lower(k, n, alpha):
    """One-sided Clopper-Pearson lower bound: P(p >= bound) >= 1 - alpha for a fixed n.

    The alpha-quantile of Beta(k, n - k + 1); 0 at k = 0.
    """
    k, n, alpha = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float), np.asarray(alpha, float))
    with np.errstate(invalid="ignore"):
        out = sc.betaincinv(np.maximum(k, 1.0), n - k + 1.0, alpha)
    out = np.where(k <= 0, 0.0, out)
    return out[()] if out.ndim == 0 else out


def clopper_pearson_upper(k, n, alpha):
    """One-sided Clopper-Pearson upper bound: P(p <= bound) >= 1 - alpha.

    The (1 - alpha)-quantile of Beta(k + 1, n - k); 1 at k = n.
    """
    k, n, alpha = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float), np.asarray(alpha, float))
    with np.errstate(invalid="ignore"):
        # upper quantile via the mirrored lower bound: 1 - lower(n - k, n, alpha); exact identity,
        # more accurate than betaincinv(.., 1 - alpha) when alpha is tiny.
        out = 1.0 - sc.betaincinv(np.maximum(n - k, 1.0), k + 1.0, alpha)
    out = np.where(k >= n, 1.0, out)
    return out[()] if out.ndim == 0 else out


def log_beta_mixture_evalue(successes, trials, p0, a, b, truncated=True):
    """log E_t(p0) of the Beta(a, b) mixture (docs/statistics.md), vectorised with broadcasting.

    truncated=True: prior restricted to [p0, 1]; E_t is a nonnegative supermartingale with E_0 = 1
    under every p <= p0, so P(sup_t E_t >= 1/alpha) <= alpha (Ville) for the composite null p <= p0.
    truncated=False: the untruncated (point-null p = p0) mixture, valid only for p = p0.
    Finite for 0 < p0 < 1, a, b > 0, 0 <= successes <= trials (tested to trials = 1e7, p0 = 1 - 1e-6).
    """
    s = np.asarray(successes, float)
    t = np.asarray(trials, float)
    p0 = np.asarray(p0, float)
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if truncated:
        lnorm = sc.betaln(a, b) + log_betaincc(a, b, p0)
    else:
        lnorm = sc.betaln(a, b)
    out = np.asarray(_log_mixture_core(s, t, p0, a, b, np.log(p0), np.log1p(-p0), lnorm, truncated), float)
    return out[()] if out.ndim == 0 else out


def _log_mixture_core(s, t, p0, a, b, lp0, l1p0, lnorm, truncated=True):
    """log E from precomputed log p0, log(1 - p0) and prior normaliser (shared by all callers, so that
    the function and the stateful test agree bit for bit)."""
    f = t - s
    out = _log_mixture_untruncated(s, f, a, b, lp0, l1p0, lnorm)
    if truncated:
        out = out + log_betaincc(a + s, b + f, p0)
    return out


def _log_mixture_untruncated(s, f, a, b, lp0, l1p0, lnorm):
    """log E without the posterior's truncation term log Q(a+S, b+F; p0) <= 0: an upper bound on the truncated
    log E, computed with the same operations so that the bound holds bit for bit."""
    return sc.betaln(a + s, b + f) - lnorm - s * lp0 - f * l1p0


def wald_expected_samples(p, p0, alpha, beta=0.0):
    """Wald's lower bound on E_p[tau] for any level-alpha sequential test of p <= p0 with miss rate beta.

    p > p0: ((1-beta) log((1-beta)/alpha) + beta log(beta/(1-alpha))) / KL(p || p0);
    p < p0 (futility side): the same with alpha and beta swapped (inf when beta == 0);
    p == p0: inf.  KL(1 || p0) = -log p0 handles all-successes streams.
    """
    p, p0, alpha, beta = np.broadcast_arrays(*(np.asarray(v, float) for v in (p, p0, alpha, beta)))

    def num(al, be):
        with np.errstate(divide="ignore", invalid="ignore"):
            return sc.xlogy(1.0 - be, 1.0 - be) - sc.xlogy(1.0 - be, al) + sc.xlogy(be, be) - sc.xlogy(be, 1.0 - al)

    kl = bernoulli_kl(p, p0)
    n = np.where(p >= p0, num(alpha, beta), num(beta, alpha))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(kl > 0, n / np.where(kl > 0, kl, 1.0), np.inf)
    out = np.where(np.isnan(out), np.inf, out)
    return out[()] if out.ndim == 0 else out


# ----------------------------------------------------------------------------------------------
# Beta-mixture sequential test
# ----------------------------------------------------------------------------------------------


class BetaMixtureTest:
    """Sequential test of H0: p <= p0 (alternative='greater') or H0: p >= p0 (alternative='less').

    One state per stream; the E-process is ``log_beta_mixture_evalue`` with the Beta(a, b) prior
    restricted to [p0, 1] ('greater') or to [0, p0] ('less', computed as the mirrored stream: failures
    count as successes against 1 - p0 with prior Beta(b, a); a, b always describe the prior on p).
    Guarantee: under H0, P(some update ever reports a crossing) <= alpha, whatever the batch sizes,
    the order of the streams, or the rule used to decide when to feed or abandon a stream.

    Attributes (arrays of shape (n_streams,)): ``successes`` (number of 1s fed, int64), ``trials``
    (int64), ``log_evalue`` (log E at the last sample consumed), ``rejected`` (bool) and
    ``stopping_time`` (trials at the crossing, -1 if none).  A stream that crossed is frozen at the
    crossing sample: later outcomes for it are ignored and ``update`` returns -1 for it.
    ``log_evalue`` is computed when read (its incomplete beta function is the costly part of an update);
    ``log_evalue_at(rows)`` and ``gap_at(rows)`` compute only the rows asked for.
    """

    def __init__(self, p0, alpha, a=0.5, b=0.5, n_streams=None, alternative="greater"):
        if alternative not in _ALTERNATIVES:
            raise ValueError(f"alternative must be one of {_ALTERNATIVES}")
        n, prm = broadcast_params(n_streams, p0=p0, alpha=alpha, a=a, b=b)
        check_open_unit("p0", prm["p0"])
        check_open_unit("alpha", prm["alpha"])
        check_positive("a", prm["a"])
        check_positive("b", prm["b"])
        self.n_streams = n
        self.alternative = alternative
        self.p0, self.alpha, self.a, self.b = prm["p0"], prm["alpha"], prm["a"], prm["b"]
        mirrored = alternative == "less"
        # effective (mirrored for 'less') parameters: H0 is always "effective p <= p0e"
        self._p0e = 1.0 - self.p0 if mirrored else self.p0.copy()
        self._ae = self.b.copy() if mirrored else self.a.copy()
        self._be = self.a.copy() if mirrored else self.b.copy()
        self._mirrored = mirrored
        self._lp0 = np.log(self._p0e)
        self._l1p0 = np.log1p(-self._p0e)
        self._lnorm = sc.betaln(self._ae, self._be) + log_betaincc(self._ae, self._be, self._p0e)
        self._thr = -np.log(self.alpha)
        self._seff = np.zeros(n, dtype=np.int64)
        self.successes = np.zeros(n, dtype=np.int64)
        self.trials = np.zeros(n, dtype=np.int64)
        self._log_evalue = np.zeros(n, dtype=float)
        self._stale = np.zeros(n, dtype=bool)  # log E not yet computed at the stream's current count
        self.rejected = np.zeros(n, dtype=bool)
        self.stopping_time = np.full(n, -1, dtype=np.int64)

    @property
    def threshold(self):
        """log(1/alpha) per stream."""
        return self._thr

    @property
    def log_evalue(self) -> np.ndarray:
        """log E at the last sample consumed, per stream."""
        self._refresh(np.nonzero(self._stale)[0])
        return self._log_evalue

    def log_evalue_at(self, rows) -> np.ndarray:
        """log E at the last sample consumed of these streams only (the others stay uncomputed)."""
        rows = np.asarray(rows, dtype=np.int64)
        self._refresh(rows[self._stale[rows]])
        return self._log_evalue[rows]

    def gap_at(self, rows) -> np.ndarray:
        """threshold - log E of these streams: what is left to reject."""
        return self._thr[rows] - self.log_evalue_at(rows)

    def _refresh(self, rows: np.ndarray) -> None:
        if rows.size:
            self._log_evalue[rows] = self._log_e(rows, self._seff[rows], self.trials[rows])
            self._stale[rows] = False

    def set_prior(self, streams, a, b):
        """Give streams that have not been fed yet the prior Beta(a, b) (restricted as in __init__).

        Validity needs the prior fixed before a stream's first outcome, so streams that were already
        updated are refused (ValueError).
        """
        rows = np.asarray(streams, dtype=np.int64).reshape(-1)
        if np.any(self.trials[rows] > 0):
            raise ValueError("the prior of a stream can only be set before its first outcome")
        a, b = (np.broadcast_to(np.asarray(v, dtype=float), rows.shape) for v in (a, b))
        check_positive("a", a)
        check_positive("b", b)
        self.a[rows], self.b[rows] = a, b
        self._ae[rows], self._be[rows] = (b, a) if self._mirrored else (a, b)
        self._lnorm[rows] = sc.betaln(self._ae[rows], self._be[rows]) + log_betaincc(
            self._ae[rows], self._be[rows], self._p0e[rows]
        )

    def _log_e(self, st, s_eff, t):
        """log E for streams st at effective successes s_eff after t trials (all arrays)."""
        return _log_mixture_core(
            s_eff, t, self._p0e[st], self._ae[st], self._be[st], self._lp0[st], self._l1p0[st], self._lnorm[st]
        )

    def update(self, outcomes, streams=None):
        """Feed outcomes (k, m) (or (m,) for one stream) to streams (k,) (default: all, in order).

        Returns, per row, the 0-based index in the batch of the sample at which the E-process first
        reached 1/alpha (index + 1 outcomes of this batch were consumed), or -1 (no crossing in this
        batch, or the stream had already crossed).  For 1-D outcomes a scalar is returned.
        The result and the final state do not depend on how a stream is split into batches.
        """
        X, rows, scalar = outcome_batch(outcomes, streams, self.n_streams)
        res = self.update_flat(X.reshape(-1), rows, np.full(rows.size, X.shape[1], dtype=np.int64))
        return res[0] if scalar else res

    def update_flat(self, outcomes, streams, lengths):
        """Feed stream streams[i] its next lengths[i] outcomes, given back to back in the 1-D 0/1 array `outcomes`.

        Returns per i the 0-based index within its segment of the sample at which the E-process first
        reached 1/alpha, or -1. One call serves any mix of segment lengths; the state after it does not
        depend on how a stream's outcomes are split into calls.
        """
        return self.update_batch(OutcomeBatch(outcomes, streams, lengths, self.n_streams))

    def update_batch(self, batch: OutcomeBatch):
        """``update_flat`` on a batch checked once and shared by several tests (its running counts too)."""
        batch.check_streams(self.n_streams)
        res = np.full(batch.rows.size, -1, dtype=np.int64)
        live = ~self.rejected[batch.rows] & (batch.lengths > 0)
        if not live.any():
            return res
        sel = np.nonzero(live)[0]
        rows, starts, ends = batch.rows[sel], batch.starts[sel], batch.ends[sel]
        ones = batch.running_count(not self._mirrored)  # running count of effective successes
        before = np.where(starts > 0, ones[starts - 1], 0)
        segment = Segments(rows, starts, ends, before, ones)
        cross = self._first_crossings(segment)
        crossed = cross >= 0
        end = np.where(crossed, cross, ends)
        s_end = self._seff[rows] + ones[end] - before
        t_end = self.trials[rows] + (end - starts) + 1
        self._seff[rows] = s_end
        self.trials[rows] = t_end
        self.successes[rows] = (t_end - s_end) if self._mirrored else s_end
        self._stale[rows] = True  # log E at (s_end, t_end) is computed when it is read
        if crossed.any():
            cst = rows[crossed]
            self.rejected[cst] = True
            self.stopping_time[cst] = t_end[crossed]
            res[sel[crossed]] = (cross - starts)[crossed]
        return res

    def _first_crossings(self, seg: Segments) -> np.ndarray:
        """Global position of each segment's first sample with log E >= log(1/alpha), or -1.

        Exact bounds spare most evaluations of the incomplete beta function. A success multiplies E by at
        most 1/p0 and a failure by at most 1, so no crossing comes before the successes that could close the
        gap at that rate, nor within REFERENCE samples of a reference position beyond that rate; E <= 1
        while S <= p0 t (every p >= p0 then explains the data no better than p0); and log E is its cheap
        untruncated part plus log Q(a+S, b+F; p0) <= 0. Only positions that pass all of these get the
        exact value, a few per segment at a time. A segment whose k successes all came first would still
        end every position below p0 t (S + k < p0 (t + k)) cannot cross, and needs no log E at its start.
        """
        rows = seg.rows
        s0, t0 = self._seff[rows], self.trials[rows]
        thr, lq, p0e = self._thr[rows], -self._lp0[rows], self._p0e[rows]
        k = seg.ones[seg.ends] - seg.before
        reachable = p0e * (t0 + k) - (s0 + k) <= 1e-3  # the margin covers rounding in p0 t
        l0 = np.zeros(rows.size)
        l0[reachable] = self.log_evalue_at(rows[reachable])
        slack = 1e-6 + 1e-12 * (t0 + seg.ends - seg.starts + 1).astype(float)  # rounding in the linear bounds
        need = thr - slack
        want = np.maximum(np.ceil((need - l0) / lq), 0).astype(np.int64)
        first = np.maximum(np.searchsorted(seg.ones, seg.before + want, side="left"), seg.starts)
        out = np.full(rows.size, -1, dtype=np.int64)
        todo = np.nonzero(reachable & (first <= seg.ends))[0]
        ptr = first[todo]
        while todo.size:
            hi = seg.ends[todo] + 1
            length = hi - ptr
            rep, pos, _ = ragged_positions(ptr, length)
            s = np.repeat(s0[todo] - seg.before[todo], length) + seg.ones[pos]  # successes so far at each position
            t = np.repeat(t0[todo] + 1 - seg.starts[todo], length) + pos  # trials so far at each position
            right = np.nonzero(s >= np.repeat(p0e[todo], length) * t)[0]
            rep, pos, s, t = rep[right], pos[right], s[right], t[right]
            k = todo[rep]
            cand = self._bounded(rows[k], s, t, rep, lq[k], need[k])
            rank = _rank_within(rep[cand])
            cand = cand[rank < 8]
            st = rows[k[cand]]
            exact = _log_mixture_core(
                s[cand],
                t[cand],
                self._p0e[st],
                self._ae[st],
                self._be[st],
                self._lp0[st],
                self._l1p0[st],
                self._lnorm[st],
            )
            hit = cand[exact >= thr[k[cand]]]
            hit_rows, first_hit = np.unique(rep[hit], return_index=True)
            out[todo[hit_rows]] = pos[hit[first_hit]]
            # rows whose examined candidates did not cross go on after the last of them
            more = np.bincount(rep[cand], minlength=todo.size) == 8
            resume = hi.copy()
            if more.any():
                last_cand = np.full(todo.size, -1, dtype=np.int64)
                np.maximum.at(last_cand, rep[cand], pos[cand])
                resume = np.where(more, last_cand + 1, hi)
            go_on = (out[todo] < 0) & (resume <= seg.ends[todo])
            todo, ptr = todo[go_on], resume[go_on]
        return out

    def _bounded(self, st, s, t, rep, lq, need) -> np.ndarray:
        """Positions (of these, one row's in a run) whose upper bounds on log E reach `need`: the untruncated part
        at every REFERENCE-th position plus lq per success since, then the untruncated part itself."""
        rank = _rank_within(rep)
        refs = np.nonzero(rank % REFERENCE == 0)[0]
        at_ref = np.zeros(s.size)
        at_ref[refs] = self._untruncated(st[refs], s[refs], t[refs])
        ref_of = np.maximum.accumulate(np.where(rank % REFERENCE == 0, np.arange(s.size), 0))
        near = np.nonzero(at_ref[ref_of] + (s - s[ref_of]) * lq >= need)[0]
        return near[self._untruncated(st[near], s[near], t[near]) >= need[near]]

    def _untruncated(self, st, s, t) -> np.ndarray:
        return _log_mixture_untruncated(
            s, t - s, self._ae[st], self._be[st], self._lp0[st], self._l1p0[st], self._lnorm[st]
        )


REFERENCE = 32  # positions between the untruncated bound's reference points in the crossing search


class OutcomeBatch:
    """One flat batch of 0/1 outcomes (see BetaMixtureTest.update_flat), checked once for every test it feeds:
    the streams, each segment's first and last position, and the running counts of ones and of zeros."""

    def __init__(self, outcomes, streams, lengths, n_streams: int):
        self.x, self.rows, self.lengths = flat_batch(outcomes, streams, lengths, n_streams)
        self.n_streams = n_streams
        self.ends = np.cumsum(self.lengths) - 1
        self.starts = self.ends - self.lengths + 1
        self._running: dict[bool, np.ndarray] = {}

    def check_streams(self, n_streams: int) -> None:
        if n_streams != self.n_streams:
            raise ValueError(f"a batch for {self.n_streams} streams fed to {n_streams} streams")

    def running_count(self, value: bool) -> np.ndarray:
        """Running count of the outcomes equal to `value` (computed once per batch)."""
        if value not in self._running:
            self._running[value] = np.cumsum(self.x == value, dtype=np.int64)
        return self._running[value]


class Segments:
    """Streams fed back to back in one flat batch: row, first and last global position, and running successes."""

    def __init__(self, rows, starts, ends, before, ones):
        self.rows, self.starts, self.ends, self.before, self.ones = rows, starts, ends, before, ones


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted array."""
    if groups.size == 0:
        return groups
    count = np.bincount(groups)  # groups are non-negative row numbers
    return np.arange(groups.size) - np.repeat(np.cumsum(count) - count, count)


# ----------------------------------------------------------------------------------------------
# Confidence sequences from the beta mixture
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# Hedging an informative prior: a union of tests at split levels (Bonferroni)
# ----------------------------------------------------------------------------------------------


class UnionTest:
    """Rejects H0 as soon as any component test rejects; components at levels alpha_i give level sum(alpha_i).

    Used to hedge a learned prior: Beta(meta) at w * alpha and Jeffreys at (1 - w) * alpha keeps
    the stopping time within a log(1/((1 - w) alpha)) / log(1/alpha) factor of Jeffreys whatever
    the learned prior says, and costs only log(1/w) nats when the learned prior is right.
    ``log_evalue`` is on the overall scale: threshold - log_evalue is the smallest remaining gap
    of any component, and ``stopping_time`` is the earliest crossing.
    """

    def __init__(self, tests):
        self.tests = list(tests)
        if not self.tests:
            raise ValueError("UnionTest needs at least one test")
        self.alpha = np.sum([t.alpha for t in self.tests], axis=0)
        self.alternative = self.tests[0].alternative

    @property
    def threshold(self):
        return -np.log(self.alpha)

    @property
    def log_evalue(self):
        gaps = np.min([t.threshold - t.log_evalue for t in self.tests], axis=0)
        return self.threshold - gaps

    def log_evalue_at(self, rows) -> np.ndarray:
        """``log_evalue`` of these streams only."""
        rows = np.asarray(rows, dtype=np.int64)
        gaps = np.min([t.gap_at(rows) for t in self.tests], axis=0)
        return self.threshold[rows] - gaps

    def gap_at(self, rows) -> np.ndarray:
        """threshold - log_evalue of these streams only."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.threshold[rows] - self.log_evalue_at(rows)

    @property
    def rejected(self):
        return np.any([t.rejected for t in self.tests], axis=0)

    @property
    def stopping_time(self):
        times = np.array([np.where(t.rejected, t.stopping_time, np.iinfo(np.int64).max) for t in self.tests])
        first = times.min(axis=0)
        return np.where(first == np.iinfo(np.int64).max, -1, first)

    @property
    def trials(self):
        return np.max([t.trials for t in self.tests], axis=0)

    def update(self, outcomes, streams=None):
        """Feed every component; returns per row the earliest crossing index in this batch, or -1."""
        return self._earliest([np.atleast_1d(t.update(outcomes, streams)) for t in self.tests], np.ndim(outcomes) == 1)

    def update_flat(self, outcomes, streams, lengths):
        """Feed every component a flat batch (see BetaMixtureTest.update_flat); the earliest crossing per segment."""
        return self.update_batch(OutcomeBatch(outcomes, streams, lengths, self.tests[0].n_streams))

    def update_batch(self, batch: OutcomeBatch):
        """``update_flat`` on a batch checked once (OutcomeBatch)."""
        return self._earliest([t.update_batch(batch) for t in self.tests], False)

    @staticmethod
    def _earliest(results, scalar: bool):
        never = np.iinfo(np.int64).max
        res = np.array([np.where(r >= 0, r, never) for r in results]).min(axis=0)
        res = np.where(res == never, -1, res)
        return res[0] if scalar else res


def hedged_mixture_test(p0, alpha, a, b, n_streams, alternative="greater", hedge=None):
    """BetaMixtureTest with prior Beta(a, b), or with hedge = w in (0, 1): the union of that test at
    w * alpha and a Jeffreys test at (1 - w) * alpha. Level alpha either way."""
    if hedge is None:
        return BetaMixtureTest(p0, alpha, a, b, n_streams=n_streams, alternative=alternative)
    return UnionTest(
        [
            BetaMixtureTest(p0, alpha * hedge, a, b, n_streams=n_streams, alternative=alternative),
            BetaMixtureTest(p0, alpha * (1.0 - hedge), n_streams=n_streams, alternative=alternative),
        ]
    )


class UnionConfidenceSequence:
    """The intersection of confidence sequences at levels alpha_i: coverage >= 1 - sum(alpha_i) at all times."""

    def __init__(self, sequences):
        self.sequences = list(sequences)

    @property
    def lower(self):
        return np.max([c.lower for c in self.sequences], axis=0)

    @property
    def upper(self):
        return np.min([c.upper for c in self.sequences], axis=0)

    def update(self, outcomes, streams=None):
        for c in self.sequences:
            c.update(outcomes, streams)

    def update_flat(self, outcomes, streams, lengths):
        self.update_batch(OutcomeBatch(outcomes, streams, lengths, self.sequences[0].n_streams))

    def update_batch(self, batch: OutcomeBatch):
        """Feed every sequence a batch checked once (OutcomeBatch)."""
        for c in self.sequences:
            c.update_batch(batch)
