import numpy as np
import pytest
import torch
from scipy.stats import binom
from scipy.stats import norm
from torch import nn
from validity import bernoulli_recording
from validity import check_false_certifications
from validity import pilot_mixture

from haltfast.methods import run_method
from haltfast.smooth import Smooth
from haltfast.validation import clopper_pearson_boundary


def test_cohen_radius_never_exceeds_the_true_radius(linear):
    """Linear base classifier: p = Phi(d / sigma) exactly; the true radius is d. alpha = 0.001 over 40 seeds."""
    sigma, d = 0.5, 0.6
    x = linear.point_at_distance(d)
    radii = []
    for seed in range(40):
        smooth = Smooth(linear, 2, sigma, seed=seed, value_range=None)
        prediction, radius = smooth.certify(x, n0=100, n=2000, alpha=0.001)
        assert prediction == 1
        radii.append(radius)
    assert max(radii) <= d
    assert min(radii) > 0.2  # not vacuous: p = Phi(1.2) = 0.885 gives a real radius at n = 2000


@pytest.mark.slow
def test_cohen_overshoot_rate_is_the_exact_one():
    """The radius exceeds the truth (p = p0) exactly when the pilot picks the class and the Clopper-Pearson bound of
    n samples clears p0: a known probability below alpha, which the count must fit."""
    p0, alpha, n0, n, inputs = 0.7, 0.3, 20, 500, 1500
    rec = bernoulli_recording(p0, inputs, n0 + n, seed=123)
    certs = run_method("cohen", rec, range(inputs), sigma=1.0, n0=n0, n=n, alpha=alpha)
    over = sum(c.decision == "certified" and c.radius > norm.ppf(p0) for c in certs)
    clears = binom.sf(clopper_pearson_boundary([n], p0, alpha)[0] - 1, n, p0)
    exact = pilot_mixture(p0, n0, lambda p, hits: clears if p == p0 else 0.0)
    check_false_certifications(over, inputs, alpha, exact)


def test_cohen_radius_approaches_the_truth_as_n_grows(linear):
    sigma, d = 0.5, 0.5
    x = linear.point_at_distance(d)
    gaps = []
    for n in (1_000, 10_000, 100_000):
        smooth = Smooth(linear, 2, sigma, seed=1, value_range=None)
        certs = smooth.certify_many([x] * 5, n0=100, n=n, alpha=0.001, progress=False)
        gaps.append(d - np.mean([c.radius for c in certs]))
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert gaps[2] < 0.02


def test_abstains_when_the_classes_tie(linear):
    x = linear.point_at_distance(0.0)
    cert = Smooth(linear, 2, 0.5, seed=0, value_range=None).certify(x, n0=100, n=1000, alpha=0.001)
    assert (cert.prediction, cert.radius, cert.decision) == (Smooth.ABSTAIN, 0.0, "abstain")
    assert cert.evaluations == 1100


def test_predict_matches_the_linear_truth(linear):
    smooth = Smooth(linear, 2, 0.5, seed=0, value_range=None)
    assert smooth.predict(linear.point_at_distance(0.5), n=1000, alpha=0.001) == 1
    assert smooth.predict(-linear.point_at_distance(0.5), n=1000, alpha=0.001) == 0
    assert smooth.predict(linear.point_at_distance(0.0), n=1000, alpha=0.001) == Smooth.ABSTAIN


def test_seed_makes_results_bit_identical(linear):
    x = linear.point_at_distance(0.3)
    a = Smooth(linear, 2, 0.5, seed=7, value_range=None).certify_many([x, x], n0=10, n=300, progress=False)
    b = Smooth(linear, 2, 0.5, seed=7, value_range=None).certify_many([x, x], n0=10, n=300, progress=False)
    assert [(c.prediction, c.radius) for c in a] == [(c.prediction, c.radius) for c in b]
    assert a[0].p_lower != a[1].p_lower  # two calls on the same image draw different noise


def test_works_with_a_torch_module():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    cert = Smooth(net, 3, 0.25, seed=0).certify(torch.rand(1, 4, 4), n0=100, n=1000, alpha=0.001)
    assert cert.prediction == 1 and cert.radius == pytest.approx(0.25 * norm.ppf(0.001 ** (1 / 1000)))
