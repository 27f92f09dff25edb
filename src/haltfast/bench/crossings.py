"""An independent check of every row's `stopped_at`: each method's first crossing recomputed from the labels.

Shares nothing with the library's crossing searches (statistics.mixture_test, methods.voracek, methods.horvath): every
E-value or count is evaluated at every sample with scipy, straight from the definitions in docs/statistics.md and
docs/certification.md, and the first sample at which a method's rule holds is read off. `stopped_at_mismatches`
lists the rows whose `stopped_at` differs; zero on the bench's recordings is the target of issue 21
(benchmarks/check_stopped_at.py runs it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special as sc
from scipy.stats import binom
from scipy.stats import norm

NEVER = np.iinfo(np.int64).max


def log_mixture_path(hits: np.ndarray, p0: float, a: float, b: float, truncated: bool = True) -> np.ndarray:
    """log E_t(p0) of the Beta(a, b) mixture after each of the outcomes `hits` (t = 1 .. len), evaluated at every t.

    truncated: the prior restricted to [p0, 1] (haltfast's E-process); else the point-null mixture (Voracek's
    betting wealth with a = b = 1/2). Written from the formula, with scipy's incomplete beta function directly.
    """
    s = np.cumsum(hits, dtype=np.float64)
    t = np.arange(1, hits.size + 1, dtype=np.float64)
    f = t - s
    log_e = sc.betaln(a + s, b + f) - sc.betaln(a, b) - s * math.log(p0) - f * math.log1p(-p0)
    if truncated:
        with np.errstate(divide="ignore"):
            log_e = log_e + np.log(sc.betaincc(a + s, b + f, p0)) - math.log(sc.betaincc(a, b, p0))
    return log_e


def first_true(flags: np.ndarray) -> int:
    """The 1-based sample of the first True, NEVER if none."""
    k = int(np.argmax(flags)) if flags.size else 0
    return k + 1 if flags.size and flags[k] else NEVER


def union_crossing(hits: np.ndarray, p0: float, alpha: float, components, less: bool = False) -> int:
    """First sample at which any component (share w, a, b) of a Bonferroni union reaches 1/(w alpha); `less`:
    the futility test of p >= p0 (misses against 1 - p0, the prior mirrored)."""
    first = NEVER
    for w, a, b in components:
        path = log_mixture_path(~hits if less else hits, 1 - p0 if less else p0, b if less else a, a if less else b)
        first = min(first, first_true(path >= -math.log(alpha * w)))
    return first


@dataclass
class Mismatch:
    """A row whose stopped_at (or decision) the independent computation does not reproduce."""

    index: int
    decision: str
    stopped_at: int
    expected: int | None
    why: str


def check_anytime_rows(
    streams, rows: list[dict], components, alpha: float, sigma: float, *, radius=None, radii=None, n0: int = 0
) -> list[Mismatch]:
    """haltfast's decision and grid rows against first crossings recomputed at every sample.

    components(z)[i]: input i's prior components [(share, a, b), ...] at threshold z = r / sigma (one per prior of a
    union; a predictor's may depend on z); n0: pilot samples
    before the tested stream (selection='pilot'). Decision mode: a certified row's stopped_at is the certification
    union's first crossing (the futility test not earlier); a not-certified row's the futility union's (the
    certification test not at or before it); an undecided row crossed neither by its tested samples. Grid mode: a
    row certified at its c-th radius stopped at the last first crossing of the tests at radii 1..c; a not-certified
    row at the first radius's futility crossing.
    """
    bad: list[Mismatch] = []
    zs = [radius / sigma] if radii is None else [r / sigma for r in radii]
    comps = {z: components(z) for z in zs}
    for i, row in enumerate(rows):
        decision, at, tested = row["decision"], int(row["stopped_at"]), int(row["tested"])
        horizon = at if decision in ("certified", "not certified") else tested
        hits = streams.streams[i][n0 : n0 + horizon] == row["prediction"]
        comp = comps[zs[0]][i]
        report = functools.partial(_report, bad, int(row["index"]), decision, at)

        if radii is None:
            p0 = float(norm.cdf(radius / sigma))
            cert, fut = union_crossing(hits, p0, alpha, comp), union_crossing(hits, p0, alpha, comp, less=True)
            if decision == "certified" and not (cert == at and fut >= at):
                report(cert, f"certification crosses at {cert}, futility at {fut}")
            elif decision == "not certified" and not (fut == at and cert > at):
                report(fut, f"futility crosses at {fut}, certification at {cert}")
            elif decision == "undecided" and min(cert, fut) != NEVER:
                report(min(cert, fut), f"a test crossed within the {tested} samples tested")
            continue
        p = [float(norm.cdf(r / sigma)) for r in radii]
        c = int(row["certified_radii"])
        if decision == "certified":
            firsts = [union_crossing(hits, p[k], alpha, comps[zs[k]][i]) for k in range(c)]
            if max(firsts) != at:
                report(max(firsts), f"the tests at radii 1..{c} cross at {firsts}")
        elif decision == "not certified":
            fut = union_crossing(hits, p[0], alpha, comp, less=True)
            if fut != at:
                report(fut, f"the first radius's futility test crosses at {fut}")
    return bad


def _report(bad: list, index: int, decision: str, at: int, expected, why: str) -> None:
    bad.append(Mismatch(index, decision, at, expected, why))


def betting_thresholds(p0: float, alpha: float) -> tuple[float, float]:
    """Voracek's betting CS in decision mode: (log threshold to certify, to refute), docs/certification.md."""
    c = 1.0 / (2.0 * alpha)
    return math.log(max(c, 1.0 + float(sc.betaincc(0.5, 0.5, p0)) * (1.0 / alpha - 1.0))), math.log(c)


def voracek_checkpoints(n: int, gamma: float = 1.1, k_init: int = 11) -> list[int]:
    """The union-bound CS's checkpoints up to n, as Voracek's loop finds them (sample i is one when i > gamma^k,
    and k then moves on)."""
    out, k = [], k_init
    for i in range(1, n + 1):
        if i > gamma**k:
            k += 1
            out.append(i)
    return out


def union_bound_need(p0: float, alpha: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample i = 1..n: the successes, and the failures, whose checkpoint outcome is fixed at i (Voracek's
    thresholds: binomial quantiles at 5 alpha / ((j+4)(j+5)) at checkpoint j, the smallest over the checkpoints at or
    after i); n + 1 where none can."""
    times = np.array(voracek_checkpoints(n), dtype=np.int64)
    j = np.arange(1, times.size + 1)
    level = 5 * alpha / ((j + 4) * (j + 5))
    up = binom.ppf(1 - level, times, p0) + 1
    down = binom.ppf(1 - level, times, 1 - p0) + 1
    need_up = np.full(n + 2, n + 1.0)
    need_down = np.full(n + 2, n + 1.0)
    need_up[times] = np.where(up <= times, up, n + 1)
    need_down[times] = np.where(down <= times, down, n + 1)
    # the smallest over the checkpoints at or after each sample
    return np.minimum.accumulate(need_up[::-1])[::-1][1 : n + 1], np.minimum.accumulate(need_down[::-1])[::-1][
        1 : n + 1
    ]


def check_baseline_rows(streams, rows: list[dict], method: str, alpha: float, sigma: float, radius: float, cap: int):
    """Decision-mode rows of Voracek's betting and union-bound CS and of Horvath et al. against their rules
    recomputed at every sample (clean selection: the tested stream starts at the recording's start)."""
    p0 = float(norm.cdf(radius / sigma))
    need_up = need_down = None
    if method == "union-bound":
        need_up, need_down = union_bound_need(p0, alpha, cap)
    bad: list[Mismatch] = []
    for i, row in enumerate(rows):
        decision, at, tested = row["decision"], int(row["stopped_at"]), int(row["tested"])
        hits = streams.streams[i][:tested] == row["prediction"]
        s = np.cumsum(hits)
        t = np.arange(1, hits.size + 1)
        if method == "betting":
            log_up, log_down = betting_thresholds(p0, alpha)
            path = log_mixture_path(hits, p0, 0.5, 0.5, truncated=False)
            certify = first_true((path >= log_up) & (s >= p0 * t))
            refute = first_true((path >= log_down) & (s <= p0 * t))
        elif method == "union-bound":
            assert need_up is not None and need_down is not None
            refute = first_true(t - s >= need_down[: t.size])
            certify = first_true((s >= need_up[: t.size]) & (t < refute))
        else:
            certify, refute = horvath_fixed(hits, p0, alpha, cap)
        first = min(certify, refute)
        expected = {"certified": certify, "not certified": refute}.get(decision, NEVER)
        if decision in ("certified", "not certified") and not (expected == at == first):
            bad.append(Mismatch(int(row["index"]), decision, at, expected, f"certify {certify}, refute {refute}"))
        elif decision == "undecided" and first <= tested and method != "horvath":
            bad.append(Mismatch(int(row["index"]), decision, at, first, "decided within the samples tested"))
    return bad


def horvath_fixed(hits: np.ndarray, p0: float, alpha: float, cap: int, beta: float = 1e-4) -> tuple[int, int]:
    """Horvath et al.'s stages (1,000, 10,000, 125,000 fresh samples, cut to cap): (the sample at which a stage's
    certification is fixed, the sample at which its refutation is fixed), NEVER where none. A stage certifies when
    its one-sided Clopper-Pearson lower bound at alpha/3 reaches p0 and refutes (not the last) when its upper bound
    at beta/2 falls below p0; its outcome is fixed once its successes reach the certifying count, or once even all
    hits to its end would stay at or below the refuting one."""
    sizes = np.diff(np.minimum(np.cumsum([0, 1000, 10000, 125000]), cap))
    sizes = sizes[sizes > 0]
    offset = 0
    for k, n in enumerate(sizes):
        x = hits[offset : offset + n]
        counts = np.arange(n + 1)
        lower = sc.betaincinv(np.maximum(counts, 1), n - counts + 1.0, alpha / len(sizes))
        cmin = int(np.argmax((lower >= p0) & (counts > 0))) if np.any((lower >= p0) & (counts > 0)) else n + 1
        fmax = -1
        if k < len(sizes) - 1:
            upper = 1.0 - sc.betaincinv(np.maximum(n - counts, 1), counts + 1.0, beta / (len(sizes) - 1))
            upper = np.where(counts >= n, 1.0, upper)
            fmax = int(np.sum(upper < p0)) - 1
        s = np.cumsum(x)
        left = n - np.arange(1, x.size + 1)
        certify = first_true(s >= cmin)
        refute = first_true(s + left <= fmax)
        if min(certify, refute) != NEVER:
            return (offset + certify if certify <= refute else NEVER), (offset + refute if refute < certify else NEVER)
        offset += n
        if x.size < n:
            break
    return NEVER, NEVER
