"""haltfast's anytime certification: beta-mixture E-processes decide at a required radius, or a confidence
sequence estimates the radius, each input stopping as soon as its evidence is in."""

from __future__ import annotations

import numpy as np

from ..certificate import (
    CERTIFIED,
    NOT_CERTIFIED,
    Certificate,
    StopReason,
    check_radius,
    p_for_radius,
    radius_from_p,
    validate_alpha,
    validate_count,
    validate_tolerance,
)
from ..engine import (
    OPEN,
    Run,
    decide,
    decision_chunks,
    growth_chunks,
    lower_confidence_sequence,
    mixture_test,
    radius_certificate,
    radius_mode_stop,
    round_cut,
    run_open_inputs,
    segment_sums,
)
from ..priors import Parts, Predictor, check_prior, prior_parts
from ..statistics import beta_mixture_lower_bound


def certify_anytime(streams, items, *, sigma: float, alpha: float = 0.001, radius: float | None = None,
                    max_samples: int = 100_000, prior="jeffreys", selection: str = "clean", n0: int = 100,
                    futility_alpha: float | None = None, tolerance: float = 0.01, min_chunk: int = 16,
                    growth: float = 1 / 16, max_active: int = 1024, labels=None, indices=None,
                    progress=None, on_result=None) -> list[Certificate]:
    """Anytime-valid certification with early stopping, many inputs sharing every model batch.

    Decision mode (radius given): "certified" at `radius` as soon as the beta-mixture
    E-process for H0: p <= Phi(radius / sigma) reaches 1/alpha; "not certified" as
    soon as the mirrored E-process rejects p >= Phi(radius / sigma) at level
    futility_alpha (default alpha; futility never raises the false-certification
    rate); "undecided" after max_samples tested samples. Radius mode (radius None):
    the radius is sigma * Phi^-1 of the running max of an anytime lower confidence
    bound, valid whenever sampling stops; sampling stops when spending the rest of
    the budget at the current estimate of p would add less than `tolerance` to the
    radius, or when p <= 1/2 is established (abstain). Every certificate is wrong
    with probability at most alpha; `evaluations` counts selection samples too.

    `prior` (of both tests and of the confidence sequence) may be a name, (a, b), an
    (n, 2) array, or a Predictor such as a MetaLearner, which predicts each input's
    prior from its clean logits (one evaluation, shared with clean selection).
    Each input's certificate depends only on its own stream (chunk sizes follow its
    own state), never on which inputs share the run, max_active or batch sizes.
    `on_result(cert)` is called as each input finishes (e.g. to journal it).
    """
    alpha = validate_alpha(alpha)
    futility_alpha = alpha if futility_alpha is None else validate_alpha(futility_alpha)
    max_samples = validate_count("max_samples", max_samples)
    if selection == "pilot":
        n0 = validate_count("n0", n0)
    tolerance = validate_tolerance(tolerance)
    check_prior(prior, with_pilot=selection == "pilot")
    if radius is not None:
        check_radius(radius, max_samples, alpha, sigma)
    run = Run(streams, items, labels, indices, progress, on_result)
    if run.n == 0:
        return []
    learned = isinstance(prior, Predictor)
    c_hat, hits, logits = run.select(selection, n0, max_active, with_logits=learned and prior.needs_logits)
    z = 0.0 if radius is None else radius / sigma
    parts = prior_parts(prior, z, logits, hits if selection == "pilot" else None, n0, run.n)
    if radius is None:
        mode = _RadiusMode(run, c_hat, parts, sigma, alpha, futility_alpha, max_samples, tolerance, min_chunk,
                          growth)
    else:
        mode = _DecisionMode(run, c_hat, parts, sigma, radius, alpha, futility_alpha, max_samples, min_chunk, growth)
    return run_open_inputs(run, max_active, mode.step)


class _DecisionMode:
    """Certification and futility E-processes at p0 = Phi(r / sigma) for every input of a run."""

    def __init__(self, run: Run, c_hat, parts: Parts, sigma, radius, alpha, futility_alpha, max_samples,
                 min_chunk, growth):
        n = run.n
        self.run, self.c_hat, self.radius, self.max_samples = run, c_hat, float(radius), max_samples
        self.min_chunk, self.growth = min_chunk, growth
        self.p0 = p_for_radius(radius, sigma)
        self.cert = mixture_test(self.p0, alpha, parts, n)
        self.fut = mixture_test(self.p0, futility_alpha, parts, n, alternative="less")
        self.succ = np.zeros(n, dtype=np.int64)  # tested stream counts (the tests freeze theirs when they reject)
        self.tested = np.zeros(n, dtype=np.int64)

    def step(self, active: np.ndarray) -> np.ndarray:
        """One round: chunk sizes, a shared draw, test updates, and the inputs that are decided finish."""
        t = self.tested[active]
        phat = (self.succ[active] + 0.5) / (t + 1.0)
        gap_cert = self.cert.threshold[active] - self.cert.log_evalue[active]
        gap_fut = self.fut.threshold[active] - self.fut.log_evalue[active]
        size = decision_chunks(gap_cert, gap_fut, phat > self.p0, self.p0, t, self.min_chunk, self.growth)
        size = np.minimum(size, self.max_samples - t).astype(np.int64)
        take = round_cut(size)
        batch = active[take]
        js, counts, hits = self.run.draw_flat(batch, size[take], self.c_hat)
        if js.size:
            self.succ[js] += segment_sums(hits, counts)
            self.tested[js] += counts
            self.cert.update_flat(hits, js, counts)
            self.fut.update_flat(hits, js, counts)
        cert, fut = self.cert, self.fut
        verdict = decide(cert.rejected[js], cert.stopping_time[js], fut.rejected[js], fut.stopping_time[js],
                         self.tested[js], self.max_samples)
        for j, outcome in zip(js[verdict != OPEN], verdict[verdict != OPEN]):
            self.run.finish(j, self._certificate(j, outcome))
        return np.concatenate([active[~take], batch])

    def _certificate(self, j: int, outcome: str) -> Certificate:
        tested = int(self.tested[j])
        log_e = float(self.cert.log_evalue[j])
        c = int(self.c_hat[j])
        if outcome == CERTIFIED:
            return Certificate(c, self.radius, CERTIFIED, 0, p_lower=self.p0, log_evalue=log_e,
                               stop_reason=StopReason.EVALUE,
                               extra={"tested": tested, "stopped_at": int(self.cert.trials[j])})
        if outcome == NOT_CERTIFIED:
            return Certificate(c, 0.0, NOT_CERTIFIED, 0, log_evalue=log_e, stop_reason=StopReason.UPPER_BELOW,
                               extra={"tested": tested, "stopped_at": int(self.fut.trials[j])})
        return Certificate(c, 0.0, outcome, 0, log_evalue=log_e, stop_reason=StopReason.MAX_SAMPLES,
                           extra={"tested": tested, "stopped_at": tested})


class _RadiusMode:
    """A lower confidence sequence per input, and a test of p <= 1/2 that ends hopeless inputs (abstain)."""

    def __init__(self, run: Run, c_hat, parts: Parts, sigma, alpha, futility_alpha, max_samples, tolerance,
                 min_chunk, growth):
        n = run.n
        self.run, self.c_hat, self.parts = run, c_hat, parts
        self.sigma, self.alpha, self.max_samples, self.tolerance = sigma, alpha, max_samples, tolerance
        self.min_chunk, self.growth = min_chunk, growth
        self.lower_cs = lower_confidence_sequence(alpha, parts, n)
        self.half = mixture_test(0.5, futility_alpha, parts, n, alternative="less")
        self.succ = np.zeros(n, dtype=np.int64)
        self.tested = np.zeros(n, dtype=np.int64)

    def step(self, active: np.ndarray) -> np.ndarray:
        t = self.tested[active]
        size = np.minimum(growth_chunks(t, self.min_chunk, self.growth), self.max_samples - t).astype(np.int64)
        take = round_cut(size)
        batch = active[take]
        js, counts, hits = self.run.draw_flat(batch, size[take], self.c_hat)
        if js.size:
            self.succ[js] += segment_sums(hits, counts)
            self.tested[js] += counts
            self.lower_cs.update_flat(hits, js, counts)
            self.half.update_flat(hits, js, counts)
        t = self.tested[js]
        lower = self.lower_cs.lower
        phat = (self.succ[js] + 0.5) / (t + 1.0)
        projected = np.max([beta_mixture_lower_bound(np.round(phat * self.max_samples),
                                                     np.full(js.size, self.max_samples), self.alpha * w, a[js], b[js])
                            for w, a, b in self.parts], axis=0)
        gain = radius_from_p(np.maximum(projected, lower[js]), self.sigma) - radius_from_p(lower[js], self.sigma)
        reason = radius_mode_stop(t, self.max_samples, self.half.rejected[js], gain, self.tolerance)
        for j, why in zip(js[reason != OPEN], reason[reason != OPEN]):
            self.run.finish(j, radius_certificate(float(lower[j]), int(self.c_hat[j]), self.sigma, str(why),
                                                  int(self.tested[j])))
        return np.concatenate([active[~take], batch])
