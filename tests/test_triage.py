import functools
import os
import signal

import numpy as np
import pytest
from scipy.stats import norm
from validity import check_false_certifications
from validity import forced_meta
from validity import pilot_mixture

from haltfast.errors import HaltfastError
from haltfast.smooth import Smooth
from haltfast.statistics import log_beta_mixture_evalue
from haltfast.streams import RecordedStreams
from haltfast.triage import POLICIES
from haltfast.triage import PolicyClass
from haltfast.triage import Triage
from haltfast.triage import assign_classes
from haltfast.triage import format_triage_summary
from haltfast.triage import load_policies
from haltfast.triage import parse_policies
from haltfast.triage import triage
from haltfast.validation import decision_probabilities

SIGMA = 0.5
N0 = 20


def _bernoulli_streams(ps, length, seed):
    """Two-class label streams: label 1 with probability p (so p_1 = p exactly), label 0 otherwise."""
    rng = np.random.default_rng(seed)
    ps = np.asarray(ps, dtype=float)
    return [row.astype(np.uint8) for row in (rng.random((ps.size, length)) < ps[:, None])]


def _fresh(streams):
    return RecordedStreams(streams, 2)


def _chase_evidence(tri, room):
    """An adversarial schedule: small chunks to the inputs whose certification E-value is highest right now,
    so the inputs closest to a (false) certificate get the most looks; the others wait."""
    js = np.nonzero(tri.pending)[0]
    js = js[np.argsort(-tri.log_evalue[js], kind="stable")]
    return js, np.full(js.size, tri.min_chunk)


def _mixed_policies(cap=1500):
    return [
        PolicyClass("a50", radius=0.3, alpha=0.5, priority=1, max_samples=cap),
        PolicyClass("a30", radius=0.15, alpha=0.3, priority=2, max_samples=cap),
    ]


@functools.lru_cache
def _exact_with_pilot(p0, alpha, cap, prior=None):
    """Exact P(certified) of an input run to its end at p = p0: majority selection over N0 pilot samples, then
    the pilot's Jeffreys posterior (or a fixed prior) for both tests, capped at cap tested samples."""

    def certify(p, hits):
        a, b = prior or (0.5 + hits, 0.5 + N0 - hits)
        return decision_probabilities(p, p0, alpha, [(1.0, a, b)], cap)[0]

    return pilot_mixture(p0, N0, certify)


# ---------------------------------------------------------------------------------------------
# validity under every schedule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, budget",
    [
        ("max-decisions", 625_000),
        ("risk", 625_000),
        ("round-robin", 625_000),
        (_chase_evidence, 625_000),
        (_chase_evidence, None),
    ],
)
@pytest.mark.slow
def test_false_certification_rate_per_class_at_most_alpha_whatever_the_schedule(policy, budget):
    """p = Phi(r_i / sigma) exactly for the selected class (the hardest null), per-class alpha 0.5 and 0.3.

    Run to the end, every schedule reaches the same decisions (each input's outcome depends on its own stream
    only), so each class's certified count fits its exact probability; under a budget (about a fifth of what the
    run needs) the schedule decides who is stopped where, and that probability bounds the count.
    """
    sizes, cap = (1000, 1500), 1500
    policies = _mixed_policies(cap)
    classes = np.repeat([0, 1], sizes)
    p = np.array([norm.cdf(policies[k].radius / SIGMA) for k in classes])
    streams = _bernoulli_streams(p, N0 + cap, seed=17)
    rep = triage(
        _fresh(streams),
        range(classes.size),
        policies,
        sigma=SIGMA,
        classes=classes,
        policy=policy,
        n0=N0,
        batch=3000,
        min_chunk=16,
        budget_evaluations=budget,
    )
    rows = rep.rows()
    if budget is None:
        assert rep.stop_reason == "every input final"
        assert all(r["state"] in ("certified", "not certified", "undecided") for r in rows)
    else:
        assert rep.evaluations == budget
    for pc, n in zip(policies, sizes):
        false = sum(r["state"] == "certified" for r in rows if r["class"] == pc.name)
        exact = _exact_with_pilot(float(norm.cdf(pc.radius / SIGMA)), pc.alpha, cap)
        check_false_certifications(false, n, pc.alpha, exact, exact_is_bound=budget is not None)


@pytest.mark.slow
def test_live_linear_classifier_false_certification_under_adversarial_schedule(linear):
    """Live noise on a linear classifier with the true radius equal to the claimed one (p = p0 exactly), an
    over-optimistic prior and the adversarial schedule: the certified count fits the exact probability."""
    d, alpha, n, cap = 0.3, 0.5, 1000, 600
    x = linear.point_at_distance(d)
    streams = Smooth(linear, 2, SIGMA, seed=23, value_range=None).streams([x] * n, list(range(n)), None)
    policies = [PolicyClass("tight", radius=d, alpha=alpha, max_samples=cap)]
    rep = triage(
        streams,
        range(n),
        policies,
        sigma=SIGMA,
        policy=_chase_evidence,
        n0=N0,
        batch=2000,
        prior=lambda js, c, h: (np.full(js.size, 50.0), np.full(js.size, 0.5)),
    )  # an over-optimistic prior
    false = sum(r["state"] == "certified" for r in rep.rows())
    exact = _exact_with_pilot(float(norm.cdf(d / SIGMA)), alpha, cap, prior=(50.0, 0.5))
    check_false_certifications(false, n, alpha, exact)
    assert int(streams.positions.sum()) == rep.evaluations


def test_power_every_policy_certifies_clear_inputs_and_refutes_hopeless_ones():
    policies = [PolicyClass("r", radius=0.25, alpha=1e-3, max_samples=5000)]
    ps = np.array([0.99] * 10 + [0.4] * 10)  # p0 = Phi(0.5) = 0.69
    streams = _bernoulli_streams(ps, N0 + 5000, seed=3)
    for policy in POLICIES:
        rows = triage(_fresh(streams), range(20), policies, sigma=SIGMA, policy=policy, n0=N0).rows()
        states = [r["state"] for r in rows]
        assert states[:10] == ["certified"] * 10 and states[10:] == ["not certified"] * 10, policy
        assert all(r["certified_radius"] == 0.25 for r in rows[:10])
        assert all(r["certified_radius"] < 0.25 for r in rows[10:])


# ---------------------------------------------------------------------------------------------
# budget accounting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_budget_is_never_exceeded_and_every_evaluation_is_counted(policy):
    rng = np.random.default_rng(5)
    ps = rng.uniform(0.55, 1.0, size=60)
    streams = _bernoulli_streams(ps, N0 + 3000, seed=9)
    policies = [
        PolicyClass("hi", radius=0.5, alpha=1e-3, priority=3, max_samples=3000, every=3),
        PolicyClass("lo", radius=0.1, alpha=0.01, max_samples=3000),
    ]
    for budget in (0, N0 - 1, N0, N0 + 1, 777, 5000, 23_456):
        rec = _fresh(streams)
        rep = triage(rec, range(60), policies, sigma=SIGMA, policy=policy, n0=N0, batch=500, budget_evaluations=budget)
        rows = rep.rows()
        used = rep.evaluations
        assert used <= budget
        assert used == int(rec.positions.sum()) == sum(r["evaluations"] for r in rows)
        assert all(r["evaluations"] == rec.positions[i] for i, r in enumerate(rows))
        assert all(r["evaluations"] == 0 or r["evaluations"] == N0 + r["tested"] for r in rows)
        if rep.stop_reason == "evaluation budget spent":
            # the budget is used up, except a remainder smaller than a pilot when only unpiloted inputs wait
            pending = [r for r in rows if r["state"] == "pending"]
            assert used == budget or (budget - used < N0 and all(r["evaluations"] == 0 for r in pending))
        else:
            assert not any(r["state"] == "pending" for r in rows)


def test_per_input_cap_is_respected():
    streams = _bernoulli_streams([0.7] * 8, N0 + 400, seed=2)  # p0 = 0.69: hard, runs into the cap
    policies = [PolicyClass("c", radius=0.25, alpha=1e-3, max_samples=300)]
    rep = triage(_fresh(streams), range(8), policies, sigma=SIGMA, policy="round-robin", n0=N0)
    for r in rep.rows():
        assert r["tested"] <= 300
        if r["state"] == "undecided":
            assert r["tested"] == 300 and r["stop_reason"] == "max_samples reached"


def test_seconds_budget_stops_the_run():
    streams = _bernoulli_streams([0.7] * 50, N0 + 20_000, seed=4)
    policies = [PolicyClass("c", radius=0.25, alpha=1e-6, max_samples=20_000)]
    rep = triage(_fresh(streams), range(50), policies, sigma=SIGMA, n0=N0, batch=200, budget_seconds=0.2)
    assert rep.stop_reason == "time budget spent"
    assert rep.meta["seconds"] < 2.0


# ---------------------------------------------------------------------------------------------
# interruption and resumption
# ---------------------------------------------------------------------------------------------


def _check_rows_against_streams(rows, streams, policies, n0):
    """Recompute every reported state from the raw stream prefix it consumed."""
    by_name = {p.name: p for p in policies}
    for i, r in enumerate(rows):
        s = streams[i]
        if r["evaluations"] == 0:
            assert r["state"] == "pending" and r["prediction"] == -1
            continue
        c_hat = int(np.bincount(s[:n0], minlength=2).argmax())
        hits = int(np.count_nonzero(s[:n0] == c_hat))
        assert r["prediction"] == c_hat
        x = s[n0 : n0 + r["tested"]] == c_hat
        pc = by_name[r["class"]]
        p0 = norm.cdf(pc.radius / SIGMA)
        a, b = 0.5 + hits, 0.5 + n0 - hits  # the 'pilot' prior
        thr = -np.log(pc.alpha)
        if r["state"] == "certified":
            t = r["stopped_at"]
            assert log_beta_mixture_evalue(x[:t].sum(), t, p0, a, b) >= thr - 1e-9
            assert log_beta_mixture_evalue(x[: t - 1].sum(), t - 1, p0, a, b) < thr
        elif r["state"] == "not certified":  # the certification E-value where the futility test stopped, not after
            t = r["stopped_at"]
            assert np.isclose(r["log_evalue"], log_beta_mixture_evalue(x[:t].sum(), t, p0, a, b), atol=1e-9)
        elif r["state"] == "pending":
            e = log_beta_mixture_evalue(x.sum(), x.size, p0, a, b)
            assert np.isclose(r["log_evalue"], e, rtol=1e-9, atol=1e-9) and e < thr
            assert r["certified_radius"] < pc.radius


def test_interrupt_from_on_round_returns_a_consistent_report_and_resume_matches_an_uninterrupted_run():
    rng = np.random.default_rng(8)
    ps = rng.uniform(0.6, 1.0, size=40)
    streams = _bernoulli_streams(ps, N0 + 4000, seed=10)
    policies = [
        PolicyClass("hi", radius=0.5, alpha=1e-3, priority=2, max_samples=4000, fraction=0.25),
        PolicyClass("lo", radius=0.2, alpha=0.01, max_samples=4000),
    ]

    def stop_at_round_6(tri):
        if tri.rounds == 3:  # a report taken mid-run is consistent too
            mid = tri.report().rows()
            _check_rows_against_streams(mid, streams, policies, N0)
            assert {r["stop_reason"] for r in mid if r["state"] == "pending"} <= {"running", "not started"}
        if tri.rounds == 6:
            raise KeyboardInterrupt

    tri = Triage(_fresh(streams), range(40), policies, sigma=SIGMA, n0=N0, batch=400, on_round=stop_at_round_6)
    rep = tri.run(budget_evaluations=60_000)
    assert rep.stop_reason == "interrupted" and tri.rounds == 6
    rows = rep.rows()
    assert sum(r["evaluations"] for r in rows) == rep.evaluations == int(tri.streams.positions.sum())
    assert any(r["state"] == "pending" for r in rows)
    assert all(
        r["stop_reason"].startswith(("paused (interrupted)", "not started (interrupted)"))
        for r in rows
        if r["state"] == "pending"
    )
    _check_rows_against_streams(rows, streams, policies, N0)
    assert tri.report().rows() == rows  # report() is repeatable at any moment

    tri.on_round = None
    resumed = tri.run(budget_evaluations=60_000).rows()
    straight = triage(
        _fresh(streams), range(40), policies, sigma=SIGMA, n0=N0, batch=400, budget_evaluations=60_000
    ).rows()
    assert resumed == straight
    _check_rows_against_streams(straight, streams, policies, N0)


def test_ctrl_c_stops_at_the_end_of_the_round_and_restores_the_handler():
    streams = _bernoulli_streams([0.8] * 30, N0 + 3000, seed=12)
    policies = [PolicyClass("c", radius=0.25, alpha=1e-4, max_samples=3000)]
    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(tri):
        if tri.rounds == 2:
            os.kill(os.getpid(), signal.SIGINT)

    rep = triage(_fresh(streams), range(30), policies, sigma=SIGMA, n0=N0, batch=300, on_round=press_ctrl_c)
    assert rep.stop_reason == "interrupted" and rep.meta["rounds"] == 2  # the press came between rounds 2 and 3
    assert signal.getsignal(signal.SIGINT) is before
    _check_rows_against_streams(rep.rows(), streams, policies, N0)


def test_model_error_isolates_the_input():
    def model(batch):
        flat = batch.reshape(len(batch), -1)
        logits = np.stack([np.zeros(len(batch)), flat.mean(1) * 10], axis=1)
        logits[flat[:, 0] > 0.9] = np.nan
        return logits

    good = np.full((1, 2, 2), 0.5, dtype=np.float32)
    bad = good.copy()
    bad[0, 0, 0] = 1.0
    streams = Smooth(model, 2, 0.01, seed=0).streams([good, bad, good], [0, 1, 2], None)
    rep = triage(streams, range(3), [PolicyClass("c", radius=0.005, alpha=1e-3)], sigma=0.01, n0=N0)
    assert [r["state"] for r in rep.rows()] == ["certified", "error", "certified"]
    assert "non-finite" in rep.rows()[1]["error"]


# ---------------------------------------------------------------------------------------------
# scheduling quality
# ---------------------------------------------------------------------------------------------


def test_max_decisions_beats_round_robin_on_a_mixed_population():
    rng = np.random.default_rng(1)
    ps = np.concatenate([rng.uniform(0.95, 1.0, 30), rng.uniform(0.69, 0.72, 10), rng.uniform(0.2, 0.5, 10)])
    streams = _bernoulli_streams(ps, N0 + 20_000, seed=6)
    policies = [PolicyClass("c", radius=0.25, alpha=1e-3, max_samples=20_000)]
    decided = {}
    for policy in ("max-decisions", "round-robin"):
        rep = triage(
            _fresh(streams), range(50), policies, sigma=SIGMA, policy=policy, n0=N0, batch=1000, budget_evaluations=4000
        )
        decided[policy] = rep.summary()["decided"]
    assert decided["max-decisions"] > decided["round-robin"]


def test_risk_policy_serves_the_highest_priority_class_first():
    streams = _bernoulli_streams([0.99, 0.7] * 10, N0 + 2000, seed=7)
    policies = [
        PolicyClass("low", radius=0.1, alpha=0.01, priority=1, max_samples=2000),
        PolicyClass("high", radius=0.5, alpha=1e-3, priority=5, max_samples=2000, every=2),
    ]
    high = np.arange(20) % 2 == 0
    seen = []

    def watch(tri):
        seen.append((tri.pending[high].any(), int(tri.evaluations[~high].sum())))

    rows = triage(
        _fresh(streams),
        range(20),
        policies,
        sigma=SIGMA,
        policy="risk",
        n0=N0,
        batch=500,
        budget_evaluations=8000,
        on_round=watch,
    ).rows()
    # while a high-priority input was pending, no low-priority input got a single evaluation
    assert all(low == 0 for high_pending, low in seen if high_pending)
    assert sum(r["state"] == "certified" for r in rows if r["class"] == "high") >= 5


# ---------------------------------------------------------------------------------------------
# report, config, class assignment
# ---------------------------------------------------------------------------------------------


def test_report_rows_summary_and_csv(tmp_path):
    streams = _bernoulli_streams([0.99, 0.3, 0.7, 0.99], N0 + 2000, seed=1)
    policies = [
        PolicyClass("hi", radius=0.5, alpha=1e-3, priority=2, max_samples=2000, indices=(12,)),
        PolicyClass("lo", radius=0.25, alpha=0.01, max_samples=2000),
    ]
    rep = triage(
        _fresh(streams),
        range(4),
        policies,
        sigma=SIGMA,
        n0=N0,
        labels=[1, 1, 1, 0],
        indices=[10, 11, 12, 13],
        budget_evaluations=500,
    )
    rows = rep.rows()
    by_name = triage(
        _fresh(streams),
        range(4),
        policies,
        sigma=SIGMA,
        n0=N0,
        labels=[1, 1, 1, 0],
        indices=[10, 11, 12, 13],
        budget_evaluations=500,
        classes=["lo", "lo", "hi", "lo"],
    )
    assert by_name.rows() == rows
    assert [r["index"] for r in rows] == [10, 11, 12, 13]
    assert [r["class"] for r in rows] == ["lo", "lo", "hi", "lo"]
    summary = rep.summary()
    assert summary["inputs"] == 4 and summary["evaluations"] <= 500
    assert sum(summary["states"].values()) == 4
    assert sum(c["inputs"] for c in summary["classes"].values()) == 4
    assert summary["classes"]["hi"]["radius"] == 0.5
    text = format_triage_summary(summary)
    assert "hi" in text and "lo" in text and "decided" in text
    rep.write_csv(tmp_path / "t.csv")
    import pandas as pd

    frame = pd.read_csv(tmp_path / "t.csv")
    assert list(frame["state"]) == [r["state"] for r in rows]


EXAMPLE = """
[classes.critical]
radius = 1.0
alpha = 1e-4
priority = 2
max_samples = 100000
every = 5

[classes.routine]
radius = 0.25
alpha = 1e-2
"""


def test_load_policies_and_the_shipped_example(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(EXAMPLE)
    pols = load_policies(path, sigma=0.5)
    assert [p.name for p in pols] == ["critical", "routine"]
    assert pols[0].rule == "every" and pols[1].rule == "default" and pols[1].max_samples == 100_000
    cls = assign_classes(pols, 500)
    assert np.mean(cls == 0) == 0.2 and np.all(cls[::5] == 0)
    shipped = os.path.join(os.path.dirname(__file__), "..", "docs", "triage-example.toml")
    assert load_policies(shipped, sigma=0.5)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[classes.a]\nradius = 0.5\nalpha = 0.01\nbogus = 1\n", "unknown key"),
        ("[classes.a]\nradius = 0.5\nalpha = 1.0\n", "alpha must lie"),
        ("[classes.a]\nradius = 0.5\nalpha = 0\n", "alpha must lie"),
        ("[classes.a]\nradius = -0.1\nalpha = 0.01\n", "radius must be"),
        ("[classes.a]\nalpha = 0.01\n", "'radius' is required"),
        ("[classes.a]\nradius = 3.0\nalpha = 1e-4\nmax_samples = 1000\n", "can never be certified"),
        ("[classes.a]\nradius = 0.5\nalpha = 0.01\nevery = 2\nfraction = 0.5\n", "at most one of"),
        ("[classes.a]\nradius = 0.5\nalpha = 0.01\n[classes.b]\nradius = 0.2\nalpha = 0.01\n", "at most one class"),
        (
            "[classes.a]\nradius = 0.5\nalpha = 0.01\nfraction = 0.7\n[classes.b]\nradius = 0.2\nalpha = 0.01\n"
            "fraction = 0.6\n",
            "add up to",
        ),
        (
            "[classes.a]\nradius = 0.5\nalpha = 0.01\nindices = [1, 2]\n[classes.b]\nradius = 0.2\nalpha = 0.01\n"
            "indices = [2]\n",
            "listed by both",
        ),
        ("[classes.a]\nradius = 0.5\nalpha = 0.01\npriority = 0\n", "priority"),
        ("[classes.a]\nradius = 0.5\nalpha = 0.01\nmax_samples = 1.5\n", "max_samples"),
        ("[classes.a]\nradius = 0.5\nalpha = 0.01\noffset = 1\n", "offset"),
        ("[budget]\nevaluations = 5\n", "unknown top-level"),
        ("radius = [", "not valid TOML"),
        ("", "no classes"),
    ],
)
def test_bad_policy_files_fail_with_a_clear_message(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HaltfastError, match=match):
        load_policies(path, sigma=0.5)


def test_missing_policy_file():
    with pytest.raises(HaltfastError, match="cannot read"):
        load_policies("/nonexistent/policies.toml")


def test_class_assignment_rules():
    pols = parse_policies(
        {
            "classes": {
                "named": {"radius": 0.5, "alpha": 0.01, "indices": [40, 41]},
                "third": {"radius": 0.5, "alpha": 0.01, "every": 3, "offset": 1},
                "quarter": {"radius": 0.5, "alpha": 0.01, "fraction": 0.25},
                "rest": {"radius": 0.1, "alpha": 0.01},
            }
        }
    )
    ids = np.arange(20, 60)
    cls = assign_classes(pols, 40, ids)
    assert cls[1] == 1 and cls[4] == 1
    assert cls[20] == 0 and cls[21] == 0  # data set indices 40, 41
    assert all(cls[j] == 1 for j in range(40) if j % 3 == 1 and ids[j] not in (40, 41))
    rest = [j for j in range(40) if cls[j] in (2, 3)]
    share = np.mean([cls[j] == 2 for j in rest])
    assert abs(share - 0.25) <= 1 / len(rest)  # dealt evenly
    assert np.array_equal(cls, assign_classes(pols, 40, ids))  # deterministic
    only_fraction = parse_policies({"classes": {"a": {"radius": 0.5, "alpha": 0.01, "fraction": 0.5}}})
    with pytest.raises(HaltfastError, match="match no class"):
        assign_classes(only_fraction, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"policy": "fastest"}, "unknown scheduling policy"),
        ({"prior": "optimistic"}, "unknown prior"),
        ({"n0": 0}, "n0"),
        ({"batch": 10}, "at least n0"),
        ({"budget_evaluations": -1}, "budget_evaluations"),
        ({"budget_seconds": 0}, "budget_seconds"),
        ({"classes": [0, 5]}, "classes must hold"),
        ({"classes": ["c", "nope"]}, "unknown class name"),
        ({"policies": [PolicyClass("c", radius=0.2, alpha=0.01, max_samples=500)]}, "set max_samples <= 180"),
    ],
)
def test_bad_triage_arguments(kwargs, match):
    streams = _bernoulli_streams([0.9, 0.9], 200, seed=0)
    kwargs = {"n0": N0, "policies": [PolicyClass("c", radius=0.2, alpha=0.01, max_samples=180)], **kwargs}
    with pytest.raises(HaltfastError, match=match):
        triage(_fresh(streams), range(2), sigma=SIGMA, **kwargs)


# ---------------------------------------------------------------------------------------------
# clean selection and the meta-learner's belief
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("center, strength", [(0.995, 1024.0), (0.6, -4096.0)])
@pytest.mark.parametrize("budget", [None, 400_000])
def test_a_meta_learner_keeps_false_certification_at_most_alpha_under_an_adversarial_schedule(center, strength, budget):
    """p = Phi(r_i / sigma) exactly, clean selection (class 1, one evaluation), a meta-learner forced to predict
    p far above the threshold (or just above it) for every input, and the schedule that chases evidence: its
    belief steers the schedule, the tests keep Jeffreys' prior, so each class certifies at the exact rate of the
    Jeffreys tests, or below it under a budget."""
    sizes, cap = (1000, 1500), 1500
    policies = _mixed_policies(cap)
    classes = np.repeat([0, 1], sizes)
    p = np.array([norm.cdf(policies[k].radius / SIGMA) for k in classes])
    streams = np.stack(_bernoulli_streams(p, cap, seed=int(1000 * center)))
    logits = np.tile([[-1.0, 1.0]], (classes.size, 1))
    rec = RecordedStreams(streams, 2, clean=np.ones(classes.size, dtype=np.int64), logits=logits)
    learner = forced_meta(center, strength, sigma=SIGMA)
    rep = triage(
        rec,
        range(classes.size),
        policies,
        sigma=SIGMA,
        classes=classes,
        policy=_chase_evidence,
        prior=learner,
        batch=3000,
        budget_evaluations=budget,
    )
    rows = rep.rows()
    assert rep.meta["selection"] == "clean"
    assert all(r["evaluations"] == 1 + r["tested"] == 1 + rec.positions[i] for i, r in enumerate(rows))
    for pc, n in zip(policies, sizes):
        false = sum(r["state"] == "certified" for r in rows if r["class"] == pc.name)
        p0 = float(norm.cdf(pc.radius / SIGMA))
        exact = decision_probabilities(p0, p0, pc.alpha, [(1.0, 0.5, 0.5)], cap)[0]
        check_false_certifications(false, n, pc.alpha, exact, exact_is_bound=budget is not None)


def test_clean_selection_with_jeffreys_charges_one_evaluation_and_a_learned_belief_steers_the_schedule():
    ps = np.array([0.999] * 30 + [0.75] * 30)
    streams = np.stack(_bernoulli_streams(ps, 4000, seed=8))
    policies = [PolicyClass("c", radius=0.25, alpha=1e-3, max_samples=4000)]
    rec = RecordedStreams(streams, 2, clean=np.ones(60, dtype=np.int64), logits=np.tile([[-1.0, 1.0]], (60, 1)))
    rep = triage(rec, range(60), policies, sigma=SIGMA, prior="jeffreys", selection="clean", batch=600)
    rows = rep.rows()
    assert all(r["evaluations"] == 1 + r["tested"] for r in rows)
    assert [r["state"] for r in rows[:30]] == ["certified"] * 30
    with pytest.raises(HaltfastError, match="clean"):
        triage(rec.rewound(), range(60), policies, sigma=SIGMA, prior=forced_meta(0.9, 16.0), selection="pilot")
