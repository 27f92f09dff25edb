"""Voracek (NeurIPS 2024): the union-bound and betting confidence sequences, their statistics and procedures.

Both certify in decision mode (a required radius: certified when the anytime lower bound on p exceeds
Phi(r / sigma), not certified when the upper bound falls below it) and in radius mode (sigma * Phi^-1 of
the running max of the lower bound). The class is selected by the clean prediction (one evaluation,
counted), as haltfast's default does; the paper uses noisy pilot samples instead. Every drawn sample is
counted, also the samples of a chunk drawn past the point where a decision was reached.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import special as sc

from ..batches import least_integer
from ..batches import outcome_batch
from ..batches import ragged_positions
from ..certificate import CERTIFIED
from ..certificate import NOT_CERTIFIED
from ..certificate import UNDECIDED
from ..certificate import Certificate
from ..certificate import StopReason
from ..certificate import p_for_radius
from ..certificate import radius_from_p
from ..certificate import validate_tolerance
from ..engine import OPEN
from ..engine import Run
from ..engine import Target
from ..engine import chunk_grid
from ..engine import decide
from ..engine import decision_chunks
from ..engine import growth_chunks
from ..engine import radius_certificate
from ..engine import radius_mode_stop
from ..engine import run_open_inputs
from ..errors import HaltfastError
from ..statistics import RunningBounds
from ..statistics import beta_mixture_lower_bound
from ..statistics import clopper_pearson_lower
from ..statistics import clopper_pearson_upper
from ..statistics import log_beta_mixture_evalue

CS_KINDS = ("union-bound", "betting")

# ---------------------------------------------------------------------------------------------
# The union-bound confidence sequence (Voracek 2024, Alg. 1)
# ---------------------------------------------------------------------------------------------

_UB_CACHE: dict = {}


def union_bound_checkpoints(max_trials, gamma=1.1, k_init=11):
    """Checkpoint times and alpha shares of the union-bound confidence sequence.

    Checkpoint j = 1, 2, ... is the first integer t > gamma**(k_init + j - 1) after checkpoint j - 1
    (as in Voracek's public code: every integer while gamma**k < t, geometric afterwards) and gets
    alpha_j / alpha = 5 / ((j + 4)(j + 5)), which sums to 1 over j >= 1.
    Returns (times, shares) for all checkpoints <= max_trials (int64 and float arrays).
    """
    key = (float(gamma), int(k_init))
    times, shares = _UB_CACHE.get(key, (np.zeros(0, np.int64), np.zeros(0)))
    if times.size == 0 or times[-1] < max_trials:
        tl, k, last = [], k_init, 0
        while True:
            t = max(last + 1, math.floor(gamma**k) + 1)
            if t > max(2 * int(max_trials), 1024):
                break
            tl.append(t)
            last = t
            k += 1
        times = np.asarray(tl, dtype=np.int64)
        j = np.arange(1, times.size + 1, dtype=float)
        shares = 5.0 / ((j + 4.0) * (j + 5.0))
        _UB_CACHE[key] = (times, shares)
    n = int(np.searchsorted(times, max_trials, side="right"))
    return times[:n], shares[:n]


def _ub_alpha(trials, alpha, gamma, k_init):
    """alpha_j for trials that are checkpoints, NaN elsewhere."""
    t = np.asarray(trials, dtype=np.int64)
    times, shares = union_bound_checkpoints(max(int(t.max()) if t.size else 0, 3), gamma, k_init)
    jc = np.minimum(np.searchsorted(times, t), times.size - 1)
    return np.where(times[jc] == t, np.asarray(alpha, float) * shares[jc], np.nan)


def union_bound_lower(successes, trials, alpha, gamma=1.1, k_init=11):
    """Lower end of the union-bound CS at a checkpoint: Clopper-Pearson lower at level alpha_j.

    Valid simultaneously over all checkpoints with probability >= 1 - alpha (union bound).  NaN when
    ``trials`` is not a checkpoint (see ``union_bound_checkpoints``); between checkpoints use the value
    at the last passed checkpoint (``UnionBoundConfidenceSequence`` does this).
    """
    a = _ub_alpha(trials, alpha, gamma, k_init)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(a), np.nan, clopper_pearson_lower(successes, trials, np.where(np.isnan(a), 0.5, a)))
    return out[()] if np.ndim(out) == 0 else out


def union_bound_upper(successes, trials, alpha, gamma=1.1, k_init=11):
    """Upper end of the union-bound CS at a checkpoint (Clopper-Pearson upper at alpha_j); NaN elsewhere."""
    a = _ub_alpha(trials, alpha, gamma, k_init)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(a), np.nan, clopper_pearson_upper(successes, trials, np.where(np.isnan(a), 0.5, a)))
    return out[()] if np.ndim(out) == 0 else out


class UnionBoundConfidenceSequence(RunningBounds):
    """Voracek's (2024) union-bound confidence sequence for many streams.

    Clopper-Pearson bounds at the checkpoints of ``union_bound_checkpoints`` with alpha_j summing to
    alpha (two-sided: alpha/2 per side).  ``lower``/``upper`` are the running max/min over the
    checkpoints passed so far (they change only when a checkpoint is passed); with probability
    >= 1 - alpha they contain p at all times.
    """

    def __init__(self, alpha, n_streams=None, side="two-sided", gamma=1.1, k_init=11):
        super().__init__(alpha, n_streams, side)
        self.gamma, self.k_init = float(gamma), int(k_init)

    def update(self, outcomes, streams=None):
        """Add outcomes (k, m) or (m,) to streams (k,); bounds move at each checkpoint passed; returns None."""
        X, rows, _ = outcome_batch(outcomes, streams, self.n_streams)
        m = X.shape[1]
        if m == 0:
            return None
        t0 = self.trials[rows]
        s0 = self.successes[rows]
        times, shares = union_bound_checkpoints(int(t0.max()) + m, self.gamma, self.k_init)
        lo_i = np.searchsorted(times, t0, side="right")
        hi_i = np.searchsorted(times, t0 + m, side="right")
        cnt = hi_i - lo_i
        if cnt.sum():
            has = np.nonzero(cnt)[0]
            ri, jj, _ = ragged_positions(lo_i[has], cnt[has])
            r = has[ri]
            tcp = times[jj]
            ones = np.cumsum(X[has], axis=1, dtype=np.int64)  # only rows that pass a checkpoint
            s_cp = s0[r] + ones[ri, tcp - t0[r] - 1]
            al = self.alpha_side[rows[r]] * shares[jj]
            if self.side in ("two-sided", "lower"):
                lb = clopper_pearson_lower(s_cp, tcp, al)
                np.maximum.at(self.lower, rows[r], lb)
            if self.side in ("two-sided", "upper"):
                ub = clopper_pearson_upper(s_cp, tcp, al)
                np.minimum.at(self.upper, rows[r], ub)
        self.successes[rows] += X.sum(axis=1, dtype=np.int64)
        self.trials[rows] += m
        return None


# ---------------------------------------------------------------------------------------------
# The two confidence sequences as certifiers
# ---------------------------------------------------------------------------------------------


class _UnionBound:
    """Voracek's union-bound CS: Clopper-Pearson bounds at geometric checkpoints, level alpha on each side.

    Decision mode decides as Voracek's public code does (`get_thresholds_union_bound`): at sample i it certifies as
    soon as the successes reach the fewest that certify at some checkpoint at or after i (they can only grow, so
    that checkpoint's outcome is fixed), and refutes as soon as the failures reach the fewest that refute at one;
    only checkpoints within max_samples count. An input none of whose remaining checkpoints can decide it, even
    if every remaining sample agreed, is undecided at once.
    """

    def __init__(self, alpha: float, n: int, max_samples: int, p0: float | None):
        self.lower_cs = UnionBoundConfidenceSequence(alpha, n_streams=n, side="lower")
        self.upper_cs = UnionBoundConfidenceSequence(alpha, n_streams=n, side="upper")
        self.times, self.shares = union_bound_checkpoints(max_samples)
        self.alpha, self.p0 = alpha, p0
        self._certify_min: dict[float, np.ndarray] = {}
        self.successes = np.zeros(n, dtype=np.int64)
        self.trials = np.zeros(n, dtype=np.int64)
        self.decision = np.zeros(n, dtype=np.int64)  # decision mode: 1 certified, -1 not certified, 0 open
        self.stopping_time = np.full(n, -1, dtype=np.int64)
        if p0 is not None:
            # per checkpoint: fewest successes whose lower bound exceeds p0, fewest failures whose upper bound
            # falls below it; then the fewest over the checkpoints from each one on (the outcome it fixes)
            t, a = self.times, alpha * self.shares
            self.certify_min = self.certify_min_at(p0)
            futile_max = least_integer(lambda k, w: clopper_pearson_upper(k, t[w], a[w]) >= p0, t) - 1
            self.fail_min = np.where(futile_max >= 0, t - futile_max, t + 1)
            self.certify_need = np.minimum.accumulate(self.certify_min[::-1])[::-1]
            self.fail_need = np.minimum.accumulate(self.fail_min[::-1])[::-1]

    def certify_min_at(self, p: float) -> np.ndarray:
        """Per checkpoint, the fewest successes whose lower bound exceeds p (t + 1: none)."""
        if p not in self._certify_min:
            t, a = self.times, self.alpha * self.shares
            self._certify_min[p] = least_integer(lambda k, w: clopper_pearson_lower(k, t[w], a[w]) > p, t)
        return self._certify_min[p]

    def chunk(
        self, rows: np.ndarray, tested: np.ndarray, max_samples: int, min_chunk: int, growth: float
    ) -> np.ndarray:
        """Decision mode: the fewest samples after which a decision is possible at all (every one a hit reaching
        a certifying count, or every one a miss a refuting count), at least growth * t, on the chunk grid. Radius
        and grid mode: up to the first checkpoint at least max(min_chunk, growth * t) samples ahead (the bounds
        move only there)."""
        if self.p0 is None:
            want = tested + np.maximum(min_chunk, np.ceil(growth * tested)).astype(np.int64)
            k = np.searchsorted(self.times, want, side="left")
            nxt = np.where(k < self.times.size, self.times[np.minimum(k, self.times.size - 1)], max_samples)
            return np.maximum(nxt - tested, 1)
        s = self.successes[rows][:, None]
        t = tested[:, None]
        start = np.concatenate([[0], self.times[:-1]])[None, :] + 1  # the samples whose next checkpoint is j
        end = self.times[None, :]
        first = np.maximum(
            np.maximum(start, t + 1), np.minimum(t + self.certify_need - s, t + self.fail_need - (t - s))
        )
        first = np.where((first <= end) & (end > t), first, np.iinfo(np.int64).max).min(axis=1)
        base = np.where(first < np.iinfo(np.int64).max, first - tested, max_samples - tested)
        return chunk_grid(np.maximum(base, np.ceil(growth * tested)).astype(np.int64), min_chunk)

    def update(self, x: np.ndarray, rows: np.ndarray) -> None:
        if self.p0 is None:
            self.lower_cs.update(x, rows)
            self.upper_cs.update(x, rows)
        else:
            self._decide(x, rows)
        self.successes[rows] += x.sum(axis=1)
        self.trials[rows] += x.shape[1]

    def _decide(self, x: np.ndarray, rows: np.ndarray) -> None:
        """Voracek's rule on these rows' next samples: the first sample at which a checkpoint's outcome is fixed."""
        live = self.decision[rows] == 0
        if not live.any():
            return
        x, rows = x[live], rows[live]
        m = x.shape[1]
        i = self.trials[rows][:, None] + np.arange(1, m + 1)[None, :]
        hits = self.successes[rows][:, None] + np.cumsum(x, axis=1)
        j = np.searchsorted(self.times, i, side="left")
        valid = j < self.times.size
        jc = np.minimum(j, self.times.size - 1)
        refute = valid & (i - hits >= self.fail_need[jc])
        certify = valid & ~refute & (hits >= self.certify_need[jc])  # Voracek's code tests refutation first
        hit = refute | certify
        decided = hit.any(axis=1)
        first = hit.argmax(axis=1)
        r = np.nonzero(decided)[0]
        self.decision[rows[r]] = np.where(certify[r, first[r]], 1, -1)
        self.stopping_time[rows[r]] = i[r, first[r]]

    def could_certify(self, rows: np.ndarray, max_samples: int) -> np.ndarray:
        """Decision mode: whether a checkpoint within max_samples can still certify, were every remaining sample a
        hit (exact: the successes at a checkpoint are at most those)."""
        assert self.p0 is not None
        return self.could_exceed(rows, self.p0, max_samples) | (self.decision[rows] == 1)

    def could_exceed(self, rows: np.ndarray, p: float, max_samples: int) -> np.ndarray:
        """Grid mode: whether the lower bound can still exceed p at a checkpoint within max_samples."""
        need = self.certify_min_at(p)
        s, t = self.successes[rows][:, None], self.trials[rows][:, None]
        ahead = (self.times[None, :] > t) & (self.times[None, :] <= max_samples)
        return np.any(ahead & (s + self.times[None, :] - t >= need[None, :]), axis=1)

    def verdict(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decision mode: (1 certified, -1 not certified, 0 open; the sample at which it was decided)."""
        return self.decision[js], self.stopping_time[js]

    @property
    def lower(self) -> np.ndarray:
        return self.lower_cs.lower

    @property
    def upper(self) -> np.ndarray:
        return self.upper_cs.upper

    def projected_lower(self, phat: np.ndarray, n: int) -> np.ndarray:
        """The lower bound at the last checkpoint <= n if the stream went on at rate phat."""
        j = max(int(np.searchsorted(self.times, n, side="right")) - 1, 0)
        t = int(self.times[j])
        return clopper_pearson_lower(np.round(phat * t), t, self.alpha * self.shares[j])


class _Betting:
    """Voracek's betting CS: the Krichevsky-Trofimov bet q_t = (S + 1/2) / (t + 1) against each p.

    Its wealth is the untruncated (point-null) Beta(1/2, 1/2) mixture E_t(p); p is excluded when
    E_t(p) >= 1/(2 alpha) (the public code's threshold) on the side of the empirical rate. That is valid
    at level alpha for a lower bound: when S >= p t the mixture's part below p is at most 1, so
    E_t(p) >= c forces the truncated mixture (haltfast's E-process, a supermartingale for every p' <= p)
    to >= (c - 1 + w(p)) / w(p) with w(p) = P(Beta(1/2,1/2) > p), which is >= 1/alpha whenever
    w(p) <= (c - 1) / (1/alpha - 1), i.e. p >= p_min ~ 0.5008 at alpha = 0.001. Below p_min the
    threshold is raised (decision mode) or the bound is not used (radius mode).
    """

    def __init__(self, alpha: float, n: int, max_samples: int, p0: float | None):
        self.alpha, self.p0 = alpha, p0
        c = 1.0 / (2.0 * alpha)
        self.log_c = math.log(c)
        self.p_min = float(sc.betainccinv(0.5, 0.5, (c - 1.0) / (1.0 / alpha - 1.0)))
        if p0 is not None:
            self.log_c_cert = math.log(max(c, 1.0 + float(sc.betaincc(0.5, 0.5, p0)) * (1.0 / alpha - 1.0)))
        self.successes = np.zeros(n, dtype=np.int64)
        self.trials = np.zeros(n, dtype=np.int64)
        self.log_evalue = np.zeros(n)
        self.decision = np.zeros(n, dtype=np.int64)  # decision mode: 1 certified, -1 futile, 0 open
        self.stopping_time = np.full(n, -1, dtype=np.int64)
        self._lower = np.zeros(n)
        self._upper = np.ones(n)

    def chunk(
        self, rows: np.ndarray, tested: np.ndarray, max_samples: int, min_chunk: int, growth: float
    ) -> np.ndarray:
        """haltfast's chunk rules: a success raises log E_t(p0) by log(q_t / p0) <= -log p0 (a failure by at most
        -log(1 - p0)), so decision mode draws at least the samples that could reach a threshold."""
        if self.p0 is None:
            return growth_chunks(tested, min_chunk, growth)
        above = (self.successes[rows] + 0.5) / (tested + 1.0) > self.p0
        gap_cert, gap_fut = self.log_c_cert - self.log_evalue[rows], self.log_c - self.log_evalue[rows]
        return decision_chunks(gap_cert, gap_fut, above, self.p0, tested, min_chunk, growth)

    def verdict(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decision mode: (1 certified, -1 not certified, 0 open; the sample at which it was decided)."""
        return self.decision[js], self.stopping_time[js]

    def could_certify(self, rows: np.ndarray, max_samples: int) -> np.ndarray:
        """Decision mode: whether the wealth against p0 can still reach the certifying threshold within max_samples."""
        assert self.p0 is not None
        return (self.decision[rows] == 1) | self._reachable(rows, self.p0, self.log_c_cert, max_samples)

    def could_exceed(self, rows: np.ndarray, p: float, max_samples: int) -> np.ndarray:
        """Grid mode: whether the lower bound can still exceed p within max_samples (a lower bound is used only from
        p_min on, so below p_min it must reach p_min)."""
        return self._reachable(rows, max(p, self.p_min), self.log_c, max_samples)

    def _reachable(self, rows: np.ndarray, p: float, log_c: float, max_samples: int) -> np.ndarray:
        """Whether some continuation within max_samples takes E_t(p) to log_c with S >= p t. Exact: in that region
        a miss turned into a hit never lowers E_t(p), and along the all-hits path log E_t(p) is convex (each hit
        adds log(q_t / p), q_t growing), so the largest value is now or after every remaining sample hit."""
        s, t = self.successes[rows], self.trials[rows]
        m = np.maximum(max_samples - t, 0)
        now = log_beta_mixture_evalue(s, t, p, 0.5, 0.5, truncated=False)
        end = log_beta_mixture_evalue(s + m, t + m, p, 0.5, 0.5, truncated=False)
        return np.maximum(now, end) >= log_c - 1e-6  # a margin for the bound's root search

    def update(self, x: np.ndarray, rows: np.ndarray) -> None:
        s0, t0 = self.successes[rows], self.trials[rows]
        m = x.shape[1]
        if self.p0 is not None:
            s = s0[:, None] + np.cumsum(x, axis=1)
            t = t0[:, None] + np.arange(1, m + 1)[None, :]
            log_e = log_beta_mixture_evalue(s, t, self.p0, 0.5, 0.5, truncated=False)
            up = (log_e >= self.log_c_cert) & (s >= self.p0 * t)
            down = (log_e >= self.log_c) & (s <= self.p0 * t)
            hit = up | down
            first = np.where(hit.any(axis=1), hit.argmax(axis=1), m - 1)
            r = np.arange(rows.size)
            decided = hit[r, first]
            self.decision[rows[decided]] = np.where(up[r, first], 1, -1)[decided]
            self.stopping_time[rows[decided]] = t[r, first][decided]
            self.log_evalue[rows] = log_e[r, first]
        self.successes[rows] = s0 + x.sum(axis=1)
        self.trials[rows] = t0 + m
        if self.p0 is None:
            s, t = self.successes[rows], self.trials[rows]
            self._lower[rows] = np.maximum(
                self._lower[rows], beta_mixture_lower_bound(s, t, 2 * self.alpha, truncated=False)
            )
            self._upper[rows] = np.minimum(
                self._upper[rows], 1.0 - beta_mixture_lower_bound(t - s, t, 2 * self.alpha, truncated=False)
            )

    @property
    def lower(self) -> np.ndarray:
        return np.where(self._lower >= self.p_min, self._lower, 0.0)

    @property
    def upper(self) -> np.ndarray:
        return self._upper

    def projected_lower(self, phat: np.ndarray, n: int) -> np.ndarray:
        return beta_mixture_lower_bound(np.round(phat * n), np.full(phat.size, n), 2 * self.alpha, truncated=False)


def certify_confidence_sequence(
    run: Run,
    target: Target,
    *,
    kind: str,
    tolerance: float = 0.01,
    min_chunk: int = 16,
    growth: float = 1 / 16,
    max_active: int = 1024,
) -> list[Certificate]:
    """Voracek's confidence-sequence certification (kind 'union-bound' or 'betting'); certificates wrong w.p. <= alpha.

    Decision mode (a required radius): "certified" as soon as the anytime lower bound on p exceeds
    Phi(radius / sigma), "not certified" as soon as the upper bound falls below it, "undecided" after
    max_samples. Radius mode: the radius is sigma * Phi^-1 of the running max of the lower bound;
    sampling stops on the rule haltfast's radius mode uses (the rest of the budget at the current
    rate would add less than `tolerance`), or at max_samples, or when p <= 1/2 is established.
    """
    if kind not in CS_KINDS:
        raise HaltfastError(f"unknown confidence sequence {kind!r}; choose one of {', '.join(CS_KINDS)}")
    tolerance = validate_tolerance(tolerance)
    if run.n == 0:
        return []
    c_hat, _, _ = run.select("clean", 0, max_active)
    cs = (_UnionBound if kind == "union-bound" else _Betting)(target.alpha, run.n, target.max_samples, target.p0)
    # grid mode reads the radius-mode bounds (target.p0 is None there)
    sampler = _Sampling(run, cs, c_hat, target, tolerance, min_chunk, growth)
    return run_open_inputs(run, max_active, sampler.step)


class _Sampling:
    """One confidence sequence per input, fed in chunks; inputs finish on decision mode's or radius mode's rule."""

    def __init__(self, run: Run, cs, c_hat, target: Target, tolerance, min_chunk, growth):
        self.run, self.cs, self.c_hat, self.sigma, self.radius = run, cs, c_hat, target.sigma, target.radius
        self.grid = None if target.radii is None else np.array([p_for_radius(r, target.sigma) for r in target.radii])
        self.radii = target.radii
        self.max_samples, self.tolerance, self.min_chunk, self.growth = target.max_samples, tolerance, min_chunk, growth
        self.succ = np.zeros(run.n, dtype=np.int64)
        self.tested = np.zeros(run.n, dtype=np.int64)

    def step(self, active: np.ndarray) -> np.ndarray:
        t = self.tested[active]
        size = self.cs.chunk(active, t, self.max_samples, self.min_chunk, self.growth)
        size = np.minimum(size, self.max_samples - t).astype(np.int64)
        alive, groups = self.run.draw_hits(active, size, self.c_hat)
        for group, x in groups:
            self.succ[group] += x.sum(axis=1)
            self.tested[group] += x.shape[1]
            self.cs.update(x, group)
        js = active[alive]
        if self.grid is not None:
            self._finish_grid(js)
        elif self.radius is None:
            self._finish_radius_mode(js)
        else:
            self._finish_decisions(js)
        return active

    def _finish_grid(self, js: np.ndarray) -> None:
        """Grid mode by the same rule as haltfast's: certified at the largest grid radius whose p the lower bound
        exceeds, stopped once the next one lies above the upper bound (or at the top, or the cap)."""
        assert self.grid is not None and self.radii is not None  # grid mode
        k = self.grid.size
        c = np.searchsorted(self.grid, self.cs.lower[js], side="left")  # grid thresholds below the lower bound
        f = np.searchsorted(self.grid, self.cs.upper[js], side="right") + 1  # the first one above the upper bound
        tested = self.tested[js]
        done = (c >= f - 1) | (c == k) | (tested >= self.max_samples)
        hopeless = np.zeros(js.size, dtype=bool)  # the next radius out of reach even if every remaining sample hits
        for nxt in np.unique(c[~done]):
            sel = np.nonzero(~done & (c == nxt))[0]
            hopeless[sel] = ~self.cs.could_exceed(js[sel], float(self.grid[nxt]), self.max_samples)
        for i in np.nonzero(done | hopeless)[0]:
            j, top = js[i], int(c[i])
            why = StopReason.BUCKET_DECIDED if top >= min(int(f[i]) - 1, k) else StopReason.MAX_SAMPLES
            if hopeless[i]:
                why = StopReason.NEXT_OUT_OF_REACH
            extra = {"tested": int(tested[i]), "stopped_at": int(tested[i]), "certified_radii": top}
            if top == 0:
                outcome = NOT_CERTIFIED if why == StopReason.BUCKET_DECIDED else UNDECIDED
                cert = Certificate(int(self.c_hat[j]), 0.0, outcome, 0, stop_reason=why, extra=extra)
            else:
                cert = Certificate(
                    int(self.c_hat[j]),
                    float(self.radii[top - 1]),
                    CERTIFIED,
                    0,
                    p_lower=float(self.grid[top - 1]),
                    stop_reason=why,
                    extra=extra,
                )
            self.run.finish(j, cert)

    def _finish_decisions(self, js: np.ndarray) -> None:
        decided, at = self.cs.verdict(js)
        tested = self.tested[js]
        outcome = decide(decided == 1, at, decided == -1, at, tested, self.max_samples)
        hopeless = (outcome == OPEN) & ~self.cs.could_certify(js, self.max_samples)
        outcome[hopeless] = UNDECIDED
        for k in np.nonzero(outcome != OPEN)[0]:
            j = js[k]
            extra = {"tested": int(tested[k]), "stopped_at": int(at[k] if decided[k] else tested[k])}
            c = int(self.c_hat[j])
            if outcome[k] == CERTIFIED:
                assert self.radius is not None  # decision mode: a required radius
                cert = Certificate(
                    c,
                    float(self.radius),
                    CERTIFIED,
                    0,
                    p_lower=self.cs.p0,
                    stop_reason=StopReason.LOWER_ABOVE,
                    extra=extra,
                )
            elif outcome[k] == NOT_CERTIFIED:
                cert = Certificate(c, 0.0, NOT_CERTIFIED, 0, stop_reason=StopReason.UPPER_BELOW, extra=extra)
            else:
                why = StopReason.OUT_OF_REACH if hopeless[k] else StopReason.MAX_SAMPLES
                cert = Certificate(c, 0.0, UNDECIDED, 0, stop_reason=why, extra=extra)
            self.run.finish(j, cert)

    def _finish_radius_mode(self, js: np.ndarray) -> None:
        t = self.tested[js]
        lower = self.cs.lower[js]
        phat = (self.succ[js] + 0.5) / (t + 1.0)
        projected = self.cs.projected_lower(phat, self.max_samples)
        gain = radius_from_p(np.maximum(projected, lower), self.sigma) - radius_from_p(lower, self.sigma)
        reason = radius_mode_stop(t, self.max_samples, self.cs.upper[js] < 0.5, gain, self.tolerance)
        for k in np.nonzero(reason != OPEN)[0]:
            j = js[k]
            self.run.finish(
                j,
                radius_certificate(
                    float(lower[k]), int(self.c_hat[j]), self.sigma, str(reason[k]), int(self.tested[j])
                ),
            )


# Voracek's two confidence sequences as methods (see `certify_confidence_sequence`)
certify_union_bound = partial(certify_confidence_sequence, kind="union-bound")
certify_betting = partial(certify_confidence_sequence, kind="betting")
