import json

import pandas as pd

from haltfast.cli import main
from haltfast.models import load_model


def test_train_writes_a_complete_model_card(digits_model):
    _model, card = load_model(digits_model)
    for key in (
        "data",
        "sigma",
        "epochs",
        "seed",
        "clean_test_accuracy",
        "noisy_test_accuracy",
        "samples_per_second",
        "weights_sha256",
        "command",
    ):
        assert key in card
    assert card["command"].startswith("haltfast train --data digits")
    assert card["clean_test_accuracy"] > 0.8  # digits is easy even after 15 epochs


def test_certify_end_to_end_on_digits(digits_model, tmp_path, capsys):
    out, summary = tmp_path / "r.csv", tmp_path / "s.json"
    rc = main(
        [
            "certify",
            "--method",
            "cohen",
            "--data",
            "digits",
            "--model",
            str(digits_model),
            "--skip",
            "3",
            "--max",
            "6",
            "--n0",
            "20",
            "--n",
            "500",
            "--alpha",
            "0.01",
            "--out",
            str(out),
            "--summary-json",
            str(summary),
            "--quiet",
        ]
    )
    assert rc == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[:7]) == ["index", "label", "prediction", "correct", "radius", "decision", "evaluations"]
    assert len(frame) == 6 and (frame["evaluations"] == 520).all()
    assert (frame["radius"] >= 0).all() and frame["seconds"].notna().all()
    s = json.loads(summary.read_text())
    assert s["inputs"] == 6 and s["mean_evaluations"] == 520
    assert "certified accuracy" in capsys.readouterr().out


def test_anytime_end_to_end_on_digits(tmp_path, capsys, certify_digits):
    out = tmp_path / "r.csv"
    assert (
        main(certify_digits("--max", "8", "--radius", "0.1", "--max-samples", "2000", "--out", str(out), "--quiet"))
        == 0
    )
    frame = pd.read_csv(out)
    assert set(frame["decision"]) <= {"certified", "not certified", "undecided"}
    assert (frame["evaluations"] == 1 + frame["tested"]).all()  # clean selection: one evaluation
    assert (frame["stopped_at"] <= frame["tested"]).all() and (frame["tested"] <= 2000).all()
    assert "certified accuracy at radius r=0.1" in capsys.readouterr().out


def test_same_seed_same_csv(tmp_path, certify_digits):
    rows = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.csv"
        main(certify_digits("--max", "3", "--n0", "10", "--n", "200", "--out", str(out), "--quiet"))
        rows.append(pd.read_csv(out).drop(columns="seconds"))
    pd.testing.assert_frame_equal(*rows)


def test_every_command_has_help(capsys):
    for cmd in ([], ["train"], ["certify"], ["record"], ["calibrate"], ["triage"], ["bench"], ["card"]):
        assert main([*cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert "usage" in out and "--help" in out
    assert main(["--version"]) == 0 and "haltfast" in capsys.readouterr().out


def test_record_then_replay_matches_a_live_run(digits_model, tmp_path):
    common = ["--data", "digits", "--model", str(digits_model), "--max", "4", "--skip", "5", "--quiet"]
    rec = tmp_path / "rec"
    assert main(["record", *common, "--n0", "100", "--n", "3000", "--out", str(rec)]) == 0
    assert main(["record", *common, "--n0", "100", "--n", "3000", "--out", str(rec)]) == 0  # resume: nothing to do
    live, replay = tmp_path / "live.csv", tmp_path / "replay.csv"
    opts = ["--radius", "0.25", "--max-samples", "3000", "--alpha", "0.01"]
    assert main(["certify", *common, *opts, "--out", str(live)]) == 0
    assert main(["certify", "--streams", str(rec), "--quiet", *opts, "--out", str(replay)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(live).drop(columns="seconds"), pd.read_csv(replay).drop(columns="seconds")
    )


def test_triage_cli_respects_the_budget_and_reports_every_input(digits_model, tmp_path, capsys):
    policies = tmp_path / "p.toml"
    policies.write_text(
        "[classes.strict]\nradius = 0.2\nalpha = 0.001\nevery = 3\n"
        "[classes.routine]\nradius = 0.05\nalpha = 0.01\nmax_samples = 5000\n"
    )
    out = tmp_path / "t.csv"
    assert (
        main(
            [
                "triage",
                "--data",
                "digits",
                "--model",
                str(digits_model),
                "--max",
                "9",
                "--skip",
                "3",
                "--policies",
                str(policies),
                "--budget",
                "3000",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    frame = pd.read_csv(out)
    assert len(frame) == 9 and frame["evaluations"].sum() <= 3000
    assert set(frame["class"]) == {"strict", "routine"} and (frame["class"] == "strict").sum() == 3
    assert set(frame["state"]) <= {"certified", "not certified", "pending", "undecided"}
    assert "budget" in capsys.readouterr().out
    policies.write_text("[classes.bad]\nradius = 0.2\nalpha = 2\n")
    assert (
        main(["triage", "--data", "digits", "--model", str(digits_model), "--policies", str(policies), "--quiet"]) == 2
    )
    assert "alpha" in capsys.readouterr().err
