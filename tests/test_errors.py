"""One kind of error per kind of mistake: each user mistake raises its own HaltfastError subclass."""

import json
import shutil

import pytest

from haltfast.certificate import check_radius
from haltfast.certificate import validate_alpha
from haltfast.cli import main
from haltfast.data import open_dataset
from haltfast.data import subset_positions
from haltfast.errors import DataError
from haltfast.errors import HaltfastError
from haltfast.errors import JournalError
from haltfast.errors import ModelError
from haltfast.errors import ModelOutputError
from haltfast.errors import OutputError
from haltfast.errors import PolicyError
from haltfast.errors import RecordingError
from haltfast.errors import UsageError
from haltfast.files import check_writable
from haltfast.journal import ResultsJournal
from haltfast.models import load_model
from haltfast.models import parse_normalize
from haltfast.models import resolve_device
from haltfast.models import shipped_model_path
from haltfast.recording import load_recording
from haltfast.triage import load_policies


def test_every_kind_is_a_haltfast_error():
    kinds = (UsageError, DataError, ModelError, ModelOutputError, OutputError, JournalError, RecordingError)
    assert all(issubclass(kind, HaltfastError) for kind in (*kinds, PolicyError))
    assert issubclass(ModelOutputError, ModelError)


def test_bad_arguments_and_options_are_usage_errors():
    with pytest.raises(UsageError, match="alpha must lie strictly between 0 and 1"):
        validate_alpha(1.5)
    with pytest.raises(UsageError, match="--skip must be at least 1"):
        subset_positions(10, 0, None)
    with pytest.raises(UsageError, match="can never be certified .* it needs max_samples >= 218,105"):
        check_radius(1.0, 1000, 0.001, 0.25)
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(UsageError, match="--normalize '1,2': expected"):
        parse_normalize("1,2")


def test_unusable_data_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="unknown data set"):
        open_dataset(str(tmp_path / "nothing-here"))
    with pytest.raises(DataError, match="unknown split 'validation'"):
        open_dataset("digits", "validation")


def test_unusable_models_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found; check the path"):
        load_model(tmp_path / "missing.pt")
    weights = tmp_path / "model.pt"
    shutil.copy(shipped_model_path(0.25), weights)  # weights without the card beside them
    with pytest.raises(ModelError, match="model card .* not found"):
        load_model(weights)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="is not valid JSON"):
        load_model(weights)


def test_unwritable_outputs_are_output_errors(tmp_path):
    with pytest.raises(OutputError, match="is a directory; give a file name"):
        check_writable(tmp_path, "results file")


def test_foreign_or_mismatched_journals_are_journal_errors(tmp_path):
    foreign = tmp_path / "results.csv.journal"
    foreign.write_text("index,decision\n")
    with pytest.raises(JournalError, match="is not a haltfast results journal"):
        ResultsJournal.open(foreign, {"alpha": 0.001})
    other = tmp_path / "other.journal"
    header = {"haltfast_journal": 2, "config": {"alpha": 0.01}}
    other.write_text(json.dumps(header) + "\n" + json.dumps({"index": 0, "decision": "certified"}) + "\n")
    with pytest.raises(JournalError, match="different configuration"):
        ResultsJournal.open(other, {"alpha": 0.001})
    older = tmp_path / "older.journal"
    older.write_text(json.dumps({**header, "haltfast_journal": 1}) + "\n")
    with pytest.raises(JournalError, match="has journal format 1, this haltfast writes 2"):
        ResultsJournal.open(older, {"alpha": 0.01})


def test_missing_or_corrupt_recordings_are_recording_errors(tmp_path):
    with pytest.raises(RecordingError, match="is not a recording .* make one with `haltfast record`"):
        load_recording(tmp_path)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(RecordingError, match="is not a haltfast recording's meta data"):
        load_recording(tmp_path)


def test_bad_policy_files_are_policy_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[classes.a]\nradius = \n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policies(bad)
    impossible = tmp_path / "impossible.toml"
    impossible.write_text("[classes.a]\nradius = 1.0\nalpha = 1e-4\nmax_samples = 1000\n")
    with pytest.raises(PolicyError, match="class 'a': radius 1 can never be certified .* another --sigma"):
        load_policies(impossible, sigma=0.25)


def test_the_cli_reports_a_mistake_as_one_line_and_exit_status_2(tmp_path, capsys):
    policies = tmp_path / "p.toml"
    policies.write_text("[classes.a]\nradius = 1.0\nalpha = 2\n")
    assert main(["triage", "--data", "digits", "--policies", str(policies)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"haltfast: error: {policies}: class 'a': alpha must lie")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "options, message",
    [
        (["--worth", "1000"], "--worth: spending by value needs --radius or --radii"),
        (["--method", "horvath", "--budget", "9", "--seconds", "2"], "--budget, --seconds: spending by value is for"),
        (["--max-loss", "0"], "--max-loss: spending by value needs --radius or --radii"),
        (["--method", "cohen", "--radius", "0.5", "--worth", "5"], "--worth: spending by value is for --method any"),
    ],
)
def test_spending_options_without_a_radius_or_for_another_method_are_refused_first(
    options, message, monkeypatch, capsys
):
    def no_loading(args):
        raise AssertionError("inputs loaded before the options were checked")

    monkeypatch.setattr("haltfast.cli.certify.load_inputs", no_loading)
    assert main(["certify", *options]) == 2
    assert message in capsys.readouterr().err
