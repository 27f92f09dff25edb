"""`haltfast analyze`: the certified-accuracy table of certify's own numbers, Cohen et al.'s TSVs, matching, outputs."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from haltfast.analyze import RunResults
from haltfast.analyze import analyze_runs
from haltfast.analyze import clopper_pearson
from haltfast.analyze import read_run
from haltfast.certificate import Certificate
from haltfast.cli import main
from haltfast.errors import DataError
from haltfast.errors import JournalError
from haltfast.journal import ResultsJournal
from haltfast.journal import read_journal

GRID = "0,0.25,0.5,0.75"


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Twelve inputs of the linear classifier (p = Phi(d / sigma) known) recorded with 100 + 3,000 labels each."""
    from conftest import record_linear

    distances = (1.2, 0.9, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, -0.3, -0.6)
    labels = [1] * 11 + [1]  # the last input lies on the class-0 side: certified for the wrong class
    return record_linear(tmp_path_factory.mktemp("rec") / "linear", distances, range(0, 24, 2), labels, 0.5, 3100)


def _certify(recording, out, *options) -> dict:
    summary = out.with_suffix(".json")
    args = ["certify", "--streams", str(recording), "--out", str(out), "--summary-json", str(summary), "--quiet"]
    assert main([*args, *options]) == 0
    return json.loads(summary.read_text())


def test_analyze_reproduces_certifys_grid_table_from_its_csv_journal_and_cohen_tsv(recording, tmp_path, capsys):
    """The check behind docs/results.md's grid table: analyze's certified accuracy at each radius equals the
    numbers certify reports for the same run, read from the CSV, the journal or the Cohen-format TSV."""
    grid = _certify(recording, tmp_path / "grid.csv", "--radii", GRID, "--max-samples", "3000")
    cohen = _certify(recording, tmp_path / "cohen.csv", "--method", "cohen", "--n", "3000")
    _certify(recording, tmp_path / "grid.tsv", "--radii", GRID, "--max-samples", "3000", "--format", "cohen")
    capsys.readouterr()
    files = [tmp_path / name for name in ("grid.csv", "grid.csv.journal", "grid.tsv", "cohen.csv")]
    analysis = analyze_runs([read_run(path) for path in files], radii=[0, 0.25, 0.5, 0.75])
    table = analysis.accuracy.pivot(index="run", columns="radius", values="certified_accuracy")
    for name, summary in (("grid.csv", grid), ("grid.csv.journal", grid), ("grid.tsv", grid), ("cohen.csv", cohen)):
        reported = [summary["certified_accuracy"][f"{r:g}"] for r in (0, 0.25, 0.5, 0.75)]
        assert list(table.loc[name]) == pytest.approx(reported, abs=1e-12), name
    assert len(set(table.loc["grid.csv"])) >= 3  # a table whose cells differ, so a mix-up would show
    assert main(["analyze", *map(str, files), "--radii", GRID]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| grid.csv |"))
    assert row.split(" | ")[3].startswith(f"{grid['certified_accuracy']['0.5']:.3f} (")
    summary = analysis.summary.set_index("run")
    assert summary.loc["grid.csv", "mean_evaluations"] == grid["mean_evaluations"]
    assert pd.isna(summary.loc["grid.tsv", "mean_evaluations"])  # Cohen's format has no evaluations


def _locuslab_tsv(path, rows) -> None:
    """A file as locuslab/smoothing's certify.py writes it (its header, '{:.3}' radii, timedelta times)."""
    with open(path, "w") as f:
        print("idx\tlabel\tpredict\tradius\tcorrect\ttime", file=f, flush=True)
        for i, label, prediction, radius, seconds in rows:
            correct = int(prediction == label)
            elapsed = str(datetime.timedelta(seconds=seconds))
            print(f"{i}\t{label}\t{prediction}\t{radius:.3}\t{correct}\t{elapsed}", file=f, flush=True)


def test_reads_a_locuslab_certify_tsv(tmp_path):
    rows = [
        (0, 3, 3, 0.8765, 1.5),
        (20, 8, 8, 0.23456, 1.25),
        (40, 1, -1, 0.0, 1.0),  # abstain
        (60, 5, 2, 0.61, 2.0),  # certified, wrong class
        (80, 0, 0, 1.234e-05, 3.0),
    ]
    _locuslab_tsv(tmp_path / "sigma_0.25", rows)
    run = read_run(tmp_path / "sigma_0.25")
    assert run.format == "cohen tsv" and list(run.table["index"]) == [0, 20, 40, 60, 80]
    analysis = analyze_runs([run], radii=[0.0, 0.25, 0.5, 0.875])
    assert list(analysis.accuracy["certified_accuracy"]) == [0.6, 0.2, 0.2, 0.2]  # 0.8765 is written as 0.877
    summary = analysis.summary.iloc[0]
    assert summary["abstain_rate"] == 0.2 and summary["seconds"] == pytest.approx(8.75)
    assert summary["mean_evaluations"] is None
    assert analyze_runs([run]).radii == [0.0, 0.25, 0.5, 0.75]  # default: up to the largest certified radius


def test_runs_on_different_images_are_matched_on_common_indices_or_refused(tmp_path):
    _locuslab_tsv(tmp_path / "a", [(i, 1, 1, 0.5, 1.0) for i in (0, 1, 2, 3)])
    _locuslab_tsv(tmp_path / "b", [(i, 1, 1 if i != 2 else -1, 0.5, 1.0) for i in (2, 3, 4)])
    analysis = analyze_runs([read_run(tmp_path / "a"), read_run(tmp_path / "b")], radii=[0.5])
    assert list(analysis.summary["images"]) == [2, 2]
    assert list(analysis.accuracy["certified_accuracy"]) == [1.0, 0.5]
    assert analysis.notes == [
        "a: 2 of its 4 images are in every run; only those are compared",
        "b: 2 of its 3 images are in every run; only those are compared",
    ]
    with pytest.raises(DataError, match="different images"):
        analyze_runs([read_run(tmp_path / "a"), read_run(tmp_path / "b")], strict=True)
    _locuslab_tsv(tmp_path / "c", [(i, 1, 1, 0.5, 1.0) for i in (7, 8)])
    with pytest.raises(DataError, match="share no image"):
        analyze_runs([read_run(tmp_path / "a"), read_run(tmp_path / "c")])
    _locuslab_tsv(tmp_path / "d", [(i, 2, 2, 0.5, 1.0) for i in (0, 1)])
    with pytest.raises(DataError, match="different labels"):
        analyze_runs([read_run(tmp_path / "a"), read_run(tmp_path / "d")])


def test_clopper_pearson_known_answers():
    """Closed forms at k = 0 and k = n, and scipy's exact interval elsewhere."""
    from scipy.stats import binomtest

    low, high = clopper_pearson(0, 10, 0.95)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = clopper_pearson(10, 10, 0.95)
    assert high == 1 and low == pytest.approx(0.025 ** (1 / 10))
    lows, highs = clopper_pearson(np.array([1, 350, 499]), 500, 0.9)
    for k, low, high in zip((1, 350, 499), lows, highs):
        exact = binomtest(k, 500).proportion_ci(confidence_level=0.9, method="exact")
        assert (low, high) == pytest.approx((exact.low, exact.high), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.floats(0, 3)), min_size=1, max_size=60))
def test_certified_accuracy_falls_with_the_radius_inside_its_interval(images):
    table = pd.DataFrame(
        {
            "index": range(len(images)),
            "label": 1,
            "prediction": [1 if correct else 0 for _, correct, _ in images],
            "certified": [certified for certified, _, _ in images],
            "correct": [correct for _, correct, _ in images],
            "radius": [radius for _, _, radius in images],
            "evaluations": 1.0,
            "seconds": 0.0,
        }
    )
    analysis = analyze_runs([RunResults("run", None, "test", table)], radii=[0, 0.5, 1, 2, 3])  # type: ignore[arg-type]
    accuracy = analysis.accuracy
    assert (np.diff(accuracy["certified_accuracy"]) <= 0).all()
    value = accuracy["certified_accuracy"]
    assert ((accuracy["ci_low"] <= value) & (value <= accuracy["ci_high"])).all()


@pytest.mark.slow
def test_cli_writes_tables_csv_json_and_png_and_refuses_what_it_cannot_read(tmp_path, capsys):
    _locuslab_tsv(tmp_path / "run1", [(i, 1, 1, 0.3 * i, 1.0) for i in range(6)])
    _locuslab_tsv(tmp_path / "run2", [(i, 1, -1 if i % 2 else 1, 0.2 * i, 2.0) for i in range(6)])
    out = tmp_path / "analysis"
    args = ["analyze", str(tmp_path / "run1"), str(tmp_path / "run2"), "--labels", "ours,theirs", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| ours | 1.000 (0.541-1.000) |" in printed and "| theirs |" in printed
    accuracy = pd.read_csv(out / "certified_accuracy.csv")
    assert set(accuracy["run"]) == {"ours", "theirs"} and list(accuracy["radius"][:6]) == [0, 0.25, 0.5, 0.75, 1, 1.25]
    runs = pd.DataFrame(json.loads((out / "summary.json").read_text())["runs"])
    assert list(runs["abstain_rate"]) == [0.0, 0.5]
    assert (out / "certified_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "\\toprule" in (out / "certified_accuracy.tex").read_text()
    (tmp_path / "p.tsv").write_text("idx\tlabel\tpredict\tcorrect\ttime\n0\t1\t1\t1\t0:00:01\n")
    assert main(["analyze", str(tmp_path / "p.tsv")]) == 2
    assert "PREDICT output" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hello\n")
    assert main(["analyze", str(tmp_path / "x.txt")]) == 2
    assert main(["analyze", str(tmp_path / "run1"), "--labels", "a,b"]) == 2


def test_read_journal_keeps_the_latest_result_per_input_and_skips_errors(tmp_path):
    path = tmp_path / "r.csv.journal"
    rows = [
        {"index": 3, "label": 1, "prediction": 1, "radius": 0.5, "decision": "certified", "evaluations": 10},
        {"index": 1, "label": 0, "prediction": -1, "radius": 0.0, "decision": "error", "evaluations": 0},
        {"index": 3, "label": 1, "prediction": 1, "radius": 0.75, "decision": "certified", "evaluations": 20},
    ]
    with ResultsJournal.open(path, {"sigma": 0.25}, knobs={"max_samples": 100}) as journal:
        journal.start_run({"max_samples": 100})
        journal.append_draw([3], [0], [4], np.array([1, 1, 0, 1]), num_classes=2)
        journal.append_clean([3], predictions=np.array([1]))
        for row in rows:
            journal.append(Certificate.from_row(row))
        journal._handle.write(b'{"index": 5, "lab')  # a row cut off mid-write; the writer still holds the lock
        journal._handle.flush()
        written = path.read_bytes()
        config, certs = read_journal(path)
        assert path.read_bytes() == written  # read only
    assert config == {"sigma": 0.25} and [(c.index, c.radius) for c in certs] == [(3, 0.75)]
    older = tmp_path / "older.journal"  # format 1: the header, then rows only
    older.write_text("\n".join(json.dumps(r) for r in [{"haltfast_journal": 1, "config": {}}, *rows]) + "\n")
    assert [(c.index, c.radius) for c in read_journal(older)[1]] == [(3, 0.75)]
    (tmp_path / "bad.journal").write_text("index,label\n")
    with pytest.raises(JournalError):
        read_journal(tmp_path / "bad.journal")
    corrupt = tmp_path / "corrupt.journal"
    corrupt.write_text(json.dumps({"haltfast_journal": 2, "config": {}}) + '\n{"what": 1}\n')
    with pytest.raises(JournalError, match="corrupt at line 2$"):
        read_journal(corrupt)
    predicted = tmp_path / "p.csv.journal"
    predicted.write_text(json.dumps({"haltfast_journal": 2, "config": {"command": "predict"}}) + "\n")
    with pytest.raises(DataError, match="predict journal"):
        read_run(predicted)
