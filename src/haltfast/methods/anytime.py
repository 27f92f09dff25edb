"""haltfast's anytime certification: beta-mixture E-processes decide at a required radius, or a confidence
sequence estimates the radius, each input stopping as soon as its evidence is in."""

from __future__ import annotations

import numpy as np

from ..certificate import CERTIFIED
from ..certificate import NOT_CERTIFIED
from ..certificate import UNDECIDED
from ..certificate import Certificate
from ..certificate import StopReason
from ..certificate import p_for_radius
from ..certificate import radius_from_p
from ..certificate import validate_alpha
from ..certificate import validate_count
from ..certificate import validate_tolerance
from ..engine import OPEN
from ..engine import Run
from ..engine import Target
from ..engine import decide
from ..engine import decision_chunks
from ..engine import growth_chunks
from ..engine import lower_confidence_sequence
from ..engine import mixture_test
from ..engine import radius_certificate
from ..engine import radius_mode_stop
from ..engine import round_cut
from ..engine import run_open_inputs
from ..engine import segment_sums
from ..errors import HaltfastError
from ..predictors import OnlineLearner
from ..predictors import OnlineSession
from ..predictors import Parts
from ..predictors import Predictor
from ..predictors import certification_value
from ..predictors import check_prior
from ..predictors import price_for_loss
from ..predictors import prior_parts
from ..predictors import worst_first
from ..statistics import OutcomeBatch
from ..statistics import beta_mixture_lower_bound

GIVEN_UP = "given up"  # a verdict of the value rule (worth): the input ends undecided
OUT_OF_REACH = "out of reach"  # a verdict: no certificate (or next grid radius) within max_samples, whatever comes
GRID_WORTH = 1_000_000  # grid mode's default worth of the next radius, in evaluations


def validate_max_loss(max_loss) -> float | None:
    if max_loss is None:
        return None
    if isinstance(max_loss, bool) or not isinstance(max_loss, (int, float)) or not 0 <= max_loss < 1:
        raise HaltfastError(f"max_loss must be a fraction of the inputs in [0, 1), e.g. 0.01, got {max_loss!r}")
    return float(max_loss)


def resolve_worth(worth, mode: str) -> float | None:
    """The worth in evaluations of a certificate ('auto': GRID_WORTH in grid mode, else off); None or 0: off."""
    if worth == "auto":
        return GRID_WORTH if mode == "grid" else None
    if worth is None or worth == 0:
        return None
    if not (isinstance(worth, (int, float)) and np.isfinite(worth) and worth > 0):
        raise HaltfastError(f"worth must be a number of evaluations > 0 (or 0 / None: off), got {worth!r}")
    if mode == "radius":
        raise HaltfastError("worth applies to decision and grid mode; radius mode stops by its tolerance")
    return float(worth)


def certify_anytime(
    run: Run,
    target: Target,
    *,
    prior=None,
    selection: str | None = None,
    n0: int = 100,
    futility_alpha: float | None = None,
    tolerance: float = 0.01,
    min_chunk: int = 16,
    growth: float = 1 / 16,
    max_active: int = 1024,
    worth: float | str | None = "auto",
    max_loss: float | None = None,
) -> list[Certificate]:
    """Anytime-valid certification with early stopping, many inputs sharing every model batch.

    Grid mode (a grid of radii r_1 < ... < r_K): one certification and one futility E-process per radius;
    an input is certified at r_c, the largest radius whose test and every smaller radius's test rejected,
    and stops when its bucket is decided (r_{c+1} refuted, or c = K) or at max_samples. The rejections are
    read nested, so the reported radius exceeds the input's true certified radius only if the test at the
    next radius above the truth rejects: probability at most alpha, with no union bound over the grid.

    Decision mode (a required radius): "certified" at the radius as soon as the beta-mixture
    E-process for H0: p <= Phi(radius / sigma) reaches 1/alpha; "not certified" as
    soon as the mirrored E-process rejects p >= Phi(radius / sigma) at level
    futility_alpha (default alpha; futility never raises the false-certification
    rate); "undecided" after max_samples tested samples. Radius mode (no radius):
    the radius is sigma * Phi^-1 of the running max of an anytime lower confidence
    bound, valid whenever sampling stops; sampling stops when spending the rest of
    the budget at the current estimate of p would add less than `tolerance` to the
    radius, or when p <= 1/2 is established (abstain). Every certificate is wrong
    with probability at most alpha; `evaluations` counts selection samples too.

    `prior` (of both tests and of the confidence sequence) may be a name, (a, b), an
    (n, 2) array, or a Predictor such as a MetaLearner, which predicts each input's
    prior from its clean logits (one evaluation, shared with clean selection).
    Defaults (default_selection): grid mode selects by Cohen's pilot of n0 samples with the pilot's posterior
    as the prior (measured the better choice, docs/certification.md); decision and radius mode by the clean
    prediction with the Jeffreys prior.
    Each input's certificate depends only on its own stream (chunk sizes follow its
    own state), never on which inputs share the run, max_active or batch sizes; except
    with the online learner (prior 'online' or an OnlineLearner, decision and grid mode):
    it starts the inputs in waves, in input order, and sets each one's prior just
    before its first tested label from the labels of the inputs started before it, so
    a certificate depends on those too (valid all the same: they are independent of
    its stream), deterministically given the labels and max_active.

    `worth` (decision and grid mode): a certificate (or the next grid radius) is worth this many evaluations;
    an input whose chance of it per evaluation it is expected to cost falls below 1/worth is given up
    (undecided, or certified at the radii it has). The chance is predicted from a belief about p updated
    with the input's own labels so far: the meta-learner's belief from the clean logits when it is the
    prior, else Jeffreys' or the pilot's posterior. This never creates a certificate, so validity is
    untouched. 'auto': GRID_WORTH in grid mode (refuting the next radius is skipped where it is hopeless),
    off in decision mode (None: off). The run's budget (evaluations for the whole run, selection included;
    never exceeded) and deadline (engine.Run) spend by value too: each round keeps the inputs with the best
    chance of a certificate per expected evaluation whose expected evaluations fit in what is left; the inputs
    left when it is spent end undecided (in radius mode every input samples in turn and, once it is spent,
    ends with the radius its evidence supports so far). `max_loss` (a fraction of
    the inputs, decision and grid mode): the value rule gives inputs up, the worst chance per evaluation
    first, only while the chances of the inputs given up sum to at most max_loss x the inputs finished so
    far; without a worth, the price is set from the inputs' predictions before the run.
    """
    selection, prior = default_selection(target.mode, selection, prior, n0)
    futility_alpha = target.alpha if futility_alpha is None else validate_alpha(futility_alpha)
    max_loss = validate_max_loss(max_loss)
    priced_by_loss = max_loss is not None and worth in (None, "auto", 0)
    worth = None if priced_by_loss else resolve_worth(worth, target.mode)
    if target.mode == "radius" and max_loss is not None:
        raise HaltfastError(
            "max_loss applies to decision and grid mode; radius mode stops by its tolerance (a budget or a "
            "deadline stops it sooner)"
        )
    if selection == "pilot":
        n0 = validate_count("n0", n0)
    tolerance = validate_tolerance(tolerance)
    if isinstance(prior, str) and prior == "online":
        prior = OnlineLearner()
    check_prior(prior, with_pilot=selection == "pilot")
    if run.n == 0:
        return []
    learned = isinstance(prior, Predictor)
    c_hat, hits, logits = run.select(selection, n0, max_active, with_logits=learned and prior.needs_logits)
    pilot_hits = hits if selection == "pilot" else None
    schedule = (min_chunk, growth, beliefs(prior, logits, pilot_hits, n0, run.n))
    mode: _Mode
    if target.mode == "grid":
        assert target.radii is not None  # grid mode: a grid of radii
        parts_per_radius = [prior_parts(prior, r / target.sigma, logits, pilot_hits, n0, run.n) for r in target.radii]
        mode = _GridMode(run, c_hat, parts_per_radius, target, futility_alpha, schedule)
    elif target.mode == "radius":
        parts = prior_parts(prior, None, logits, pilot_hits, n0, run.n)
        mode = _RadiusMode(run, c_hat, parts, target, futility_alpha, tolerance, schedule)
    else:
        parts = prior_parts(prior, target.z, logits, pilot_hits, n0, run.n)
        mode = _DecisionMode(run, c_hat, parts, target, futility_alpha, schedule)
    mode.worth = worth
    if getattr(prior, "online", False) and target.mode != "radius" and logits is not None:
        zs = [target.z] if target.radii is None else [r / target.sigma for r in target.radii]
        mode.online = prior.session(zs, logits, target.alpha, futility_alpha, target.max_samples, worth)
    mode.give_up(np.nonzero((c_hat < 0) & run.open(np.arange(run.n)))[0], run.out_of_budget() or StopReason.BUDGET)
    if max_loss is not None:
        mode.allowance, mode.max_loss = max_loss * run.n, max_loss
        if priced_by_loss:
            mode.worth = price_for_loss(*mode.value(np.arange(run.n)), mode.allowance)
    if run.budget is not None:  # a budget is shared: every input competes for it from the start
        max_active = max(max_active, run.n)
    return run_open_inputs(run, max_active, mode.step, mode.online.room if mode.online is not None else None)


GRID_SELECTION = "pilot"  # grid mode's default class selection (and the pilot's posterior its default prior)


def default_selection(mode: str, selection: str | None, prior, n0: int = 100) -> tuple[str, object]:
    """The class selection and prior a run uses when not given, one default per mode for the API and the CLI:
    grid mode a pilot of n0 samples (n0 = 0: none, the clean prediction) and its Jeffreys posterior (on the
    recordings at sigma 0.25, 0.5 and 1 it certified at least as many inputs as the clean prediction with
    Jeffreys' prior at every radius of 0, 0.25, 0.5, 0.75, and 0.6 to 1.6 points more at r = 0, for -8% to +10%
    evaluations; docs/certification.md), decision and radius mode the clean prediction (one evaluation) and
    Jeffreys' prior."""
    if selection is None:
        selection = GRID_SELECTION if mode == "grid" and n0 >= 1 else "clean"
    if prior is None:
        prior = "pilot" if mode == "grid" and selection == "pilot" else "jeffreys"
    return selection, prior


def beliefs(prior, logits, pilot_hits, n0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each input's Beta belief about p before its tested stream, for spending decisions only: a predictor's
    (the meta-learner's prediction from the clean logits), else the Jeffreys posterior of the selection pilot,
    else Jeffreys' prior."""
    if isinstance(prior, Predictor) and logits is not None and hasattr(prior, "belief"):
        return prior.belief(logits)
    if pilot_hits is not None:
        return 0.5 + pilot_hits.astype(float), 0.5 + (n0 - pilot_hits).astype(float)
    return np.full(n, 0.5), np.full(n, 0.5)


def side_gaps(cert: list, fut: list, which: np.ndarray, rows: np.ndarray, above: np.ndarray, both: bool = False):
    """(certification gaps, futility gaps) of rows[i] in the tests cert[which[i]] and fut[which[i]]: the
    certification test's where the estimate lies above p0, the futility test's elsewhere (both: everywhere);
    the other entries are 0 and unused, so their log E-values stay uncomputed."""
    gaps = []
    for tests, wanted in ((cert, above), (fut, np.ones_like(above) if both else ~above)):
        gap = np.zeros(rows.size)
        for k in np.unique(which[wanted]):
            sel = wanted & (which == k)
            gap[sel] = tests[k].gap_at(rows[sel])
        gaps.append(gap)
    return gaps[0], gaps[1]


class _Mode:
    """What every mode shares: the tested counts, one round's shared draw fed to the mode's statistics, and the
    spending rules (worth, the run's budget and deadline) that give inputs up."""

    priced = True  # value() predicts each input's chance of a certificate and its cost

    def __init__(self, run: Run, c_hat: np.ndarray, target: Target, schedule: tuple):
        self.run, self.c_hat, self.target = run, c_hat, target
        self.min_chunk, self.growth, (self.belief_a, self.belief_b) = schedule
        self.succ = np.zeros(run.n, dtype=np.int64)  # tested stream counts (the tests freeze theirs when they reject)
        self.tested = np.zeros(run.n, dtype=np.int64)
        self.worth: float | None = None
        self.allowance: float | None = None  # certificates the value rule may still give up, as predicted
        self.max_loss = 0.0
        self.online: OnlineSession | None = None  # an online learner's session: priors set as inputs start
        self.started = np.zeros(run.n, dtype=bool)

    def start(self, js: np.ndarray) -> None:
        """Before these inputs' next draw: an online learner gives each one not started yet its prior (set
        before its first tested label, from its clean logits and the labels of inputs started before it) and
        its belief."""
        if self.online is None:
            return
        new = js[~self.started[js]]
        if not new.size:
            return
        learned = np.nonzero(self.started & (self.tested > 0) & (self.c_hat >= 0))[0]
        training = np.zeros(self.run.n, dtype=bool)
        training[learned] = True
        priors = self.online.priors(new, self.succ, self.tested, training, self.run.finished)
        self.set_priors(new, priors)
        self.belief_a[new], self.belief_b[new] = self.online.beliefs(new)
        self.started[new] = True

    def set_priors(self, js: np.ndarray, priors: list) -> None:
        """Give inputs js, before their first label, the learned component of each test: per threshold, the
        certification test's (a, b) and the futility test's."""
        raise NotImplementedError

    def step(self, active: np.ndarray) -> np.ndarray:
        """One round: chunk sizes, a shared draw, the statistics' updates; the decided inputs finish."""
        active = self.within_budget(active)
        if not active.size:
            return active
        size = np.minimum(self.chunks(active), self.target.max_samples - self.tested[active]).astype(np.int64)
        left = self.run.budget_left()
        if left is not None:  # never past the budget
            size = np.minimum(size, left)
        take = round_cut(size)
        if left is not None:
            take &= self.served_first(active, size, left)
            take &= np.cumsum(np.where(take, size, 0)) <= left
        batch = active[take]
        self.start(batch)
        js, counts, hits = self.run.draw_flat(batch, size[take], self.c_hat)
        if js.size:
            self.succ[js] += segment_sums(hits, counts)
            self.tested[js] += counts
            self.feed(OutcomeBatch(hits, js, counts, self.run.n))
        self.finish(js)
        return np.concatenate([active[~take], batch])

    def within_budget(self, active: np.ndarray) -> np.ndarray:
        """The inputs still in the run: all of them until the budget is spent or the deadline passed, then none
        (they end undecided, or with their radius so far)."""
        why = self.run.out_of_budget()
        if active.size and why:
            self.give_up(active, why)
            return active[:0]
        return active

    def served_first(self, active: np.ndarray, size: np.ndarray, left: int) -> np.ndarray:
        """Under a budget, which inputs draw this round: the best chances of a certificate per expected
        evaluation first, chunks that fit in an eighth of what is left (at least the best input's); the others
        wait, so the budget goes where certificates are cheap. Radius mode has no value: every input draws."""
        if not self.priced:
            return np.ones(active.size, dtype=bool)
        chance, spend = self.value(active)
        order = np.argsort(-chance / np.maximum(spend, 1.0), kind="stable")
        fits = np.cumsum(size[order]) <= max(left // 8, size[order[0]])
        served = np.zeros(active.size, dtype=bool)
        served[order[fits]] = True
        return served

    def not_worth_it(self, js: np.ndarray) -> np.ndarray:
        """Which of these open inputs to give up: chance of a certificate per expected evaluation < 1/worth."""
        if self.worth is None or not js.size:
            return np.zeros(js.size, dtype=bool)
        chance, spend = self.value(js)
        flagged = chance * self.worth < spend
        if self.allowance is not None:
            candidates = np.nonzero(flagged)[0]
            # the allowance opens as inputs finish, so the first rounds' doubts cannot spend it all
            room = self.allowance - self.max_loss * (self.run.n - self.run.finished)
            chosen = worst_first(chance[candidates], spend[candidates], room)
            flagged[candidates[~chosen]] = False
            self.allowance -= float(chance[candidates[chosen]].sum())
        return flagged

    def beliefs_now(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each input's Beta belief about p: its belief before the tested stream, updated with that stream."""
        return self.belief_a[js] + self.succ[js], self.belief_b[js] + self.tested[js] - self.succ[js]

    def value(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(chance of the next certificate, expected evaluations to decide it) per input (predictors/value.py)."""
        raise NotImplementedError

    def give_up(self, js: np.ndarray, why: str) -> None:
        raise NotImplementedError

    def chunks(self, active: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def feed(self, batch: OutcomeBatch) -> None:
        """Give the round's labels (hit or miss, each input's back to back) to the mode's statistics."""
        raise NotImplementedError

    def finish(self, js: np.ndarray) -> None:
        raise NotImplementedError


class _DecisionMode(_Mode):
    """Certification and futility E-processes at p0 = Phi(r / sigma) for every input of a run."""

    def __init__(self, run: Run, c_hat, parts: Parts, target: Target, futility_alpha: float, schedule):
        super().__init__(run, c_hat, target, schedule)
        assert target.p0 is not None  # decision mode: a required radius
        self.p0: float = target.p0
        self.cert = mixture_test(self.p0, target.alpha, parts, run.n)
        self.fut = mixture_test(self.p0, futility_alpha, parts, run.n, alternative="less")

    def chunks(self, active: np.ndarray) -> np.ndarray:
        t = self.tested[active]
        phat = (self.succ[active] + 0.5) / (t + 1.0)
        above = phat > self.p0
        gap_cert, gap_fut = side_gaps([self.cert], [self.fut], np.zeros(active.size, dtype=np.int64), active, above)
        return decision_chunks(gap_cert, gap_fut, above, self.p0, t, self.min_chunk, self.growth)

    def feed(self, batch: OutcomeBatch) -> None:
        self.cert.update_batch(batch)
        self.fut.update_batch(batch)

    def set_priors(self, js: np.ndarray, priors: list) -> None:
        (cert, fut) = priors[0]
        self.cert.tests[0].set_prior(js, *cert)
        self.fut.tests[0].set_prior(js, *fut)

    def finish(self, js: np.ndarray) -> None:
        cert, fut = self.cert, self.fut
        verdict = decide(
            cert.rejected[js],
            cert.stopping_time[js],
            fut.rejected[js],
            fut.stopping_time[js],
            self.tested[js],
            self.target.max_samples,
        )
        still = np.nonzero(verdict == OPEN)[0]
        left = self.target.max_samples - self.tested[js[still]]
        verdict[still[~self.cert.could_reject(js[still], left)]] = OUT_OF_REACH
        still = np.nonzero(verdict == OPEN)[0]
        verdict[still[self.not_worth_it(js[still])]] = GIVEN_UP
        for j, outcome in zip(js[verdict != OPEN], verdict[verdict != OPEN]):
            self.run.finish(j, self._certificate(j, outcome))

    def value(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gap_cert, gap_fut = self.cert.gap_at(js), self.fut.gap_at(js)
        return certification_value(
            *self.beliefs_now(js),
            np.full(js.size, self.p0),
            gap_cert,
            gap_fut,
            self.target.max_samples - self.tested[js],
        )

    def give_up(self, js: np.ndarray, why: str) -> None:
        for j in js:
            self.run.finish(j, self._certificate(j, GIVEN_UP, why))

    def _certificate(self, j: int, outcome: str, why: str = StopReason.GIVEN_UP) -> Certificate:
        """Input j's certificate. `stopped_at` is the tested sample at which the deciding test crossed (the
        certification test for 'certified', the futility test for 'not certified'; the samples tested where
        neither did), and `log_evalue` the certification test's log E-value at that sample."""
        tested = int(self.tested[j])
        c = int(self.c_hat[j])
        one = np.array([j])
        if outcome == CERTIFIED:
            assert self.target.radius is not None  # decision mode: a required radius
            return Certificate(
                c,
                float(self.target.radius),
                CERTIFIED,
                0,
                p_lower=self.p0,
                log_evalue=float(self.cert.log_evalue_at(one)[0]),  # frozen at its crossing
                stop_reason=StopReason.EVALUE,
                extra={"tested": tested, "stopped_at": int(self.cert.stopping_time[j])},
            )
        if outcome == NOT_CERTIFIED:
            at, hits = self.fut.stopping_time[one], self.fut.successes[one]  # the futility test froze there
            return Certificate(
                c,
                0.0,
                NOT_CERTIFIED,
                0,
                log_evalue=float(self.cert.log_evalue_of(one, hits, at)[0]),
                stop_reason=StopReason.UPPER_BELOW,
                extra={"tested": tested, "stopped_at": int(at[0])},
            )
        why = {GIVEN_UP: why, OUT_OF_REACH: StopReason.OUT_OF_REACH}.get(outcome, StopReason.MAX_SAMPLES)
        log_e = float(self.cert.log_evalue_at(one)[0])  # it has not crossed: its value at the last sample tested
        return Certificate(
            c, 0.0, UNDECIDED, 0, log_evalue=log_e, stop_reason=why, extra={"tested": tested, "stopped_at": tested}
        )


class _RadiusMode(_Mode):
    """A lower confidence sequence per input, and a test of p <= 1/2 that ends hopeless inputs (abstain)."""

    def __init__(
        self, run: Run, c_hat, parts: Parts, target: Target, futility_alpha: float, tolerance: float, schedule
    ):
        super().__init__(run, c_hat, target, schedule)
        self.parts, self.tolerance = parts, tolerance
        self.lower_cs = lower_confidence_sequence(target.alpha, parts, run.n)
        self.half = mixture_test(0.5, futility_alpha, parts, run.n, alternative="less")

    priced = False

    def chunks(self, active: np.ndarray) -> np.ndarray:
        return growth_chunks(self.tested[active], self.min_chunk, self.growth)

    def give_up(self, js: np.ndarray, why: str) -> None:
        """End these inputs now with the radius their evidence supports so far (valid at any stopping time)."""
        lower = self.lower_cs.lower
        for j in js:
            self.run.finish(
                j, radius_certificate(float(lower[j]), int(self.c_hat[j]), self.target.sigma, why, int(self.tested[j]))
            )

    def feed(self, batch: OutcomeBatch) -> None:
        self.lower_cs.update_batch(batch)
        self.half.update_batch(batch)

    def finish(self, js: np.ndarray) -> None:
        t, n, sigma = self.tested[js], self.target.max_samples, self.target.sigma
        lower = self.lower_cs.lower
        phat = (self.succ[js] + 0.5) / (t + 1.0)
        projected = np.max(
            [
                # the stop rule needs only a rough projection: a coarse tolerance, started at the current bound
                beta_mixture_lower_bound(
                    np.round(phat * n),
                    np.full(js.size, n),
                    self.target.alpha * w,
                    a[js],
                    b[js],
                    xtol=1e-6,
                    near=lower[js],
                )
                for w, a, b in self.parts
            ],
            axis=0,
        )
        gain = radius_from_p(np.maximum(projected, lower[js]), sigma) - radius_from_p(lower[js], sigma)
        reason = radius_mode_stop(t, n, self.half.rejected[js], gain, self.tolerance)
        for j, why in zip(js[reason != OPEN], reason[reason != OPEN]):
            self.run.finish(
                j, radius_certificate(float(lower[j]), int(self.c_hat[j]), sigma, str(why), int(self.tested[j]))
            )


class _GridMode(_Mode):
    """Certification and futility E-processes at every radius of a grid; each input's bucket is read nested."""

    def __init__(
        self,
        run: Run,
        c_hat,
        parts_per_radius: list[Parts],
        target: Target,
        futility_alpha: float,
        schedule,
    ):
        super().__init__(run, c_hat, target, schedule)
        assert target.radii is not None  # grid mode: a grid of radii
        self.p0 = np.array([p_for_radius(r, target.sigma) for r in target.radii])
        self.cert = [mixture_test(p, target.alpha, parts, run.n) for p, parts in zip(self.p0, parts_per_radius)]
        self.fut = [
            mixture_test(p, futility_alpha, parts, run.n, alternative="less")
            for p, parts in zip(self.p0, parts_per_radius)
        ]
        k = len(self.p0)
        self.certified = np.zeros(run.n, dtype=np.int64)  # c: radii 1..c certified (nested)
        self.refuted = np.full(run.n, k + 1, dtype=np.int64)  # f: the smallest radius whose futility test rejected

    def chunks(self, active: np.ndarray) -> np.ndarray:
        """The decision rule's chunks for the next open radius: certify c + 1 if the estimate lies above it,
        else refute it."""
        t = self.tested[active]
        phat = (self.succ[active] + 0.5) / (t + 1.0)
        nxt = np.minimum(self.certified[active], len(self.p0) - 1)  # index of radius c + 1
        p0 = self.p0[nxt]
        above = phat > p0
        gap_cert, gap_fut = side_gaps(self.cert, self.fut, nxt, active, above)
        return decision_chunks(gap_cert, gap_fut, above, p0, t, self.min_chunk, self.growth)

    def feed(self, batch: OutcomeBatch) -> None:
        for cert, fut in zip(self.cert, self.fut):
            cert.update_batch(batch)
            fut.update_batch(batch)

    def set_priors(self, js: np.ndarray, priors: list) -> None:
        for cert, fut, (cert_prior, fut_prior) in zip(self.cert, self.fut, priors):
            cert.tests[0].set_prior(js, *cert_prior)
            fut.tests[0].set_prior(js, *fut_prior)

    def finish(self, js: np.ndarray) -> None:
        k = len(self.p0)
        rejected = np.array([c.rejected[js] for c in self.cert])  # (K, inputs)
        self.certified[js] = np.argmin(np.vstack([rejected, np.zeros(js.size, bool)]), axis=0)
        futile = np.array([f.rejected[js] for f in self.fut])
        self.refuted[js] = np.where(futile.any(axis=0), np.argmax(futile, axis=0) + 1, k + 1)
        c, f = self.certified[js], self.refuted[js]
        done = (c >= f - 1) | (c == k) | (self.tested[js] >= self.target.max_samples)
        why = np.full(js.size, StopReason.GIVEN_UP, dtype=object)
        still = np.nonzero(~done)[0]
        left = self.target.max_samples - self.tested[js[still]]
        for nxt in np.unique(c[still]):  # the next radius out of reach even if every remaining sample hits
            sel = c[still] == nxt
            hopeless = still[sel][~self.cert[nxt].could_reject(js[still[sel]], left[sel])]
            done[hopeless], why[hopeless] = True, StopReason.NEXT_OUT_OF_REACH
        still = np.nonzero(~done)[0]
        done[still[self.not_worth_it(js[still])]] = True
        for j, reason in zip(js[done], why[done]):
            self.run.finish(j, self._certificate(j, reason))

    def value(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chance and cost of the next grid radius (c + 1)."""
        nxt = np.minimum(self.certified[js], len(self.p0) - 1)
        every = np.ones(js.size, dtype=bool)
        gap_cert, gap_fut = side_gaps(self.cert, self.fut, nxt, js, every, both=True)
        return certification_value(
            *self.beliefs_now(js), self.p0[nxt], gap_cert, gap_fut, self.target.max_samples - self.tested[js]
        )

    def give_up(self, js: np.ndarray, why: str) -> None:
        for j in js:
            self.run.finish(j, self._certificate(j, why))

    def _certificate(self, j: int, why_given_up: str = StopReason.GIVEN_UP) -> Certificate:
        """Input j's certificate. `stopped_at` is the tested sample at which its certificate was established (the
        last of the tests at radii 1..c to cross; for 'not certified', the first radius's futility test's
        crossing; the samples tested where neither), and `log_evalue` the log E-value of the test at the
        certified radius, frozen at its crossing."""
        c, tested, k = int(self.certified[j]), int(self.tested[j]), len(self.p0)
        capped = c < min(int(self.refuted[j]) - 1, k)
        why = StopReason.BUCKET_DECIDED
        if capped:
            why = StopReason.MAX_SAMPLES if tested >= self.target.max_samples else why_given_up
        if c > 0:
            stopped_at = max(int(self.cert[i].stopping_time[j]) for i in range(c))
        else:
            stopped_at = tested if capped else int(self.fut[0].stopping_time[j])
        extra = {"tested": tested, "stopped_at": stopped_at, "certified_radii": c}
        if c == 0:
            outcome = UNDECIDED if capped else NOT_CERTIFIED
            return Certificate(int(self.c_hat[j]), 0.0, outcome, 0, stop_reason=why, extra=extra)
        assert self.target.radii is not None  # grid mode: a grid of radii
        return Certificate(
            int(self.c_hat[j]),
            float(self.target.radii[c - 1]),
            CERTIFIED,
            0,
            p_lower=float(self.p0[c - 1]),
            log_evalue=float(self.cert[c - 1].log_evalue_at([j])[0]),
            stop_reason=why,
            extra=extra,
        )
