"""Certification procedures on label streams (live or recorded) and the certificates they return."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
from scipy.stats import binomtest, norm

from .errors import HaltfastError
from .meta import MetaLearner
from .statistics import clopper_pearson_lower

ABSTAIN = -1
DECISIONS = ("certified", "not certified", "undecided", "abstain", "error")
MAX_CHUNK = 2 ** 20  # most samples one input draws at once, so budgets of 10^8 and more fit in memory
ROUND_SAMPLES = 2 ** 21  # most samples one round of certify_anytime draws; other inputs wait for the next round


@dataclass
class Certificate:
    """One input's result. Unpacks as (prediction, radius), like Cohen et al.'s certify.

    `evaluations` counts every model evaluation spent on this input (class
    selection included). With probability >= 1 - alpha, a certificate with
    decision "certified" is correct: the smoothed classifier predicts
    `prediction` everywhere within L2 distance `radius` of the input.
    """

    prediction: int
    radius: float
    decision: str
    evaluations: int
    p_lower: float = 0.0
    log_evalue: float = float("nan")
    stop_reason: str = ""
    seconds: float = 0.0
    index: int = -1
    label: int | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator:
        yield self.prediction
        yield self.radius

    @property
    def correct(self) -> bool | None:
        return None if self.label is None else bool(self.prediction == self.label)

    def row(self) -> dict:
        """A flat dict for CSV/JSON output."""
        d = asdict(self)
        extra = d.pop("extra")
        front = {"index": d.pop("index"), "label": d.pop("label"), "prediction": d.pop("prediction"),
                 "correct": self.correct}
        return {**front, **d, **extra}

    @classmethod
    def from_row(cls, row: dict) -> "Certificate":
        """The certificate a `row()` dict describes (the inverse of `row`, e.g. for rows read back from a journal)."""
        row = dict(row)
        row.pop("correct", None)
        names = set(cls.__dataclass_fields__) - {"extra"}
        fields = {k: row.pop(k) for k in list(row) if k in names}
        return cls(**fields, extra=row)


def validate_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise HaltfastError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return float(alpha)


def validate_count(name: str, value: int) -> int:
    if int(value) != value or int(value) < 1:
        raise HaltfastError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def validate_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise HaltfastError(f"tolerance must be a number >= 0, got {tolerance}")
    return float(tolerance)


def radius_from_p(p_lower: np.ndarray | float, sigma: float) -> np.ndarray | float:
    """Certified L2 radius sigma * Phi^-1(p_lower) (Cohen et al. 2019), 0 where p_lower <= 1/2."""
    p = np.asarray(p_lower, dtype=float)
    r = sigma * norm.ppf(np.clip(p, 0.5, 1.0))
    return float(r) if r.ndim == 0 else r


def p_for_radius(radius: float, sigma: float) -> float:
    """The smallest top-class probability that certifies `radius`: Phi(radius / sigma)."""
    return float(norm.cdf(radius / sigma))


def cohen_certify(streams, items, n0: int, n: int, alpha: float, sigma: float,
                  labels=None, indices=None, progress=None, on_result=None) -> list[Certificate]:
    """Cohen et al.'s CERTIFY: n0 samples choose the class, n fresh samples give a one-sided Clopper-Pearson bound.

    The n samples are drawn and counted in pieces of at most MAX_CHUNK, so any n fits in memory.
    """
    n0, n = validate_count("n0", n0), validate_count("n", n)
    alpha = validate_alpha(alpha)
    certs = []
    for j, item in enumerate(items):
        start = time.perf_counter()
        drawn, errors = streams.draw([item], [n0])
        k = 0
        if drawn[0] is not None:
            c_hat = int(np.bincount(drawn[0], minlength=streams.num_classes).argmax())
            for lo in range(0, n, MAX_CHUNK):
                drawn, errors = streams.draw([item], [min(MAX_CHUNK, n - lo)])
                if drawn[0] is None:
                    break
                k += int(np.count_nonzero(drawn[0] == c_hat))
        if drawn[0] is None:
            cert = Certificate(ABSTAIN, 0.0, "error", int(streams.positions[item]), stop_reason="model error",
                               error=errors[item])
        else:
            p_low = float(clopper_pearson_lower(k, n, alpha))
            if p_low < 0.5:
                cert = Certificate(ABSTAIN, 0.0, "abstain", n0 + n, p_lower=p_low, stop_reason="budget spent")
            else:
                cert = Certificate(c_hat, float(radius_from_p(p_low, sigma)), "certified", n0 + n, p_lower=p_low,
                                   stop_reason="budget spent")
        cert.seconds = time.perf_counter() - start
        cert.index = int(indices[j]) if indices is not None else int(item)
        cert.label = None if labels is None else int(labels[j])
        certs.append(cert)
        if on_result is not None:
            on_result(cert)
        if progress is not None:
            progress(1, cert.evaluations)
    return certs


def cohen_predict(streams, item: int, n: int, alpha: float) -> int:
    """Cohen et al.'s PREDICT: the top class if a two-sided binomial test against the runner-up passes, else ABSTAIN."""
    n, alpha = validate_count("n", n), validate_alpha(alpha)
    drawn, errors = streams.draw([item], [n])
    if drawn[0] is None:
        raise HaltfastError(f"base classifier failed: {errors[item]}")
    counts = np.bincount(drawn[0], minlength=streams.num_classes)
    top2 = counts.argsort()[::-1][:2]
    n_a, n_b = int(counts[top2[0]]), int(counts[top2[1]])
    if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(top2[0])


def summarize(certs: list[Certificate], radii=(0.0, 0.25, 0.5, 0.75, 1.0), seconds: float | None = None) -> dict:
    """Certified accuracy on a radius grid, average certified radius, abstain rate, evaluations per input."""
    if not certs:
        return {"inputs": 0}
    radius = np.array([c.radius if c.decision == "certified" else 0.0 for c in certs])
    certified = np.array([c.decision == "certified" for c in certs])
    correct = np.array([bool(c.correct) for c in certs])
    evals = np.array([c.evaluations for c in certs], dtype=float)
    out = {
        "inputs": len(certs),
        "certified_accuracy": {f"{r:g}": float(np.mean(certified & correct & (radius >= r))) for r in radii},
        "average_certified_radius": float(np.mean(np.where(certified & correct, radius, 0.0))),
        "abstain_rate": float(np.mean([c.decision == "abstain" for c in certs])),
        "errors": int(sum(c.decision == "error" for c in certs)),
        "mean_evaluations": float(evals.mean()),
        "median_evaluations": float(np.median(evals)),
        "total_evaluations": int(evals.sum()),
    }
    decisions = {d: int(sum(c.decision == d for c in certs)) for d in DECISIONS}
    out["decisions"] = {d: k for d, k in decisions.items() if k}
    if seconds:
        out["seconds"] = seconds
        out["evaluations_per_second"] = float(evals.sum() / seconds)
    return out


def format_summary(summary: dict) -> str:
    if not summary.get("inputs"):
        return "no inputs"
    acc = summary["certified_accuracy"]
    decision_mode = summary.get("options", {}).get("radius") is not None
    # in decision mode a certificate's radius is the required one, so an average radius would say nothing
    radius_line = ("decision mode: each certificate is at the required radius" if decision_mode else
                   f"average certified radius: {summary['average_certified_radius']:.4f}")
    lines = [
        f"inputs: {summary['inputs']}   decisions: " + ", ".join(f"{k} {v}" for k, v in summary["decisions"].items()),
        "certified accuracy at radius " + "  ".join(f"r={r}: {v:.3f}" for r, v in acc.items()),
        f"{radius_line}   abstain rate: {summary['abstain_rate']:.3f}",
        f"model evaluations per input: mean {summary['mean_evaluations']:,.0f}, median "
        f"{summary['median_evaluations']:,.0f}  (total {summary['total_evaluations']:,})",
    ]
    if "seconds" in summary:
        lines.append(f"time: {summary['seconds']:.1f} s, {summary['evaluations_per_second']:,.0f} evaluations/s"
                     + (" (this run)" if summary.get("resumed") else ""))
    if summary.get("resumed"):
        lines.append(f"resumed: {summary['resumed']} inputs were finished by an earlier run (read from the journal)")
    return "\n".join(lines)


def max_certifiable_radius(max_samples: int, alpha: float, sigma: float) -> float:
    """Largest radius n samples can certify if every one hits: sigma * Phi^-1(alpha^(1/n)) (Clopper-Pearson)."""
    return float(sigma * norm.ppf(math.exp(math.log(alpha) / max_samples)))


def check_radius(radius: float, max_samples: int, alpha: float, sigma: float) -> None:
    """Raise a HaltfastError unless `radius` is finite, >= 0 and certifiable with max_samples samples."""
    if not (isinstance(radius, (int, float)) and np.isfinite(radius) and radius >= 0):
        raise HaltfastError(f"radius must be a finite number >= 0, got {radius}")
    r_max = max_certifiable_radius(max_samples, alpha, sigma)
    if radius >= r_max:
        log_p = float(norm.logcdf(radius / sigma))
        need_n = math.log(alpha) / log_p if log_p < 0 else math.inf
        need = f"max_samples >= {math.ceil(need_n):,}" if need_n < 1e12 else "more than 10^12 samples"
        raise HaltfastError(f"radius {radius:g} can never be certified with max_samples={max_samples:,} at "
                            f"alpha={alpha:g} and sigma={sigma:g}: even if every sample hits, the largest "
                            f"certifiable radius is {r_max:.4f}; it needs {need}")


# ---------------------------------------------------------------------------------------------
# Anytime certification: E-process decisions at a required radius, confidence-sequence radii
# ---------------------------------------------------------------------------------------------

NAMED_PRIORS = {"jeffreys": (0.5, 0.5), "uniform": (1.0, 1.0)}
SELECTIONS = ("pilot", "clean")
_CHUNK_STEP = 2 ** 0.25  # chunk sizes come from a geometric grid so each round has few distinct sizes


def resolve_prior(prior, pilot_hits: np.ndarray | None, pilot_size: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Beta(a, b) parameters per input, all fixed before that input's tested stream starts.

    'jeffreys' = Beta(1/2, 1/2), 'uniform' = Beta(1, 1), 'pilot' = the Jeffreys posterior
    after the selection pilot (its samples are never tested again, so this stays valid),
    or explicit (a, b) / an (n, 2) array. Any such prior keeps every certificate valid.
    """
    if isinstance(prior, str):
        if prior in NAMED_PRIORS:
            a, b = NAMED_PRIORS[prior]
            return np.full(n_items, a), np.full(n_items, b)
        if prior == "pilot":
            if pilot_hits is None:
                raise HaltfastError("prior 'pilot' needs pilot samples: use selection='pilot' with n0 >= 1")
            return 0.5 + pilot_hits.astype(float), 0.5 + (pilot_size - pilot_hits).astype(float)
        if prior == "meta":
            raise HaltfastError("prior 'meta' needs the model's meta-learner: pass prior=MetaLearner.load(path, "
                                "weights_sha256) (the CLI finds <model>.meta.json beside the weights)")
        raise HaltfastError(f"unknown prior {prior!r}; choose one of {', '.join([*NAMED_PRIORS, 'pilot'])}, "
                            f"a MetaLearner, or give (a, b)")
    arr = np.asarray(prior, dtype=float)
    if arr.shape == (2,):
        arr = np.broadcast_to(arr, (n_items, 2))
    if arr.shape != (n_items, 2) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise HaltfastError(f"prior must be a name, (a, b) with a, b > 0, or an array of shape ({n_items}, 2)")
    return arr[:, 0].copy(), arr[:, 1].copy()


def _chunk_grid(size: np.ndarray, min_chunk: int) -> np.ndarray:
    """Round sizes down onto min_chunk * 2^(k/4), and to at most MAX_CHUNK (one input's chunk stays in memory)."""
    size = np.minimum(np.maximum(size, min_chunk), max(MAX_CHUNK, min_chunk))
    k = np.floor(np.log(size / min_chunk) / np.log(_CHUNK_STEP) + 1e-9)
    return np.floor(min_chunk * _CHUNK_STEP ** k).astype(np.int64)


class _Run:
    """Per-input bookkeeping: certificates, time and every model evaluation charged to each input."""

    def __init__(self, streams, items, labels, indices, progress, on_result=None):
        self.streams, self.items = streams, list(items)
        self.n = len(self.items)
        self.labels, self.indices, self.progress, self.on_result = labels, indices, progress, on_result
        self.certs: list[Certificate | None] = [None] * self.n
        self.spent = np.zeros(self.n)
        self.extra_evals = np.zeros(self.n, dtype=np.int64)

    def open(self, js: np.ndarray) -> np.ndarray:
        return np.array([self.certs[j] is None for j in js], dtype=bool)

    def finish(self, j: int, cert: Certificate) -> None:
        cert.evaluations = int(self.streams.positions[self.items[j]] + self.extra_evals[j])
        cert.seconds = float(self.spent[j])
        cert.index = int(self.indices[j]) if self.indices is not None else int(self.items[j])
        cert.label = None if self.labels is None else int(self.labels[j])
        self.certs[j] = cert
        if hasattr(self.streams, "forget"):  # live streams hold a finished input's noise until told
            self.streams.forget([self.items[j]])
        if self.on_result is not None:
            self.on_result(cert)
        if self.progress is not None:
            self.progress(1, cert.evaluations)

    def fail(self, j: int, message: str) -> None:
        self.finish(j, Certificate(ABSTAIN, 0.0, "error", 0, stop_reason="model error", error=message))

    def draw(self, js: np.ndarray, counts: np.ndarray) -> list:
        """Draw for inputs js in shared model batches, charging each its share of the time by samples drawn."""
        start = time.perf_counter()
        out, errors = self.streams.draw([self.items[j] for j in js], counts)
        self.spent[js] += (time.perf_counter() - start) * np.asarray(counts) / max(int(np.sum(counts)), 1)
        for j in js:
            if self.items[j] in errors:
                self.fail(j, errors[self.items[j]])
        return out

    def admit(self, pending: list, active: np.ndarray, max_active: int) -> np.ndarray:
        """The active inputs topped up to max_active from the end of `pending` (which it pops)."""
        if pending and active.size < max_active:
            admit = [pending.pop() for _ in range(min(max_active - active.size, len(pending)))]
            active = np.concatenate([active, np.array(admit, dtype=np.int64)])
        return active

    def draw_hits(self, js: np.ndarray, size: np.ndarray, c_hat: np.ndarray) -> tuple[np.ndarray, list]:
        """Draw size[i] samples for input js[i] in shared batches: (open mask, [(inputs, hits (k, m) bool)]).

        One group per chunk size, for the inputs whose draw did not fail.
        """
        out = self.draw(js, size)
        alive = self.open(js)
        groups = []
        for m in np.unique(size[alive]):
            rows = np.nonzero(alive & (size == m))[0]
            groups.append((js[rows], np.stack([out[r] for r in rows]) == c_hat[js[rows]][:, None]))
        return alive, groups

    def select(self, selection: str, n0: int, window: int,
               with_logits: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Class selection on samples that are never tested: a pilot of n0 noisy samples, or the clean prediction.

        with_logits: also the clean logits (features of a meta-learner), one evaluation that
        the clean selection shares.
        """
        c_hat = np.full(self.n, ABSTAIN, dtype=np.int64)
        hits = np.zeros(self.n, dtype=np.int64)
        logits = np.zeros((self.n, self.streams.num_classes)) if with_logits else None
        for lo in range(0, self.n, window):
            js = np.arange(lo, min(lo + window, self.n))
            if selection == "pilot":
                for j, labels in zip(js, self.draw(js, np.full(len(js), n0))):
                    if labels is not None:
                        counts = np.bincount(labels, minlength=self.streams.num_classes)
                        c_hat[j], hits[j] = counts.argmax(), counts.max()
            if selection == "clean" or with_logits:
                start = time.perf_counter()
                items = [self.items[j] for j in js]
                out, errors = self.streams.clean_logits(items) if with_logits else self.streams.clean(items)
                self.spent[js] += (time.perf_counter() - start) / len(js)
                self.extra_evals[js] += 1
                for k, j in enumerate(js):
                    if self.items[j] in errors:
                        if self.certs[j] is None:
                            self.fail(j, errors[self.items[j]])
                        continue
                    if with_logits:
                        logits[j] = out[k]
                    if selection == "clean":
                        c_hat[j] = out[k].argmax() if with_logits else out[k]
        return c_hat, hits, logits


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

    `prior` (Beta(a, b) of both tests and of the confidence sequence) may be a
    name, (a, b), an (n, 2) array, or a MetaLearner, which predicts each input's
    prior from its clean logits (one evaluation, shared with clean selection).
    Each input's certificate depends only on its own stream (chunk sizes follow its
    own state), never on which inputs share the run, max_active or batch sizes.
    `on_result(cert)` is called as each input finishes (e.g. to journal it).
    """
    from .statistics import (ConfidenceSequence, UnionConfidenceSequence, beta_mixture_lower_bound,
                             hedged_mixture_test)

    alpha = validate_alpha(alpha)
    futility_alpha = alpha if futility_alpha is None else validate_alpha(futility_alpha)
    max_samples = validate_count("max_samples", max_samples)
    if selection not in SELECTIONS:
        raise HaltfastError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    if selection == "pilot":
        n0 = validate_count("n0", n0)
    tolerance = validate_tolerance(tolerance)
    if isinstance(prior, str):
        resolve_prior(prior, np.zeros(0) if selection == "pilot" else None, 0, 0)  # a bad name fails up front
    if radius is not None:
        check_radius(radius, max_samples, alpha, sigma)

    run = _Run(streams, items, labels, indices, progress, on_result)
    n = run.n
    if n == 0:
        return []
    learned = isinstance(prior, MetaLearner)
    c_hat, hits, logits = run.select(selection, n0, max_active, with_logits=learned)
    hedge = None
    if learned:  # hedged: a learned prior that is wrong can cost little, never validity
        a, b = prior.prior(logits, radius)
        hedge = prior.hedge_for(radius)
    else:
        a, b = resolve_prior(prior, hits if selection == "pilot" else None, n0, n)
    # (share of alpha, a, b) of each component; a hedge adds Jeffreys at the rest of alpha
    parts = [(1.0, a, b)] if hedge is None else [(hedge, a, b), (1.0 - hedge, np.full(n, 0.5), np.full(n, 0.5))]
    p0 = p_for_radius(radius, sigma) if radius is not None else 0.5
    cert_test = hedged_mixture_test(p0, alpha, a, b, n, hedge=hedge)
    fut_test = hedged_mixture_test(p0, futility_alpha, a, b, n, alternative="less", hedge=hedge)
    lower_cs = UnionConfidenceSequence([ConfidenceSequence(alpha * w, pa, pb, n_streams=n, side="lower")
                                        for w, pa, pb in parts])
    succ = np.zeros(n, dtype=np.int64)  # tested stream counts (the tests freeze theirs when they reject)
    tested = np.zeros(n, dtype=np.int64)
    log_q, log_q_fut = -math.log(p0), -math.log1p(-p0)
    pending = [j for j in range(n) if run.certs[j] is None][::-1]
    active = np.zeros(0, dtype=np.int64)

    while pending or active.size:
        active = run.admit(pending, active, max_active)
        t = tested[active]
        if radius is not None:
            phat = (succ[active] + 0.5) / (t + 1.0)
            # fewest samples that could still reach each threshold: an informed, waste-free chunk size
            need_cert = (cert_test.threshold[active] - cert_test.log_evalue[active]) / log_q
            need_fut = (fut_test.threshold[active] - fut_test.log_evalue[active]) / log_q_fut
            base = np.ceil(np.where(phat > p0, need_cert, need_fut))
        else:
            base = np.zeros(active.size)
        size = _chunk_grid(np.maximum(base, np.ceil(growth * t)), min_chunk)
        size = np.minimum(size, max_samples - t).astype(np.int64)
        # a round draws at most ROUND_SAMPLES (or one chunk); the others wait, which changes no input's result
        take = np.cumsum(size) <= max(ROUND_SAMPLES, int(size[0]))
        batch, size = active[take], size[take]
        active = np.concatenate([active[~take], batch])
        alive, groups = run.draw_hits(batch, size, c_hat)
        for group, x in groups:
            succ[group] += x.sum(axis=1)
            tested[group] += x.shape[1]
            if radius is not None:
                cert_test.update(x, group)
            else:
                lower_cs.update(x, group)
            fut_test.update(x, group)
        js = batch[alive]
        t = tested[js]
        if radius is not None:
            certified = cert_test.rejected[js] & (~fut_test.rejected[js] |
                                                  (cert_test.stopping_time[js] <= fut_test.stopping_time[js]))
            futile = fut_test.rejected[js] & ~certified
            spent = ~certified & ~futile & (t >= max_samples)
            for j in js[certified]:
                run.finish(j, Certificate(int(c_hat[j]), float(radius), "certified", 0, p_lower=p0,
                                          log_evalue=float(cert_test.log_evalue[j]),
                                          stop_reason="e-value reached 1/alpha",
                                          extra={"tested": int(tested[j]), "stopped_at": int(cert_test.trials[j])}))
            for j in js[futile]:
                run.finish(j, Certificate(int(c_hat[j]), 0.0, "not certified", 0,
                                          log_evalue=float(cert_test.log_evalue[j]),
                                          stop_reason="upper confidence bound below Phi(r/sigma)",
                                          extra={"tested": int(tested[j]), "stopped_at": int(fut_test.trials[j])}))
            for j in js[spent]:
                run.finish(j, Certificate(int(c_hat[j]), 0.0, "undecided", 0, log_evalue=float(cert_test.log_evalue[j]),
                                          stop_reason="max_samples reached",
                                          extra={"tested": int(tested[j]), "stopped_at": int(tested[j])}))
        else:
            lower = lower_cs.lower
            phat = (succ[js] + 0.5) / (t + 1.0)
            projected = np.max([beta_mixture_lower_bound(np.round(phat * max_samples), np.full(js.size, max_samples),
                                                         alpha * w, pa[js], pb[js]) for w, pa, pb in parts], axis=0)
            gain = radius_from_p(np.maximum(projected, lower[js]), sigma) - radius_from_p(lower[js], sigma)
            reason = np.where(t >= max_samples, "max_samples reached",
                              np.where(fut_test.rejected[js], "p <= 1/2 established",
                                       np.where(gain < tolerance, "radius converged within tolerance", "")))
            for j, why in zip(js[reason != ""], reason[reason != ""]):
                r_j = float(radius_from_p(lower[j], sigma)) if lower[j] > 0.5 else 0.0
                run.finish(j, Certificate(int(c_hat[j]) if r_j > 0 else ABSTAIN, r_j,
                                          "certified" if r_j > 0 else "abstain", 0, p_lower=float(lower[j]),
                                          stop_reason=str(why), extra={"tested": int(tested[j]), "selected": int(c_hat[j])}))
        active = active[run.open(active)]
    return list(run.certs)
