"""Grid mode: one certificate per input at the largest grid radius the evidence supports, valid at alpha."""

import numpy as np
import pytest
from scipy.stats import norm
from validity import bernoulli_recording
from validity import check_false_certifications

from haltfast.cli import main
from haltfast.errors import HaltfastError
from haltfast.methods import run_method
from haltfast.validation import beta_mixture_boundary
from haltfast.validation import crossing_probabilities

SIGMA, ALPHA, CAP, N = 1.0, 0.5, 1500, 1000
GRID = (0.0, 0.25, 0.5)


def _grid_run(p, n=N, seed=0, alpha=ALPHA, cap=CAP, **options):
    """Grid mode on Bernoulli(p) streams, selected by the clean prediction with Jeffreys' prior (the exact
    probabilities below are that test's; grid mode's default is the pilot)."""
    rec = bernoulli_recording(p, n, cap + 1, seed=seed)
    options = {"selection": "clean", "prior": "jeffreys", **options}
    return run_method(
        "anytime", rec, range(n), sigma=SIGMA, n0=0, n=0, alpha=alpha, radii=GRID, max_samples=cap, **options
    )


@pytest.mark.slow
@pytest.mark.parametrize("worth", [None, 1e5])
def test_reported_radius_exceeds_the_true_one_at_most_as_often_as_one_test_rejects(worth):
    """p = Phi(r_2 / sigma): the true certified radius is r_2 exactly, so any certificate at r_2 or above is false.
    It needs the test at r_2 to reject (the rejections are read nested): at most that exact probability."""
    p = float(norm.cdf(GRID[1] / SIGMA))
    certs = _grid_run(p, worth=worth, futility_alpha=0.01)
    false = sum(c.decision == "certified" and c.radius >= GRID[1] for c in certs)
    bound, _, _ = crossing_probabilities(p, beta_mixture_boundary(np.arange(1, CAP + 1), p, ALPHA))
    check_false_certifications(false, N, ALPHA, bound, exact_is_bound=True)
    assert sum(c.decision == "certified" for c in certs) > 0.9 * N  # and r = 0 (p = 0.6 > 1/2) is certified


def test_each_input_gets_its_bucket_and_stops_once_it_is_decided():
    for p, radius in ((0.56, 0.0), (0.645, 0.25), (0.9, 0.5)):  # Phi(0.25) = 0.599, Phi(0.5) = 0.691
        certs = _grid_run(p, n=20, seed=3, alpha=0.001, cap=20_000, worth=None)
        assert all(c.decision == "certified" and c.radius == radius for c in certs), (p, [c.radius for c in certs])
        assert all(c.evaluations < 20_000 for c in certs)  # decided (next radius refuted, or the top one) early
        assert all(c.stop_reason == "grid bucket decided" for c in certs)


def test_the_value_rule_never_adds_a_certificate():
    """Giving up only stops an input earlier: its certified radius is never above the one it reaches without."""
    p = float(norm.cdf(0.45 / SIGMA))
    full = _grid_run(p, n=200, seed=5, worth=None)
    thrifty = _grid_run(p, n=200, seed=5, worth=2e3)
    assert all(t.radius <= f.radius for t, f in zip(thrifty, full))
    assert sum(t.evaluations for t in thrifty) < sum(f.evaluations for f in full)
    assert any(t.stop_reason.startswith("given up") for t in thrifty)


@pytest.mark.parametrize(
    "radii, message",
    [
        ((), "grid is empty"),
        ((0.5, 0.25), "must be increasing: 0.25 comes after 0.5"),
        ((0.25, 0.25), "lists 0.25 twice"),
        ((-0.1, 0.5), "finite number >= 0, got -0.1"),
        ((0.5, 9.0), "grid radius 9 can never be certified"),
    ],
)
def test_bad_grids_are_one_clear_message_before_any_work(radii, message):
    rec = bernoulli_recording(0.9, 2, CAP + 1, seed=0)
    with pytest.raises(HaltfastError, match=message):
        run_method("anytime", rec, range(2), sigma=SIGMA, n0=0, n=0, alpha=ALPHA, radii=radii, max_samples=CAP)
    assert rec.positions.sum() == 0  # nothing was drawn


def test_grid_mode_on_the_command_line_prints_the_table(digits_model, tmp_path, capsys, certify_digits):
    out = tmp_path / "grid.csv"
    assert (
        main(
            certify_digits("--max", "6", "--radii", "0,0.1,0.2", "--max-samples", "3000", "--out", str(out), "--quiet")
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "grid mode" in text and "0.10" in text and "0.20" in text
    import pandas as pd

    frame = pd.read_csv(out)
    assert set(frame.loc[frame["decision"] == "certified", "radius"]) <= {0.0, 0.1, 0.2}
    assert main(["certify", "--data", "digits", "--model", str(digits_model), "--radii", "0.2,0.1", "--quiet"]) == 2
    assert "increasing" in capsys.readouterr().err
