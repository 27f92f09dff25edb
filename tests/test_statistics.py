"""Tests of haltfast.statistics: known answers, numerical stability, properties, validity by simulation.

Light by design (< 60 s on 2 cores); the heavy sweeps live in benchmarks/bench_statistics.py.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats
from validity import check_false_certifications

from haltfast import statistics as hs
from haltfast import validation as hv
from haltfast.methods import horvath
from haltfast.methods import voracek

P0_R2 = float(stats.norm.cdf(2.0))  # p0 = Phi(2), radius 2 sigma
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------
# Known answers (docs/statistics.md)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k,t,log_e_trunc,log_e_point,lower,cp",
    [(95, 100, 1.017100, -1.229771, 0.813797, 0.844633), (960, 1000, 23.444235, 21.141650, 0.929293, 0.937092)],
)
def test_design_check_values(k, t, log_e_trunc, log_e_point, lower, cp):
    assert hs.log_beta_mixture_evalue(k, t, 0.9, 1, 1) == pytest.approx(log_e_trunc, abs=1e-6)
    assert hs.log_beta_mixture_evalue(k, t, 0.9, 1, 1, truncated=False) == pytest.approx(log_e_point, abs=1e-6)
    assert hs.beta_mixture_lower_bound(k, t, 0.001, 1, 1) == pytest.approx(lower, abs=1e-6)
    assert hs.clopper_pearson_lower(k, t, 0.001) == pytest.approx(cp, abs=1e-6)


@pytest.mark.slow
def test_exact_type1_errors_match_design():
    """Exact (forward recursion) error of monitoring every step up to 20,000 draws at p = p0 = 0.9."""
    t = np.arange(1, 20001)
    mix = hv.boundary_crossing_probability(hv.beta_mixture_boundary(t, 0.9, 0.05, 1, 1), 0.9)[0]
    cp = hv.boundary_crossing_probability(hv.clopper_pearson_boundary(t, 0.9, 0.05), 0.9)[0]
    assert mix == pytest.approx(0.0457, abs=5e-5)
    assert cp == pytest.approx(0.436, abs=5e-4)  # the bug the E-process exists to avoid
    mix3 = hv.boundary_crossing_probability(hv.beta_mixture_boundary(t, 0.9, 0.001, 1, 1), 0.9)[0]
    assert mix3 == pytest.approx(0.00088, abs=5e-6)


def test_clopper_pearson_matches_scipy_binomtest():
    for n, k in [(1, 0), (1, 1), (10, 0), (10, 3), (10, 10), (100, 95), (1000, 960), (100000, 99990)]:
        for alpha in (0.05, 0.001):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
            assert hs.clopper_pearson_lower(k, n, alpha) == pytest.approx(ci.low, rel=1e-9, abs=1e-12)
            assert hs.clopper_pearson_upper(k, n, alpha) == pytest.approx(ci.high, rel=1e-9, abs=1e-12)
    assert hs.clopper_pearson_lower(0, 50, 0.01) == 0.0
    assert hs.clopper_pearson_upper(50, 50, 0.01) == 1.0
    # all successes: lower = alpha**(1/n)  (3.81 sigma at n = 1e5, alpha = 1e-3)
    assert stats.norm.ppf(hs.clopper_pearson_lower(100000, 100000, 0.001)) == pytest.approx(3.81, abs=0.005)


def test_wald_bound_values():
    assert hs.wald_expected_samples(0.99, P0_R2, 0.001) == pytest.approx(1497.4, abs=1.0)
    assert hs.wald_expected_samples(0.999, P0_R2, 0.001) == pytest.approx(366.2, abs=1.0)
    assert hs.wald_expected_samples(1.0, P0_R2, 0.001) == pytest.approx(math.log(1000) / -math.log(P0_R2))
    # futility side: alpha and beta swapped; beta = 0 cannot stop for futility
    al, be, p = 0.001, 0.01, 0.95
    num = (1 - al) * math.log((1 - al) / be) + al * math.log(al / (1 - be))
    assert hs.wald_expected_samples(p, P0_R2, al, be) == pytest.approx(num / hs.bernoulli_kl(p, P0_R2))
    assert np.isinf(hs.wald_expected_samples(0.95, P0_R2, 0.001, 0.0))
    assert np.isinf(hs.wald_expected_samples(P0_R2, P0_R2, 0.001, 0.01))
    # with miss rate beta on the certify side
    num = 0.99 * math.log(0.99 / 0.001) + 0.01 * math.log(0.01 / 0.999)
    assert hs.wald_expected_samples(0.99, P0_R2, 0.001, 0.01) == pytest.approx(num / hs.bernoulli_kl(0.99, P0_R2))


def test_bernoulli_kl():
    p = np.array([0.0, 0.3, 0.99, 1.0])
    q = 0.7
    ref = [stats.entropy([pi, 1 - pi], [q, 1 - q]) for pi in p]
    np.testing.assert_allclose(hs.bernoulli_kl(p, q), ref, rtol=1e-12, atol=1e-15)
    assert hs.bernoulli_kl(1.0, P0_R2) == pytest.approx(-math.log(P0_R2))


# ----------------------------------------------------------------------------------------------
# Numerical stability
# ----------------------------------------------------------------------------------------------


def test_log_betaincc_matches_scipy_and_tail_reference():
    a = np.array([0.5, 3.0, 50.0, 2e3])
    b = np.array([0.5, 7.0, 20.0, 1e3])
    x = np.array([0.2, 0.5, 0.6, 0.66])
    np.testing.assert_allclose(hs.log_betaincc(a, b, x), np.log(special.betaincc(a, b, x)), rtol=1e-12)
    # deep tails where betaincc underflows to 0: check against a high-precision quadrature
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    for aa, bb, xx in [(1e4, 1e4, 0.9), (5e6, 5e6, 0.52), (1e7, 1e3, 0.99999), (50.0, 1500.0, 0.95)]:
        assert special.betaincc(aa, bb, xx) < 1e-280
        A, B, X = mp.mpf(aa), mp.mpf(bb), mp.mpf(xx)
        lf = lambda u: (A - 1) * mp.log(u) + (B - 1) * mp.log(1 - u)
        l0 = lf(X)
        slope = abs((A - 1) / X - (B - 1) / (1 - X))
        w = min(60 / slope, 1 - X)
        integral = mp.quad(lambda u: mp.exp(lf(u) - l0), [X + w * i / 20 for i in range(21)])
        ref = float(mp.log(integral) + l0 - (mp.loggamma(A) + mp.loggamma(B) - mp.loggamma(A + B)))
        assert hs.log_betaincc(aa, bb, xx) == pytest.approx(ref, rel=1e-10)


def test_extremes_are_finite_without_warnings():
    t = np.array([0, 1, 10, 10**4, 10**7, 10**7, 10**7, 10**7])
    s = np.array([0, 1, 10, 0, 10**7, 0, 5 * 10**6, 10**7 - 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p0 in (1e-6, 0.5, P0_R2, 1 - 1e-6):
            for a, b in [(0.5, 0.5), (1e-3, 1e-3), (1e4, 1e4), (1e4, 1.0), (1.0, 1e4), (1e-3, 1e4)]:
                for trunc in (True, False):
                    v = hs.log_beta_mixture_evalue(s, t, p0, a, b, truncated=trunc)
                    assert np.all(np.isfinite(v)), (p0, a, b, trunc, v)
        lo = hs.beta_mixture_lower_bound(s, t, 0.001)
        up = hs.beta_mixture_upper_bound(s, t, 0.001)
        assert np.all(np.isfinite(lo)) and np.all(np.isfinite(up))
        assert np.all((lo >= 0) & (lo <= up) & (up <= 1))
        # all successes for 1e7 draws: lower end close to alpha**(1/t)
        assert 1 - lo[4] < 3e-6
        test = hs.BetaMixtureTest(1 - 1e-6, 0.001, n_streams=2)
        test.update(np.ones((2, 1000), dtype=bool))
        assert np.all(np.isfinite(test.log_evalue))
        test = hs.BetaMixtureTest(P0_R2, 0.001)
        idx = test.update(np.ones(2000, dtype=bool))
        tt = np.arange(1, 2001)
        brute = int(np.argmax(hs.log_beta_mixture_evalue(tt, tt, P0_R2, 0.5, 0.5) >= math.log(1000)))
        assert idx == brute and test.rejected[0] and test.trials[0] == brute + 1
        assert 300 < test.trials[0] < 400  # Wald: log(1000) / -log(p0) = 300


# ----------------------------------------------------------------------------------------------
# Properties (hypothesis)
# ----------------------------------------------------------------------------------------------

counts = st.integers(0, 10**7).flatmap(lambda t: st.tuples(st.integers(0, t), st.just(t)))
prior_param = st.floats(1e-3, 1e4)
p0s = st.floats(1e-6, 1 - 1e-6)


@HYP
@given(counts, p0s, prior_param, prior_param, st.booleans())
def test_evalue_finite(st_, p0, a, b, truncated):
    s, t = st_
    v = hs.log_beta_mixture_evalue(s, t, p0, a, b, truncated=truncated)
    assert np.isfinite(v)  # so E = exp(v) >= 0 and finite in log space


@HYP
@given(counts, prior_param, prior_param, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_evalue_monotone_in_p0(st_, a, b, u1, u2):
    """Theory: untruncated E decreases in p0 below S/t; truncated E <= 1 for p0 >= S/t.  Numerically
    verified (docs): truncated E is non-increasing in p0 below S/t as well."""
    s, t = st_
    if s == 0 or t == 0:
        return
    phat = s / t
    lo, hi = sorted((u1, u2))
    p1 = 1e-6 + (phat - 1e-6) * lo
    p2 = 1e-6 + (phat - 1e-6) * hi
    if not (0 < p1 <= p2 < 1):
        return
    tol = 1e-7 + 1e-14 * t
    for trunc in (True, False):
        v1 = hs.log_beta_mixture_evalue(s, t, p1, a, b, truncated=trunc)
        v2 = hs.log_beta_mixture_evalue(s, t, p2, a, b, truncated=trunc)
        assert v2 <= v1 + tol * (1 + abs(v1))
    if phat < 1:
        above = phat + (1 - phat) * np.array([0.0, 0.3, 0.9, 0.999999])
        above = above[above < 1]
        assert np.all(hs.log_beta_mixture_evalue(s, t, above, a, b) <= tol)


@HYP
@given(counts, st.sampled_from([0.1, 0.01, 0.001]), st.floats(1e-2, 1e3), st.floats(1e-2, 1e3))
def test_confidence_bounds_ordered_and_tight(st_, alpha, a, b):
    s, t = st_
    lo = hs.beta_mixture_lower_bound(s, t, alpha, a, b)
    up = hs.beta_mixture_upper_bound(s, t, alpha, a, b)
    assert 0.0 <= lo <= up <= 1.0
    if t:
        assert lo <= s / t <= up
    thr = -math.log(alpha)
    if lo > 0:
        # lo is rejected, a point just above it is not: lo is the infimum of the confidence set
        assert hs.log_beta_mixture_evalue(s, t, lo, a, b) >= thr
        step = max(1e-9 * lo * (1 - lo), 1e-15)
        if lo + step < 1:
            assert hs.log_beta_mixture_evalue(s, t, lo + step, a, b) < thr + 1e-9


def _split_feed(test, X, cuts):
    """Feed X (k, m) in segments; return the crossing index per row in stream coordinates."""
    res = np.full(X.shape[0], -1)
    for seg in np.split(np.arange(X.shape[1]), cuts):
        if seg.size == 0:
            continue
        r = test.update(X[:, seg])
        res = np.where((r >= 0) & (res < 0), seg[0] + r, res)
    return res


def _state(test):
    return (
        test.successes.copy(),
        test.trials.copy(),
        test.log_evalue.copy(),
        test.rejected.copy(),
        test.stopping_time.copy(),
    )


stream_case = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "k": st.integers(1, 4),
        "m": st.integers(1, 400),
        "alternative": st.sampled_from(["greater", "less"]),
        "alpha": st.sampled_from([0.05, 0.2, 0.5]),
        "p0": st.floats(0.05, 0.995),
        "shift": st.floats(-0.2, 0.2),
        "ncuts": st.integers(0, 12),
    }
)


def _make_stream(c):
    rng = np.random.default_rng(c["seed"])
    p = np.clip(c["p0"] + c["shift"] * rng.random(c["k"]), 0.0, 1.0)
    X = rng.random((c["k"], c["m"])) < p[:, None]
    cuts = (
        np.sort(rng.choice(np.arange(1, c["m"]), size=min(c["ncuts"], c["m"] - 1), replace=False))
        if c["m"] > 1
        else np.array([], int)
    )
    return rng, X, cuts


@HYP
@given(stream_case, prior_param, prior_param)
def test_beta_mixture_batches_equal_single_steps(c, a, b):
    _rng, X, cuts = _make_stream(c)
    k, m = X.shape
    mk = lambda: hs.BetaMixtureTest(c["p0"], c["alpha"], a, b, n_streams=k, alternative=c["alternative"])
    t_batch, t_single, t_whole = mk(), mk(), mk()
    r_batch = _split_feed(t_batch, X, cuts)
    r_single = _split_feed(t_single, X, np.arange(1, m))
    r_whole = t_whole.update(X)
    assert np.array_equal(r_batch, r_single) and np.array_equal(r_batch, r_whole)
    for u, v in zip(_state(t_batch), _state(t_single)):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-10)
    # and against brute force evaluation of the closed form at every step
    ones = np.cumsum(X, axis=1)
    tt = np.arange(1, m + 1)
    if c["alternative"] == "greater":
        le = hs.log_beta_mixture_evalue(ones, tt, c["p0"], a, b)
    else:
        le = hs.log_beta_mixture_evalue(tt - ones, tt, 1 - c["p0"], b, a)
    hit = le >= -math.log(c["alpha"])
    brute = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    assert np.array_equal(r_whole, brute)
    end = np.where(brute >= 0, brute, m - 1)
    # same formula and code path (bit for bit here; a 1-ulp tolerance for other SIMD back ends)
    np.testing.assert_allclose(t_whole.log_evalue, le[np.arange(k), end], rtol=1e-12, atol=1e-10)
    assert np.array_equal(t_whole.successes, ones[np.arange(k), end])


def test_update_with_stream_subsets_and_freezing():
    test = hs.BetaMixtureTest([0.5, 0.6, 0.7], 0.1, n_streams=3)
    r = test.update(np.ones((2, 50), dtype=bool), streams=[2, 0])
    assert r[0] >= 0 and r[1] >= 0 and test.trials[1] == 0
    frozen = _state(test)
    assert np.array_equal(test.update(np.ones((2, 5), dtype=bool), streams=[0, 2]), [-1, -1])
    for u, v in zip(frozen, _state(test)):
        assert np.array_equal(u, v)
    assert test.update(np.zeros((1, 7), dtype=int), streams=[1]).shape == (1,)
    assert np.ndim(test.update(np.zeros(7, dtype=int), streams=1)) == 0  # 1-D in, 0-d out
    single = hs.BetaMixtureTest(0.5, 0.1)
    assert np.ndim(single.update(np.zeros(5, dtype=int))) == 0
    with pytest.raises(ValueError):
        test.update(np.ones((2, 3)), streams=[1, 1])
    with pytest.raises(ValueError):
        test.update(np.full((1, 3), 2), streams=[1])
    with pytest.raises(ValueError):
        hs.BetaMixtureTest(1.0, 0.1)


# ----------------------------------------------------------------------------------------------
# Validity by simulation (light; the benchmark runs the heavy version)
# ----------------------------------------------------------------------------------------------

N_STREAMS, HORIZON, BATCH = 2000, 2000, 250
P0, ALPHA = 0.9, 0.3  # a large alpha keeps the simulations small enough to catch 1.2 alpha
UNEVEN = (1, 7, 64, 200, 3, 500, 25)  # batch sizes a certifier might feed


def _run(test, p, rng, n=N_STREAMS, horizon=HORIZON, batch=BATCH):
    for _ in range(horizon // batch):
        test.update(rng.random((n, batch)) < p)
    return test


def _run_uneven(test, p, rng, n, horizon):
    done, k = 0, 0
    while done < horizon:
        m = min(UNEVEN[k % len(UNEVEN)], horizon - done)
        test.update(rng.random((n, m)) < p)
        done, k = done + m, k + 1
    return test


def _never(t):
    return t + 1  # an upper boundary no count reaches


# adversarial priors for H0: p <= p0 = 0.9; each can reject (exact probability > 0.1 alpha), unlike priors with
# all their mass far below p0 or so strong that no count within the horizon rejects
ADVERSARIAL_PRIORS = {
    "jeffreys": (0.5, 0.5),
    "uniform": (1.0, 1.0),
    "mass near 1": (1e3, 1.0),
    "mass near p0": (900.0, 100.0),
    "just above p0, strength 4096 (the meta-learner's edge prior)": (0.901 * 4096, 0.099 * 4096),
    "very weak": (1e-3, 1e-3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ADVERSARIAL_PRIORS))
def test_beta_mixture_validity_under_optional_stopping(name):
    """Exact: the E-process ever rejects p <= p0 at p = p0 with probability <= alpha (20,000 draws, alpha 0.05,
    and 2,000 draws, alpha 0.3); simulated: the stateful test fed in uneven batches rejects at that exact rate."""
    a, b = ADVERSARIAL_PRIORS[name]
    long = np.arange(1, 20_001)
    exact_long, _ = hv.boundary_crossing_probability(hv.beta_mixture_boundary(long, P0, 0.05, a, b), P0)
    assert exact_long <= 0.05
    t = np.arange(1, HORIZON + 1)
    exact, _ = hv.boundary_crossing_probability(hv.beta_mixture_boundary(t, P0, ALPHA, a, b), P0)
    assert exact > 0.1 * ALPHA, "a case that can hardly reject cannot show a test's validity"
    n = 1500
    test = _run_uneven(
        hs.BetaMixtureTest(P0, ALPHA, a, b, n_streams=n), P0, np.random.default_rng(len(name)), n, HORIZON
    )
    check_false_certifications(int(test.rejected.sum()), n, ALPHA, exact)


def test_beta_mixture_validity_below_p0_and_less_side_and_power():
    rng = np.random.default_rng(7)
    t = np.arange(1, HORIZON + 1)
    n = 1500
    below, _ = hv.boundary_crossing_probability(hv.beta_mixture_boundary(t, P0, ALPHA), 0.88)
    test = _run_uneven(hs.BetaMixtureTest(P0, ALPHA, n_streams=n), 0.88, rng, n, HORIZON)
    check_false_certifications(int(test.rejected.sum()), n, ALPHA, below)
    # the 'less' side: H0 p >= p0 is rejected when the failures cross the mirrored boundary
    lower = t - hv.beta_mixture_boundary(t, 1 - P0, ALPHA, 0.5, 0.5)
    _, less_exact, _ = hv.crossing_probabilities(P0, _never(t), lower)
    less = _run_uneven(hs.BetaMixtureTest(P0, ALPHA, n_streams=n, alternative="less"), P0, rng, n, HORIZON)
    check_false_certifications(int(less.rejected.sum()), n, ALPHA, less_exact)
    power = _run(hs.BetaMixtureTest(0.9, 0.05, n_streams=500), 0.95, rng, n=500)
    assert power.rejected.mean() > 0.9  # the simulation can detect a real effect
    futile = _run(hs.BetaMixtureTest(0.9, 0.05, n_streams=500, alternative="less"), 0.85, rng, n=500)
    assert futile.rejected.mean() > 0.9


def _two_sided_miss_bound(p, alpha_side, horizon, upper_of, lower_of):
    """Exact P(a lower bound ever exceeds p) + P(an upper bound ever falls below it) within the horizon."""
    t = np.arange(1, horizon + 1)
    above, _, _ = hv.crossing_probabilities(p, upper_of(t, p, alpha_side))
    _, below, _ = hv.crossing_probabilities(p, _never(t), lower_of(t, p, alpha_side))
    return above + below


@pytest.mark.slow
def test_confidence_sequence_coverage_over_time():
    """The beta-mixture confidence sequence misses p at some time with at most the exact probability that one of
    its two tests at p rejects; the union-bound one with at most its checkpoints' exact crossing probability."""
    rng = np.random.default_rng(5)
    n, batches, m = 1500, 10, 100
    for p in (0.9, 0.995):
        cs = hs.ConfidenceSequence(ALPHA, n_streams=n)
        miss = np.zeros(n, dtype=bool)
        for _ in range(batches):
            cs.update(rng.random((n, m)) < p)
            miss |= (cs.lower > p) | (cs.upper < p)
        bound = _two_sided_miss_bound(
            p,
            ALPHA / 2,
            batches * m,
            lambda t, p, a: hv.beta_mixture_boundary(t, p, a),
            lambda t, p, a: t - hv.beta_mixture_boundary(t, 1 - p, a),
        )
        check_false_certifications(int(miss.sum()), n, ALPHA, bound, exact_is_bound=True)
        # the running intersection can only be empty on a miss
        assert np.all((cs.lower <= cs.upper) | miss)
    n, horizon = 3000, 2000
    times, shares = voracek.union_bound_checkpoints(horizon)

    def at_checkpoints(t, values, never):
        out = never.copy()
        out[times - 1] = values
        return out

    ub = voracek.UnionBoundConfidenceSequence(ALPHA, n_streams=n)
    miss = np.zeros(n, dtype=bool)
    for _ in range(horizon // 50):
        ub.update(rng.random((n, 50)) < P0)
        miss |= (ub.lower > P0) | (ub.upper < P0)
    bound = _two_sided_miss_bound(
        P0,
        ALPHA / 2,
        horizon,
        lambda t, p, a: at_checkpoints(t, hv.clopper_pearson_boundary(times, p, a * shares), t + 1),
        lambda t, p, a: at_checkpoints(
            t, times - hv.clopper_pearson_boundary(times, 1 - p, a * shares), -np.ones_like(t)
        ),
    )
    check_false_certifications(int(miss.sum()), n, ALPHA, bound, exact_is_bound=True)


@pytest.mark.slow
def test_negative_control_monitoring_clopper_pearson_is_invalid():
    """Checking the fixed-n Clopper-Pearson bound after every sample inflates the error far above alpha; the same
    draws through the E-process reject at its exact rate, below alpha."""
    n = 1500
    rng = np.random.default_rng(13)
    X = rng.random((n, HORIZON)) < P0
    S = np.cumsum(X, axis=1)
    t = np.arange(1, HORIZON + 1)
    cp_rate = (hv.clopper_pearson_boundary(t, P0, ALPHA) <= S).any(axis=1).mean()
    assert cp_rate > 2 * ALPHA
    exact, _ = hv.boundary_crossing_probability(hv.beta_mixture_boundary(t, P0, ALPHA, 1, 1), P0)
    mix = hs.BetaMixtureTest(P0, ALPHA, 1, 1, n_streams=n)
    mix.update(X)
    check_false_certifications(int(mix.rejected.sum()), n, ALPHA, exact)


# ----------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------


def test_union_bound_checkpoints_and_bounds():
    times, shares = voracek.union_bound_checkpoints(10**6)
    assert times[0] == 3 and np.all(np.diff(times) > 0) and shares.sum() < 1
    jj = np.arange(1, 10**6, dtype=float)
    assert (5.0 / ((jj + 4.0) * (jj + 5.0))).sum() == pytest.approx(1.0, abs=1e-5)
    j = 40
    t = times[j]
    assert voracek.union_bound_lower(t - 3, t, 0.001) == pytest.approx(
        hs.clopper_pearson_lower(t - 3, t, 0.001 * shares[j])
    )
    non_cp = next(x for x in range(3, 10**6) if x not in set(times.tolist()))
    assert np.isnan(voracek.union_bound_lower(1, non_cp, 0.001))
    # the streaming class only moves at checkpoints and equals the closed form there
    cs = voracek.UnionBoundConfidenceSequence(0.002, n_streams=1, side="lower")
    x = np.ones(times[j], dtype=bool)
    x[::7] = False
    cs.update(x[None, :])
    k = int(x.sum())
    assert cs.lower[0] >= voracek.union_bound_lower(k, times[j], 0.002) - 1e-15


def test_horvath_schedule_and_streaming_agree():
    sched = horvath.horvath_schedule(P0_R2, 0.001, 1e-4, (1000, 10000, 125000))
    cm, fm = sched["certify_min"], sched["futile_max"]
    for i, n in enumerate(sched["n"]):
        assert (
            hs.clopper_pearson_lower(cm[i], n, 0.001 / 3) >= P0_R2 > hs.clopper_pearson_lower(cm[i] - 1, n, 0.001 / 3)
        )
        if i < 2:
            assert (
                hs.clopper_pearson_upper(fm[i], n, 1e-4 / 2) < P0_R2 <= hs.clopper_pearson_upper(fm[i] + 1, n, 1e-4 / 2)
            )
    assert fm[-1] == -1
    rng = np.random.default_rng(2)
    X = rng.random((6, 140000)) < np.array([0.999, 0.99, 0.985, 0.975, 0.9, 0.5])[:, None]
    dec, used = horvath.horvath_adaptive_test(X, P0_R2, 0.001)
    assert list(dec[:2]) == [1, 1] and dec[-1] == 0 and used[0] == 1000 and used[-1] == 1000
    test = horvath.HorvathAdaptiveTest(P0_R2, 0.001, n_streams=6)
    for i in range(0, 140000, 3333):
        test.update(X[:, i : i + 3333])
    assert np.array_equal(test.decision, dec) and np.array_equal(test.samples_used, used)
    # validity at p = p0 (small stages so that it is cheap): the exact certification probability, stage by stage
    rng = np.random.default_rng(4)
    n, stages = 3000, (100, 1000)
    Y = rng.random((n, 1100)) < P0
    d, _ = horvath.horvath_adaptive_test(Y, P0, ALPHA, 0.05, stages=stages)
    sched = horvath.horvath_schedule(P0, ALPHA, 0.05, stages)
    reach, exact = 1.0, 0.0
    for size, cert_min, fut_max in zip(sched["n"], sched["certify_min"], sched["futile_max"]):
        exact += reach * stats.binom.sf(cert_min - 1, size, P0)
        reach *= stats.binom.cdf(cert_min - 1, size, P0) - stats.binom.cdf(fut_max, size, P0)
    check_false_certifications(int((d == 1).sum()), n, ALPHA, exact)


def test_sprt_matches_wald():
    rng = np.random.default_rng(9)
    p = 0.99
    X = rng.random((2000, 12000)) < p
    dec, used = hv.sprt_stopping_time(X, p, P0_R2, 0.001)
    assert (dec == 1).mean() > 0.995
    wald = hs.wald_expected_samples(p, P0_R2, 0.001)
    assert wald <= used.mean() < 1.1 * wald
    with pytest.raises(ValueError):
        hv.sprt_stopping_time(X[:2], 0.5, 0.9, 0.01)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_set_prior_before_the_first_outcome_equals_a_fresh_test(alternative):
    rng = np.random.default_rng(3)
    x = rng.random((3, 400)) < 0.95
    late = hs.BetaMixtureTest(0.9, 0.01, n_streams=3, alternative=alternative)
    late.set_prior([0, 2], [5.0, 0.3], [0.2, 7.0])
    fresh = hs.BetaMixtureTest(0.9, 0.01, a=[5.0, 0.5, 0.3], b=[0.2, 0.5, 7.0], alternative=alternative)
    np.testing.assert_array_equal(late.update(x), fresh.update(x))
    np.testing.assert_allclose(late.log_evalue, fresh.log_evalue)
    with pytest.raises(ValueError, match="before its first outcome"):
        late.set_prior([1], 1.0, 1.0)


def test_union_test_rejects_at_the_first_component_crossing_and_keeps_its_level():
    from haltfast.statistics import BetaMixtureTest
    from haltfast.statistics import UnionTest
    from haltfast.statistics import hedged_mixture_test

    rng = np.random.default_rng(7)
    p0, alpha, n, m = 0.7, 0.1, 400, 2000
    x = rng.random((n, m)) < p0  # the hardest null: p = p0
    union = hedged_mixture_test(p0, alpha, 50.0, 1.0, n, hedge=0.5)  # a bad prior, hedged by Jeffreys
    for lo in range(0, m, 250):
        union.update(x[:, lo : lo + 250])
    assert union.rejected.mean() <= alpha + 3 * np.sqrt(alpha / n)
    y = rng.random((50, 500)) < 0.95  # and under the alternative, the earliest crossing
    parts = [BetaMixtureTest(p0, 0.05, 50.0, 1.0, n_streams=50), BetaMixtureTest(p0, 0.05, n_streams=50)]
    for t in parts:
        t.update(y)
    both = UnionTest([BetaMixtureTest(p0, 0.05, 50.0, 1.0, n_streams=50), BetaMixtureTest(p0, 0.05, n_streams=50)])
    both.update(y[:, :100])
    both.update(y[:, 100:])
    expected = np.min([np.where(t.rejected, t.stopping_time, 10**9) for t in parts], axis=0)
    assert both.rejected.all() and np.array_equal(both.stopping_time, expected)
    assert np.allclose(both.threshold, -np.log(0.1))
