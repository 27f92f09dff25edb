"""Each row's evidence is right: where its test crossed (stopped_at), the E-value there (log_evalue), the checked
shares of a predictor's union, and no sampling once an input's outcome can no longer change (issue 21)."""

import numpy as np
import pytest
from scipy.stats import norm
from validity import bernoulli_recording
from validity import check_false_certifications
from validity import forced_meta

from haltfast import validation as hv
from haltfast.bench.crossings import check_anytime_rows
from haltfast.bench.crossings import check_baseline_rows
from haltfast.errors import HaltfastError
from haltfast.methods import run_method
from haltfast.statistics import BetaMixtureTest
from haltfast.statistics import UnionTest
from haltfast.statistics import log_beta_mixture_evalue

SIGMA = 1.0


def _run(rec, n, **options):
    return run_method("anytime", rec, range(n), sigma=SIGMA, n0=0, n=0, **options)


def _union_log_e(parts, i, hits, p0, alpha):
    """The union's evidence on the overall scale after `hits`: max over components of log E + log(share)."""
    s, t = int(np.sum(hits)), hits.size
    return max(log_beta_mixture_evalue(s, t, p0, a[i], b[i]) + np.log(w) for w, a, b in parts) if t else 0.0


# ---------------------------------------------------------------------------------------------- stopped_at


@pytest.mark.parametrize("prior", ["jeffreys", "hedged"])
def test_stopped_at_is_the_first_crossing_and_log_evalue_the_evidence_there(prior):
    """Property of every certified row: the evidence recomputed on labels[:stopped_at] crosses 1/alpha and on
    labels[:stopped_at - 1] it does not; log_evalue is that evidence (the union's largest share-scaled E-value under
    the hedged meta-learner prior, whose two tests used to report the end of the chunk). A not-certified row's
    log_evalue is the certification test's at the futility crossing, not after it."""
    alpha, n, cap, radius = 0.001, 120, 6000, 0.5
    p0 = float(norm.cdf(radius / SIGMA))
    ps = np.repeat([0.62, 0.66, 0.75, 0.8, 0.95, 0.999], n // 6)
    rng = np.random.default_rng(4)
    labels = (rng.random((n, cap)) < ps[:, None]).astype(np.uint8)
    from haltfast.streams import RecordedStreams

    rec = RecordedStreams(labels, 2, clean=np.ones(n, dtype=np.int64), logits=np.tile([[-1.0, 1.0]], (n, 1)))
    learner = forced_meta(0.9, 200.0, sigma=SIGMA) if prior == "hedged" else None
    options = {"prior": learner} if learner else {}
    certs = _run(rec, n, alpha=alpha, radius=radius, max_samples=cap, **options)
    parts = learner.parts(radius / SIGMA, rec.logits, n) if learner else [(1.0, np.full(n, 0.5), np.full(n, 0.5))]
    assert len(parts) == (2 if learner else 1)
    certified = [i for i, c in enumerate(certs) if c.decision == "certified"]
    assert len(certified) > n / 3 and any(c.decision == "not certified" for c in certs)
    for i in certified:
        at = certs[i].extra["stopped_at"]
        x = labels[i] == 1
        assert _union_log_e(parts, i, x[:at], p0, alpha) >= -np.log(alpha)
        assert _union_log_e(parts, i, x[: at - 1], p0, alpha) < -np.log(alpha)
        assert certs[i].log_evalue == pytest.approx(_union_log_e(parts, i, x[:at], p0, alpha), abs=1e-9)
        assert at <= certs[i].extra["tested"]
    for i, c in enumerate(certs):
        if c.decision == "not certified":
            at = c.extra["stopped_at"]
            assert c.log_evalue == pytest.approx(_union_log_e(parts, i, labels[i, :at] == 1, p0, alpha), abs=1e-9)
    rows = [c.row() for c in certs]
    components = lambda z: [[(w, a[i], b[i]) for w, a, b in parts] for i in range(n)]
    assert check_anytime_rows(rec, rows, components, alpha, SIGMA, radius=radius) == []


def test_grid_rows_stop_where_their_certificate_was_established():
    """Grid mode, hedged prior: stopped_at is the last first-crossing of the tests at radii 1..c (independently
    recomputed at every sample), though the input went on sampling to refute the next radius."""
    alpha, n, cap, radii = 0.001, 60, 8000, (0.0, 0.25, 0.5)
    ps = np.repeat([0.58, 0.64, 0.7, 0.9], n // 4)
    rng = np.random.default_rng(6)
    labels = (rng.random((n, cap)) < ps[:, None]).astype(np.uint8)
    from haltfast.streams import RecordedStreams

    rec = RecordedStreams(labels, 2, clean=np.ones(n, dtype=np.int64), logits=np.tile([[-1.0, 1.0]], (n, 1)))
    learner = forced_meta(0.7, 100.0, sigma=SIGMA)
    certs = _run(rec, n, alpha=alpha, radii=radii, max_samples=cap, prior=learner, worth=None, selection="clean")
    rows = [c.row() for c in certs]

    def components(z):
        parts = learner.parts(z, rec.logits, n)
        return [[(w, a[i], b[i]) for w, a, b in parts] for i in range(n)]

    assert check_anytime_rows(rec, rows, components, alpha, SIGMA, radii=radii) == []
    assert any(r["stopped_at"] < r["tested"] for r in rows if r["decision"] == "certified")


def test_a_union_test_freezes_at_its_first_crossing():
    """Fed past its crossing, a union keeps the crossing's stopping time, counts and evidence (the component that
    has not crossed is fed no more); fed in any split, it crosses at the same sample."""
    x = np.array([1] * 60 + [0] * 40, dtype=np.uint8)
    tests = lambda: UnionTest(
        [BetaMixtureTest(0.6, 0.05, 30.0, 1.0, n_streams=1), BetaMixtureTest(0.6, 0.05, n_streams=1)]
    )
    whole, parts = tests(), tests()
    whole.update(x[None, :])
    for lo in range(0, x.size, 7):
        parts.update(x[None, lo : lo + 7])
    t = int(whole.stopping_time[0])
    assert whole.rejected[0] and 0 < t < 60
    assert parts.stopping_time[0] == t and whole.trials[0] == t and whole.successes[0] == t
    expected = max(
        log_beta_mixture_evalue(t, t, 0.6, 30.0, 1.0) + np.log(0.5),
        log_beta_mixture_evalue(t, t, 0.6, 0.5, 0.5) + np.log(0.5),
    )
    assert whole.log_evalue[0] == pytest.approx(expected) and parts.log_evalue[0] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- shares


class FixedParts:
    """A user's predictor: five priors of the certification test, each at the given share of alpha."""

    needs_logits = False
    PRIORS = ((0.5, 0.5), (72.0, 28.0), (75.0, 25.0), (80.0, 20.0), (90.0, 10.0))

    def __init__(self, share: float):
        self.share = share

    def parts(self, z, logits, n):
        return [(self.share, np.full(n, a), np.full(n, b)) for a, b in self.PRIORS]


P0, ALPHA, CAP, N = 0.7, 0.1, 1500, 1000


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.2, 1.0])
def test_a_predictor_cannot_break_validity(share):
    """p = p0 exactly: shares summing to 1 keep the false-certification rate at its exact value (<= alpha); five
    shares of 1 (a union at 5 alpha, exact rate 0.152 at alpha = 0.1) are refused with one error naming the
    predictor, before any sample is drawn."""
    rec = bernoulli_recording(P0, N, CAP, seed=11)
    predictor = FixedParts(share)
    try:
        certs = _run(rec, N, alpha=ALPHA, radius=float(norm.ppf(P0)) * SIGMA, max_samples=CAP, prior=predictor)
    except HaltfastError as exc:
        assert share * len(FixedParts.PRIORS) > 1 and "predictor FixedParts" in str(exc) and "sum to 5" in str(exc)
        assert rec.positions.sum() == 0
        return
    parts = [(w, a[0], b[0]) for w, a, b in predictor.parts(None, None, 1)]
    exact, _, _ = hv.decision_probabilities(P0, P0, ALPHA, parts, CAP)
    count = sum(c.decision == "certified" for c in certs)
    check_false_certifications(count, N, ALPHA, exact)


def test_without_the_share_check_the_validity_test_fails(monkeypatch):
    """The mutant: with the check gone, the five shares of 1 run at 5 alpha and the simulation above fails."""
    from haltfast import engine
    from haltfast.predictors import priors

    monkeypatch.setattr(engine, "check_parts", lambda parts, n, who="": parts)
    monkeypatch.setattr(priors, "check_parts", lambda parts, n, who="": parts)
    with pytest.raises(AssertionError, match="exceeds alpha"):
        test_a_predictor_cannot_break_validity(1.0)


@pytest.mark.parametrize(
    "parts, message",
    [
        ([(0.0, 1.0, 1.0)], "share of alpha of 0"),
        ([(1.5, 1.0, 1.0)], "share of alpha of 1.5"),
        ([(0.6, 1.0, 1.0), (0.6, 0.5, 0.5)], "sum to 1.2"),
        ([(1.0, -1.0, 1.0)], "not a finite number > 0"),
        ([], "test components"),
    ],
)
def test_bad_shares_are_one_clear_error(parts, message):
    class Bad:
        needs_logits = False

        def parts(self, z, logits, n):
            return [(w, np.full(n, a), np.full(n, b)) for w, a, b in parts]

    rec = bernoulli_recording(0.9, 3, 100, seed=0)
    with pytest.raises(HaltfastError, match=message) as info:
        _run(rec, 3, alpha=0.01, radius=0.5, max_samples=100, prior=Bad())
    assert "predictor Bad" in str(info.value) and rec.positions.sum() == 0


# ---------------------------------------------------------------------------------------------- out of reach


def test_an_input_stops_once_its_certificate_is_out_of_reach(monkeypatch):
    """p just below p0 and a cap: inputs stop as undecided once even all hits to the cap could not reach 1/alpha
    (an exact bound, recomputed here), with the same certificates as running to the cap and fewer evaluations."""
    n, cap, radius = 60, 4000, 0.5
    p0 = float(norm.cdf(radius / SIGMA))
    rec = bernoulli_recording(p0 - 0.01, n, cap, seed=9)
    certs = _run(rec, n, alpha=0.001, radius=radius, max_samples=cap)
    hopeless = [c for c in certs if c.stop_reason.startswith("certificate out of reach")]
    assert hopeless and all(c.decision == "undecided" and c.extra["tested"] < cap for c in hopeless)
    for i, c in enumerate(certs):
        if c in hopeless:
            t = c.extra["tested"]
            s = int(np.sum(rec.streams[i][:t] == 1))
            assert log_beta_mixture_evalue(s + cap - t, cap, p0, 0.5, 0.5) < -np.log(0.001)
    monkeypatch.setattr(BetaMixtureTest, "could_reject", lambda self, rows, left: np.ones(np.size(rows), bool))
    full = _run(bernoulli_recording(p0 - 0.01, n, cap, seed=9), n, alpha=0.001, radius=radius, max_samples=cap)
    assert [(c.decision == "certified", c.radius) for c in certs] == [
        (f.decision == "certified", f.radius) for f in full
    ]
    assert sum(c.evaluations for c in certs) < sum(f.evaluations for f in full)


def test_grid_inputs_stop_once_the_next_radius_is_out_of_reach(monkeypatch):
    """Grid mode, every bucket decided (worth 0): an input whose next radius all hits to the cap could not certify
    stops there with the radius it has; certificates are those of running to the cap."""
    n, cap, radii = 60, 4000, (0.0, 0.25, 0.5)
    p = float(norm.cdf(0.5 / SIGMA)) - 0.01  # certifies 0.25, hovers below 0.5
    options = {"alpha": 0.001, "radii": radii, "max_samples": cap, "worth": 0, "selection": "clean"}
    certs = _run(bernoulli_recording(p, n, cap, seed=12), n, **options)
    assert any(c.stop_reason.startswith("next grid radius out of reach") for c in certs)
    monkeypatch.setattr(BetaMixtureTest, "could_reject", lambda self, rows, left: np.ones(np.size(rows), bool))
    full = _run(bernoulli_recording(p, n, cap, seed=12), n, **options)
    assert [(c.decision, c.radius) for c in certs] == [(f.decision, f.radius) for f in full]
    assert sum(c.evaluations for c in certs) < sum(f.evaluations for f in full)


def test_could_reject_is_exact_against_every_continuation():
    """BetaMixtureTest.could_reject against brute force: the largest log E over every continuation of m outcomes
    (every count of further ones, at every length) reaches the threshold exactly when it says so."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        p0, a, b = rng.uniform(0.3, 0.95), rng.uniform(0.3, 30), rng.uniform(0.3, 30)
        t0 = int(rng.integers(0, 300))
        s0 = int(rng.binomial(t0, rng.uniform(0.2, 1.0)))
        m = int(rng.integers(0, 200))
        alpha = 10.0 ** rng.uniform(-4, -1)
        for side in ("greater", "less"):
            test = BetaMixtureTest(p0, alpha, a, b, n_streams=1, alternative=side)
            test.update(np.array([1] * s0 + [0] * (t0 - s0), dtype=np.uint8)) if t0 else None
            if test.rejected[0]:
                continue
            best = -np.inf
            for extra in range(1, m + 1):  # every length, every count of ones
                ones = np.arange(extra + 1)
                s = s0 + ones
                log_e = (
                    log_beta_mixture_evalue(s, t0 + extra, p0, a, b)
                    if side == "greater"
                    else log_beta_mixture_evalue(t0 + extra - s, t0 + extra, 1 - p0, b, a)
                )
                best = max(best, float(np.max(log_e)))
            assert bool(test.could_reject([0], [m])[0]) == (best >= -np.log(alpha)), (trial, side)


def test_baselines_stop_once_their_certificate_is_out_of_reach():
    """Voracek's betting and union-bound CS end an input undecided once no continuation to the cap certifies it,
    with the decisions of running on; their decided rows stop where their rules (recomputed here) first hold."""
    n, cap, radius = 40, 6000, 0.5
    p0 = float(norm.cdf(radius / SIGMA))
    for method in ("betting", "union-bound"):
        rec = bernoulli_recording(p0 - 0.015, n, cap, seed=21)
        certs = run_method(method, rec, range(n), sigma=SIGMA, n0=0, n=0, alpha=0.001, radius=radius, max_samples=cap)
        assert any(c.stop_reason.startswith("certificate out of reach") for c in certs), method
        assert all(c.decision != "certified" for c in certs if c.extra["tested"] < cap and c.decision == "undecided")
        assert check_baseline_rows(rec, [c.row() for c in certs], method, 0.001, SIGMA, radius, cap) == []
