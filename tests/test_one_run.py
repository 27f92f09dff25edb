"""A run is one run however it is executed (issue 20's conformance matrix).

{decision, grid, radius, triage} x {no limit, --budget, --seconds, --max-loss, --worth} x {killed mid-run and
resumed, extended from a smaller limit}, and Ray with 2 workers in every mode (killed and resumed under a
budget): every column of the results but times equals the one-process run, the run's evaluations never exceed
its budget (selection included), and across the sessions of a resumed or extended run no sample of any stream
is evaluated twice.
A mode that does not take an option refuses it in one line before any work. `haltfast predict` is one run the
same way: killed and resumed, extended, and on 2 Ray workers.

--seconds runs on a deterministic clock: the run's time is its evaluations / RATE (engine.Run.elapsed and
Triage.elapsed are replaced), so a deadline is met at the same evaluation however the run is executed.
"""

import json

import pandas as pd
import pytest

from haltfast.cli import main
from haltfast.engine import Run
from haltfast.journal import ResultsJournal
from haltfast.sampling import ModelLabels
from haltfast.triage.run import Triage

RATE = 10_000.0  # evaluations per deterministic second
SIZE = ["--skip", "1", "--max", "8", "--quiet"]
MODES = {
    "decision": ["--radius", "0.25", "--max-samples", "1500"],
    "grid": ["--radii", "0,0.25,0.5", "--max-samples", "1500"],
    "radius": ["--max-samples", "1500", "--tolerance", "0.05"],
    "triage": [],
}
POLICIES = """
[classes.far]
radius = 0.5
alpha = 0.01
max_samples = 1500
every = 3

[classes.near]
radius = 0.25
alpha = 0.05
max_samples = 1500
"""
# the limits, as a fraction of the unlimited run's evaluations (budget, seconds) or as given
LIMITS = {"none": None, "budget": 0.4, "seconds": 0.5, "max-loss": 0.05, "worth": 3000}
TAKES = {
    "decision": set(LIMITS),
    "grid": set(LIMITS),
    "radius": {"none", "budget", "seconds"},
    "triage": {"none", "budget", "seconds"},
}


@pytest.fixture(autouse=True)
def deterministic_clock(monkeypatch):
    monkeypatch.setattr(Run, "elapsed", lambda self: self.evaluations() / RATE)
    monkeypatch.setattr(Triage, "elapsed", lambda self, start: self.used / RATE)


@pytest.fixture
def requests(monkeypatch):
    """Every (key, position) the model is asked for in this process, in order."""
    asked = []
    labels = ModelLabels.labels

    def recording(self, items, starts, counts, stop=None):
        out = labels(self, items, starts, counts, stop)
        for key, start, count in zip(self.keys[items], starts, out[1]):
            asked.extend((int(key), p) for p in range(int(start), int(start) + int(count)))
        return out

    monkeypatch.setattr(ModelLabels, "labels", recording)
    return asked


def command(digits_model, tmp_path, mode: str, out: str, limit: list[str]) -> list[str]:
    data = ["--data", "digits", "--model", str(digits_model), *SIZE, "--out", str(tmp_path / out)]
    if mode == "triage":
        policies = tmp_path / "policies.toml"
        policies.write_text(POLICIES)
        return ["triage", *data, "--policies", str(policies), *limit]
    return ["certify", *data, "--alpha", "0.01", *MODES[mode], *limit]


def table(path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if c in ("seconds", "time")])


def total(path) -> int:
    return int(pd.read_csv(path)["evaluations"].sum())


_unlimited: dict = {}


def limit_options(digits_model, tmp_path_factory, mode: str, limit: str, scale: float = 1.0) -> list[str]:
    """The command-line options of a limit, sized from the mode's unlimited run."""
    if limit == "none":
        return []
    if limit in ("max-loss", "worth"):
        return [f"--{limit}", str(LIMITS[limit])]
    if mode not in _unlimited:
        tmp = tmp_path_factory.mktemp(f"unlimited-{mode}")
        assert main(command(digits_model, tmp, mode, "run.csv", [])) == 0
        _unlimited[mode] = total(tmp / "run.csv")
    evaluations = int(LIMITS[limit] * scale * _unlimited[mode])
    return ["--budget", str(evaluations)] if limit == "budget" else ["--seconds", str(evaluations / RATE)]


def smaller(mode: str, limit: str, full: list[str], digits_model, tmp_path_factory) -> list[str]:
    """The first session of an extended run: the same limit, smaller (or a smaller cap per input)."""
    if limit in ("budget", "seconds"):
        return limit_options(digits_model, tmp_path_factory, mode, limit, scale=0.5)
    if mode == "triage":
        return ["--budget", "3000"]
    return [*full, "--max-samples", "400"]


def interrupt_after_draws(monkeypatch, draws: int) -> None:
    """Ctrl-C right after the run journals its `draws`-th draw (that draw's labels are kept)."""
    append_draw, seen = ResultsJournal.append_draw, []

    def interrupting(self, *args, **kwargs):
        append_draw(self, *args, **kwargs)
        seen.append(1)
        if len(seen) == draws:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResultsJournal, "append_draw", interrupting)


CASES = [(m, lim) for m in MODES for lim in LIMITS if lim in TAKES[m]]
# Ray starts two worker processes per run (seconds each): one case per mode, killed and resumed under a budget
ON_RAY = {
    ("decision", "budget"): ("ray-resumed",),
    ("decision", "seconds"): ("ray",),
    ("grid", "worth"): ("ray",),
    ("radius", "budget"): ("ray",),
    ("triage", "budget"): ("ray",),
}


@pytest.mark.slow
@pytest.mark.parametrize("mode, limit", CASES)
def test_one_run_however_executed(
    mode, limit, digits_model, tmp_path, tmp_path_factory, monkeypatch, requests, request
):
    options = limit_options(digits_model, tmp_path_factory, mode, limit)
    requests.clear()
    assert main(command(digits_model, tmp_path, mode, "one.csv", options)) == 0
    one, asked_once = table(tmp_path / "one.csv"), sorted(requests)
    for execution in ("resumed", "extended", *ON_RAY.get((mode, limit), ())):
        requests.clear()
        out = f"{execution}.csv"
        ray = ["--workers", "2"] if execution.startswith("ray") else []
        if ray:
            request.getfixturevalue("ray_cluster")
        if execution == "extended":
            assert (
                main(
                    command(
                        digits_model, tmp_path, mode, out, smaller(mode, limit, options, digits_model, tmp_path_factory)
                    )
                )
                == 0
            )
        if execution.endswith("resumed"):
            with monkeypatch.context() as patch:
                interrupt_after_draws(patch, draws=3)
                assert main(command(digits_model, tmp_path, mode, out, [*options, *ray])) == 130, execution
        assert main(command(digits_model, tmp_path, mode, out, [*options, *ray])) == 0, execution
        pd.testing.assert_frame_equal(one, table(tmp_path / out), obj=execution)
        if limit == "budget":
            assert total(tmp_path / out) <= int(options[1]), execution
        assert len(requests) == len(set(requests)), execution  # no stream position evaluated twice, across sessions
        if execution == "resumed":
            assert sorted(requests) == asked_once  # and exactly the samples of the one-process run


@pytest.mark.parametrize("limit", ["--max-loss", "--worth"])
def test_radius_mode_refuses_a_target_loss_or_worth_in_one_line(limit, digits_model, tmp_path, capsys, requests):
    assert main(command(digits_model, tmp_path, "radius", "r.csv", [limit, "0.05"])) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"haltfast: error: {limit}: spending by value needs --radius or --radii")
        and err.count("\n") == 1
    )
    assert not requests and not (tmp_path / "r.csv.journal").exists()


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["jeffreys", "online"])
def test_extending_the_cap_continues_each_undecided_input_and_equals_one_run_with_the_larger_cap(
    digits_model, tmp_path, requests, prior
):
    def certify(out, cap):
        limit = ["--radius", "0.5", "--max-samples", str(cap), "--prior", prior]
        return main(command(digits_model, tmp_path, "decision", out, limit))

    assert certify("ext.csv", 300) == 0
    assert (pd.read_csv(tmp_path / "ext.csv")["decision"] == "undecided").any()
    first = set(requests)
    requests.clear()
    assert certify("ext.csv", 3000) == 0
    second = set(requests)
    requests.clear()
    assert certify("whole.csv", 3000) == 0
    pd.testing.assert_frame_equal(table(tmp_path / "whole.csv"), table(tmp_path / "ext.csv"))
    assert not first & second  # the extension evaluated no sample the first session had
    if prior == "jeffreys":  # each input continues from its own state: exactly the samples of the one run
        assert first | second == set(requests)
    else:  # the capped first session set its own waves and priors: it may have drawn a few the one run does not
        assert first | second >= set(requests)
    lines = [json.loads(x) for x in (tmp_path / "ext.csv.journal").read_text().splitlines()]
    assert [line["run"]["max_samples"] for line in lines if "run" in line] == [300, 3000]


PREDICT = ["--n", "2000", "--alpha", "0.01"]


def predict(digits_model, tmp_path, out: str, *options: str) -> list[str]:
    data = ["--data", "digits", "--model", str(digits_model), *SIZE, "--out", str(tmp_path / out)]
    return ["predict", *data, *PREDICT, *options]


def draws(path) -> int:
    return sum('"draw"' in line for line in open(path))


@pytest.mark.slow
@pytest.mark.parametrize("limit", [[], ["--budget", "120"]])
def test_predict_killed_and_resumed_or_extended_is_one_run(limit, digits_model, tmp_path, monkeypatch, requests):
    """A budget that ends the run early too (the unlimited run spends about 180 evaluations on these 8 images)."""
    assert main(predict(digits_model, tmp_path, "one.csv", *limit)) == 0
    one, asked_once = table(tmp_path / "one.csv"), sorted(requests)
    requests.clear()
    with monkeypatch.context() as patch:
        interrupt_after_draws(patch, draws=max(1, draws(tmp_path / "one.csv.journal") // 2))
        assert main(predict(digits_model, tmp_path, "resumed.csv", *limit)) == 130
    assert main(predict(digits_model, tmp_path, "resumed.csv", *limit)) == 0
    pd.testing.assert_frame_equal(one, table(tmp_path / "resumed.csv"))
    assert sorted(requests) == asked_once  # no sample evaluated twice, and exactly those of one run
    requests.clear()
    first = ["--budget", "60"] if limit else ["--n", "16"]
    assert main(predict(digits_model, tmp_path, "extended.csv", *first)) == 0
    assert main(predict(digits_model, tmp_path, "extended.csv", *limit)) == 0
    pd.testing.assert_frame_equal(one, table(tmp_path / "extended.csv"))
    assert len(requests) == len(set(requests))
    if limit:
        assert total(tmp_path / "one.csv") <= 120 and (pd.read_csv(tmp_path / "one.csv")["decision"] == "abstain").any()


@pytest.mark.slow
def test_predict_on_two_ray_workers_is_the_one_process_run(digits_model, tmp_path, ray_cluster):
    for out, scale in (("one.csv", []), ("ray.csv", ["--workers", "2"])):
        assert main(predict(digits_model, tmp_path, out, "--budget", "120", *scale)) == 0
    pd.testing.assert_frame_equal(table(tmp_path / "one.csv"), table(tmp_path / "ray.csv"))
