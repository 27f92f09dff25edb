"""Hedging an informative prior: Bonferroni unions of tests and of confidence sequences at split levels.

Components at levels alpha_i give level sum(alpha_i): a learned prior at w * alpha beside Jeffreys' at
(1 - w) * alpha keeps level alpha whatever the learned prior says.
"""

from __future__ import annotations

import numpy as np

from .mixture_test import BetaMixtureTest
from .mixture_test import OutcomeBatch


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
