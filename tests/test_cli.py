import json

import pandas as pd
import pytest
import torch

from haltfast.cli import main
from haltfast.models import load_model


def test_train_writes_a_complete_model_card(digits_model):
    model, card = load_model(digits_model)
    for key in ("data", "sigma", "epochs", "seed", "clean_test_accuracy", "noisy_test_accuracy",
                "samples_per_second", "weights_sha256", "command"):
        assert key in card
    assert card["command"].startswith("haltfast train --data digits")
    assert card["clean_test_accuracy"] > 0.8  # digits is easy even after 15 epochs


def test_certify_end_to_end_on_digits(digits_model, tmp_path, capsys):
    out, summary = tmp_path / "r.csv", tmp_path / "s.json"
    rc = main(["certify", "--method", "cohen", "--data", "digits", "--model", str(digits_model), "--skip", "3",
               "--max", "6", "--n0", "20", "--n", "500", "--alpha", "0.01", "--out", str(out), "--summary-json", str(summary),
               "--quiet"])
    assert rc == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[:7]) == ["index", "label", "prediction", "correct", "radius", "decision", "evaluations"]
    assert len(frame) == 6 and (frame["evaluations"] == 520).all()
    assert (frame["radius"] >= 0).all() and frame["seconds"].notna().all()
    s = json.loads(summary.read_text())
    assert s["inputs"] == 6 and s["mean_evaluations"] == 520
    assert "certified accuracy" in capsys.readouterr().out


def test_anytime_end_to_end_on_digits(digits_model, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["certify", "--data", "digits", "--model", str(digits_model), "--max", "8", "--radius", "0.1",
                 "--max-samples", "2000", "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out)
    assert set(frame["decision"]) <= {"certified", "not certified", "undecided"}
    assert (frame["evaluations"] == 1 + frame["tested"]).all()  # clean selection: one evaluation
    assert (frame["stopped_at"] <= frame["tested"]).all() and (frame["tested"] <= 2000).all()
    assert "certified accuracy at radius r=0.1" in capsys.readouterr().out


def test_same_seed_same_csv(digits_model, tmp_path):
    rows = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.csv"
        main(["certify", "--data", "digits", "--model", str(digits_model), "--max", "3", "--n0", "10", "--n", "200",
              "--out", str(out), "--quiet"])
        rows.append(pd.read_csv(out).drop(columns="seconds"))
    pd.testing.assert_frame_equal(*rows)


@pytest.mark.parametrize("extra, message", [
    (["--alpha", "1.5"], "alpha must lie strictly between 0 and 1"),
    (["--alpha", "0"], "alpha must lie strictly between 0 and 1"),
    (["--data", "imagenet"], "unknown data set"),
    (["--model", "/nonexistent/model.pt"], "not found"),
    (["--data", "fashion-mnist", "--data-dir", "/nonexistent"], "apt-get install"),
])
def test_bad_cli_input_is_one_clear_error(digits_model, tmp_path, capsys, extra, message):
    out = tmp_path / "r.csv"
    args = ["certify", "--data", "digits", "--model", str(digits_model), "--max", "2", "--n0", "5", "--n", "50",
            "--out", str(out), "--quiet", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("flag, value", [("--n0", "0"), ("--n", "-3"), ("--sigma", "0"), ("--sigma", "-1")])
def test_argument_range_errors(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["certify", flag, value])
    assert exc.value.code == 2 and "must be" in capsys.readouterr().err


def test_corrupt_and_malicious_model_files(digits_model, tmp_path, capsys):
    import shutil

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(digits_model.read_bytes()[:200])
    card = json.loads(digits_model.with_suffix(".json").read_text())
    card.pop("weights_sha256")
    corrupt.with_suffix(".json").write_text(json.dumps(card))
    assert main(["certify", "--data", "digits", "--model", str(corrupt), "--quiet"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"net.0.weight": Payload()}, evil)
    shutil.copy(corrupt.with_suffix(".json"), evil.with_suffix(".json"))
    assert main(["certify", "--data", "digits", "--model", str(evil), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "refusing to load" in captured.err and "pwned" not in captured.out

    replaced = tmp_path / "replaced.pt"
    shutil.copy(digits_model, replaced)
    card["weights_sha256"] = "0" * 64
    replaced.with_suffix(".json").write_text(json.dumps(card))
    assert main(["certify", "--data", "digits", "--model", str(replaced), "--quiet"]) == 2
    assert "does not match its model card" in capsys.readouterr().err


def test_model_for_other_images_is_refused(capsys):
    assert main(["certify", "--data", "digits", "--model", "fashion-mnist-sigma0.25", "--quiet"]) == 2
    assert "expects images of shape" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    for cmd in ([], ["train"], ["certify"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_record_then_replay_matches_a_live_run(digits_model, tmp_path):
    common = ["--data", "digits", "--model", str(digits_model), "--max", "4", "--skip", "5", "--quiet"]
    rec = tmp_path / "rec"
    assert main(["record", *common, "--n0", "100", "--n", "3000", "--out", str(rec)]) == 0
    assert main(["record", *common, "--n0", "100", "--n", "3000", "--out", str(rec)]) == 0  # resume: nothing to do
    live, replay = tmp_path / "live.csv", tmp_path / "replay.csv"
    opts = ["--radius", "0.25", "--max-samples", "3000", "--alpha", "0.01"]
    assert main(["certify", *common, *opts, "--out", str(live)]) == 0
    assert main(["certify", "--streams", str(rec), "--quiet", *opts, "--out", str(replay)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(live).drop(columns="seconds"),
                                  pd.read_csv(replay).drop(columns="seconds"))


def test_record_refuses_to_mix_configurations(digits_model, tmp_path, capsys):
    common = ["--data", "digits", "--model", str(digits_model), "--max", "2", "--quiet", "--out", str(tmp_path)]
    assert main(["record", *common, "--n", "100"]) == 0
    assert main(["record", *common, "--n", "100", "--seed", "1"]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_anytime_cli_bad_radius(digits_model, capsys):
    args = ["certify", "--data", "digits", "--model", str(digits_model), "--max", "2", "--quiet"]
    assert main([*args, "--radius", "-1"]) == 2
    assert "radius must be" in capsys.readouterr().err
    assert main([*args, "--radius", "3", "--max-samples", "100"]) == 2
    assert "can never be certified" in capsys.readouterr().err
    assert main([*args, "--prior", "pilot"]) == 2
    assert "needs pilot samples" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--prior", "magic"])
    assert "invalid choice" in capsys.readouterr().err


def test_triage_cli_respects_the_budget_and_reports_every_input(digits_model, tmp_path, capsys):
    policies = tmp_path / "p.toml"
    policies.write_text('[classes.strict]\nradius = 0.2\nalpha = 0.001\nevery = 3\n'
                        '[classes.routine]\nradius = 0.05\nalpha = 0.01\nmax_samples = 5000\n')
    out = tmp_path / "t.csv"
    assert main(["triage", "--data", "digits", "--model", str(digits_model), "--max", "9", "--skip", "3",
                 "--policies", str(policies), "--budget", "3000", "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 9 and frame["evaluations"].sum() <= 3000
    assert set(frame["class"]) == {"strict", "routine"} and (frame["class"] == "strict").sum() == 3
    assert set(frame["state"]) <= {"certified", "refuted", "pending", "undecided"}
    assert "budget" in capsys.readouterr().out
    policies.write_text("[classes.bad]\nradius = 0.2\nalpha = 2\n")
    assert main(["triage", "--data", "digits", "--model", str(digits_model), "--policies", str(policies),
                 "--quiet"]) == 2
    assert "alpha" in capsys.readouterr().err
