"""The beta-mixture sequential test over many streams fed in batches, and the batches it is fed.

Under H0, P(some update ever reports a crossing) <= alpha, whatever the batch sizes, the order of the
streams, or the rule used to decide when to feed or abandon a stream (see BetaMixtureTest).
"""

from __future__ import annotations

import numpy as np
from scipy import special as sc

from ..batches import broadcast_params
from ..batches import check_open_unit
from ..batches import check_positive
from ..batches import flat_batch
from ..batches import outcome_batch
from ..batches import ragged_positions
from .closed_form import _log_mixture_core
from .closed_form import _log_mixture_untruncated
from .special import log_betaincc

_ALTERNATIVES = ("greater", "less")


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

    def log_evalue_of(self, rows, successes, trials) -> np.ndarray:
        """log E of these streams had they seen `successes` ones (on p's scale) in `trials` outcomes: the value at
        an earlier sample, e.g. the certification test's when the futility test stopped."""
        rows = np.asarray(rows, dtype=np.int64)
        s, t = np.asarray(successes, dtype=np.int64), np.asarray(trials, dtype=np.int64)
        return self._log_e(rows, (t - s) if self._mirrored else s, t)

    def could_reject(self, rows, remaining) -> np.ndarray:
        """Whether each of these streams has rejected, or could still reject within `remaining` more outcomes.

        Exact, not an estimate: an outcome on the alternative's side (a one for 'greater') multiplies E by at
        least 1 (the truncated posterior's predictive chance of it is at least p0) and log E grows with the ones
        at a fixed count, so no continuation of `remaining` outcomes ends above the one where all of them fall
        on that side. False means the test can no longer reject before `remaining` runs out, whatever comes.
        Bounds spare most incomplete beta functions: log E <= its untruncated part U, and log Q >=
        log(1 - mu / (1 - p0)) (Markov) where mu is the posterior mean of 1 - p.
        """
        rows = np.asarray(rows, dtype=np.int64)
        m = np.maximum(np.asarray(remaining, dtype=np.int64), 0)
        s, t = self._seff[rows] + m, self.trials[rows] + m
        thr = self._thr[rows] - 1e-9  # a rounding margin: out of reach only when clearly so
        upper = self._untruncated(rows, s, t)
        mu = (self._be[rows] + (t - s)) / (self._ae[rows] + self._be[rows] + t)
        room = 1.0 - mu / (1.0 - self._p0e[rows])
        with np.errstate(divide="ignore", invalid="ignore"):
            surely = (room > 0) & (upper + np.log(np.where(room > 0, room, 1.0)) >= thr)
        out = self.rejected[rows] | surely
        exact = np.nonzero(~out & (upper >= thr))[0]
        if exact.size:
            out[exact] = self._log_e(rows[exact], s[exact], t[exact]) >= thr[exact]
        return out

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
