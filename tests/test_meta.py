import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import norm
from validity import bernoulli_recording
from validity import check_false_certifications
from validity import forced_meta

from haltfast.cli import main
from haltfast.errors import HaltfastError
from haltfast.methods import run_method
from haltfast.predictors import FEATURES
from haltfast.predictors import CalibrationData
from haltfast.predictors import MetaLearner
from haltfast.predictors import features
from haltfast.predictors import fit_meta_learner
from haltfast.predictors import meta_learner_path
from haltfast.smooth import Smooth
from haltfast.validation import beta_mixture_boundary
from haltfast.validation import crossing_probabilities
from haltfast.validation import decision_probabilities

SIGMA = 0.5


class LinearLogits:
    """The conftest's linear classifier, returning logits (-(w.x), w.x): p = Phi(w.x / sigma) exactly."""

    def __init__(self, linear):
        self.linear = linear

    def __call__(self, batch):
        s = batch.reshape(len(batch), -1) @ self.linear.w
        return np.column_stack([-s, s])


def test_features_of_known_logits():
    f = features(np.array([[0.0, np.log(3.0)], [5.0, 5.0]]))
    assert f.shape == (2, len(FEATURES))
    np.testing.assert_allclose(f[0, 0], np.log(0.75))  # log top probability
    np.testing.assert_allclose(f[0, 1], np.log(0.5))  # log(0.75 - 0.25)
    np.testing.assert_allclose(f[0, 2], np.log(3.0))  # logit gap
    np.testing.assert_allclose(f[1, 3], np.log(2.0))  # entropy of a tie
    with pytest.raises(HaltfastError):
        features(np.zeros(3))


def test_numpy_inference_matches_scikit_learn():
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 4)) * 3
    x = features(logits)
    y = x[:, 2] - 1.0
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=500, random_state=0).fit(x, y)
    learner = forced_meta(0.5, 4.0)
    learner = MetaLearner(
        {
            **learner.params,
            "coefs": [w.tolist() for w in mlp.coefs_],
            "intercepts": [b.tolist() for b in mlp.intercepts_],
        }
    )
    np.testing.assert_allclose(learner.predict_logit(logits), np.clip(mlp.predict(x), -12, 12), rtol=1e-9)


def _synthetic_calibration(n=2000, samples=400, seed=0):
    """p rises with the logit gap, as for a real classifier; hits are binomial draws."""
    rng = np.random.default_rng(seed)
    gap = rng.exponential(3.0, size=n)
    logits = np.column_stack([np.zeros(n), gap, rng.normal(size=n) - 2])
    p = expit(-1.0 + 1.5 * gap)
    hits = rng.binomial(samples, p)
    return CalibrationData(logits, hits, samples, np.arange(n), np.ones(n, dtype=int), SIGMA, 0, "a" * 64, "m.pt"), p


@pytest.mark.slow
def test_fit_predicts_p_and_tunes_a_prior_that_stops_sooner_than_jeffreys():
    calib, p = _synthetic_calibration()
    learner, fit = fit_meta_learner(calib, alpha=0.01, max_samples=3000, tune_paths=400)
    assert fit["tune_paths"] == 400 and learner.params["calibration_evaluations"] == 2000 * 401
    pred = expit(learner.predict_logit(calib.logits))
    assert np.mean(np.abs(pred - p)) < 0.03
    assert fit["heldout_p_mae"] < 0.03
    for z in learner.params["z_grid"]:
        row = fit["mean_stopping_time"][f"z={z:g}"]
        assert row["chosen"] <= row["jeffreys"]
    # on inputs with p near 1 and p0 = Phi(1), a well-centred prior must beat Jeffreys clearly
    row = fit["mean_stopping_time"]["z=1"]
    assert row["chosen"] < 0.95 * row["jeffreys"]


def test_save_load_and_refuse_another_model(tmp_path):
    learner = forced_meta(0.9, 16.0, sha="b" * 64)
    path = learner.save(tmp_path / "m.meta.json")
    again = MetaLearner.load(path, "b" * 64)
    logits = np.random.default_rng(1).normal(size=(5, 2))
    np.testing.assert_array_equal(again.prior(logits, 0.5)[0], learner.prior(logits, 0.5)[0])
    with pytest.raises(HaltfastError, match="calibrate"):
        MetaLearner.load(path, "c" * 64)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(HaltfastError, match="cannot load"):
        MetaLearner.load(tmp_path / "bad.json")
    assert meta_learner_path("/x/model.pt").name == "model.meta.json"


P0, ALPHA, CAP, N = 0.7, 0.5, 1500, 600


@pytest.mark.parametrize(
    "center, strength", [(0.999, 1024.0), (P0 + 1e-3, 1024.0), (0.02, 256.0), (P0, 2.0), (0.5, -4096.0)]
)  # the last: centred just above the threshold
@pytest.mark.slow
def test_forced_bad_meta_priors_keep_false_certification_at_most_alpha(center, strength):
    """p = p0 exactly (the claimed radius is the true one), optional stopping, a forced prior for every input:
    decision mode certifies at the exact rate of its hedged tests (<= alpha), radius mode overshoots no more
    often than its confidence sequence ever excludes p0."""
    learner = forced_meta(center, strength)
    rec = bernoulli_recording(P0, N, CAP + 1, seed=int(1000 * center) + abs(int(strength)), logits=True)
    radius = SIGMA * float(norm.ppf(P0))
    certs = run_method(
        "anytime", rec, range(N), sigma=SIGMA, n0=0, n=0, alpha=ALPHA, radius=radius, max_samples=CAP, prior=learner
    )
    parts = [(w, float(a[0]), float(b[0])) for w, a, b in learner.parts(radius / SIGMA, np.array([[-1.0, 1.0]]), 1)]
    exact, _, _ = decision_probabilities(P0, P0, ALPHA, parts, CAP)
    assert exact > 0.05 * ALPHA  # the hedge's Jeffreys test rejects even where the learned prior cannot
    check_false_certifications(sum(c.decision == "certified" for c in certs), N, ALPHA, exact)
    radius_mode = run_method(
        "anytime",
        bernoulli_recording(P0, N, CAP, seed=7, logits=True),
        range(N),
        sigma=SIGMA,
        n0=0,
        n=0,
        alpha=ALPHA,
        radius=None,
        max_samples=CAP,
        tolerance=0.05,
        prior=learner,
    )
    t = np.arange(1, CAP + 1)
    parts = learner.parts(None, np.array([[-1.0, 1.0]]), 1)
    upper = np.min([beta_mixture_boundary(t, P0, ALPHA * w, float(a[0]), float(b[0])) for w, a, b in parts], axis=0)
    bound, _, _ = crossing_probabilities(P0, upper)
    check_false_certifications(sum(c.radius > radius for c in radius_mode), N, ALPHA, bound, exact_is_bound=True)


def test_radius_mode_keeps_jeffreys_whatever_the_meta_learner_predicts():
    rec = bernoulli_recording(0.8, 40, 3000, seed=3, logits=True)
    options = {"sigma": SIGMA, "n0": 0, "n": 0, "alpha": ALPHA, "radius": None, "max_samples": 2000, "tolerance": 0.05}
    meta = run_method("anytime", rec, range(40), prior=forced_meta(0.55, 1024.0), **options)
    plain = run_method("anytime", rec.rewound(), range(40), prior="jeffreys", **options)
    assert [c.radius for c in meta] == [c.radius for c in plain]
    assert [c.evaluations for c in meta] == [c.evaluations for c in plain]


def test_meta_prior_shares_the_clean_evaluation_and_needs_logits(linear):
    x = linear.point_at_distance(0.6)
    smooth = Smooth(LinearLogits(linear), 2, SIGMA, seed=0, value_range=None, weights_sha256="0" * 64)
    cert = smooth.certify(x, method="anytime", radius=0.2, prior=forced_meta(0.9, 16.0))
    assert cert.decision == "certified" and cert.evaluations == 1 + cert.extra["tested"]
    labels_only = Smooth(linear, 2, SIGMA, seed=0, value_range=None, weights_sha256="0" * 64)
    cert = labels_only.certify(x, method="anytime", radius=0.2, prior=forced_meta(0.9, 16.0))
    assert cert.decision == "error" and "logits" in cert.error
    with pytest.raises(HaltfastError, match="meta-learner"):
        smooth.certify(x, method="anytime", radius=0.2, prior="meta")


@pytest.mark.slow
def test_cli_calibrate_then_certify_starts_the_online_learner_from_the_calibrated_one(
    digits_model, tmp_path, certify_digits
):
    data, meta = tmp_path / "calib.npz", tmp_path / "digits.meta.json"
    assert (
        main(
            [
                "calibrate",
                "--data",
                "digits",
                "--model",
                str(digits_model),
                "--samples",
                "200",
                "--tune-max-samples",
                "2000",
                "--tune-paths",
                "400",
                "--data-out",
                str(data),
                "--out",
                str(meta),
                "--quiet",
            ]
        )
        == 0
    )
    calib = CalibrationData.load(data)
    assert len(calib.hits) == 359 and calib.samples == 200 and calib.evaluations == 359 * 201
    params = json.loads(meta.read_text())
    assert params["weights_sha256"] == calib.weights_sha256 and "command" in params
    assert params["calibration_evaluations"] == calib.evaluations and params["fit"]["tune_paths"] == 359 * 2
    # beside the model it becomes the default prior
    beside = digits_model.with_name(digits_model.stem + ".meta.json")
    beside.write_text(meta.read_text())
    try:
        summary, out = tmp_path / "s.json", tmp_path / "c.csv"
        assert (
            main(
                certify_digits(
                    "--skip", "4", "--radius", "0.25", "--out", str(out), "--summary-json", str(summary), "--quiet"
                )
            )
            == 0
        )
        assert json.loads(summary.read_text())["options"]["prior"] == "meta"
        frame = pd.read_csv(out)
        assert (frame["evaluations"] == 1 + frame["tested"]).all()
        # triage takes it too: a clean selection (one evaluation), its belief steering the schedule
        policies, triaged = tmp_path / "p.toml", tmp_path / "t.csv"
        policies.write_text("[classes.all]\nradius = 0.25\nalpha = 0.001\nmax_samples = 5000\n")
        triage_args = ["triage", "--data", "digits", "--model", str(digits_model), "--skip", "4"]
        assert (
            main([*triage_args, "--policies", str(policies), "--prior", "meta", "--out", str(triaged), "--quiet"]) == 0
        )
        rows = pd.read_csv(triaged)
        assert len(rows) == len(frame) and (rows["evaluations"] == 1 + rows["tested"]).all()
        assert set(rows["state"]) <= {"certified", "not certified", "undecided"}
        # a meta-learner of another model is refused
        params["weights_sha256"] = "f" * 64
        beside.write_text(json.dumps(params))
        assert main(certify_digits("--skip", "4", "--radius", "0.25", "--quiet")) == 2
    finally:
        beside.unlink()
    # without it, the calibrated learner alone is refused; meta is the online learner, no calibration needed
    assert main(certify_digits("--skip", "4", "--radius", "0.25", "--prior", "calibrated", "--quiet")) == 2
    assert main(certify_digits("--skip", "4", "--radius", "0.25", "--prior", "meta", "--quiet")) == 0


def test_beta_prior_centres_on_the_prediction_or_just_above_the_threshold():
    from haltfast.predictors import beta_prior

    mean = np.array([0.9, 0.9, 0.9])
    a, b = beta_prior(mean, np.array([10.0, 0.0, -1000.0]), p0=0.7)
    np.testing.assert_allclose([a[0], b[0]], [9.0, 1.0])  # at the prediction
    np.testing.assert_allclose([a[1], b[1]], [0.5, 0.5])  # Jeffreys
    assert 0.7 < a[2] / (a[2] + b[2]) < 0.702 and a[2] + b[2] == 1000.0  # just above p0, whatever the prediction
    a, b = beta_prior(np.array([0.5]), np.array([-10.0]), p0=1 - 1e-6)
    assert 1 - 1e-6 < a[0] / (a[0] + b[0]) < 1  # stays inside (p0, 1) next to 1
