import numpy as np
import pytest
import torch
from scipy.stats import binom, norm
from torch import nn

from haltfast.smooth import Smooth


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


def test_cohen_overshoot_rate_is_at_most_alpha_and_has_power(linear):
    """At alpha = 0.1 the radius exceeds the truth in at most ~10% of seeds (binomial margin), and in some."""
    sigma, d, alpha, seeds = 0.5, 0.4, 0.1, 200
    x = linear.point_at_distance(d)
    smooth = Smooth(linear, 2, sigma, seed=123, value_range=None)
    certs = smooth.certify_many([x] * seeds, n0=50, n=500, alpha=alpha, progress=False)
    over = sum(c.radius > d for c in certs)
    assert over <= binom.ppf(0.999, seeds, alpha)
    assert over > 0  # CP is nearly exact here: a check that could never fire would be worthless


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
