"""Horvath et al. (ICLR 2022) adaptive sampling for a predetermined radius: its statistic and its procedure.

Stage i draws n_i fresh samples (never pooled with earlier stages); a stage certifies when its
one-sided Clopper-Pearson lower bound at alpha/s (s stages) reaches p0 = Phi(r / sigma), and stops
as futile before the last stage when its upper bound at beta/(s-1) falls below p0. Bonferroni over the
stages keeps the false-certification probability at most alpha. Decision only: the paper defines no
radius estimation. The class is selected by the clean prediction (one evaluation, counted), as
haltfast's default does; the paper uses noisy pilot samples instead.
"""

from __future__ import annotations

import numpy as np

from ..batches import outcome_batch
from ..certificate import CERTIFIED
from ..certificate import NOT_CERTIFIED
from ..certificate import UNDECIDED
from ..certificate import Certificate
from ..certificate import StopReason
from ..engine import Run
from ..engine import Target
from ..engine import chunk_grid
from ..errors import HaltfastError
from ..statistics import clopper_pearson_lower
from ..statistics import clopper_pearson_upper

HORVATH_STAGES = (1000, 10000, 125000)
STAGE_CHUNK = 4096  # most samples of a stage one input draws at once (the search for a fixed outcome is per sample)


def horvath_schedule(p0, alpha, beta=1e-4, stages=HORVATH_STAGES):
    """Decision thresholds of Horvath et al.'s adaptive sampling at one p0.

    Stage i draws n_i FRESH samples (never pooled with earlier stages).  It certifies when the
    one-sided Clopper-Pearson lower bound at alpha/s (s stages) is >= p0, i.e. when its successes are
    >= certify_min[i]; before the last stage it stops as futile when the Clopper-Pearson upper bound at
    beta/(s-1) is < p0, i.e. successes <= futile_max[i] (-1: never).  Bonferroni over stages gives
    P(false certificate) <= alpha.  Returns a dict of int64 arrays: n, cumulative, certify_min, futile_max.
    """
    p0 = float(p0)
    n = np.asarray(stages, dtype=np.int64)
    s = n.size
    if s < 1 or np.any(n < 1):
        raise ValueError("stages must be a non-empty sequence of positive sizes")
    cert = np.empty(s, dtype=np.int64)
    fut = np.full(s, -1, dtype=np.int64)
    for i, ni in enumerate(n):
        kk = np.arange(ni + 1)
        lo = clopper_pearson_lower(kk, ni, alpha / s)
        cert[i] = np.searchsorted(lo, p0, side="left")  # first k with lower >= p0
        if i < s - 1:
            up = clopper_pearson_upper(kk, ni, beta / (s - 1))
            fut[i] = np.searchsorted(up, p0, side="left") - 1  # last k with upper < p0
    return {"n": n, "cumulative": np.cumsum(n), "certify_min": cert, "futile_max": fut}


class HorvathAdaptiveTest:
    """Streaming form of Horvath et al.'s adaptive sampling (see ``horvath_schedule``).

    ``decision`` per stream: 1 certified, 0 stopped as futile, -1 abstained after the last stage or
    still running (``done`` tells which); ``samples_used`` counts outcomes consumed.  ``update``
    returns per row the 0-based batch index at which the stream was decided (any decision), or -1.
    One p0/alpha/beta/stages for all streams (it is a fixed-radius baseline).
    """

    def __init__(self, p0, alpha, beta=1e-4, stages=HORVATH_STAGES, n_streams=1, stop_when_fixed=False):
        sched = horvath_schedule(p0, alpha, beta, stages)
        self.stop_when_fixed = bool(stop_when_fixed)
        self.p0, self.alpha, self.beta = float(p0), float(alpha), float(beta)
        self.schedule = sched
        self.n_streams = int(n_streams)
        n = self.n_streams
        self.stage = np.zeros(n, dtype=np.int64)
        self.stage_trials = np.zeros(n, dtype=np.int64)
        self.stage_successes = np.zeros(n, dtype=np.int64)
        self.samples_used = np.zeros(n, dtype=np.int64)
        self.decision = np.full(n, -1, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)

    def update(self, outcomes, streams=None):
        """Feed outcomes (k, m) or (m,) to streams (k,); see the class docstring for the return value."""
        X, rows, scalar = outcome_batch(outcomes, streams, self.n_streams)
        k, m = X.shape
        res = np.full(k, -1, dtype=np.int64)
        live = np.nonzero(~self.done[rows])[0]
        if m == 0 or live.size == 0:
            return res[0] if scalar else res
        cs = np.zeros((live.size, m + 1), dtype=np.int64)
        np.cumsum(X[live], axis=1, out=cs[:, 1:])
        n_st = self.schedule["n"]
        nstages = n_st.size
        pos = np.zeros(live.size, dtype=np.int64)
        act = np.arange(live.size)
        while act.size:
            st = rows[live[act]]
            take = np.minimum(n_st[self.stage[st]] - self.stage_trials[st], m - pos[act])
            if self.stop_when_fixed:
                take = self._until_fixed(st, cs[act], pos[act], take)
            self.stage_successes[st] += cs[act, pos[act] + take] - cs[act, pos[act]]
            self.stage_trials[st] += take
            self.samples_used[st] += take
            pos[act] += take
            full = self.stage_trials[st] == n_st[self.stage[st]]
            if self.stop_when_fixed:
                full |= self._fixed(st, self.stage_successes[st], self.stage_trials[st])
            if full.any():
                f_st = st[full]
                stg = self.stage[f_st]
                succ = self.stage_successes[f_st]
                left = n_st[stg] - self.stage_trials[f_st]  # 0 unless the stage's outcome was fixed early
                cert = succ >= self.schedule["certify_min"][stg]
                fut = ~cert & (succ + left <= self.schedule["futile_max"][stg])
                last = ~cert & ~fut & (stg == nstages - 1)
                fin = cert | fut | last
                self.decision[f_st[cert]] = 1
                self.decision[f_st[fut]] = 0
                self.done[f_st[fin]] = True
                res[live[act[full][fin]]] = pos[act[full][fin]] - 1
                nxt = f_st[~fin]
                self.stage[nxt] += 1
                self.stage_trials[nxt] = 0
                self.stage_successes[nxt] = 0
            act = act[(~self.done[st]) & (pos[act] < m)]
        return res[0] if scalar else res

    def _fixed(self, st, successes, trials) -> np.ndarray:
        """Whether each stream's current stage has a fixed outcome that ends the test: it certifies whatever comes
        (successes reached), it refutes whatever comes (the rest all hits would stay at or below futile_max), or
        it is the last stage and cannot certify even if every remaining sample hits."""
        stg = self.stage[st]
        left = self.schedule["n"][stg] - trials
        last = stg == self.schedule["n"].size - 1
        return (
            (successes >= self.schedule["certify_min"][stg])
            | (successes + left <= self.schedule["futile_max"][stg])
            | (last & (successes + left < self.schedule["certify_min"][stg]))
        )

    def _until_fixed(self, st, cs, pos, take) -> np.ndarray:
        """How many of the next `take` outcomes each stream consumes: up to the first at which its stage's outcome
        is fixed (see _fixed), else all of them."""
        offsets = np.arange(1, int(take.max(initial=0)) + 1)
        if not offsets.size:
            return take
        idx = np.minimum(pos[:, None] + offsets[None, :], cs.shape[1] - 1)
        k = np.arange(st.size)[:, None]
        succ = self.stage_successes[st][:, None] + cs[k, idx] - cs[k, pos[:, None]]
        trials = self.stage_trials[st][:, None] + offsets[None, :]
        fixed = self._fixed(np.repeat(st, offsets.size), succ.reshape(-1), trials.reshape(-1)).reshape(succ.shape)
        fixed &= offsets[None, :] <= take[:, None]
        return np.where(fixed.any(axis=1), fixed.argmax(axis=1) + 1, take)


def horvath_adaptive_test(outcomes, p0, alpha, beta=1e-4, stages=HORVATH_STAGES, stop_when_fixed=False):
    """Run Horvath et al.'s adaptive sampling on recorded outcome streams (1-D, or 2-D rows).

    Stage i consumes the next n_i outcomes of the recording (fresh samples).  Returns
    (decision, samples_used): decision 1 certified, 0 futile stop, -1 abstain (all stages used, or
    the recording ended inside a stage, in which case samples_used is the recording length).
    stop_when_fixed: a stream stops at the sample from which its stage's outcome is fixed (the same decisions).
    """
    X = np.asarray(outcomes)
    scalar = X.ndim == 1
    X2 = X[None, :] if scalar else X
    test = HorvathAdaptiveTest(p0, alpha, beta, stages, n_streams=X2.shape[0], stop_when_fixed=stop_when_fixed)
    test.update(X2)
    dec, used = test.decision.copy(), test.samples_used.copy()
    return (dec[0], used[0]) if scalar else (dec, used)


def horvath_stages(max_samples: int, stages=HORVATH_STAGES) -> tuple[int, ...]:
    """Horvath et al.'s stage sizes cut so that their sum is at most max_samples (the last stage is shortened)."""
    cumulative = np.minimum(np.cumsum(stages), max_samples)
    sizes = np.diff(np.concatenate([[0], cumulative]))
    return tuple(int(s) for s in sizes if s > 0)


def certify_horvath(run: Run, target: Target, *, beta: float = 1e-4, stages=HORVATH_STAGES) -> list[Certificate]:
    """Horvath et al.'s adaptive sampling: certify at the target radius with probability of a false certificate <=
    alpha.

    Stage i draws n_i fresh samples; it certifies when the Clopper-Pearson lower bound at alpha/s
    (s stages) reaches Phi(radius / sigma), and stops as "not certified" before the last stage when
    the upper bound at beta/(s-1) falls below it. The stages (1000, 10000, 125000) are cut to
    max_samples in total. Decision only: the paper defines no radius estimation.
    """
    if target.radius is None:
        raise HaltfastError(
            "method 'horvath' decides at a required radius only (Horvath et al. define no radius "
            "estimation): give a radius"
        )
    stages = horvath_stages(target.max_samples, stages)
    if run.n == 0:
        return []
    c_hat, _, _ = run.select("clean", 0, run.n)
    test = HorvathAdaptiveTest(target.p0, target.alpha, beta, stages, n_streams=run.n, stop_when_fixed=True)
    while True:
        js = np.array([j for j in range(run.n) if run.certs[j] is None and not test.done[j]], dtype=np.int64)
        if js.size == 0:
            break
        _, groups = run.draw_hits(js, stage_chunks(test, js), c_hat)
        for rows, hits in groups:
            test.update(hits, rows)
    for j in range(run.n):
        if run.certs[j] is not None:
            continue
        decision, reason = _OUTCOMES[int(test.decision[j])]
        run.finish(
            j,
            Certificate(
                int(c_hat[j]),
                float(target.radius) if decision == CERTIFIED else 0.0,
                decision,
                0,
                stop_reason=reason,
                extra={
                    "tested": int(run.streams.positions[run.items[j]]),
                    "stopped_at": int(test.samples_used[j]),
                    "stages": int(test.stage[j]) + 1,
                },
            ),
        )
    return run.results()


def stage_chunks(test: HorvathAdaptiveTest, js: np.ndarray, min_chunk: int = 16, growth: float = 1 / 16) -> np.ndarray:
    """The next chunk of each stream's current stage: the fewest samples after which the stage's outcome could be
    fixed (every one a hit reaching certify_min, or every one a miss fixing refutation, or, in the last stage,
    certification out of reach), at least growth * (samples in the stage), on the chunk grid, never past the
    stage's end (stages never share a sample)."""
    sched = test.schedule
    stg, k, a = test.stage[js], test.stage_trials[js], test.stage_successes[js]
    n, cmin, fmax = sched["n"][stg], sched["certify_min"][stg], sched["futile_max"][stg]
    last = stg == sched["n"].size - 1
    big = np.iinfo(np.int64).max // 4
    certify = cmin - a  # all hits
    refute = np.where(fmax >= 0, n - fmax + a - k, big)  # all misses: a + (n - k) <= fmax
    hopeless = np.where(last, n - cmin + a + 1 - k, big)  # all misses: a + (n - k) < cmin
    first = np.maximum(np.minimum(np.minimum(certify, refute), hopeless), 1)
    size = chunk_grid(np.maximum(first, np.ceil(growth * k)).astype(np.int64), min_chunk)
    return np.minimum(np.minimum(size, STAGE_CHUNK), n - k)


_OUTCOMES = {
    1: (CERTIFIED, StopReason.CP_LOWER),
    0: (NOT_CERTIFIED, StopReason.CP_UPPER),
    -1: (UNDECIDED, StopReason.LAST_STAGE),
}
