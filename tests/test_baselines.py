import numpy as np
import pytest
from scipy.stats import binom
from scipy.stats import norm
from validity import bernoulli_recording
from validity import check_false_certifications

from haltfast.batches import least_integer
from haltfast.bench.crossings import check_baseline_rows
from haltfast.errors import HaltfastError
from haltfast.methods import run_method
from haltfast.methods import voracek
from haltfast.methods.horvath import horvath_adaptive_test
from haltfast.methods.horvath import horvath_schedule
from haltfast.methods.horvath import horvath_stages
from haltfast.methods.voracek import union_bound_checkpoints
from haltfast.methods.voracek import union_bound_lower
from haltfast.methods.voracek import union_bound_upper
from haltfast.recording import load_recording
from haltfast.recording import record_streams
from haltfast.smooth import Smooth
from haltfast.statistics import log_beta_mixture_evalue
from haltfast.streams import RecordedStreams
from haltfast.validation import clopper_pearson_boundary
from haltfast.validation import crossing_probabilities

SIGMA = 0.5
BASELINES = ("horvath", "union-bound", "betting")


def _smooth(linear, seed=0):
    return Smooth(linear, 2, SIGMA, seed=seed, value_range=None)


ALPHA, P0, CAP, N = 0.3, 0.7, 1500, 1500  # replayed cases: large enough to catch 1.2 alpha


def _exact_certification(method: str) -> tuple[float, bool]:
    """The method's exact certification probability at p = P0 within CAP tested samples, and whether it is only
    an upper bound (the union-bound CS's verdict is read once per chunk, so only its crossing is exact)."""
    t = np.arange(1, CAP + 1)
    if method == "horvath":
        sched = horvath_schedule(P0, ALPHA, 1e-4, horvath_stages(CAP))
        reach, exact = 1.0, 0.0
        for size, cert_min, fut_max in zip(sched["n"], sched["certify_min"], sched["futile_max"]):
            exact += reach * binom.sf(cert_min - 1, size, P0)
            reach *= binom.cdf(cert_min - 1, size, P0) - binom.cdf(fut_max, size, P0)
        return exact, False
    if method == "union-bound":
        times, shares = union_bound_checkpoints(CAP)
        upper = t + 1
        upper[times - 1] = clopper_pearson_boundary(times, P0, ALPHA * shares)
        return crossing_probabilities(P0, upper)[0], True
    # betting: certified when the KT mixture reaches max(1/(2 alpha), its floor) with S >= p0 t, not certified
    # when it reaches 1/(2 alpha) with S <= p0 t; the mixture grows away from p0 t on each side
    cs = voracek._Betting(ALPHA, 1, CAP, P0)
    log_e = lambda s, w: log_beta_mixture_evalue(s, t[w], P0, 0.5, 0.5, truncated=False)
    upper = least_integer(lambda s, w: (s >= P0 * t[w]) & (log_e(s, w) >= cs.log_c_cert), t)
    lower = t - least_integer(lambda f, w: (t[w] - f <= P0 * t[w]) & (log_e(t[w] - f, w) >= cs.log_c), t)
    return crossing_probabilities(P0, upper, lower)[0], False


@pytest.mark.slow
@pytest.mark.parametrize("method", BASELINES)
def test_decision_mode_false_certification_rate_is_the_exact_one(method):
    """p = p0 exactly (the hardest null), replayed Bernoulli streams: the certified count fits the method's exact
    certification probability (an upper bound for the union-bound CS), itself at most alpha."""
    rec = bernoulli_recording(P0, N, CAP + 1, seed=len(method))
    certs = run_method(
        method, rec, range(N), sigma=1.0, n0=0, n=0, alpha=ALPHA, radius=float(norm.ppf(P0)), max_samples=CAP
    )
    exact, is_bound = _exact_certification(method)
    assert exact > 0.02 * ALPHA  # the union-bound CS spends its alpha over many checkpoints: rarely, but it can
    check_false_certifications(sum(c.decision == "certified" for c in certs), N, ALPHA, exact, exact_is_bound=is_bound)
    assert {c.decision for c in certs} <= {"certified", "not certified", "undecided"}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["union-bound", "betting"])
def test_radius_mode_overshoots_at_most_the_exact_bound_and_is_not_vacuous(method):
    """Radius mode exceeds the true radius only if the lower bound ever clears p (an exact crossing probability
    below alpha); p = 0.97 lies above the betting CS's floor p_min = 0.81 at alpha = 0.3."""
    p = 0.97
    rec = bernoulli_recording(p, N, CAP + 1, seed=3 + len(method))
    certs = run_method(
        method, rec, range(N), sigma=1.0, n0=0, n=0, alpha=ALPHA, radius=None, max_samples=CAP, tolerance=0.05
    )
    radii = np.array([c.radius for c in certs])
    t = np.arange(1, CAP + 1)
    if method == "union-bound":
        times, shares = union_bound_checkpoints(CAP)
        upper = t + 1
        upper[times - 1] = clopper_pearson_boundary(times, p, ALPHA * shares)
    else:  # the lower end of the KT mixture's two-sided sequence at 2 alpha
        log_e = lambda s, w: log_beta_mixture_evalue(s, t[w], p, 0.5, 0.5, truncated=False)
        upper = least_integer(lambda s, w: (s >= p * t[w]) & (log_e(s, w) >= -np.log(2 * ALPHA)), t)
    bound = crossing_probabilities(p, upper)[0]
    check_false_certifications(int(np.sum(radii > norm.ppf(p))), N, ALPHA, bound, exact_is_bound=True)
    assert np.median(radii) > 0.5 * norm.ppf(p)


@pytest.mark.parametrize("method", BASELINES)
def test_decides_easy_inputs_early_and_counts_every_evaluation(linear, method):
    x = linear.point_at_distance(0.6)  # p = Phi(1.2) = 0.885 against p0 = Phi(0.4) = 0.655
    certs = _smooth(linear).certify_many([x] * 10, method=method, radius=0.2, alpha=0.001, progress=False)
    assert all(c.decision == "certified" and c.radius == 0.2 for c in certs)
    assert all(c.evaluations == 1 + c.extra["tested"] for c in certs)  # clean selection: one evaluation
    assert max(c.evaluations for c in certs) <= 1001
    refuted = _smooth(linear).certify_many([x] * 5, method=method, radius=1.0, alpha=0.001, progress=False)
    assert all(c.decision == "not certified" for c in refuted)


def test_horvath_agrees_with_its_statistics_core_function():
    rng = np.random.default_rng(0)
    p0 = norm.cdf(0.5 / SIGMA)
    ps = [0.999, 0.95, p0 + 0.02, p0, 0.7, 0.3]
    streams = [(rng.random(20_000) < p).astype(np.int64) for p in ps for _ in range(3)]
    rec = RecordedStreams(streams, 2, clean=np.ones(len(streams), dtype=np.int64))
    certs = run_method(
        "horvath", rec, range(len(streams)), sigma=SIGMA, n0=0, n=0, alpha=0.001, radius=0.5, max_samples=20_000
    )
    decision, used = horvath_adaptive_test(np.stack(streams), p0, 0.001, stages=horvath_stages(20_000))
    expected = [{1: "certified", 0: "not certified"}.get(int(d), "undecided") for d in decision]
    assert [c.decision for c in certs] == expected
    # each input stops at the sample from which its stage's outcome is fixed: the same decisions, fewer samples
    early_decision, early = horvath_adaptive_test(
        np.stack(streams), p0, 0.001, stages=horvath_stages(20_000), stop_when_fixed=True
    )
    assert list(early_decision) == list(decision) and np.all(early <= used) and np.any(early < used)
    assert [c.extra["stopped_at"] for c in certs] == list(early)
    assert all(c.extra["stopped_at"] <= c.extra["tested"] == c.evaluations - 1 for c in certs)
    assert horvath_stages(20_000) == (1000, 10000, 9000) and horvath_stages(100_000) == (1000, 10000, 89000)


def test_betting_stops_exactly_where_its_wealth_first_crosses():
    """The crossing sample is the first t with E_t(p0) >= 1/(2 alpha) (untruncated Jeffreys mixture, S >= p0 t)."""
    rng = np.random.default_rng(1)
    alpha, radius = 0.001, 0.5
    p0 = norm.cdf(radius / SIGMA)
    streams = [(rng.random(30_000) < p).astype(np.int64) for p in (0.97, 0.92, 0.88, 0.99)]
    rec = RecordedStreams(streams, 2, clean=np.ones(len(streams), dtype=np.int64))
    certs = run_method(
        "betting", rec, range(len(streams)), sigma=SIGMA, n0=100, n=0, alpha=alpha, radius=radius, max_samples=30_000
    )
    for stream, cert in zip(streams, certs):
        s, t = np.cumsum(stream), np.arange(1, stream.size + 1)
        crossed = log_beta_mixture_evalue(s, t, p0, 0.5, 0.5, truncated=False) >= np.log(1 / (2 * alpha))
        first = int(np.argmax(crossed & (s >= p0 * t))) + 1
        assert cert.decision == "certified" and cert.extra["stopped_at"] == first
        assert first <= cert.extra["tested"] < first * 1.3 + 64  # overdraw bounded by the chunk rule


def test_union_bound_decides_where_a_checkpoint_outcome_is_fixed():
    """As Voracek's code: the decision of the first checkpoint whose bound crosses, taken at the first sample from
    which the counts fix it (successes or failures can only grow until that checkpoint)."""
    rng = np.random.default_rng(2)
    alpha, radius = 0.001, 0.5
    p0 = norm.cdf(radius / SIGMA)
    streams = [(rng.random(30_000) < p).astype(np.int64) for p in (0.99, 0.93, 0.88, 0.8, 0.6)]
    rec = RecordedStreams(streams, 2, clean=np.ones(len(streams), dtype=np.int64))
    certs = run_method(
        "union-bound",
        rec,
        range(len(streams)),
        sigma=SIGMA,
        n0=100,
        n=0,
        alpha=alpha,
        radius=radius,
        max_samples=30_000,
    )
    times, _ = union_bound_checkpoints(30_000)
    for stream, cert in zip(streams, certs):
        s = np.cumsum(stream)[times - 1]
        up = union_bound_lower(s, times, alpha) > p0
        down = union_bound_upper(s, times, alpha) < p0
        first = int(np.argmax(up | down))
        assert cert.decision == ("certified" if up[first] else "not certified")
        assert cert.extra["stopped_at"] <= times[first] and cert.extra["stopped_at"] <= cert.extra["tested"]
    # the fixing sample, recomputed from Voracek's binomial-quantile thresholds at every sample
    rows = [c.row() for c in certs]
    assert check_baseline_rows(rec, rows, "union-bound", alpha, SIGMA, radius, 30_000) == []
    assert any(c.extra["stopped_at"] < c.extra["tested"] for c in certs)  # decided between checkpoints


@pytest.mark.parametrize(
    "method, radius",
    [("horvath", 0.3), ("union-bound", 0.3), ("union-bound", None), ("betting", 0.3), ("betting", None)],
)
def test_live_run_and_replay_of_its_recording_agree(linear, tmp_path, method, radius):
    xs = [linear.point_at_distance(d) for d in (0.05, 0.3, 0.6, -0.2)]
    keys, labels = [10, 11, 12, 13], [1, 1, 1, 0]
    live = _smooth(linear, seed=3).certify_many(
        xs, labels, method=method, radius=radius, keys=keys, max_samples=12_000, progress=False
    )
    record_streams(
        _smooth(linear, seed=3).streams(xs, keys, None),
        tmp_path,
        {"num_classes": 2, "indices": keys, "labels": labels, "sigma": SIGMA},
        length=12_000,
    )
    recorded, meta = load_recording(tmp_path)
    replay = run_method(
        method,
        recorded,
        range(4),
        sigma=SIGMA,
        n0=100,
        n=0,
        alpha=0.001,
        labels=meta["labels"],
        indices=meta["indices"],
        radius=radius,
        max_samples=12_000,
    )
    strip = lambda c: {k: v for k, v in c.row().items() if k != "seconds"}
    assert [strip(c) for c in live] == [strip(c) for c in replay]


def test_horvath_has_no_radius_mode_and_baselines_reject_bad_arguments(linear):
    x = linear.point_at_distance(0.3)
    with pytest.raises(HaltfastError, match="decides at a required radius only"):
        _smooth(linear).certify(x, method="horvath")
    with pytest.raises(HaltfastError, match="can never be certified"):
        _smooth(linear).certify(x, method="betting", radius=2.0, max_samples=1000)
    with pytest.raises(HaltfastError, match="unexpected keyword"):
        _smooth(linear).certify(x, method="union-bound", radius=0.2, prior="jeffreys")
    with pytest.raises(HaltfastError, match="unknown method"):
        _smooth(linear).certify(x, method="bogus")
