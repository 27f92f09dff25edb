import numpy as np
import pytest
from scipy.stats import binom, norm

from haltfast.methods import run_method
from haltfast.methods.horvath import certify_horvath, horvath_adaptive_test, horvath_stages
from haltfast.methods.voracek import union_bound_checkpoints, union_bound_lower, union_bound_upper
from haltfast.errors import HaltfastError
from haltfast.recording import load_recording, record_streams
from haltfast.smooth import Smooth
from haltfast.streams import RecordedStreams
from haltfast.statistics import log_beta_mixture_evalue

SIGMA = 0.5
BASELINES = ("horvath", "union-bound", "betting")


def _smooth(linear, seed=0):
    return Smooth(linear, 2, SIGMA, seed=seed, value_range=None)


def _margin(n, alpha):
    """Largest count of false certificates still consistent with a rate <= alpha (one-sided, 1e-3)."""
    return binom.ppf(0.999, n, alpha)


@pytest.mark.parametrize("method", BASELINES)
def test_decision_mode_false_certification_rate_at_most_alpha(linear, method):
    """True radius d, claimed radius d: p = Phi(d / sigma) = p0 exactly, the hardest null."""
    d, alpha, n = 0.3, 0.05, 300
    certs = _smooth(linear, seed=21).certify_many([linear.point_at_distance(d)] * n, method=method, radius=d,
                                                  alpha=alpha, max_samples=3000, progress=False)
    assert sum(c.decision == "certified" for c in certs) <= _margin(n, alpha)
    assert {c.decision for c in certs} <= {"certified", "not certified", "undecided"}


@pytest.mark.parametrize("method", ["union-bound", "betting"])
def test_radius_mode_overshoots_at_most_alpha_and_is_not_vacuous(linear, method):
    d, alpha, n = 0.4, 0.05, 200
    certs = _smooth(linear, seed=5).certify_many([linear.point_at_distance(d)] * n, method=method, radius=None,
                                                 alpha=alpha, max_samples=4000, tolerance=0.05, progress=False)
    radii = np.array([c.radius for c in certs])
    assert np.sum(radii > d) <= _margin(n, alpha)
    assert np.median(radii) > 0.25


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
    certs = certify_horvath(rec, range(len(streams)), sigma=SIGMA, alpha=0.001, radius=0.5, max_samples=20_000)
    decision, used = horvath_adaptive_test(np.stack(streams), p0, 0.001, stages=horvath_stages(20_000))
    expected = [{1: "certified", 0: "not certified"}.get(int(d), "undecided") for d in decision]
    assert [c.decision for c in certs] == expected
    assert [c.evaluations for c in certs] == list(used + 1)
    assert horvath_stages(20_000) == (1000, 10000, 9000) and horvath_stages(100_000) == (1000, 10000, 89000)


def test_betting_stops_exactly_where_its_wealth_first_crosses():
    """The crossing sample is the first t with E_t(p0) >= 1/(2 alpha) (untruncated Jeffreys mixture, S >= p0 t)."""
    rng = np.random.default_rng(1)
    alpha, radius = 0.001, 0.5
    p0 = norm.cdf(radius / SIGMA)
    streams = [(rng.random(30_000) < p).astype(np.int64) for p in (0.97, 0.92, 0.88, 0.99)]
    rec = RecordedStreams(streams, 2, clean=np.ones(len(streams), dtype=np.int64))
    certs = run_method("betting", rec, range(len(streams)), sigma=SIGMA, n0=100, n=0, alpha=alpha, radius=radius,
                       max_samples=30_000)
    for stream, cert in zip(streams, certs):
        s, t = np.cumsum(stream), np.arange(1, stream.size + 1)
        crossed = (log_beta_mixture_evalue(s, t, p0, 0.5, 0.5, truncated=False) >= np.log(1 / (2 * alpha)))
        first = int(np.argmax(crossed & (s >= p0 * t))) + 1
        assert cert.decision == "certified" and cert.extra["stopped_at"] == first
        assert first <= cert.extra["tested"] < first * 1.3 + 64  # overdraw bounded by the chunk rule


def test_union_bound_decides_at_the_first_checkpoint_whose_bound_crosses():
    """Skipping checkpoints that cannot decide changes nothing: same decision, same sample, nothing overdrawn."""
    rng = np.random.default_rng(2)
    alpha, radius = 0.001, 0.5
    p0 = norm.cdf(radius / SIGMA)
    streams = [(rng.random(30_000) < p).astype(np.int64) for p in (0.99, 0.93, 0.88, 0.8, 0.6)]
    rec = RecordedStreams(streams, 2, clean=np.ones(len(streams), dtype=np.int64))
    certs = run_method("union-bound", rec, range(len(streams)), sigma=SIGMA, n0=100, n=0, alpha=alpha,
                       radius=radius, max_samples=30_000)
    times, _ = union_bound_checkpoints(30_000)
    for stream, cert in zip(streams, certs):
        s = np.cumsum(stream)[times - 1]
        up = union_bound_lower(s, times, alpha) > p0
        down = union_bound_upper(s, times, alpha) < p0
        first = int(np.argmax(up | down))
        assert cert.decision == ("certified" if up[first] else "not certified")
        assert cert.extra["tested"] == cert.extra["stopped_at"] == times[first]


@pytest.mark.parametrize("method, radius", [("horvath", 0.3), ("union-bound", 0.3), ("union-bound", None),
                                            ("betting", 0.3), ("betting", None)])
def test_live_run_and_replay_of_its_recording_agree(linear, tmp_path, method, radius):
    xs = [linear.point_at_distance(d) for d in (0.05, 0.3, 0.6, -0.2)]
    keys, labels = [10, 11, 12, 13], [1, 1, 1, 0]
    live = _smooth(linear, seed=3).certify_many(xs, labels, method=method, radius=radius, keys=keys,
                                                max_samples=12_000, progress=False)
    record_streams(_smooth(linear, seed=3).streams(xs, keys, None), tmp_path,
                   {"num_classes": 2, "indices": keys, "labels": labels, "sigma": SIGMA}, length=12_000)
    recorded, meta = load_recording(tmp_path)
    replay = run_method(method, recorded, range(4), sigma=SIGMA, n0=100, n=0, alpha=0.001, labels=meta["labels"],
                        indices=meta["indices"], radius=radius, max_samples=12_000)
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
