"""Hedging an informative prior: Bonferroni unions of tests and of confidence sequences at split levels.

Components at levels alpha_i give level sum(alpha_i): a learned prior at w * alpha beside Jeffreys' at
(1 - w) * alpha keeps level alpha whatever the learned prior says.
"""

from __future__ import annotations

import numpy as np

from ..batches import outcome_batch
from .mixture_test import BetaMixtureTest
from .mixture_test import OutcomeBatch


class UnionTest:
    """Rejects H0 as soon as any component test rejects; components at levels alpha_i give level sum(alpha_i).

    Used to hedge a learned prior: Beta(meta) at w * alpha and Jeffreys at (1 - w) * alpha keeps
    the stopping time within a log(1/((1 - w) alpha)) / log(1/alpha) factor of Jeffreys whatever
    the learned prior says, and costs only log(1/w) nats when the learned prior is right.

    ``log_evalue`` is the union's evidence on the overall scale: max_i (log E_i + log(alpha_i / alpha)), the
    largest share-scaled component E-value, which reaches log(1/alpha) exactly when some component reaches its
    own threshold log(1/alpha_i). Like a single test, the union freezes at its crossing: ``stopping_time`` is
    the earliest sample at which any component crossed, and ``trials``, ``successes`` and ``log_evalue`` stay
    at that sample (the other components are fed no more outcomes of that stream).
    """

    def __init__(self, tests):
        self.tests = list(tests)
        if not self.tests:
            raise ValueError("UnionTest needs at least one test")
        self.alpha = np.sum([t.alpha for t in self.tests], axis=0)
        self.alternative = self.tests[0].alternative
        self.n_streams = self.tests[0].n_streams
        n = self.n_streams
        self.rejected = np.zeros(n, dtype=bool)
        self.stopping_time = np.full(n, -1, dtype=np.int64)
        self._stop_successes = np.zeros(n, dtype=np.int64)
        self._stop_log_evalue = np.zeros(n)

    @property
    def threshold(self):
        return -np.log(self.alpha)

    @property
    def log_evalue(self):
        return self.log_evalue_at(np.arange(self.n_streams))

    def log_evalue_at(self, rows) -> np.ndarray:
        """``log_evalue`` of these streams only (frozen at the crossing for the streams that rejected)."""
        rows = np.asarray(rows, dtype=np.int64)
        gaps = np.min([t.gap_at(rows) for t in self.tests], axis=0)
        return np.where(self.rejected[rows], self._stop_log_evalue[rows], self.threshold[rows] - gaps)

    def log_evalue_of(self, rows, successes, trials) -> np.ndarray:
        """The union's log E of these streams had they seen `successes` ones in `trials` outcomes."""
        rows = np.asarray(rows, dtype=np.int64)
        gaps = np.min([t.threshold[rows] - t.log_evalue_of(rows, successes, trials) for t in self.tests], axis=0)
        return self.threshold[rows] - gaps

    def gap_at(self, rows) -> np.ndarray:
        """threshold - log_evalue of these streams only."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.threshold[rows] - self.log_evalue_at(rows)

    def could_reject(self, rows, remaining) -> np.ndarray:
        """Whether each stream has rejected or some component could still reject within `remaining` outcomes."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.rejected[rows] | np.any([t.could_reject(rows, remaining) for t in self.tests], axis=0)

    @property
    def trials(self):
        return np.where(self.rejected, self.stopping_time, np.max([t.trials for t in self.tests], axis=0))

    @property
    def successes(self):
        return np.where(self.rejected, self._stop_successes, np.max([t.successes for t in self.tests], axis=0))

    def update(self, outcomes, streams=None):
        """Feed every component; returns per row the earliest crossing index in this batch, or -1."""
        X, rows, scalar = outcome_batch(outcomes, streams, self.n_streams)
        res = self.update_flat(X.reshape(-1), rows, np.full(rows.size, X.shape[1], dtype=np.int64))
        return res[0] if scalar else res

    def update_flat(self, outcomes, streams, lengths):
        """Feed every component a flat batch (see BetaMixtureTest.update_flat); the earliest crossing per segment."""
        return self.update_batch(OutcomeBatch(outcomes, streams, lengths, self.n_streams))

    def update_batch(self, batch: OutcomeBatch):
        """``update_flat`` on a batch checked once (OutcomeBatch); streams the union rejected are fed no more."""
        batch.check_streams(self.n_streams)
        res = np.full(batch.rows.size, -1, dtype=np.int64)
        live = ~self.rejected[batch.rows] & (batch.lengths > 0)
        if not live.any():
            return res
        sel = np.nonzero(live)[0]
        if sel.size < batch.rows.size:
            keep = np.repeat(live, batch.lengths)
            batch = OutcomeBatch(batch.x[keep], batch.rows[sel], batch.lengths[sel], self.n_streams)
        rows = batch.rows
        s0, t0 = self.tests[0].successes[rows].copy(), self.tests[0].trials[rows].copy()  # all agree before a crossing
        first = self._earliest([t.update_batch(batch) for t in self.tests], False)
        crossed = np.nonzero(first >= 0)[0]
        if crossed.size:
            at = batch.starts[crossed] + first[crossed]  # global position of the crossing sample
            ones = batch.running_count(True)
            start_ones = np.where(batch.starts[crossed] > 0, ones[np.maximum(batch.starts[crossed] - 1, 0)], 0)
            r = rows[crossed]
            successes = s0[crossed] + ones[at] - start_ones
            trials = t0[crossed] + first[crossed] + 1
            self.rejected[r] = True
            self.stopping_time[r] = trials
            self._stop_successes[r] = successes
            self._stop_log_evalue[r] = self.log_evalue_of(r, successes, trials)
        res[sel] = first
        return res

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
