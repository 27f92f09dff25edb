"""Heavy validation and performance sweeps for haltfast.statistics.

Writes markdown tables to stdout (and to --out FILE when given):

1. exact type-I error (forward recursion, no Monte Carlo) of the beta-mixture test under continuous
   monitoring, for adversarial priors, p = p0 and p < p0, alpha in {0.05, 0.01}, long horizons, next to
   the invalid "monitor Clopper-Pearson every step" rule (negative control);
2. simulated false-rejection rates of BetaMixtureTest (adversarial priors, the 'less' side),
   confidence-sequence coverage (beta mixture, union bound) and
   Horvath's adaptive sampling, fed in batches exactly as a certifier would;
3. mean stopping time against Wald's limit for p in {0.999, 0.995, 0.99, 0.985}, p0 = Phi(2),
   alpha = 0.001 (Jeffreys, correct and wrong priors, union bound, Horvath, the SPRT);
4. throughput of the tests on one core.

Usage:  python benchmarks/bench_statistics.py [--quick] [--out docs/statistics.md] [--seed N]
With --out, a file that contains the markers <!-- BENCHMARK:BEGIN --> and <!-- BENCHMARK:END --> has
only the text between them replaced; any other file is overwritten.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time

import numpy as np
import scipy
from scipy import stats

try:
    from haltfast import statistics as hs
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from haltfast import statistics as hs
from haltfast import validation as hv
from haltfast.methods import horvath
from haltfast.methods import voracek

P0_R2 = float(stats.norm.cdf(2.0))


class Report:
    def __init__(self):
        self.buf = io.StringIO()

    def __call__(self, line=""):
        print(line, flush=True)
        self.buf.write(line + "\n")


def binom_ci(k, n, level=0.95):
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return ci.low, ci.high


def fmt_rate(k, n):
    lo, hi = binom_ci(k, n)
    return f"{k / n:.4f} [{lo:.4f}, {hi:.4f}]"


# ----------------------------------------------------------------------------------------------
# 1. exact error rates
# ----------------------------------------------------------------------------------------------

PRIORS = {
    "Jeffreys Beta(1/2,1/2)": (0.5, 0.5),
    "uniform Beta(1,1)": (1.0, 1.0),
    "mass near 1 Beta(1000,1)": (1000.0, 1.0),
    "mass near p0 Beta(900,100)": (900.0, 100.0),
    "mass near 0 Beta(1,1000)": (1.0, 1000.0),
    "very strong Beta(1e4,1e4)": (1e4, 1e4),
    "very weak Beta(1e-3,1e-3)": (1e-3, 1e-3),
}


def exact_section(rep, quick):
    horizon = 20_000 if quick else 100_000
    p0 = 0.9
    rep("## 1. Exact type-I error under continuous monitoring (forward recursion)")
    rep("")
    rep(
        f"H0: p <= p0 = {p0}, monitored after every sample up to t = {horizon:,}. The probability that the "
        "test ever rejects, computed exactly by a forward recursion over the number of successes "
        "(mass pruned in the far lower tail is below 1e-9 in every row and only lowers the figure). "
        "Ville's inequality says every beta-mixture row is <= alpha, for every prior."
    )
    rep("")
    rep("| rule | alpha | P(reject) at p = p0 | at p = 0.89 | at p = 0.85 |")
    rep("|---|---|---|---|---|")
    t = np.arange(1, horizon + 1)
    worst = 0.0
    for alpha in (0.05, 0.01):
        rows = [(name, hv.beta_mixture_boundary(t, p0, alpha, a, b)) for name, (a, b) in PRIORS.items()]
        rows.append(
            (
                "Clopper-Pearson checked every step (invalid, negative control)",
                hv.clopper_pearson_boundary(t, p0, alpha),
            )
        )
        for name, bnd in rows:
            vals = []
            for p in (p0, 0.89, 0.85):
                pr, dropped = hv.boundary_crossing_probability(bnd, p)
                assert dropped < 1e-9
                vals.append(pr)
                if "Clopper" not in name:
                    worst = max(worst, pr / alpha)
            rep(f"| {name} | {alpha} | {vals[0]:.5f} | {vals[1]:.5f} | {vals[2]:.5f} |")
    rep("")
    rep(f"Largest beta-mixture P(reject)/alpha over all rows: {worst:.3f} (must be <= 1).")
    rep("")
    return worst


# ----------------------------------------------------------------------------------------------
# 2. simulated validity of the stateful classes
# ----------------------------------------------------------------------------------------------


def simulate_rejections(make, p, n, horizon, rng, batch=1000):
    test = make(n)
    for start in range(0, horizon, batch):
        m = min(batch, horizon - start)
        live = np.nonzero(~test.rejected)[0]
        if live.size == 0:
            break
        test.update(rng.random((live.size, m), dtype=np.float32) < p, streams=live)
    return int(test.rejected.sum())


def simulation_section(rep, quick, rng):
    n = 4000 if quick else 8_000
    horizon = 5_000 if quick else 10_000
    p0 = 0.9
    rep("## 2. Simulated false-rejection rates and coverage of the stateful classes")
    rep("")
    rep(
        f"{n:,} streams per row, horizon {horizon:,}, fed in batches of 1,000 (optional stopping: a "
        "stream counts as a false rejection if the test ever rejects). 95% Clopper-Pearson interval "
        "in brackets; a row passes if the interval's lower end is <= alpha."
    )
    rep("")
    rep("| test | truth | alpha | false rejections | pass |")
    rep("|---|---|---|---|---|")
    fails = 0

    def row(label, truth, alpha, k, nn):
        nonlocal fails
        lo, _ = binom_ci(k, nn)
        ok = lo <= alpha
        fails += not ok
        rep(f"| {label} | {truth} | {alpha} | {fmt_rate(k, nn)} | {'yes' if ok else 'NO'} |")

    for alpha in (0.05, 0.01):
        for name, (a, b) in PRIORS.items():
            if alpha == 0.01 and name not in (
                "Jeffreys Beta(1/2,1/2)",
                "mass near 1 Beta(1000,1)",
                "very weak Beta(1e-3,1e-3)",
            ):
                continue
            for p in (p0, 0.88) if alpha == 0.05 and name.startswith("Jeffreys") else (p0,):
                k = simulate_rejections(
                    lambda nn: hs.BetaMixtureTest(p0, alpha, a, b, n_streams=nn), p, n, horizon, rng
                )
                row(f"BetaMixtureTest, {name}", f"p = {p}", alpha, k, n)
        k = simulate_rejections(
            lambda nn: hs.BetaMixtureTest(p0, alpha, n_streams=nn, alternative="less"), p0, n, horizon, rng
        )
        row("BetaMixtureTest alternative='less' (futility side), Jeffreys", f"p = {p0}", alpha, k, n)

    # confidence sequences: coverage over time
    n_cs = 1000 if quick else 1500
    h_cs = 2000 if quick else 5_000
    for p in (0.9, 0.995):
        for cls, label in (
            (hs.ConfidenceSequence, "ConfidenceSequence (Jeffreys), two-sided"),
            (voracek.UnionBoundConfidenceSequence, "UnionBoundConfidenceSequence, two-sided"),
        ):
            cs = cls(0.05, n_streams=n_cs)
            miss = np.zeros(n_cs, dtype=bool)
            for _ in range(h_cs // 100):
                cs.update(rng.random((n_cs, 100), dtype=np.float32) < p)
                miss |= (cs.lower > p) | (cs.upper < p)
            row(f"{label}, miscoverage at any of the {h_cs // 100} batch ends", f"p = {p}", 0.05, int(miss.sum()), n_cs)
    # Horvath adaptive sampling at p = p0
    nh = 20_000 if quick else 50_000
    dec = np.empty(0, dtype=np.int64)
    for _start in range(0, nh, 5000):
        d, _ = horvath.horvath_adaptive_test(
            rng.random((5000, 11_000), dtype=np.float32) < 0.9, 0.9, 0.05, 0.01, stages=(1000, 10000)
        )
        dec = np.concatenate([dec, d])
    row("Horvath adaptive sampling, stages (1000, 10000)", "p = 0.9", 0.05, int((dec == 1).sum()), nh)
    rep("")
    rep(f"Rows failing: {fails}.")
    rep("")
    return fails


# ----------------------------------------------------------------------------------------------
# 3. stopping time against Wald's limit
# ----------------------------------------------------------------------------------------------


def stopping_times(make, p, n, horizon, rng):
    test = make(n)
    tau = np.full(n, -1, dtype=np.int64)
    active = np.arange(n)
    t = 0
    while active.size and t < horizon:
        batch = int(min(8192, max(512, t // 2), horizon - t))
        r = test.update(rng.random((active.size, batch), dtype=np.float32) < p, streams=active)
        done = r >= 0
        tau[active[done]] = t + r[done] + 1
        active = active[~done]
        t += batch
    tau[tau < 0] = horizon
    return tau, active.size


def union_bound_times(p, p0, alpha, n, horizon, rng):
    times, shares = voracek.union_bound_checkpoints(horizon)
    need = hv.clopper_pearson_boundary(times, p0, alpha * shares)
    tau = np.full(n, horizon, dtype=np.int64)
    for s in range(0, n, 250):
        k = min(250, n - s)
        ones = np.cumsum(rng.random((k, horizon), dtype=np.float32) < p, axis=1, dtype=np.int32)
        hit = ones[:, times - 1] >= need
        anyh = hit.any(axis=1)
        tau[s : s + k] = np.where(anyh, times[hit.argmax(axis=1)], horizon)
    return tau


def sprt_times(p, p0, alpha, n, horizon, rng):
    tau = np.full(n, horizon, dtype=np.int64)
    for s in range(0, n, 250):
        k = min(250, n - s)
        _dec, used = hv.sprt_stopping_time(rng.random((k, horizon), dtype=np.float32) < p, p, p0, alpha)
        tau[s : s + k] = used
    return tau


def beta_prior(center, strength):
    return center * strength, (1.0 - center) * strength


def stopping_section(rep, quick, rng):
    n = 500 if quick else 2000
    horizon = 60_000 if quick else 200_000
    p0, alpha = P0_R2, 0.001
    ps = (0.999, 0.995, 0.99, 0.985)
    rep("## 3. Mean stopping time against Wald's limit")
    rep("")
    rep(
        f"p0 = Phi(2) = {p0:.6f}, alpha = 0.001, {n:,} simulated streams per cell, censored at "
        f"{horizon:,} samples (none were unless marked). Cells: mean samples to certify, "
        "(ratio to Wald's lower bound log(1/alpha)/KL(p||p0)). 'strength' is a + b of the Beta prior."
    )
    rep("")
    wald = {p: float(hs.wald_expected_samples(p, p0, alpha)) for p in ps}
    methods = [
        ("SPRT with the true p known (optimal)", None),
        ("Beta mixture, Jeffreys Beta(1/2,1/2)", lambda p: (0.5, 0.5)),
        ("Beta mixture, correct prior: centre p, strength 300", lambda p: beta_prior(p, 300)),
        ("Beta mixture, correct prior: centre p, strength 1000", lambda p: beta_prior(p, 1000)),
        ("Beta mixture, wrong prior: centre 0.9999, strength 300", lambda p: beta_prior(0.9999, 300)),
        ("Beta mixture, wrong prior: centre p0, strength 300", lambda p: beta_prior(p0, 300)),
        ("Union-bound CS (Voracek 2024), lower end > p0", "ub"),
        ("Horvath et al. 2022 adaptive, stages (1000, 10000, 125000)", "horvath"),
    ]
    rep("| method | " + " | ".join(f"p = {p}" for p in ps) + " |")
    rep("|---|" + "---|" * len(ps))
    rep("| Wald lower bound | " + " | ".join(f"{wald[p]:,.0f}" for p in ps) + " |")
    means = {}
    for label, spec in methods:
        cells = []
        for p in ps:
            cens = 0
            if spec is None:
                tau = sprt_times(p, p0, alpha, n, 40_000, rng)
            elif spec == "ub":
                tau = union_bound_times(p, p0, alpha, n, 40_000 if quick else 60_000, rng)
            elif spec == "horvath":
                tau = np.empty(0, np.int64)
                for s in range(0, n, 100):
                    k = min(100, n - s)
                    _d, used = horvath.horvath_adaptive_test(rng.random((k, 136_000), dtype=np.float32) < p, p0, alpha)
                    tau = np.concatenate([tau, used])
            else:
                a, b = spec(p)
                tau, cens = stopping_times(
                    lambda nn: hs.BetaMixtureTest(p0, alpha, a, b, n_streams=nn), p, n, horizon, rng
                )
            mt = float(tau.mean())
            means[(label, p)] = mt
            cells.append(f"{mt:,.0f} ({mt / wald[p]:.2f}x)" + (f" [{cens} censored]" if cens else ""))
        rep(f"| {label} | " + " | ".join(cells) + " |")
    rep("")
    # targets
    rep("Targets (from the brief):")
    rep("")
    jeff = "Beta mixture, Jeffreys Beta(1/2,1/2)"
    corr = "Beta mixture, correct prior: centre p, strength 300"
    corr2 = "Beta mixture, correct prior: centre p, strength 1000"
    w1 = "Beta mixture, wrong prior: centre 0.9999, strength 300"
    w2 = "Beta mixture, wrong prior: centre p0, strength 300"
    r_j = max(means[(jeff, p)] / wald[p] for p in ps)
    r_c = max(means[(corr, p)] / wald[p] for p in ps)
    r_c2 = max(means[(corr2, p)] / wald[p] for p in ps)
    r_w = max(max(means[(w1, p)], means[(w2, p)]) / means[(jeff, p)] for p in ps)
    rep(f"- Jeffreys within 1.5x of Wald: worst ratio {r_j:.2f} -> {'met' if r_j <= 1.5 else 'MISSED'}")
    rep(
        f"- correct prior within 1.15x of Wald: worst ratio {r_c:.2f} at strength 300, {r_c2:.2f} at strength "
        f"1000 -> {'met' if min(r_c, r_c2) <= 1.15 else 'MISSED'}"
    )
    rep(
        f"- the two wrong priors within 2x Jeffreys (measured, not a bound): worst ratio {r_w:.2f} -> "
        f"{'met' if r_w <= 2 else 'MISSED'}"
    )
    rep("")
    return means, wald


# ----------------------------------------------------------------------------------------------
# 4. throughput
# ----------------------------------------------------------------------------------------------


def throughput_section(rep, quick, rng):
    reps = 300 if quick else 1000
    rep("## 4. Throughput (one core, outcomes per second, wall clock, including Python overhead)")
    rep("")
    rep("| workload | outcomes/s |")
    rep("|---|---|")
    p0 = P0_R2

    def single(make, p, label, restart):
        X = rng.random((reps, 1000)) < p
        test = make(1)
        t0 = time.perf_counter()
        done = 0
        for i in range(reps):
            r = test.update(X[i])
            done += 1000 if r < 0 else int(r) + 1
            if restart and (r >= 0 or test.rejected[0]):
                test = make(1)
        dt = time.perf_counter() - t0
        rep(f"| {label} | {done / dt:,.0f} |")

    single(
        lambda n: hs.BetaMixtureTest(p0, 0.001),
        p0,
        "BetaMixtureTest, 1 stream, batches of 1,000, p = p0 (never stops)",
        False,
    )
    single(
        lambda n: hs.BetaMixtureTest(p0, 0.001),
        0.99,
        "BetaMixtureTest, 1 stream, batches of 1,000, p = 0.99, fresh test after each certificate",
        True,
    )
    single(
        lambda n: hs.BetaMixtureTest(p0, 0.001, *beta_prior(p0, 300)),
        p0,
        "BetaMixtureTest, prior centred at p0 (E hovers near 1), p = p0",
        False,
    )
    single(lambda n: hs.BetaMixtureTest(0.5, 0.001), 0.5, "BetaMixtureTest, p0 = 0.5, p = 0.5", False)
    for k in (100, 1000):
        m = 1000
        nb = max(3, (20 if quick else 60) * 100 // k)
        test = hs.BetaMixtureTest(p0, 0.001, n_streams=k)
        Xs = [rng.random((k, m)) < p0 for _ in range(nb)]
        t0 = time.perf_counter()
        for X in Xs:
            test.update(X)
        dt = time.perf_counter() - t0
        rep(f"| BetaMixtureTest, {k} streams x 1,000 per call, p = p0 | {k * m * nb / dt:,.0f} |")
    k = 1000
    test = hs.ConfidenceSequence(0.001, n_streams=k)
    Xs = [rng.random((k, 1000)) < 0.99 for _ in range(5)]
    t0 = time.perf_counter()
    for X in Xs:
        test.update(X)
    dt = time.perf_counter() - t0
    rep(
        f"| ConfidenceSequence two-sided, 1,000 streams x 1,000 per call (bounds per call) | {k * 1000 * 5 / dt:,.0f} |"
    )
    t0 = time.perf_counter()
    lb = hs.beta_mixture_lower_bound(np.arange(1, 10001), 10000, 0.001)
    dt = time.perf_counter() - t0
    rep(f"| beta_mixture_lower_bound, bounds per second (vectorised, 10,000 at once) | {lb.size / dt:,.0f} |")
    rep("")


# ----------------------------------------------------------------------------------------------
# 0. monotonicity of the truncated E-value in p0
# ----------------------------------------------------------------------------------------------


def monotonicity_section(rep, quick, rng):
    n_cfg = 300 if quick else 2000
    rep("## 0. Is the truncated E-value monotone in p0?")
    rep("")
    rep(
        f"{n_cfg:,} random configurations: a, b log-uniform on [1e-3, 1e5], t log-uniform on [1, 1e7], S uniform "
        "on [1, t] (30% of them all-successes or nearly so); log E_t(p0) on 1,200 points of (1e-9, S/t) "
        "(geometric towards both ends) and 200 points of [S/t, 1)."
    )
    rep("")
    worst_rise, worst_at, worst_above, n_big, worst_rel = 0.0, None, -np.inf, 0, -np.inf
    for _ in range(n_cfg):
        a, b = 10 ** rng.uniform(-3, 5, 2)
        t = int(10 ** rng.uniform(0, 7))
        s = int(rng.integers(1, t + 1))
        u = rng.random()
        if u < 0.15:
            s = t
        elif u < 0.3:
            s = max(1, int(t * (1 - 10 ** rng.uniform(-4, 0))))
        ph = s / t
        g = np.unique(
            np.concatenate([np.geomspace(1e-9, ph, 600, endpoint=False), ph * (1 - np.geomspace(1e-10, 1, 600))[::-1]])
        )
        g = g[(g > 0) & (g < ph)]
        v = hs.log_beta_mixture_evalue(s, t, g, a, b)
        assert np.all(np.isfinite(v))
        d = np.diff(v)
        i = int(np.argmax(d))
        if d[i] > worst_rise:
            worst_rise, worst_at = float(d[i]), (a, b, s, t, float(g[i]), float(v[i]))
        n_big += bool(np.any(d > 1e-8))
        sig = v[1:] > 0.1  # the region that matters for any alpha < 0.9
        if sig.any():
            worst_rel = max(worst_rel, float(np.max(d[sig])))
        if ph < 1:
            above = hs.log_beta_mixture_evalue(s, t, ph + (1 - ph) * np.linspace(0, 1 - 1e-9, 200), a, b)
            worst_above = max(worst_above, float(above.max()))
    rep(
        f"- largest increase of log E between neighbouring grid points below S/t: {worst_rise:.2e}"
        + (
            f" (a={worst_at[0]:.3g}, b={worst_at[1]:.3g}, S={worst_at[2]}, t={worst_at[3]}, p0={worst_at[4]:.10f}, "
            f"where log E = {worst_at[5]:.1e}: rounding noise where E = 1)"
            if worst_at
            else ""
        )
    )
    rep(
        f"- configurations with an increase above 1e-8: {n_big}; largest change where log E > 0.1: "
        f"{worst_rel:.2e} (< 0: strictly decreasing there)"
    )
    rep(f"- largest log E at p0 >= S/t: {worst_above:.2e} (theory: <= 0)")
    rep("")
    return worst_rise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sweeps (about 2 minutes; full: about 9)")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--sections", default="01234", help="which sections to run, e.g. 13")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rep = Report()
    cmd = (
        "python benchmarks/bench_statistics.py"
        + (" --quick" if args.quick else "")
        + (f" --out {args.out}" if args.out else "")
        + (f" --seed {args.seed}" if args.seed != 20261126 else "")
    )
    rep(f"# haltfast.statistics benchmark ({'quick' if args.quick else 'full'})")
    rep("")
    rep(f"Command: `{cmd}`  ")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    rep(
        f"numpy {np.__version__}, scipy {scipy.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared; load average at the start: {load}), seed {args.seed}."
    )
    rep("")
    t0 = time.time()
    sections = [
        ("0", lambda: monotonicity_section(rep, args.quick, rng)),
        ("1", lambda: exact_section(rep, args.quick)),
        ("2", lambda: simulation_section(rep, args.quick, rng)),
        ("3", lambda: stopping_section(rep, args.quick, rng)),
        ("4", lambda: throughput_section(rep, args.quick, rng)),
    ]
    timings = []
    for key, fn in sections:
        if key in args.sections:
            t1 = time.time()
            fn()
            timings.append(f"section {key}: {time.time() - t1:.0f} s")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    rep(
        f"Total wall time: {time.time() - t0:.0f} s ({', '.join(timings)}); load average at the end: {load} "
        f"(other jobs share the machine, so throughput figures are lower bounds)."
    )
    if args.out:
        write_report(args.out, rep.buf.getvalue())


BEGIN, END = "<!-- BENCHMARK:BEGIN -->", "<!-- BENCHMARK:END -->"


def write_report(path, text):
    """Write the report to path; if the file has BEGIN/END markers, replace only what lies between."""
    body = text.replace("# haltfast.statistics benchmark", "### Benchmark output", 1).replace("\n## ", "\n#### ")
    if os.path.exists(path):
        with open(path) as fh:
            old = fh.read()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            with open(path, "w") as fh:
                fh.write(head + BEGIN + "\n" + body + END + tail)
            return
    with open(path, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
