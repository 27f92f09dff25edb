import numpy as np
import pytest
from scipy.stats import binom

from haltfast.recording import load_recording, record_streams
from haltfast.smooth import Smooth

SIGMA = 0.5


def _smooth(linear, seed=0):
    return Smooth(linear, 2, SIGMA, seed=seed, value_range=None)


def _margin(n, alpha):
    """Largest count of false certificates still consistent with a rate <= alpha (one-sided, 1e-3)."""
    return binom.ppf(0.999, n, alpha)


@pytest.mark.parametrize("prior, selection", [
    ("jeffreys", "pilot"), ("pilot", "pilot"), ((1000.0, 1.0), "pilot"), ((1.0, 1000.0), "pilot"),
    ((0.01, 0.01), "pilot"), ((5e3, 5e3), "pilot"), ("jeffreys", "clean"), ((1000.0, 1.0), "clean"),
])
def test_decision_mode_false_certification_rate_at_most_alpha(linear, prior, selection):
    """True radius d; claim r = d (p = p0 exactly, the hardest null) with optional stopping, many priors."""
    d, alpha, n = 0.3, 0.1, 300
    x = linear.point_at_distance(d)
    certs = _smooth(linear, seed=11).certify_many([x] * n, method="anytime", radius=d, alpha=alpha,
                                                  max_samples=3000, prior=prior, n0=20, selection=selection,
                                                  progress=False)
    false = sum(c.decision == "certified" for c in certs)
    assert false <= _margin(n, alpha)
    assert all(c.decision in ("certified", "not certified", "undecided") for c in certs)


def test_decision_mode_has_power_and_stops_early(linear):
    d = 0.6
    x = linear.point_at_distance(d)
    certs = _smooth(linear).certify_many([x] * 20, method="anytime", radius=0.2, alpha=0.001, progress=False)
    assert all(c.decision == "certified" and c.radius == 0.2 for c in certs)
    # p = Phi(1.2) = 0.885 vs p0 = Phi(0.4) = 0.655: Wald's limit is ~ log(1000) / KL = 37 samples
    assert np.mean([c.evaluations for c in certs]) < 400
    refuted = _smooth(linear).certify_many([x] * 20, method="anytime", radius=1.0, alpha=0.001, progress=False)
    assert all(c.decision == "not certified" and c.radius == 0 for c in refuted)


@pytest.mark.parametrize("options", [{}, {"selection": "pilot", "prior": "pilot", "n0": 30}])
def test_radius_mode_never_overshoots_more_than_alpha(linear, options):
    d, alpha, n = 0.4, 0.1, 200
    x = linear.point_at_distance(d)
    certs = _smooth(linear, seed=5).certify_many([x] * n, method="anytime", radius=None, alpha=alpha,
                                                 max_samples=4000, tolerance=0.05, progress=False, **options)
    radii = np.array([c.radius for c in certs])
    assert np.mean(radii > d) <= _margin(n, alpha) / n
    assert np.median(radii) > 0.25  # and the radii are not vacuous


def test_radius_mode_abstains_on_a_tie(linear):
    x = linear.point_at_distance(0.0)
    certs = _smooth(linear).certify_many([x] * 10, method="anytime", radius=None, progress=False)
    assert sum(c.decision == "certified" for c in certs) <= 1
    assert all(c.prediction == Smooth.ABSTAIN for c in certs if c.decision == "abstain")


def test_evaluations_count_selection_and_every_drawn_sample(linear):
    x = linear.point_at_distance(0.6)
    pilot = _smooth(linear).certify(x, method="anytime", radius=0.2, n0=100, selection="pilot")
    assert pilot.evaluations == 100 + pilot.extra["tested"]
    clean = _smooth(linear).certify(x, method="anytime", radius=0.2, selection="clean")
    assert clean.evaluations == 1 + clean.extra["tested"]


def test_results_do_not_depend_on_how_inputs_share_batches(linear):
    xs = [linear.point_at_distance(d) for d in (0.1, 0.3, 0.5, 0.7, -0.4)]
    keys = list(range(5))
    a = _smooth(linear).certify_many(xs, method="anytime", radius=0.2, keys=keys, progress=False)
    b = _smooth(linear).certify_many(xs, method="anytime", radius=0.2, keys=keys, max_active=1, batch_size=7,
                                     progress=False)
    assert [(c.prediction, c.decision, c.evaluations) for c in a] == [(c.prediction, c.decision, c.evaluations)
                                                                        for c in b]


@pytest.mark.parametrize("radius, selection", [(0.3, "clean"), (None, "clean"), (0.3, "pilot"), (None, "pilot")])
def test_live_run_and_replay_of_its_recording_agree(linear, tmp_path, radius, selection):
    xs = [linear.point_at_distance(d) for d in (0.05, 0.3, 0.6, -0.2)]
    smooth = _smooth(linear, seed=3)
    live = smooth.certify_many(xs, [1, 1, 1, 0], method="anytime", radius=radius, keys=[10, 11, 12, 13],
                               max_samples=5000, selection=selection, progress=False)
    streams = _smooth(linear, seed=3).streams(xs, [10, 11, 12, 13], None)
    record_streams(streams, tmp_path, {"num_classes": 2, "indices": [10, 11, 12, 13], "labels": [1, 1, 1, 0],
                                       "sigma": SIGMA}, length=100 + 5000)
    recorded, meta = load_recording(tmp_path)
    from haltfast.methods import run_method

    replay = run_method("anytime", recorded, range(4), sigma=SIGMA, n0=100, n=0, alpha=0.001, labels=meta["labels"],
                        indices=meta["indices"], radius=radius, max_samples=5000, selection=selection)
    strip = lambda c: {k: v for k, v in c.row().items() if k != "seconds"}
    assert [strip(c) for c in live] == [strip(c) for c in replay]
