import numpy as np
import pytest

from haltfast.bench.run import COHEN
from haltfast.bench.run import ENTRIES
from haltfast.bench.run import META
from haltfast.bench.run import Context
from haltfast.bench.run import cohen_label
from haltfast.bench.run import oracle_options
from haltfast.bench.run import wald_limit
from haltfast.cli import main
from haltfast.recording import load_recording

SIGMA = 0.5
LENGTH = 100 + 2000


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Eight inputs of the linear classifier (known p) recorded with 2,100 labels each, as `haltfast record` does."""
    from conftest import record_linear

    distances = (0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.05, -0.3)
    path = tmp_path_factory.mktemp("rec") / "linear-sigma0.5"
    return record_linear(path, distances, range(len(distances)), [1] * 7 + [0], SIGMA, LENGTH)


@pytest.mark.slow
def test_bench_reproduces_its_replay_tables_exactly(recording, tmp_path):
    reports = []
    for run in ("a", "b"):
        out = tmp_path / run / "results.md"
        assert (
            main(["bench", "--streams", str(recording), "--out", str(out), "--plots", str(tmp_path / run / "plots")])
            == 0
        )
        reports.append(out.read_text())
    timed = "## Statistics throughput"
    assert all(timed in r for r in reports)
    assert reports[0].split(timed)[0] == reports[1].split(timed)[0]  # everything above the timings
    footer = reports[0].rstrip("\n").rsplit("\n", 1)[1]
    assert footer.startswith("Replay part") and "haltfast bench --streams" in footer and "commit" in footer
    text = reports[0]
    for label in [COHEN] + [e.label for e in ENTRIES if not e.meta and not e.logits]:
        assert label in text
    assert "has no meta-learner" not in text and META not in text  # its model has none: the row is left out
    assert "Wald's limit" in text and "## Where haltfast loses" in text
    assert f"| 0.5 | {cohen_label(2000)} |" in text and "2,100" in text  # Cohen: n0 + n = 2,100 evaluations each
    plots = sorted(p.name for p in (tmp_path / "a" / "plots").iterdir())
    assert plots == [
        "budget-frontier.png",
        "certified-accuracy.png",
        "e-process-trajectories.png",
        "evaluations.png",
        "spending.png",
    ]
    assert "### Spending by value: decisions at r = 0.5" in text and "oracle allocation (not a method)" in text
    assert "](plots/certified-accuracy.png)" in text


def test_oracle_prior_and_wald_limit_use_each_images_own_stream(recording):
    streams, meta = load_recording(recording)
    ctx = Context(streams, meta, 0.001)
    hits = [np.mean(s == c) for s, c in zip(streams.streams, streams.clean_predictions)]
    assert np.allclose(ctx.p_hat, hits)
    prior = oracle_options(ctx)["prior"]
    assert prior.shape == (8, 2) and np.all(prior > 0)
    assert np.allclose(prior.sum(axis=1), LENGTH + 1)  # the posterior of the whole stream
    assert np.allclose(prior[:, 0] / prior.sum(axis=1), (np.array(hits) * LENGTH + 0.5) / (LENGTH + 1))
    limit = wald_limit(ctx, 0.25, cap=2000)
    assert np.all((limit >= 1) & (limit <= 2001))
    assert limit[0] < limit[4]  # the far (easy) input needs fewer samples than one near the radius


def test_a_recording_shorter_than_every_frontier_cap_is_its_own_cap(tmp_path):
    """A recording of 1,600 labels (cap 1,500, not one of the frontier's caps) used to crash the report with a
    KeyError: its length is now a cap of the frontier and Cohen's n."""
    from conftest import record_linear

    from haltfast.bench.replays import run_replays

    path = record_linear(tmp_path / "short", (0.6, 0.3, -0.3), range(3), [1, 1, 0], SIGMA, 100 + 1500)
    streams, meta = load_recording(path)
    entries = [e for e in ENTRIES if not e.meta and not e.logits]  # its model has no logits
    res = run_replays(Context(streams, meta, 0.001), entries=entries, log=lambda *a: 0)
    assert res.cap == 1500 and sorted(res.cohen_n) == [1000, 1500]
    assert (ENTRIES[-1].label, 1500) in res.radius  # the oracle's row at the full budget
    assert main(["bench", "--streams", str(path), "--out", str(tmp_path / "r.md")]) == 0
    assert "| 1,500 | " in (tmp_path / "r.md").read_text()
