"""PREDICT: the anytime version's guarantee (exact rates at a tie), its accounting, Cohen's version, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from validity import bernoulli_recording
from validity import check_false_certifications

from haltfast import validation as hv
from haltfast.cli import main
from haltfast.engine import Run
from haltfast.errors import HaltfastError
from haltfast.methods import PREDICTED
from haltfast.methods import run_predict
from haltfast.methods.cohen import cohen_predict
from haltfast.smooth import Smooth
from haltfast.streams import RecordedStreams

ALPHA, CAP, N, N0 = 0.1, 1500, 2000, 20
JEFFREYS = [(1.0, 0.5, 0.5)]


def _predicted(results) -> int:
    return sum(r.decision == PREDICTED for r in results)


def _exact(p: float, alpha: float = ALPHA) -> float:
    """The exact probability that the anytime PREDICT of a two-class input predicts the class whose probability
    is p: its E-process (Jeffreys, P(A) <= 1/2, at alpha) crosses before the futility one (at ALPHA), within CAP
    tested samples."""
    return hv.decision_probabilities(p, 0.5, alpha, JEFFREYS, CAP, futility_alpha=ALPHA)[0]


@pytest.mark.slow
@pytest.mark.parametrize("test", ["runner-up", "half"])
@pytest.mark.parametrize("selection", ["clean", "pilot"])
def test_a_tie_is_predicted_exactly_as_often_as_the_e_process_crosses(test, selection):
    """Two classes with P(A) = 1/2 exactly: every prediction is wrong (g(x) is no strict winner). The count of
    predictions fits the exact crossing probability (< alpha), whatever the selection (a pilot of tied classes
    picks A by chance); with two classes both tests are the same E-process (here without a second class)."""
    rec = bernoulli_recording(0.5, N, N0 + CAP, seed=11 + len(test) + len(selection))
    results = run_predict(
        "anytime", rec, range(N), n=CAP, alpha=ALPHA, test=test, selection=selection, n0=N0, switch=0.0
    )
    exact = _exact(0.5)
    assert 0.3 * ALPHA < exact < ALPHA
    check_false_certifications(_predicted(results), N, ALPHA, exact)


@pytest.mark.slow
def test_a_tie_with_a_second_class_errs_at_most_at_both_stages_rates():
    """With the default switch, a tie is predicted wrongly when the first class's tests (at 0.9 alpha) cross, or
    when the class that beat it (tested on later labels at 0.1 alpha) does: at most the sum of the exact rates."""
    rec = bernoulli_recording(0.5, N, CAP, seed=21)
    results = run_predict("anytime", rec, range(N), n=CAP, alpha=ALPHA)
    switched = sum("first_selected" in r.extra for r in results)
    lost = hv.decision_probabilities(0.5, 0.5, 0.9 * ALPHA, JEFFREYS, CAP, futility_alpha=ALPHA)[1]
    assert abs(switched - N * lost) < 5 * np.sqrt(N * lost)  # the first class is shown to lose at the exact rate...
    bound = _exact(0.5, 0.9 * ALPHA) + _exact(0.5, 0.1 * ALPHA)
    check_false_certifications(_predicted(results), N, ALPHA, bound, exact_is_bound=True)
    assert _predicted(results) > _exact(0.5, 0.9 * ALPHA) * N / 2  # ...and the bound is not vacuous


@pytest.mark.slow
def test_an_adversarial_selection_of_the_runner_up_is_predicted_at_most_at_the_exact_rate():
    """The clean prediction picks, on every input, the class that is NOT the top one (P(A) = 0.49): its
    predictions are wrong, and their count fits the exact crossing probability at p = 0.49 and 0.9 alpha; the
    class that beats it, tested next, is the top one, which is no error."""
    rec = bernoulli_recording(0.49, N, CAP + 1, seed=5)  # class 1, the clean prediction, has p = 0.49
    results = run_predict("anytime", rec, range(N), n=CAP, alpha=ALPHA)
    wrong = sum(r.prediction == 1 for r in results)
    check_false_certifications(wrong, N, ALPHA, _exact(0.49, 0.9 * ALPHA))
    assert sum(r.prediction == 0 for r in results) > 0  # the second class is the top one: found on some inputs


@pytest.mark.slow
def test_three_classes_with_a_tie_at_the_top_are_predicted_at_most_at_the_pair_tests_rate():
    """p = (0.4, 0.4, 0.2), class 0 selected: a prediction needs the pair test (0, 1), on labels 0 or 1, to cross
    before its futility test (Bernoulli(1/2) there, fewer than CAP of them): at most the two-class exact rate."""
    rng = np.random.default_rng(8)
    labels = rng.choice(3, size=(N, CAP), p=[0.4, 0.4, 0.2]).astype(np.uint8)
    rec = RecordedStreams(labels, 3, clean=np.zeros(N, dtype=np.int64))
    results = run_predict("anytime", rec, range(N), n=CAP, alpha=ALPHA, test="runner-up", switch=0.0)
    check_false_certifications(_predicted(results), N, ALPHA, _exact(0.5), exact_is_bound=True)
    assert _predicted(results) > 0.3 * ALPHA * N  # the rate is close to the bound, not vacuous


@pytest.mark.slow
def test_choosing_the_class_on_the_tested_labels_fails_the_validity_check(monkeypatch):
    """The mutant check: selecting A as the leader of the first labels that are then tested (the bug the
    separate selection avoids) must fail the tie's validity check."""

    def peeking_select(self, selection, n0, window, with_logits=False):
        first = np.stack([self.streams.streams[item][:30] for item in self.items])
        chosen = (first.mean(axis=1) > 0.5).astype(np.int64)
        self.extra_evals[:] += 1
        return chosen, np.zeros(self.n, dtype=np.int64), None

    monkeypatch.setattr(Run, "select", peeking_select)
    rec = bernoulli_recording(0.5, N, CAP, seed=3)
    results = run_predict("anytime", rec, range(N), n=CAP, alpha=ALPHA, switch=0.0)
    with pytest.raises(AssertionError, match="false certificates"):
        check_false_certifications(_predicted(results), N, ALPHA, _exact(0.5))


def _mixed_recording(seed: int, n: int = 200, length: int = 4000, classes: int = 4) -> RecordedStreams:
    """Inputs whose class probabilities range from clear winners to near ties; every fifth clean prediction is the
    second class."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(classes, 0.5), n)
    labels = np.stack([rng.choice(classes, length, p=row) for row in p]).astype(np.uint8)
    clean = np.where(np.arange(n) % 5 == 0, np.argsort(-p, axis=1)[:, 1], p.argmax(axis=1))  # every 5th: runner-up
    return RecordedStreams(labels, classes, clean=clean)


def _outcomes(results):
    return [(r.decision, r.prediction, r.extra["stopped_at"]) for r in results]


@pytest.mark.slow
@pytest.mark.parametrize("test", ["runner-up", "half"])
def test_results_do_not_depend_on_labels_never_drawn_nor_on_chunk_sizes(test):
    """The tests read only the labels drawn, in order: replacing the labels no run drew changes nothing, and
    drawing in chunks of one sample gives the same predictions at the same stopping samples."""
    rec = _mixed_recording(seed=1)
    first = run_predict("anytime", rec, range(200), n=3000, alpha=0.01, test=test)
    assert len({r.decision for r in first}) == 2 and len({r.evaluations for r in first}) > 20
    assert test == "half" or any("first_selected" in r.extra for r in first)  # second classes are tested too
    labels = np.stack(rec.streams).copy()
    undrawn = np.arange(labels.shape[1])[None, :] >= rec.positions[:, None]
    labels[undrawn] = np.random.default_rng(2).integers(0, 4, int(undrawn.sum()), dtype=np.uint8)
    again = run_predict("anytime", RecordedStreams(labels, 4, clean=rec.clean_predictions), range(200), n=3000,
                        alpha=0.01, test=test)  # fmt: skip
    assert [(r.decision, r.prediction, r.evaluations) for r in again] == [
        (r.decision, r.prediction, r.evaluations) for r in first
    ]
    fine = run_predict("anytime", rec.rewound(), range(200), n=3000, alpha=0.01, test=test, min_chunk=1, growth=1e-9)
    assert _outcomes(fine) == _outcomes(first)


def test_every_evaluation_is_counted():
    """evaluations = tested samples + 1 (the clean prediction) or + n0 (the pilot); Cohen's = n."""
    rec = _mixed_recording(seed=4, n=50)
    clean = run_predict("anytime", rec, range(50), n=3000, alpha=0.01)
    assert all(r.evaluations == r.extra["tested"] + 1 for r in clean)
    pilot = run_predict("anytime", rec.rewound(), range(50), n=3000, alpha=0.01, selection="pilot", n0=30)
    assert all(r.evaluations == r.extra["tested"] + 30 for r in pilot)
    cohen = run_predict("cohen", rec.rewound(), range(50), n=1000, alpha=0.01)
    assert all(r.evaluations == 1000 for r in cohen)


@pytest.mark.parametrize("selection", ["clean", "pilot"])
def test_a_budget_is_never_exceeded_and_what_it_decides_is_what_the_unlimited_run_decides(selection):
    """Inputs open when the run's budget is spent abstain; an input decided within it has the unlimited run's
    outcome at the same tested sample (the tests do not depend on chunk sizes). Cohen's PREDICT has no budget."""
    rec = _mixed_recording(seed=5, n=60)
    options = {"selection": selection, "n0": 30}
    free = run_predict("anytime", rec, range(60), n=3000, alpha=0.01, **options)
    budget = sum(r.evaluations for r in free) // 3
    limited = run_predict("anytime", rec.rewound(), range(60), n=3000, alpha=0.01, budget=budget, **options)
    assert sum(r.evaluations for r in limited) <= budget
    given_up = [r.stop_reason == "given up: the run's budget was spent" for r in limited]
    assert any(given_up) and all(r.decision == "abstain" for r, no in zip(limited, given_up) if no)
    decided = [k for k, no in enumerate(given_up) if not no]
    assert decided and _outcomes([limited[k] for k in decided]) == _outcomes([free[k] for k in decided])
    with pytest.raises(HaltfastError, match="budget and deadline are for anytime PREDICT"):
        run_predict("cohen", rec.rewound(), range(60), n=300, alpha=0.01, budget=100)


def test_runner_up_test_predicts_a_top_class_below_one_half_where_the_half_test_abstains():
    """p = (0.45, 0.3, 0.25): the runner-up test establishes class 0; P(class 0) < 1/2, so the half test cannot."""
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=(20, 5000), p=[0.45, 0.3, 0.25]).astype(np.uint8)
    rec = RecordedStreams(labels, 3, clean=np.zeros(20, dtype=np.int64))
    runner_up = run_predict("anytime", rec, range(20), n=4999, alpha=0.001, test="runner-up")
    half = run_predict("anytime", rec.rewound(), range(20), n=4999, alpha=0.001, test="half")
    assert [r.prediction for r in runner_up] == [0] * 20
    assert all(r.prediction == -1 and r.stop_reason == "P(selected class) < 1/2 established" for r in half)


def test_linear_classifier_known_answers(linear):
    """f = 1[w.x > 0]: p = Phi(d / sigma) exactly. Far points are predicted on their side in tens of
    evaluations; a point on the hyperplane (p = 1/2) abstains; Cohen's method agrees with Smooth.predict."""
    smooth = Smooth(linear, 2, 0.5, seed=0, value_range=None)
    points = [linear.point_at_distance(d) for d in (2.0, -2.0, 0.0)]
    results = smooth.predict_many(points, [1, 0, 1], n=5000, alpha=0.001)
    assert [r.prediction for r in results] == [1, 0, -1]
    assert results[0].evaluations < 60 and results[1].evaluations < 60 and results[0].correct
    cohen = smooth.predict_many(points, n=1000, alpha=0.001, method="cohen", keys=[7, 8, 9])
    assert [r.prediction for r in cohen] == [smooth.predict(x, 1000, 0.001, key=k) for x, k in zip(points, (7, 8, 9))]


def test_cohen_predict_matches_the_single_input_reference():
    rec = _mixed_recording(seed=6, n=30, length=500)
    many = run_predict("cohen", rec, range(30), n=400, alpha=0.05)
    single = [cohen_predict(rec.rewound(), j, 400, 0.05) for j in range(30)]
    assert [r.prediction for r in many] == single and len(set(single)) > 2


@pytest.mark.slow
def test_cli_writes_cohens_predict_tsv_and_haltfast_csv(tmp_path, digits_model, capsys):
    base = ["predict", "--data", "digits", "--model", str(digits_model), "--max", "4", "--n", "2000", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "p.tsv"), "--format", "cohen"]) == 0
    assert "accuracy" in capsys.readouterr().out
    tsv = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert list(tsv.columns) == ["idx", "label", "predict", "correct", "time"]
    assert (tsv["correct"] == (tsv["predict"] == tsv["label"]).astype(int)).all()
    assert main([*base, "--out", str(tmp_path / "p.csv"), "--summary-json", str(tmp_path / "s.json")]) == 0
    csv = pd.read_csv(tmp_path / "p.csv")
    assert list(csv["index"]) == list(tsv["idx"]) and list(csv["prediction"]) == list(tsv["predict"])
    assert (csv["evaluations"] == csv["tested"] + 1).all()
    assert main([*base, "--method", "cohen", "--n", "300"]) == 0
    assert "mean 300" in capsys.readouterr().out


def test_bench_predict_section_on_a_small_recording():
    """The report's PREDICT table: Cohen's rows at every n the recording holds, the anytime rows, and figures that
    match an independent count of the same labels."""
    from scipy.stats import binomtest

    from haltfast.bench.predict import predict_section
    from haltfast.bench.run import Context

    rng = np.random.default_rng(3)
    probabilities = [[0.9, 0.05, 0.05], [0.5, 0.45, 0.05], [0.2, 0.7, 0.1], [0.34, 0.33, 0.33], [0.6, 0.1, 0.3]]
    labels = np.stack([rng.choice(3, 1200, p=p) for p in probabilities]).astype(np.uint8)
    truth = [0, 0, 1, 2, 0]
    streams = RecordedStreams(labels, 3, clean=np.array([0, 0, 1, 0, 0]))
    ctx = Context(streams, {"labels": truth, "indices": list(range(5)), "sigma": 0.25}, 0.01)
    text = predict_section([ctx], log=lambda line: None)
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row[0] for row in rows] == [
        "| Cohen et al. PREDICT, n = 1,000",
        "| Cohen et al. PREDICT, n = 100",
        "| haltfast anytime PREDICT (runner-up test, clean selection, switch; the default)",
        "| haltfast anytime PREDICT, runner-up test, clean selection, no switch",
        "| haltfast anytime PREDICT, P(A) > 1/2 test, clean selection",
        "| haltfast anytime PREDICT, runner-up test, 100-sample pilot selection, switch",
    ]
    expected = []
    for stream, label in zip(labels, truth):
        counts = np.bincount(stream[:1000], minlength=3)
        a, b = np.argsort(-counts, kind="stable")[:2]
        expected.append(binomtest(int(counts[a]), int(counts[a] + counts[b]), 0.5).pvalue <= 0.01 and a == label)
    assert rows[0][1] == f"{np.mean(expected):.3f}" and rows[0][5:8] == ["1,000", "1,000", "1.0x |"]
    assert float(rows[2][5].replace(",", "")) < 1000  # the anytime test stops early on the clear inputs
