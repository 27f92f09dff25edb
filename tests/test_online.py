"""The online meta-learner: what it learns, how it starts inputs, and that every certificate stays valid."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scipy.special import expit
from scipy.special import logit
from scipy.stats import norm
from validity import check_false_certifications_exact
from validity import forced_meta

from haltfast.cli import main
from haltfast.methods import run_method
from haltfast.predictors import OnlineLearner
from haltfast.predictors import OnlineSession
from haltfast.predictors import simulated_stopping_times
from haltfast.predictors.online import GRID
from haltfast.predictors.online import StoppingTimes
from haltfast.predictors.online import mixture_boundary
from haltfast.predictors.online import mixture_of_p
from haltfast.predictors.online import moment_beta
from haltfast.smooth import Smooth
from haltfast.streams import RecordedStreams
from haltfast.validation import beta_mixture_boundary
from haltfast.validation import decision_probabilities


def test_mixture_of_p_finds_two_groups_from_their_counts():
    rng = np.random.default_rng(0)
    trials = np.r_[np.full(40, 5000), np.full(60, 300)]
    p = np.r_[np.full(40, 0.9), np.full(60, 0.999)]
    weights = mixture_of_p(rng.binomial(trials, p).astype(float), trials.astype(float))
    assert weights.sum() == pytest.approx(1.0)
    assert weights[np.abs(GRID - logit(0.9)) < 1.0].sum() == pytest.approx(0.4, abs=0.05)
    # 300 of 300 hits cannot tell 0.999 from 1: the mass lies anywhere above about 0.99
    assert weights[logit(0.99) < GRID].sum() == pytest.approx(0.6, abs=0.05)
    a, b = moment_beta(weights[None, :])
    assert a[0] / (a[0] + b[0]) == pytest.approx(weights @ expit(GRID))


def test_mixture_of_p_counts_inputs_still_running_and_nothing_for_none():
    # one input at 30 of 30 hits: p is near 1, not the 1/2 of an empty fit
    weights = mixture_of_p(np.array([30.0]), np.array([30.0]))
    assert weights @ expit(GRID) > 0.9
    np.testing.assert_allclose(mixture_of_p(np.zeros(0), np.zeros(0)), 1 / GRID.size)


@settings(max_examples=60, deadline=None)
@given(
    p0=st.floats(0.02, 0.999),
    alpha=st.floats(1e-6, 0.5),
    a=st.floats(0.1, 2e4),
    b=st.floats(0.1, 2e4),
)
def test_fast_boundary_is_the_exact_boundary(p0, alpha, a, b):
    t = np.unique(np.round(np.geomspace(1, 200_000, 40))).astype(np.int64)
    shape = (2, t.size)
    T, A, B = np.broadcast_to(t, shape), np.full(shape, a), np.full(shape, b)
    np.testing.assert_array_equal(mixture_boundary(T, p0, alpha, A, B), beta_mixture_boundary(T, p0, alpha, A, B))


@pytest.mark.parametrize("centre, strength", [(0.5, 0.0), (None, 256.0), (0.95, 64.0)])
def test_expected_stopping_time_bounds_the_simulated_one(centre, strength):
    """The learner's E[min(tau, horizon)] is an upper bound (P(tau > t) <= P(f(t) < S_t < c(t))), and a close one."""
    z, alpha, cap = 1.0, 0.01, 5000
    p0 = float(norm.cdf(z))
    centre = p0 + 1e-3 if centre is None else centre
    times = StoppingTimes(np.array([p0]), alpha, alpha, 0.9, cap)
    times.prepare(0, [("x", centre, strength)])
    bound = times.cache[0]["x"].sum(axis=1)
    a, b = (0.5, 0.5) if strength == 0 else (centre * strength, (1 - centre) * strength)
    for logit_p in (0.5, 1.25, 1.75, 2.25, 4.0):
        g = int(np.argmin(np.abs(GRID - logit_p)))
        n = 2000
        sim = simulated_stopping_times(
            np.full(n, expit(GRID[g])), np.full(n, a), np.full(n, b), z, alpha, cap, np.random.default_rng(g), hedge=0.9
        )
        assert sim.mean() - 4 * sim.std() / np.sqrt(n) <= bound[g] <= 1.35 * sim.mean() + 5


def _recording(p: np.ndarray, gap: np.ndarray, length: int, seed: int) -> RecordedStreams:
    """Streams whose label is 1 (the clean class) with probability p[i]; clean logits (0, gap[i])."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((p.size, length)) < p[:, None]).astype(np.uint8)
    logits = np.column_stack([np.zeros(p.size), gap])
    return RecordedStreams(labels, 2, clean=np.ones(p.size, dtype=np.int64), logits=logits)


class Spy:
    """Records each call of OnlineSession.priors: (inputs started before, inputs finished, rows, priors)."""

    def __init__(self, monkeypatch):
        self.calls: list = []
        priors = OnlineSession.priors

        def recording(session, rows, succ, tested, started, finished):
            out = priors(session, rows, succ, tested, started, finished)
            self.calls.append((int(np.count_nonzero(started)), finished, rows.copy(), out, session.fits))
            return out

        monkeypatch.setattr(OnlineSession, "priors", recording)

    def prior_of(self, n: int) -> list:
        """Per input: ((a, b) of the certification test, (a, b) of the futility test) at the first threshold."""
        out: list = [None] * n
        for _, _, rows, priors, _ in self.calls:
            (ca, cb), (fa, fb) = priors[0]
            for k, j in enumerate(rows):
                out[j] = ((float(ca[k]), float(cb[k])), (float(fa[k]), float(fb[k])))
        return out


SIGMA = 0.5


def test_inputs_start_in_waves_and_each_prior_is_set_once_before_its_labels(monkeypatch):
    spy = Spy(monkeypatch)
    n = 400
    rng = np.random.default_rng(1)
    p = rng.uniform(0.6, 0.999, n)
    rec = _recording(p, np.abs(logit(p) + rng.normal(0, 0.3, n)) + 0.05, 3000, seed=2)
    learner = OnlineLearner(first_wave=16)
    certs = run_method(
        "anytime", rec, range(n), sigma=SIGMA, n0=0, n=0, alpha=0.01, radius=0.25, max_samples=3000, prior=learner
    )
    assert len(certs) == n and spy.calls
    seen = np.concatenate([rows for _, _, rows, _, _ in spy.calls])
    assert np.array_equal(np.sort(seen), np.arange(n))  # every input got its prior exactly once
    assert np.array_equal(seen, np.sort(seen))  # in input order
    for started, finished, rows, _, _ in spy.calls:  # never more started than the waves allow
        assert started + rows.size <= max(16, int(np.ceil(2.0 * finished)))
    assert spy.calls[-1][4] >= 3  # refitted as inputs finished


def test_the_learner_learns_the_priors_of_two_kinds_of_input_and_saves_evaluations(monkeypatch):
    """Inputs whose clean logit gap says which of two rates they have: the learner, from the inputs before,
    centres the certification prior of the sure ones near their rate, and spends less than Jeffreys."""
    spy = Spy(monkeypatch)
    n = 600
    rng = np.random.default_rng(3)
    sure = rng.random(n) < 0.7
    p = np.where(sure, 0.9995, 0.80)
    gap = np.where(sure, 8.0, 1.0) + rng.normal(0, 0.2, n)
    rec = _recording(p, gap, 20_000, seed=4)
    options = {"sigma": SIGMA, "n0": 0, "n": 0, "alpha": 0.001, "radius": 0.5, "max_samples": 20_000}
    online = run_method("anytime", rec, range(n), prior=OnlineLearner(), **options)
    jeffreys = run_method("anytime", rec.rewound(), range(n), prior="jeffreys", **options)
    late = np.arange(n) >= 300
    priors = spy.prior_of(n)
    cert_mean = np.array([a / (a + b) for (a, b), _ in priors])
    assert np.mean(cert_mean[late & sure] > 0.99) > 0.9
    spent = [np.array([c.evaluations for c in certs])[late].sum() for certs in (online, jeffreys)]
    assert spent[0] < 0.95 * spent[1]
    assert [c.decision for c in online] == [c.decision for c in jeffreys]


@pytest.mark.slow
@pytest.mark.parametrize("decoy", [0.999, 0.72])
def test_an_online_learner_fed_misleading_inputs_keeps_every_certificate_valid(decoy, monkeypatch):
    """The first inputs, all at p = decoy (far above the threshold, or just above it), finish first and teach
    the learner; every later input, with the same clean logits, sits at p = p0 exactly (its claimed radius is
    its true one). Each later input's false certification has the exact probability of the priors it was given
    (the forward recursion of validation.decision_probabilities); their count must follow that law."""
    spy = Spy(monkeypatch)
    p0, alpha, cap, decoys, n = 0.7, 0.1, 400, 150, 3000
    radius = SIGMA * float(norm.ppf(p0))
    p = np.r_[np.full(decoys, decoy), np.full(n, p0)]
    rec = _recording(p, np.full(p.size, 2.0), cap + 1, seed=int(1000 * decoy))
    certs = run_method(
        "anytime",
        rec,
        range(p.size),
        sigma=SIGMA,
        n0=0,
        n=0,
        alpha=alpha,
        radius=radius,
        max_samples=cap,
        prior=OnlineLearner(),
    )
    priors = spy.prior_of(p.size)[decoys:]
    laws = {}
    for prior in set(priors):
        (ca, cb), (fa, fb) = prior
        share = OnlineLearner().hedge
        parts, futility = [(share, ca, cb), (1 - share, 0.5, 0.5)], [(share, fa, fb), (1 - share, 0.5, 0.5)]
        laws[prior] = decision_probabilities(p0, p0, alpha, parts, cap, futility_parts=futility)[0]
    rates = np.array([laws[prior] for prior in priors])
    # the learner changed its priors as it learned: from the decoys, and (where that moves its choice) from the
    # inputs at p0 as they came in
    assert len(set(spy.prior_of(p.size))) >= 2
    false = sum(c.decision == "certified" for c in certs[decoys:])
    check_false_certifications_exact(false, rates, alpha)


def test_a_calibrated_learner_is_the_first_waves_prior(monkeypatch):
    spy = Spy(monkeypatch)
    base = forced_meta(0.95, 64.0, sigma=SIGMA)
    n = 80
    rec = _recording(np.full(n, 0.97), np.full(n, 3.0), 2000, seed=5)
    run_method(
        "anytime",
        rec,
        range(n),
        sigma=SIGMA,
        n0=0,
        n=0,
        alpha=0.01,
        radius=0.25,
        max_samples=2000,
        prior=OnlineLearner(base),
    )
    first = spy.calls[0]
    assert first[4] == 0  # before any fit
    (ca, cb), _ = first[3][0]
    np.testing.assert_allclose(ca / (ca + cb), 0.95)
    np.testing.assert_allclose(ca + cb, 64.0)
    assert OnlineLearner(base).calibration_evaluations == base.calibration_evaluations
    assert OnlineLearner().calibration_evaluations == 0 and OnlineLearner().weights_sha256 is None


def test_radius_mode_keeps_jeffreys_and_starts_every_input_at_once():
    n = 40
    rec = _recording(np.full(n, 0.9), np.full(n, 3.0), 3000, seed=6)
    options = {"sigma": SIGMA, "n0": 0, "n": 0, "alpha": 0.01, "radius": None, "max_samples": 2000, "tolerance": 0.05}
    online = run_method("anytime", rec, range(n), prior=OnlineLearner(), **options)
    plain = run_method("anytime", rec.rewound(), range(n), prior="jeffreys", **options)
    assert [(c.radius, c.evaluations) for c in online] == [(c.radius, c.evaluations) for c in plain]


def test_python_api_takes_the_online_prior_without_weights(linear):
    class Logits:
        def __call__(self, batch):
            s = batch.reshape(len(batch), -1) @ linear.w
            return np.column_stack([-s, s])

    smooth = Smooth(Logits(), 2, SIGMA, seed=0, value_range=None)  # no weights_sha256 needed: no calibrated learner
    images = np.stack([linear.point_at_distance(d) for d in (0.4, 0.6, 0.8, 1.0)])
    certs = smooth.certify_many(images, method="anytime", radius=0.2, prior="online", n0=0, keys=range(4))
    again = smooth.certify_many(images, method="anytime", radius=0.2, prior=OnlineLearner(), n0=0, keys=range(4))
    assert [(c.decision, c.evaluations) for c in certs] == [(c.decision, c.evaluations) for c in again]
    assert all(c.decision == "certified" and c.evaluations == 1 + c.extra["tested"] for c in certs)


@pytest.mark.slow
def test_cli_online_prior_for_a_model_without_a_learner(digits_model, tmp_path, certify_digits):
    summary, out = tmp_path / "s.json", tmp_path / "c.csv"
    args = ["--skip", "2", "--radius", "0.25", "--out", str(out), "--summary-json", str(summary), "--quiet"]
    assert main(certify_digits(*args)) == 0  # meta is the default, for any model
    facts = json.loads(summary.read_text())
    assert facts["options"]["prior"] == "meta" and facts["calibration_evaluations"] == 0
    frame = pd.read_csv(out)
    assert (frame["evaluations"] == 1 + frame["tested"]).all()
    # the journal knows the prior: the same run resumed with another prior is refused
    assert main(certify_digits(*args, "--prior", "jeffreys")) == 2
    assert main(certify_digits(*args)) == 0
    pd.testing.assert_frame_equal(frame.drop(columns="seconds"), pd.read_csv(out).drop(columns="seconds"))
    # without calibration there is no calibrated learner to use alone
    assert main(certify_digits("--skip", "8", "--radius", "0.25", "--prior", "calibrated", "--quiet")) == 2
