"""Published baselines with the interface of `certify_anytime`, on live or recorded streams.

* `certify_horvath`: adaptive sampling of Horvath et al. (ICLR 2022), decision at a required radius only.
* `certify_union_bound`, `certify_betting`: the union-bound and betting confidence sequences of
  Voracek (NeurIPS 2024), in decision mode (a required radius) and radius mode.

All three select the class by the clean prediction (one evaluation, counted), as haltfast's default
does; the original papers use noisy pilot samples instead. Every drawn sample is counted, also the
samples of a batch drawn past the point where a decision was reached.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special as sc

from .certify import (ABSTAIN, Certificate, _chunk_grid, _Run, check_radius, p_for_radius, radius_from_p,
                      validate_alpha, validate_count, validate_tolerance)
from .errors import HaltfastError
from .statistics import (HORVATH_STAGES, HorvathAdaptiveTest, UnionBoundConfidenceSequence,
                         beta_mixture_lower_bound, clopper_pearson_lower, clopper_pearson_upper,
                         log_beta_mixture_evalue, union_bound_checkpoints)


def horvath_stages(max_samples: int, stages=HORVATH_STAGES) -> tuple[int, ...]:
    """Horvath et al.'s stage sizes cut so that their sum is at most max_samples (the last stage is shortened)."""
    cumulative = np.minimum(np.cumsum(stages), max_samples)
    sizes = np.diff(np.concatenate([[0], cumulative]))
    return tuple(int(s) for s in sizes if s > 0)


def certify_horvath(streams, items, *, sigma: float, alpha: float = 0.001, radius: float | None = None,
                    max_samples: int = 100_000, beta: float = 1e-4, stages=HORVATH_STAGES, labels=None,
                    indices=None, progress=None, on_result=None) -> list[Certificate]:
    """Horvath et al.'s adaptive sampling: certify at `radius` with probability of a false certificate <= alpha.

    Stage i draws n_i fresh samples; it certifies when the Clopper-Pearson lower bound at alpha/s
    (s stages) reaches Phi(radius / sigma), and stops as "not certified" before the last stage when
    the upper bound at beta/(s-1) falls below it. The stages (1000, 10000, 125000) are cut to
    max_samples in total. Decision only: the paper defines no radius estimation.
    """
    if radius is None:
        raise HaltfastError("method 'horvath' decides at a required radius only (Horvath et al. define no radius "
                            "estimation): give a radius")
    alpha = validate_alpha(alpha)
    max_samples = validate_count("max_samples", max_samples)
    check_radius(radius, max_samples, alpha, sigma)
    stages = horvath_stages(max_samples, stages)
    run = _Run(streams, items, labels, indices, progress, on_result)
    if run.n == 0:
        return []
    c_hat, _, _ = run.select("clean", 0, run.n)
    test = HorvathAdaptiveTest(p_for_radius(radius, sigma), alpha, beta, stages, n_streams=run.n)
    for size in stages:
        js = np.array([j for j in range(run.n) if run.certs[j] is None and not test.done[j]], dtype=np.int64)
        if js.size == 0:
            break
        out = run.draw(js, np.full(js.size, size))
        ok = np.nonzero(run.open(js))[0]
        if ok.size:
            test.update(np.stack([out[k] for k in ok]) == c_hat[js[ok]][:, None], js[ok])
    for j in range(run.n):
        if run.certs[j] is not None:
            continue
        decision = {1: "certified", 0: "not certified"}.get(int(test.decision[j]), "undecided")
        reason = {"certified": "Clopper-Pearson lower bound reached Phi(r/sigma)",
                  "not certified": "Clopper-Pearson upper bound below Phi(r/sigma)",
                  "undecided": "last stage did not certify"}[decision]
        run.finish(j, Certificate(int(c_hat[j]), float(radius) if decision == "certified" else 0.0, decision, 0,
                                  stop_reason=reason,
                                  extra={"tested": int(test.samples_used[j]), "stages": int(test.stage[j]) + 1}))
    return list(run.certs)


# ---------------------------------------------------------------------------------------------
# Voracek (2024): union-bound and betting confidence sequences
# ---------------------------------------------------------------------------------------------

CS_KINDS = ("union-bound", "betting")


def _least(predicate, t: np.ndarray) -> np.ndarray:
    """Per entry, the least integer k in [0, t + 1] where the monotone `predicate(k)` holds (true at t + 1)."""
    lo, hi = np.zeros_like(t), t + 1
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        ok = predicate(mid)
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid + 1)
    return lo


class _UnionBound:
    """Voracek's union-bound CS: Clopper-Pearson bounds at geometric checkpoints, level alpha on each side."""

    LOOKAHEAD = 64   # checkpoints searched ahead for the first one that could decide (a factor 1.1^64 in t)

    def __init__(self, alpha: float, n: int, max_samples: int, p0: float | None):
        self.lower_cs = UnionBoundConfidenceSequence(alpha, n_streams=n, side="lower")
        self.upper_cs = UnionBoundConfidenceSequence(alpha, n_streams=n, side="upper")
        self.times, self.shares = union_bound_checkpoints(max_samples)
        self.alpha, self.p0 = alpha, p0
        if p0 is not None:
            # per checkpoint: fewest successes whose lower bound exceeds p0, and the successes at and below
            # which the upper bound falls below it (found by bisection on the monotone Clopper-Pearson bounds)
            t, a = self.times, alpha * self.shares
            self.certify_min = _least(lambda k: (k > t) | (clopper_pearson_lower(np.minimum(k, t), t, a) > p0), t)
            self.futile_max = _least(lambda k: (k > t) | (clopper_pearson_upper(np.minimum(k, t), t, a) >= p0), t) - 1

    def chunk(self, rows: np.ndarray, tested: np.ndarray, max_samples: int, min_chunk: int, growth: float) -> np.ndarray:
        """Samples up to a checkpoint (the bounds move only there, so nothing is overdrawn).

        Decision mode: the first checkpoint at which a decision is possible at all (every sample a hit
        lifting the lower bound above p0, or every one a miss pushing the upper bound below it), so
        skipping the others changes no decision. Radius mode: the first checkpoint at least
        max(min_chunk, growth * t) samples ahead, the spacing of haltfast's radius mode.
        """
        k = np.searchsorted(self.times, tested, side="right")
        if self.p0 is None:
            want = tested + np.maximum(min_chunk, np.ceil(growth * tested)).astype(np.int64)
            k = np.searchsorted(self.times, want, side="left")
        else:
            j = np.minimum(k[:, None] + np.arange(self.LOOKAHEAD)[None, :], self.times.size - 1)
            s = self.lower_cs.successes[rows][:, None]
            possible = (s + self.times[j] - tested[:, None] >= self.certify_min[j]) | (s <= self.futile_max[j])
            k = np.where(possible.any(axis=1), j[np.arange(rows.size), possible.argmax(axis=1)], j[:, -1])
        nxt = np.where(k < self.times.size, self.times[np.minimum(k, self.times.size - 1)], max_samples)
        return np.maximum(nxt - tested, 1)

    def update(self, x: np.ndarray, rows: np.ndarray) -> None:
        self.lower_cs.update(x, rows)
        self.upper_cs.update(x, rows)

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

    def __init__(self, alpha: float, n: int, p0: float | None):
        self.alpha, self.p0 = alpha, p0
        c = 1.0 / (2.0 * alpha)
        self.log_c = math.log(c)
        self.p_min = float(sc.betainccinv(0.5, 0.5, (c - 1.0) / (1.0 / alpha - 1.0)))
        if p0 is not None:
            self.log_c_cert = math.log(max(c, 1.0 + float(sc.betaincc(0.5, 0.5, p0)) * (1.0 / alpha - 1.0)))
        self.successes = np.zeros(n, dtype=np.int64)
        self.trials = np.zeros(n, dtype=np.int64)
        self.log_evalue = np.zeros(n)
        self.decision = np.zeros(n, dtype=np.int64)          # decision mode: 1 certified, -1 futile, 0 open
        self.stopping_time = np.full(n, -1, dtype=np.int64)
        self._lower = np.zeros(n)
        self._upper = np.ones(n)

    def chunk(self, rows: np.ndarray, tested: np.ndarray, max_samples: int, min_chunk: int, growth: float) -> np.ndarray:
        base = np.zeros(tested.size)
        if self.p0 is not None:
            # a success raises log E_t(p0) by log(q_t / p0) <= -log p0 (a failure: <= -log(1 - p0)),
            # so this many samples are needed at least: the same chunk rule as haltfast's decision mode
            up = (self.successes[rows] + 0.5) / (tested + 1.0) > self.p0
            need = np.where(up, (self.log_c_cert - self.log_evalue[rows]) / -math.log(self.p0),
                            (self.log_c - self.log_evalue[rows]) / -math.log1p(-self.p0))
            base = np.ceil(np.maximum(need, 0))
        return _chunk_grid(np.maximum(base, np.ceil(growth * tested)), min_chunk)

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
            self._lower[rows] = np.maximum(self._lower[rows], beta_mixture_lower_bound(
                s, t, 2 * self.alpha, truncated=False))
            self._upper[rows] = np.minimum(self._upper[rows], 1.0 - beta_mixture_lower_bound(
                t - s, t, 2 * self.alpha, truncated=False))

    @property
    def lower(self) -> np.ndarray:
        return np.where(self._lower >= self.p_min, self._lower, 0.0)

    @property
    def upper(self) -> np.ndarray:
        return self._upper

    def projected_lower(self, phat: np.ndarray, n: int) -> np.ndarray:
        return beta_mixture_lower_bound(np.round(phat * n), np.full(phat.size, n), 2 * self.alpha, truncated=False)


def certify_confidence_sequence(streams, items, *, kind: str, sigma: float, alpha: float = 0.001,
                                radius: float | None = None, max_samples: int = 100_000, tolerance: float = 0.01,
                                min_chunk: int = 16, growth: float = 1 / 16, max_active: int = 1024, labels=None,
                                indices=None, progress=None, on_result=None) -> list[Certificate]:
    """Voracek's confidence-sequence certification (kind 'union-bound' or 'betting'); certificates wrong w.p. <= alpha.

    Decision mode (radius given): "certified" as soon as the anytime lower bound on p exceeds
    Phi(radius / sigma), "not certified" as soon as the upper bound falls below it, "undecided" after
    max_samples. Radius mode: the radius is sigma * Phi^-1 of the running max of the lower bound;
    sampling stops on the rule haltfast's radius mode uses (the rest of the budget at the current
    rate would add less than `tolerance`), or at max_samples, or when p <= 1/2 is established.
    """
    if kind not in CS_KINDS:
        raise HaltfastError(f"unknown confidence sequence {kind!r}; choose one of {', '.join(CS_KINDS)}")
    alpha = validate_alpha(alpha)
    max_samples = validate_count("max_samples", max_samples)
    tolerance = validate_tolerance(tolerance)
    if radius is not None:
        check_radius(radius, max_samples, alpha, sigma)
    run = _Run(streams, items, labels, indices, progress, on_result)
    n = run.n
    if n == 0:
        return []
    c_hat, _, _ = run.select("clean", 0, max_active)
    p0 = p_for_radius(radius, sigma) if radius is not None else None
    cs = _UnionBound(alpha, n, max_samples, p0) if kind == "union-bound" else _Betting(alpha, n, p0)
    succ = np.zeros(n, dtype=np.int64)
    tested = np.zeros(n, dtype=np.int64)
    pending = [j for j in range(n) if run.certs[j] is None][::-1]
    active = np.zeros(0, dtype=np.int64)

    while pending or active.size:
        active = run.admit(pending, active, max_active)
        t = tested[active]
        size = cs.chunk(active, t, max_samples, min_chunk, growth)
        size = np.minimum(size, max_samples - t).astype(np.int64)
        alive, groups = run.draw_hits(active, size, c_hat)
        for group, x in groups:
            succ[group] += x.sum(axis=1)
            tested[group] += x.shape[1]
            cs.update(x, group)
        js = active[alive]
        t = tested[js]
        if radius is not None:
            if kind == "union-bound":
                verdict = np.where(cs.lower[js] > p0, 1, np.where(cs.upper[js] < p0, -1, 0))
                stopped = t
            else:
                verdict, stopped = cs.decision[js], cs.stopping_time[js]
            for j, v, at in zip(js, verdict, stopped):
                extra = {"tested": int(tested[j]), "stopped_at": int(at if v else tested[j])}
                if v == 1:
                    run.finish(j, Certificate(int(c_hat[j]), float(radius), "certified", 0, p_lower=p0,
                                              stop_reason="lower confidence bound above Phi(r/sigma)", extra=extra))
                elif v == -1:
                    run.finish(j, Certificate(int(c_hat[j]), 0.0, "not certified", 0,
                                              stop_reason="upper confidence bound below Phi(r/sigma)", extra=extra))
                elif tested[j] >= max_samples:
                    run.finish(j, Certificate(int(c_hat[j]), 0.0, "undecided", 0, stop_reason="max_samples reached",
                                              extra=extra))
        else:
            lower = cs.lower[js]
            phat = (succ[js] + 0.5) / (t + 1.0)
            projected = cs.projected_lower(phat, max_samples)
            gain = radius_from_p(np.maximum(projected, lower), sigma) - radius_from_p(lower, sigma)
            reason = np.where(t >= max_samples, "max_samples reached",
                              np.where(cs.upper[js] < 0.5, "p <= 1/2 established",
                                       np.where(gain < tolerance, "radius converged within tolerance", "")))
            for j, low, why in zip(js[reason != ""], lower[reason != ""], reason[reason != ""]):
                r_j = float(radius_from_p(low, sigma)) if low > 0.5 else 0.0
                run.finish(j, Certificate(int(c_hat[j]) if r_j > 0 else ABSTAIN, r_j,
                                          "certified" if r_j > 0 else "abstain", 0, p_lower=float(low),
                                          stop_reason=str(why), extra={"tested": int(tested[j]),
                                                                       "selected": int(c_hat[j])}))
        active = active[run.open(active)]
    return list(run.certs)


def certify_union_bound(streams, items, **options) -> list[Certificate]:
    """Voracek's union-bound confidence sequence (see `certify_confidence_sequence`)."""
    return certify_confidence_sequence(streams, items, kind="union-bound", **options)


def certify_betting(streams, items, **options) -> list[Certificate]:
    """Voracek's betting confidence sequence (see `certify_confidence_sequence`)."""
    return certify_confidence_sequence(streams, items, kind="betting", **options)
