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


# ---------------------------------------------------------------------------------------------- issue 21, item 7


def test_a_negative_radius_in_a_list_gets_its_own_message(capsys, certify_digits):
    """`--radii -0.25,0.5` reached argparse as an option ("expected one argument" and the usage dump)."""
    assert main(certify_digits("--radii", "-0.25,0.5", "--quiet")) == 2
    err = capsys.readouterr().err
    assert "grid radius must be a finite number >= 0, got -0.25" in err and "usage:" not in err


def test_one_normalize_value_for_three_channels_is_refused(capsys, tmp_path):
    """The docs say one mean and one std per channel; a single value for colour images was accepted silently."""
    from test_data_sources import _folder
    from test_data_sources import _rgb

    photos = _folder(tmp_path / "photos", {"0": _rgb(1), "1": _rgb(1)})
    assert main(["card", "--model", "m.py:f", "--data", str(photos), "--normalize", "0.5/0.2"]) == 2
    assert "1 mean(s) and std(s) for images of 3 channels" in capsys.readouterr().err


def test_the_summary_names_the_worth_in_force(digits_model, tmp_path, certify_digits):
    """Decision mode's worth is off (the help says so); the summary said "auto". Grid mode's is 1,000,000."""
    decision, grid = tmp_path / "d.json", tmp_path / "g.json"
    assert main(certify_digits("--max", "3", "--radius", "0.1", "--summary-json", str(decision), "--quiet")) == 0
    assert main(certify_digits("--max", "3", "--radii", "0,0.1", "--summary-json", str(grid), "--quiet")) == 0
    assert json.loads(decision.read_text())["options"]["worth"] is None
    options = json.loads(grid.read_text())["options"]
    assert options["worth"] == 1_000_000 and options["selection"] == "pilot" and options["prior"] == "pilot"


def test_the_progress_bar_counts_evaluations_and_shows_no_unbacked_time_left():
    """It showed an ETA from inputs (37 s left at 367 of 400, then 8 more minutes): now evaluations and their
    rate, and a time left only from a known total or a budget (then 'at most')."""
    from haltfast.progress import progress_bar

    free = progress_bar(True, 400)
    free.evaluations = 2_000_000
    assert free.status(10.0) == "2,000,000 evals, 200,000 evals/s"
    budget = progress_bar(True, 400, evaluations=3_000_000, at_most=True)
    budget.evaluations = 2_000_000
    assert budget.status(10.0) == "2,000,000 evals, 200,000 evals/s, at most 0:05 left"
    known = progress_bar(True, 400, evaluations=3_000_000)
    known.evaluations = 2_000_000
    assert known.status(10.0).endswith(", 0:05 left")


def test_the_bar_on_screen(capsys):
    """The bar itself: inputs done, evaluations and their rate, no ETA of tqdm's."""
    from haltfast.progress import progress_bar

    with progress_bar(True, 3, desc="certify") as tick:
        tick(0, 5000)
        tick(3, 0)
    line = capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1]
    assert line.startswith("certify: 3/3 inputs") and "5,000 evals" in line and "evals/s" in line
    assert "<" not in line and "left" not in line


def test_certificates_have_tested_and_stopped_at():
    from haltfast.certificate import Certificate

    cert = Certificate(1, 0.5, "certified", 300, extra={"tested": 299, "stopped_at": 280})
    assert (cert.tested, cert.stopped_at) == (299, 280)
    assert Certificate(1, 0.5, "certified", 300).stopped_at is None
    assert cert.row()["stopped_at"] == 280 and "tested" in cert.row()


def test_calibrate_says_or_refuses_when_the_data_hold_fewer_images(digits_model, capsys):
    """The digits calibration split holds 359 images: --images 1000 was cut to them silently."""
    base = ["calibrate", "--data", "digits", "--model", str(digits_model), "--quiet"]
    assert main([*base, "--images", "1000"]) == 2
    assert "--images 1,000, but digits holds 359 images" in capsys.readouterr().err
