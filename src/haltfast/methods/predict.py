"""PREDICT, the smoothed classifier's abstaining prediction: Cohen et al.'s fixed-n test and an anytime version.

Both return a class A or abstain (ABSTAIN = -1), and return a class other than g(x) = argmax_c p_c(x) with
probability at most alpha. Cohen's PREDICT draws n samples and tests n_A against n_A + n_B at 1/2 (A, B the
top two counts). The anytime version chooses A on samples it never tests (the clean prediction, or a pilot
of n0 noisy samples) and then tests, sample by sample, that A is the top class:

* test='runner-up' (the default): for every other class c, a beta-mixture E-process on the labels that are A
  or c (1 for A) tests p_A <= p_c, i.e. P(A | A or c) <= 1/2. A is predicted once every one of them has
  reached 1/alpha. If A is not the top class, the test against the top class runs under its null, so a wrong
  prediction needs that one test to cross: probability at most alpha (Ville), with no union bound over c.
* test='half': one E-process on 1[label = A] tests P(A) <= 1/2; p_A > 1/2 implies A is the top class.

Futility: the mirrored E-processes (at futility_alpha) show that some class B beats A (runner-up), or that
P(A) < 1/2 (half). The runner-up test then moves on to B (`switch`, a share of alpha kept for it): B was
chosen on labels its tests never see, and is tested on the labels drawn after that moment; the two stages
err with probability at most (1 - switch) alpha + switch alpha = alpha. Otherwise, and at the cap (n tested
samples), the input abstains; an abstention is never a wrong prediction. Every evaluation (the clean
prediction, the pilot) is counted.

A run's budget (evaluations for the whole run, selection included, never exceeded) and deadline stop it at any
moment: the inputs still open abstain, which costs no validity (the tests are valid at any stopping time).
"""

from __future__ import annotations

import inspect

import numpy as np
from scipy.stats import binomtest

from .. import engine
from ..certificate import ABSTAIN
from ..certificate import ABSTAINED
from ..certificate import Certificate
from ..certificate import StopReason
from ..certificate import validate_alpha
from ..certificate import validate_count
from ..engine import Run
from ..errors import HaltfastError
from ..statistics import BetaMixtureTest
from ..statistics import OutcomeBatch

PREDICTED = "predicted"  # the decision of an input whose class was established (g(x) = prediction)
PREDICT_TESTS = ("runner-up", "half")
PREDICT_METHODS = ("anytime", "cohen")
BEATEN = "another class beats the selected one"
BELOW_HALF = "P(selected class) < 1/2 established"
BUDGET_SPENT = "given up: the run's budget was spent"
ROUND_SAMPLES = 2**18  # most labels one round draws (the runner-up test feeds each hit to K - 1 tests)
SWITCH = 0.1  # the runner-up test's default share of alpha for a second class


def predict_cohen(run: Run, *, n: int, alpha: float) -> list[Certificate]:
    """Cohen et al.'s PREDICT on every input: n samples, a two-sided binomial test of n_A against n_A + n_B at
    1/2 (A, B the top two counts) at level alpha; a wrong class with probability at most alpha."""
    n, alpha = validate_count("n", n), validate_alpha(alpha)
    classes = run.streams.num_classes
    for j in range(run.n):
        counts = np.zeros(classes, dtype=np.int64)
        for lo in range(0, n, engine.MAX_CHUNK):
            drawn = run.draw(np.array([j]), [min(engine.MAX_CHUNK, n - lo)])[0]
            if drawn is None:
                break
            counts += np.bincount(drawn, minlength=classes)
        if run.certs[j] is None:
            top2 = np.argsort(-counts, kind="stable")[:2]
            n_a, n_b = int(counts[top2[0]]), int(counts[top2[1]])
            significant = binomtest(n_a, n_a + n_b, 0.5).pvalue <= alpha
            run.finish(
                j,
                Certificate(
                    int(top2[0]) if significant else ABSTAIN,
                    0.0,
                    PREDICTED if significant else ABSTAINED,
                    0,
                    stop_reason=StopReason.FIXED_N,
                    extra={"tested": n, "selected": int(top2[0])},
                ),
            )
    return run.results()


def predict_anytime(
    run: Run,
    *,
    n: int = 100_000,
    alpha: float = 0.001,
    test: str = "runner-up",
    selection: str = "clean",
    n0: int = 100,
    switch: float | None = None,
    futility_alpha: float | None = None,
    min_chunk: int = 16,
    growth: float = 1 / 16,
    max_active: int = 1024,
) -> list[Certificate]:
    """Anytime PREDICT: the class A chosen on untested samples, predicted as soon as an E-process shows it is the
    top class, else abstain (at the cap of n tested samples, or once futility shows it is not).

    `switch` (runner-up test; default 0.1, 0: off) is the share of alpha kept for a second class: when another
    class B is shown to beat A, B is tested on the labels drawn after that moment at level switch x alpha (A's
    tests run at (1 - switch) x alpha), so the two stages err with probability at most alpha together. A wrong
    class is returned with probability at most alpha, whatever the stopping; see the module docstring.
    Each input's result depends only on its own stream.
    """
    n, alpha = validate_count("n", n), validate_alpha(alpha)
    futility_alpha = alpha if futility_alpha is None else validate_alpha(futility_alpha)
    if test not in PREDICT_TESTS:
        raise HaltfastError(f"unknown predict test {test!r}; choose one of {', '.join(PREDICT_TESTS)}")
    if switch is None:
        switch = SWITCH if test == "runner-up" else 0.0
    if not (isinstance(switch, (int, float)) and 0 <= switch < 1):
        raise HaltfastError(f"switch must be a share of alpha in [0, 1), e.g. 0.1, got {switch!r}")
    if switch and test != "runner-up":
        raise HaltfastError("switch needs test='runner-up' (the half test does not say which class beat A)")
    if selection == "pilot":
        n0 = validate_count("n0", n0)
    if run.n == 0:
        return []
    selected, _, _ = run.select(selection, n0, max_active)
    levels = [alpha * (1 - switch)] + ([alpha * switch] if switch else [])
    state = _PredictState(run, selected, test, levels, futility_alpha, n, min_chunk, growth)
    state.give_up(np.nonzero((selected < 0) & run.open(np.arange(run.n)))[0])  # the budget or deadline came first
    if run.budget is not None:  # a budget is shared: every input draws from it from the start
        max_active = max(max_active, run.n)
    return engine.run_open_inputs(run, max_active, state.step)


NEVER = np.iinfo(np.int64).max


class _Stage:
    """One stage's tests for every input: K - 1 pairs (runner-up) or one (half), each with its mirrored futility
    test, and the tested sample (counted over all of an input's tested labels) at which each crossed."""

    def __init__(self, streams: int, alpha: float, futility_alpha: float):
        self.cert = BetaMixtureTest(0.5, alpha, 0.5, 0.5, n_streams=streams)
        self.fut = BetaMixtureTest(0.5, futility_alpha, 0.5, 0.5, n_streams=streams, alternative="less")
        self.cert_time = np.full(streams, NEVER, dtype=np.int64)
        self.fut_time = np.full(streams, NEVER, dtype=np.int64)

    def feed(self, batch: OutcomeBatch, sample: np.ndarray) -> None:
        """Update both tests; `sample[i]` is the tested sample of the batch's outcome i."""
        for test, when in ((self.cert, self.cert_time), (self.fut, self.fut_time)):
            crossing = test.update_batch(batch)
            crossed = crossing >= 0
            when[batch.rows[crossed]] = sample[batch.starts[crossed] + crossing[crossed]]

    def outcome(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(when the last certification test crossed, when the first futility test crossed), NEVER if not yet."""
        last = np.where(self.cert.rejected[rows].all(axis=1), self.cert_time[rows].max(axis=1), NEVER)
        return last, self.fut_time[rows].min(axis=1)


class _PredictState:
    """Every input's stage (its class and the tests of that class), its tested labels, and the rounds."""

    def __init__(self, run: Run, selected, test: str, levels, futility_alpha: float, cap: int, min_chunk, growth):
        self.run, self.test, self.cap = run, test, cap
        self.min_chunk, self.growth = min_chunk, growth
        self.classes = run.streams.num_classes
        self.pairs = self.classes - 1 if test == "runner-up" else 1
        self.stages = [_Stage(run.n * self.pairs, level, futility_alpha) for level in levels]
        self.selected = np.asarray(selected, dtype=np.int64).copy()  # the class the current stage tests
        self.first_selected = self.selected.copy()
        self.stage = np.zeros(run.n, dtype=np.int64)
        self.since = np.zeros(run.n, dtype=np.int64)  # tested samples before the current stage began
        self.tested = np.zeros(run.n, dtype=np.int64)
        self.counts = np.zeros((run.n, self.classes), dtype=np.int64)  # tested labels per class (chunk sizes)

    def rows(self, js: np.ndarray) -> np.ndarray:
        """The test streams of inputs js, (len(js), pairs)."""
        return js[:, None] * self.pairs + np.arange(self.pairs)[None, :]

    def step(self, active: np.ndarray) -> np.ndarray:
        """One round: chunk sizes, a shared draw (never past the run's budget), the tests' updates; the decided
        inputs finish. Once the budget is spent or the deadline passed, the open inputs abstain."""
        if active.size and self.run.out_of_budget():
            self.give_up(active)
            return active[:0]
        size = np.minimum(self.chunks(active), self.cap - self.tested[active]).astype(np.int64)
        left = self.run.budget_left()
        if left is not None:
            size = np.minimum(size, left)
        take = np.cumsum(size) <= max(ROUND_SAMPLES, int(size[0]))
        if left is not None:
            take &= np.cumsum(np.where(take, size, 0)) <= left
        batch = active[take]
        drawn = self.run.draw(batch, size[take])  # a draw the deadline cut short is a prefix
        got = np.array([0 if d is None else len(d) for d in drawn], dtype=np.int64)
        if got.any():
            js, counts = batch[got > 0], got[got > 0]
            self.feed(js, counts, np.concatenate([d for d in drawn if d is not None]).astype(np.int64))
            self.finish(js)
        return np.concatenate([active[~take], batch])

    def chunks(self, active: np.ndarray) -> np.ndarray:
        """The fewest samples that could still decide (each sample adds at most log 2 to any test's log E), at
        least growth x the tested count, on the engine's chunk grid."""
        gap_cert, gap_fut = np.zeros(active.size), np.zeros(active.size)
        for k, stage in enumerate(self.stages):
            at = np.nonzero(self.stage[active] == k)[0]
            rows = self.rows(active[at])
            gap_cert[at] = stage.cert.gap_at(rows.ravel()).reshape(rows.shape).max(axis=1)
            gap_fut[at] = stage.fut.gap_at(rows.ravel()).reshape(rows.shape).min(axis=1)
        counts = self.counts[active]
        mine = counts[np.arange(active.size), self.selected[active]]
        counts[np.arange(active.size), self.selected[active]] = -1
        leads = mine >= counts.max(axis=1) if self.test == "runner-up" else 2 * mine >= self.tested[active]
        return engine.decision_chunks(gap_cert, gap_fut, leads, 0.5, self.tested[active], self.min_chunk, self.growth)

    def feed(self, js: np.ndarray, counts: np.ndarray, labels: np.ndarray) -> None:
        """Give each input's new labels (back to back, in the order drawn) to the tests of its stage. An input
        whose class is shown to be beaten moves on to the class that beat it (when a stage is left), whose tests
        get only the labels drawn after that moment."""
        owner = np.repeat(js, counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        sample = np.repeat(self.tested[js], counts) + np.arange(labels.size) - first + 1
        self.tested[js] += counts
        np.add.at(self.counts, (owner, labels), 1)
        for k, stage in enumerate(self.stages):
            use = (self.stage[owner] == k) & (sample > self.since[owner])
            if use.any():
                stage.feed(*self._batch(owner[use], labels[use], sample[use]))
            if k + 1 < len(self.stages):
                self._switch(js[self.stage[js] == k], k)

    def _batch(self, owner: np.ndarray, labels: np.ndarray, sample: np.ndarray) -> tuple[OutcomeBatch, np.ndarray]:
        """The labels as the tests see them, and the tested sample of each outcome. Half test: 1[label = A].
        Runner-up test: a label A is a 1 for each of its input's K - 1 pair tests, a label c != A a 0 for the pair
        (A, c) alone. Each test sees its labels in the order they were drawn."""
        hit = labels == self.selected[owner]
        if self.test == "half":
            streams, position, values = owner, np.arange(labels.size), hit
        else:
            hit_at, miss_at = np.nonzero(hit)[0], np.nonzero(~hit)[0]
            pair_of_miss = labels[miss_at] - (labels[miss_at] > self.selected[owner[miss_at]])  # pair k of class c
            streams = np.concatenate(
                [
                    (owner[hit_at, None] * self.pairs + np.arange(self.pairs)[None, :]).ravel(),
                    owner[miss_at] * self.pairs + pair_of_miss,
                ]
            )
            position = np.concatenate([np.repeat(hit_at, self.pairs), miss_at])
            values = np.concatenate([np.ones(hit_at.size * self.pairs, dtype=bool), np.zeros(miss_at.size, dtype=bool)])
        order = np.lexsort((position, streams))
        rows, lengths = np.unique(streams[order], return_counts=True)
        batch = OutcomeBatch(values[order], rows, lengths, self.stages[0].cert.n_streams)
        return batch, sample[position[order]]

    def _switch(self, js: np.ndarray, k: int) -> None:
        """Inputs of stage k whose class was beaten before it was established test the class that beat it next
        (the pair whose futility test crossed first), from the sample after that crossing."""
        if not js.size:
            return
        rows = self.rows(js)
        last, first_futile = self.stages[k].outcome(rows)
        beaten = (first_futile < NEVER) & ~(last <= first_futile)
        if not beaten.any():
            return
        js, rows, when = js[beaten], rows[beaten], first_futile[beaten]
        pair = self.stages[k].fut_time[rows].argmin(axis=1)
        self.selected[js] = pair + (pair >= self.selected[js])
        self.stage[js], self.since[js] = k + 1, when

    def finish(self, js: np.ndarray) -> None:
        """Inputs whose outcome is fixed finish: predicted when the last of their class's tests crossed no later
        than the first futility crossing; abstain when a futility test crossed first (and no stage is left), or
        at the cap."""
        rows = self.rows(js)
        last, first_futile = np.full(js.size, NEVER), np.full(js.size, NEVER)
        for k, stage in enumerate(self.stages):
            at = np.nonzero(self.stage[js] == k)[0]
            last[at], first_futile[at] = stage.outcome(rows[at])
        predicted = (last < NEVER) & (last <= first_futile)
        beaten = (first_futile < NEVER) & ~predicted
        capped = ~predicted & ~beaten & (self.tested[js] >= self.cap)
        done = predicted | beaten | capped
        stopped = np.minimum(np.minimum(last, first_futile), self.tested[js])
        for j, yes, no, at in zip(js[done], predicted[done], beaten[done], stopped[done]):
            self.run.finish(int(j), self._result(int(j), bool(yes), bool(no), int(at)))

    def give_up(self, js: np.ndarray) -> None:
        """Open inputs the run's budget or deadline stops abstain (an abstention is never a wrong class)."""
        why = self.run.out_of_budget() or StopReason.BUDGET
        why = BUDGET_SPENT if why == StopReason.BUDGET else why
        for j in js:
            self.run.finish(int(j), self._result(int(j), False, False, int(self.tested[j]), why))

    def _result(self, j: int, predicted: bool, beaten: bool, stopped_at: int, why: str | None = None) -> Certificate:
        """Input j's result; log_evalue is the smallest of its class's tests' log E-values (the last to cross).
        `why`: the reason an input given up abstains."""
        stage = self.stages[int(self.stage[j])]
        log_e = float(stage.cert.log_evalue_at(self.rows(np.array([j]))[0]).min())
        if why is None and predicted:
            why = StopReason.EVALUE
        elif why is None:
            why = (BEATEN if self.test == "runner-up" else BELOW_HALF) if beaten else StopReason.MAX_SAMPLES
        a = int(self.selected[j])
        extra = {"tested": int(self.tested[j]), "stopped_at": stopped_at, "selected": a}
        if self.stage[j]:
            extra["first_selected"] = int(self.first_selected[j])
        return Certificate(
            a if predicted else ABSTAIN,
            0.0,
            PREDICTED if predicted else ABSTAINED,
            0,
            log_evalue=log_e,
            stop_reason=why,
            extra=extra,
        )


def run_predict(
    method: str,
    streams,
    items,
    *,
    n: int = 100_000,
    alpha: float = 0.001,
    labels=None,
    indices=None,
    progress=None,
    on_result=None,
    **options,
) -> list[Certificate]:
    """PREDICT on these items of a stream source (live or recorded): 'anytime' (options: test, selection, n0,
    switch, futility_alpha, min_chunk, growth, max_active, and the run's `budget` (evaluations, selection
    included, never exceeded) and `seconds` (a deadline counted from the start): the inputs open when either is
    spent abstain) or 'cohen'; each result is a wrong class with probability at most alpha.
    `progress(inputs, evaluations)` and `on_result(result)` follow the run (see engine.Run)."""
    if method not in PREDICT_METHODS:
        raise HaltfastError(f"unknown predict method {method!r}; choose one of {', '.join(PREDICT_METHODS)}")
    budget, seconds = options.pop("budget", None), options.pop("seconds", None)
    if method == "cohen" and options:
        raise HaltfastError(f"Cohen's PREDICT takes no options {sorted(options)}")
    if method == "cohen" and (budget is not None or seconds is not None):
        raise HaltfastError("a run's budget and deadline are for anytime PREDICT; Cohen's draws n samples per input")
    run = Run(streams, items, labels, indices, progress, on_result, budget=budget, seconds=seconds)
    if method == "cohen":
        return predict_cohen(run, n=n, alpha=alpha)
    try:
        inspect.signature(predict_anytime).bind(run, n=n, alpha=alpha, **options)
    except TypeError as exc:
        raise HaltfastError(f"anytime PREDICT: {exc}") from None
    return predict_anytime(run, n=n, alpha=alpha, **options)
