import numpy as np
import pytest
from scipy.stats import norm
from validity import bernoulli_recording
from validity import check_false_certifications
from validity import pilot_mixture

from haltfast import validation as hv
from haltfast.methods import run_method
from haltfast.predictors import NAMED_PRIORS as NAMED
from haltfast.recording import load_recording
from haltfast.recording import record_streams
from haltfast.smooth import Smooth
from haltfast.statistics import clopper_pearson_lower

SIGMA = 0.5


def _smooth(linear, seed=0):
    return Smooth(linear, 2, SIGMA, seed=seed, value_range=None)


ALPHA, P0, CAP, N = 0.5, 0.7, 1500, 1000  # replayed cases: a large alpha keeps them small enough to catch 1.2 alpha


def _pilot_mixture(prior, n0, cap):
    """The exact certification probability with pilot selection at p = P0 (the pilot's Jeffreys posterior as the
    prior when prior is 'pilot')."""

    def certify(p, hits):
        a, b = (0.5 + hits, 0.5 + n0 - hits) if prior == "pilot" else prior
        return hv.decision_probabilities(p, P0, ALPHA, [(1.0, a, b)], cap)[0]

    return pilot_mixture(P0, n0, certify)


# priors that are bad for p = p0 but can still reject (each case's exact probability is > 0.1 alpha)
PRIORS = [
    ("jeffreys", "clean"),
    ((1000.0, 1.0), "clean"),
    ((0.01, 0.01), "clean"),
    ((0.701 * 1024, 0.299 * 1024), "clean"),
    ("jeffreys", "pilot"),
    ("pilot", "pilot"),
]


@pytest.mark.slow
@pytest.mark.parametrize("prior, selection", PRIORS)
def test_decision_mode_false_certification_rate_is_the_exact_one(prior, selection):
    """p = p0 exactly (the hardest null), optional stopping in uneven shared chunks: the certified count fits the
    exact probability that the certification E-process crosses before the futility one (at most alpha)."""
    n0 = 20
    rec = bernoulli_recording(P0, N, n0 + CAP, seed=len(str(prior)) + len(selection))
    certs = run_method(
        "anytime",
        rec,
        range(N),
        sigma=1.0,
        n0=n0,
        n=0,
        alpha=ALPHA,
        radius=float(norm.ppf(P0)),
        max_samples=CAP,
        prior=prior,
        selection=selection,
    )
    if selection == "clean":
        exact, _, _ = hv.decision_probabilities(P0, P0, ALPHA, [(1.0, *NAMED.get(prior, prior))], CAP)
    else:
        exact = _pilot_mixture(NAMED.get(prior, prior), n0, CAP)
    assert exact > 0.1 * ALPHA
    check_false_certifications(sum(c.decision == "certified" for c in certs), N, ALPHA, exact)


def test_a_clopper_pearson_monitor_fails_the_validity_test(monkeypatch):
    """The mutant check: a certifier that monitors the fixed-n Clopper-Pearson bound after every sample (the
    classic bug) in place of the E-process must make the validity test above fail."""
    from haltfast.methods import anytime

    monkeypatch.setattr(anytime, "mixture_test", MonitoredClopperPearson)
    with pytest.raises(AssertionError, match="false certificates"):
        test_decision_mode_false_certification_rate_is_the_exact_one("jeffreys", "clean")


class MonitoredClopperPearson:
    """The invalid test: rejects p <= p0 as soon as the one-sided Clopper-Pearson bound at level alpha clears p0."""

    def __init__(self, p0, alpha, parts, n, alternative="greater"):
        self.p0, self.alpha, self.less = p0, alpha, alternative == "less"
        self.trials, self.hits = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        self.rejected, self.stopping_time = np.zeros(n, dtype=bool), np.full(n, -1, dtype=np.int64)
        self.threshold, self.log_evalue = np.full(n, -np.log(alpha)), np.zeros(n)

    def update_flat(self, x, rows, lengths):
        for row, seg in zip(rows, np.split(np.asarray(x, dtype=np.int64), np.cumsum(lengths)[:-1])):
            if self.rejected[row]:
                continue
            s = self.hits[row] + np.cumsum(seg if not self.less else 1 - seg)
            t = self.trials[row] + np.arange(1, seg.size + 1)
            crossed = np.nonzero(clopper_pearson_lower(s, t, self.alpha) > (1 - self.p0 if self.less else self.p0))[0]
            end = crossed[0] if crossed.size else seg.size - 1
            self.hits[row], self.trials[row] = s[end], t[end]
            if crossed.size:
                self.rejected[row], self.stopping_time[row] = True, t[end]

    def update_batch(self, batch):
        self.update_flat(batch.x, batch.rows, batch.lengths)

    def log_evalue_at(self, rows):
        return self.log_evalue[rows]

    def log_evalue_of(self, rows, successes, trials):
        return self.log_evalue[rows]

    def could_reject(self, rows, remaining):
        return np.ones(np.size(rows), dtype=bool)

    @property
    def successes(self):
        return self.trials - self.hits if self.less else self.hits

    def gap_at(self, rows):
        return self.threshold[rows] - self.log_evalue[rows]


def test_decision_mode_has_power_and_stops_early(linear):
    d = 0.6
    x = linear.point_at_distance(d)
    certs = _smooth(linear).certify_many([x] * 20, method="anytime", radius=0.2, alpha=0.001, progress=False)
    assert all(c.decision == "certified" and c.radius == 0.2 for c in certs)
    # p = Phi(1.2) = 0.885 vs p0 = Phi(0.4) = 0.655: Wald's limit is ~ log(1000) / KL = 37 samples
    assert np.mean([c.evaluations for c in certs]) < 400
    refuted = _smooth(linear).certify_many([x] * 20, method="anytime", radius=1.0, alpha=0.001, progress=False)
    assert all(c.decision == "not certified" and c.radius == 0 for c in refuted)


def _overshoot_bound(p0, prior, n0, pilot: bool):
    """Exact P(the lower confidence bound ever exceeds p0 within CAP samples) at p = p0: radius mode reports a
    radius above the true one only then, whatever its stopping rule (a mixture over the pilot with pilot
    selection)."""
    t = np.arange(1, CAP + 1)

    def excluded(p, a, b):
        return hv.crossing_probabilities(p, hv.beta_mixture_boundary(t, p0, ALPHA, a, b))[0]

    if not pilot:
        return excluded(p0, *prior)
    return pilot_mixture(p0, n0, lambda p, hits: excluded(p, 0.5 + hits, 0.5 + n0 - hits))


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"selection": "pilot", "prior": "pilot"}])
def test_radius_mode_overshoots_at_most_the_exact_bound(options):
    """True radius sigma * Phi^-1(P0): radius mode exceeds it no more often than its confidence sequence ever
    excludes P0, an exact probability below alpha; and the radii it reports are not vacuous."""
    n0 = 30 if options else 100
    rec = bernoulli_recording(P0, N, n0 + CAP, seed=17 + n0)
    certs = run_method(
        "anytime",
        rec,
        range(N),
        sigma=1.0,
        n0=n0,
        n=0,
        alpha=ALPHA,
        radius=None,
        max_samples=CAP,
        tolerance=0.05,
        **options,
    )
    true_radius = float(norm.ppf(P0))
    bound = _overshoot_bound(P0, (0.5, 0.5), n0, "selection" in options)
    check_false_certifications(sum(c.radius > true_radius for c in certs), N, ALPHA, bound, exact_is_bound=True)
    assert np.median([c.radius for c in certs]) > 0.5 * true_radius


def test_radius_mode_live_never_overshoots_the_linear_truth(linear):
    """The live path on a linear classifier (p = Phi(d / sigma) exactly): radii near d, never far above it."""
    d = 0.4
    certs = _smooth(linear, seed=5).certify_many(
        [linear.point_at_distance(d)] * 40, method="anytime", radius=None, alpha=0.001, max_samples=4000, tolerance=0.05
    )
    radii = np.array([c.radius for c in certs])
    assert np.all(radii <= d + 0.01) and np.median(radii) > 0.25


@pytest.mark.slow
def test_radius_mode_abstains_on_a_tie():
    """At p = 1/2 (a tie) a radius is certified only when the confidence sequence excludes 1/2: at most that
    exact probability; every other input abstains with prediction ABSTAIN."""
    rec = bernoulli_recording(0.5, N, CAP, seed=23)
    certs = run_method("anytime", rec, range(N), sigma=1.0, n0=100, n=0, alpha=ALPHA, radius=None, max_samples=CAP)
    bound = _overshoot_bound(0.5, (0.5, 0.5), 0, False)
    check_false_certifications(sum(c.decision == "certified" for c in certs), N, ALPHA, bound, exact_is_bound=True)
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
    b = _smooth(linear).certify_many(
        xs, method="anytime", radius=0.2, keys=keys, max_active=1, batch_size=7, progress=False
    )
    assert [(c.prediction, c.decision, c.evaluations) for c in a] == [
        (c.prediction, c.decision, c.evaluations) for c in b
    ]


@pytest.mark.parametrize("radius, selection", [(0.3, "clean"), (None, "clean"), (0.3, "pilot"), (None, "pilot")])
def test_live_run_and_replay_of_its_recording_agree(linear, tmp_path, radius, selection):
    xs = [linear.point_at_distance(d) for d in (0.05, 0.3, 0.6, -0.2)]
    smooth = _smooth(linear, seed=3)
    live = smooth.certify_many(
        xs,
        [1, 1, 1, 0],
        method="anytime",
        radius=radius,
        keys=[10, 11, 12, 13],
        max_samples=5000,
        selection=selection,
        progress=False,
    )
    streams = _smooth(linear, seed=3).streams(xs, [10, 11, 12, 13], None)
    record_streams(
        streams,
        tmp_path,
        {"num_classes": 2, "indices": [10, 11, 12, 13], "labels": [1, 1, 1, 0], "sigma": SIGMA},
        length=100 + 5000,
    )
    recorded, meta = load_recording(tmp_path)
    from haltfast.methods import run_method

    replay = run_method(
        "anytime",
        recorded,
        range(4),
        sigma=SIGMA,
        n0=100,
        n=0,
        alpha=0.001,
        labels=meta["labels"],
        indices=meta["indices"],
        radius=radius,
        max_samples=5000,
        selection=selection,
    )
    strip = lambda c: {k: v for k, v in c.row().items() if k != "seconds"}
    assert [strip(c) for c in live] == [strip(c) for c in replay]
