"""Bad inputs, gathered: each gives a clear error for that input or run, never a certificate.

Bad triage policy files and arguments stay beside the triage tests (test_triage.py:
test_bad_policy_files_fail_with_a_clear_message, test_bad_triage_arguments); a
truncated or foreign results journal is in test_results.py.
"""

import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from haltfast import engine
from haltfast.cli import main
from haltfast.data import load_dataset
from haltfast.data import read_idx
from haltfast.errors import DataNotFoundError
from haltfast.errors import HaltfastError
from haltfast.errors import ModelOutputError
from haltfast.methods import run_method
from haltfast.models import load_model
from haltfast.recording import load_recording
from haltfast.sampling import BaseClassifier
from haltfast.sampling import LiveStreams
from haltfast.sampling import NoiseSampler
from haltfast.sampling import check_image
from haltfast.smooth import Smooth
from haltfast.streams import RecordedStreams

SIGMA = 0.5


def _bad_sampler(model, classes=3):
    return NoiseSampler(BaseClassifier(model, classes), sigma=0.5, seed=0, batch_size=64)


def _certify_args(digits_model, *extra):
    return ["certify", "--data", "digits", "--model", str(digits_model), "--max", "2", "--quiet", *extra]


# ---------------------------------------------------------------- command line and data


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--alpha", "1.5"], "--alpha: must lie strictly between 0 and 1"),
        (["--alpha", "0"], "--alpha: must lie strictly between 0 and 1"),
        (["--data", "imagenet"], "unknown data set"),
        (["--model", "/nonexistent/model.pt"], "not found"),
        (["--data", "fashion-mnist", "--data-dir", "/nonexistent"], "apt-get install"),
        (["--workers", "2", "--streams", "/nonexistent"], "replaying --streams is cheap"),
    ],
)
def test_bad_cli_input_is_one_clear_error(tmp_path, capsys, extra, message, certify_digits):
    out = tmp_path / "r.csv"
    args = certify_digits("--max", "2", "--n0", "5", "--n", "50", "--out", str(out), "--quiet", *extra)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "flag, value",
    [("--n0", "0"), ("--n", "-3"), ("--sigma", "0"), ("--sigma", "-1"), ("--workers", "0"), ("--max-samples", "0")],
)
def test_argument_range_errors(flag, value, capsys):
    assert main(["certify", flag, value]) == 2
    assert "must be" in capsys.readouterr().err


def test_anytime_cli_bad_radius(digits_model, capsys):
    assert main(_certify_args(digits_model, "--radius", "-1")) == 2
    assert "radius must be" in capsys.readouterr().err
    assert main(_certify_args(digits_model, "--radius", "3", "--max-samples", "100")) == 2
    assert "can never be certified" in capsys.readouterr().err
    assert main(_certify_args(digits_model, "--prior", "pilot")) == 2
    assert "needs pilot samples" in capsys.readouterr().err
    assert main(_certify_args(digits_model, "--prior", "magic")) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_model_for_other_images_is_refused(capsys):
    assert main(["certify", "--data", "digits", "--model", "fashion-mnist-sigma0.25", "--quiet"]) == 2
    assert "expects images of shape" in capsys.readouterr().err


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (2, 3, 4)) + bytes(19))
    with pytest.raises(HaltfastError, match="expected 24 bytes"):
        read_idx(path)


def test_missing_data_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("HALTFAST_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "test", tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="apt-get install"):
        load_dataset("fashion-mnist", "test", tmp_path)  # exists but holds no idx files


def test_unknown_dataset_and_split():
    with pytest.raises(HaltfastError, match="unknown data set"):
        load_dataset("cifar-100")
    with pytest.raises(HaltfastError, match="unknown split"):
        load_dataset("digits", "validation")


# ---------------------------------------------------------------- model files


def _card_without_hash(digits_model, path):
    card = json.loads(digits_model.with_suffix(".json").read_text())
    card.pop("weights_sha256")
    path.with_suffix(".json").write_text(json.dumps(card))
    return card


class _CreatesAFile:
    """Unpickling this calls open(marker, 'w'): a file appears if the loader runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("save", ["torch", "pickle"])
def test_weights_that_would_run_code_are_refused(digits_model, tmp_path, capsys, save):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"net.0.weight": _CreatesAFile(marker)}
    if save == "torch":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))  # the legacy, non-zip format
    _card_without_hash(digits_model, evil)
    with pytest.raises(HaltfastError, match="refusing to load .*could run code.*nothing was run"):
        load_model(evil)
    assert main(["certify", "--data", "digits", "--model", str(evil), "--quiet"]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()


def test_corrupt_truncated_and_replaced_weights(digits_model, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(digits_model.read_bytes()[:200])
    card = _card_without_hash(digits_model, truncated)
    assert main(["certify", "--data", "digits", "--model", str(truncated), "--quiet"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err

    garbage = tmp_path / "garbage.pt"
    for junk in (b"\x00not a weights file" * 10, b"plain text", digits_model.read_bytes()[:1000]):
        garbage.write_bytes(junk)
        _card_without_hash(digits_model, garbage)
        with pytest.raises(HaltfastError, match="corrupt or truncated"):
            load_model(garbage)
    torch.save([torch.zeros(2)], garbage)  # tensors, but not a state dict
    _card_without_hash(digits_model, garbage)
    with pytest.raises(HaltfastError, match="not a state dict"):
        load_model(garbage)

    replaced = tmp_path / "replaced.pt"  # a card with a hash catches any change, truncation included
    shutil.copy(digits_model, replaced)
    card["weights_sha256"] = "0" * 64
    replaced.with_suffix(".json").write_text(json.dumps(card))
    assert main(["certify", "--data", "digits", "--model", str(replaced), "--quiet"]) == 2
    assert "does not match its model card" in capsys.readouterr().err


# ---------------------------------------------------------------- base classifiers that misbehave


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda b: np.zeros((len(b), 4)), "logits of shape"),
        (lambda b: np.full((len(b), 3), np.nan), "non-finite"),
        (lambda b: np.full((len(b), 3), np.inf), "non-finite"),
        (lambda b: np.zeros(len(b) + 1, dtype=int), "returned shape"),
        (lambda b: np.full(len(b), 7), "outside"),
        (lambda b: np.full(len(b), 0.5), "non-integer"),
    ],
)
def test_bad_model_outputs_are_clear_errors(bad, match):
    with pytest.raises(ModelOutputError, match=match):
        _bad_sampler(bad).sample([torch.rand(1, 4, 4)], [0], [0], [10])


def test_live_streams_isolate_a_failing_input():
    def model(batch):
        if (batch.reshape(len(batch), -1).mean(1) > 5).any():
            raise RuntimeError("boom")
        return np.zeros(len(batch), dtype=int)

    images = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 10.0), torch.zeros(1, 4, 4)])
    streams = LiveStreams(_bad_sampler(model), images, [0, 1, 2])
    out, errors = streams.draw([0, 1, 2], [20, 20, 20])
    assert out[1] is None and "boom" in errors[1] and set(errors) == {1}
    assert len(out[0]) == len(out[2]) == 20
    np.testing.assert_array_equal(streams.positions, [20, 0, 20])


def _poisoned_model(failure, after_calls=1):
    """Logits of a threshold classifier; once `after_calls` batches went through, any batch holding a sample of
    the input whose pixel 0 is near 1 fails (`failure`: raise, nan or inf): the model breaks mid-run."""
    calls = {"n": 0}

    def model(batch):
        calls["n"] += 1
        flat = batch.reshape(len(batch), -1)
        logits = np.stack([np.zeros(len(batch)), flat.mean(1) * 10], axis=1)
        poisoned = flat[:, 0] > 0.9
        if calls["n"] > after_calls and poisoned.any():
            if failure == "raise":
                raise RuntimeError("CUDA error: device-side assert triggered")
            logits[poisoned] = np.nan if failure == "nan" else np.inf
        return logits

    return model


@pytest.mark.parametrize("method, options", [("anytime", {"radius": 0.005}), ("anytime", {}), ("cohen", {})])
@pytest.mark.parametrize("failure, message", [("raise", "CUDA error"), ("nan", "non-finite"), ("inf", "non-finite")])
def test_model_failing_mid_run_gives_an_error_row_for_its_input_only(method, options, failure, message):
    good = np.full((1, 2, 2), 0.5, dtype=np.float32)
    bad = good.copy()
    bad[0, 0, 0] = 1.0
    smooth = Smooth(_poisoned_model(failure), 2, 0.01, seed=0, batch_size=50)
    kw = {"n0": 20, "n": 300} if method == "cohen" else {"max_samples": 2000}
    certs = smooth.certify_many([good, bad, good], method=method, progress=False, **kw, **options)
    assert [c.decision for c in certs] == ["certified", "error", "certified"]
    assert message in certs[1].error
    assert certs[1].radius == 0.0 and certs[1].prediction == Smooth.ABSTAIN


@pytest.mark.parametrize("method", ["cohen", "anytime"])
def test_model_with_the_wrong_number_of_classes(method):
    smooth = Smooth(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), 10, 0.25, seed=0)
    cert = smooth.certify(torch.rand(1, 4, 4), n0=10, n=10, method=method)
    assert cert.decision == "error" and "expected" in cert.error and cert.radius == 0.0


def test_recorded_streams_refuse_to_overrun():
    rec = RecordedStreams([np.arange(10) % 3, np.ones(5, dtype=np.uint8)], 3)
    out, _ = rec.draw([0, 1], [4, 5])
    np.testing.assert_array_equal(out[0], [0, 1, 2, 0])
    with pytest.raises(HaltfastError, match="record longer streams"):
        rec.draw([1], [1])


def test_record_refuses_to_mix_configurations_and_a_corrupt_recording(digits_model, tmp_path, capsys):
    common = ["--data", "digits", "--model", str(digits_model), "--max", "2", "--quiet", "--out", str(tmp_path)]
    assert main(["record", *common, "--n", "100"]) == 0
    assert main(["record", *common, "--n", "100", "--seed", "1"]) == 2
    assert "different configuration" in capsys.readouterr().err
    meta = tmp_path / "meta.json"
    meta.write_text(meta.read_text()[:40])  # cut off mid-write
    with pytest.raises(HaltfastError, match="corrupt"):
        load_recording(tmp_path)


# ---------------------------------------------------------------- bad images and arguments


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((1, 4, 4), np.nan), "NaN"),
        (np.full((1, 4, 4), np.inf), "infinite"),
        (np.full((1, 4, 4), 2.0), "outside the expected range"),
        (np.full((1, 4, 4), -0.1), "outside the expected range"),
    ],
)
def test_bad_images_are_refused_before_any_certificate(image, match):
    with pytest.raises(HaltfastError, match=match):
        check_image(image)
    smooth = Smooth(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), 3, 0.25, seed=0)
    good = np.full((1, 4, 4), 0.5, dtype=np.float32)
    for method in ("cohen", "anytime"):
        with pytest.raises(HaltfastError, match=f"image 1: .*{match}"):
            smooth.certify_many([good, image.astype(np.float32), good], method=method, n0=10, n=10, progress=False)
    with pytest.raises(HaltfastError, match="shape"):
        check_image(np.zeros((1, 4, 4)), shape=(1, 28, 28))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"n0": 0}, "n0"),
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"batch_size": 0}, "batch_size"),
        ({"method": "magic"}, "unknown method"),
    ],
)
def test_bad_cohen_arguments(linear, kwargs, match):
    smooth = Smooth(linear, 2, 0.5, seed=0, value_range=None)
    with pytest.raises(HaltfastError, match=match):
        smooth.certify(linear.point_at_distance(0.3), **{"n0": 10, "n": 100, **kwargs})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"radius": -0.1}, "radius must be"),
        ({"radius": float("nan")}, "radius must be"),
        ({"radius": 2.0, "max_samples": 1000}, "can never be certified"),
        ({"max_samples": 0}, "max_samples"),
        ({"alpha": 1.0}, "alpha"),
        ({"prior": "optimistic"}, "unknown prior"),
        ({"prior": (0.0, 1.0)}, "prior must be"),
        ({"selection": "oracle"}, "unknown selection"),
        ({"tolerance": -1}, "tolerance"),
        ({"bogus": 1}, "unexpected keyword"),
    ],
)
def test_bad_anytime_arguments(linear, kwargs, match):
    with pytest.raises(HaltfastError, match=match):
        Smooth(linear, 2, SIGMA, seed=0, value_range=None).certify(
            linear.point_at_distance(0.3), method="anytime", **kwargs
        )


@pytest.mark.parametrize("sigma", [0.0, -0.5, float("nan"), float("inf"), "0.5"])
def test_bad_sigma(linear, sigma):
    with pytest.raises(HaltfastError, match="sigma"):
        Smooth(linear, 2, sigma)
    if not isinstance(sigma, str):
        with pytest.raises(HaltfastError, match="sigma"):
            NoiseSampler(BaseClassifier(linear, 2), sigma=sigma)


# ---------------------------------------------------------------- extreme alpha and budgets


def test_alpha_1e_minus_12_certifies_soundly(linear):
    alpha = 1e-12
    smooth = Smooth(linear, 2, SIGMA, seed=1, value_range=None)
    far, edge = linear.point_at_distance(0.6), linear.point_at_distance(0.2)
    decided = smooth.certify_many(
        [far] * 5 + [edge] * 20, method="anytime", radius=0.2, alpha=alpha, max_samples=20_000, progress=False
    )
    assert all(c.decision == "certified" for c in decided[:5])
    assert np.mean([c.evaluations for c in decided[:5]]) < 1000  # Wald: log(1e12) / KL(0.885 || 0.655) = 160
    assert not any(c.decision == "certified" for c in decided[5:])  # p = p0 exactly: the hardest null
    radii = smooth.certify_many([far] * 5, method="anytime", alpha=alpha, max_samples=20_000, progress=False)
    cohen = smooth.certify_many([far] * 5, method="cohen", alpha=alpha, n0=100, n=20_000, progress=False)
    for c in radii + cohen:
        assert c.decision == "certified" and 0.2 < c.radius < 0.6


def test_alpha_1e_minus_12_on_the_command_line(digits_model, tmp_path):
    out = tmp_path / "r.csv"
    assert main(_certify_args(digits_model, "--alpha", "1e-12", "--max-samples", "5000", "--out", str(out))) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 2 and (frame["radius"] >= 0).all() and (frame["p_lower"] < 1).all()


class _Stop(Exception):
    pass


class _SpyStreams:
    """Live streams that record every draw request and stop the run at request number stop_after + 1."""

    def __init__(self, streams, stop_after):
        self.streams, self.stop_after, self.draws = streams, stop_after, []

    def __getattr__(self, name):
        return getattr(self.streams, name)

    def _spy(self, counts):
        self.draws.append([int(c) for c in counts])
        if len(self.draws) > self.stop_after:
            raise _Stop

    def draw(self, items, counts):
        self._spy(counts)
        return self.streams.draw(items, counts)

    def draw_flat(self, items, counts):
        self._spy(counts)
        return self.streams.draw_flat(items, counts)


def test_budget_of_1e8_never_allocates_it(linear, monkeypatch):
    smooth = Smooth(linear, 2, SIGMA, seed=0, value_range=None)
    x = linear.point_at_distance(0.6)
    easy = smooth.certify_many([x] * 3, method="anytime", radius=0.2, max_samples=10**8, progress=False)
    assert all(c.decision == "certified" and c.evaluations < 1000 for c in easy)
    radius = smooth.certify(x, method="anytime", max_samples=10**8, tolerance=0.05)
    assert radius.decision == "certified" and 0.3 < radius.radius < 0.6
    # chunks grow with each input's evidence but never past MAX_CHUNK, and a round never asks for more than
    # ROUND_SAMPLES (or one chunk): shown here with both caps made small
    assert engine.chunk_grid(np.array([10.0**8]), 16)[0] <= engine.MAX_CHUNK
    monkeypatch.setattr(engine, "MAX_CHUNK", 64)
    monkeypatch.setattr(engine, "ROUND_SAMPLES", 100)
    xs = [linear.point_at_distance(d) for d in (0.4, 0.42, 0.45, 0.5)]
    spy = _SpyStreams(smooth.streams(xs, [0, 1, 2, 3]), stop_after=10**6)
    capped = run_method("anytime", spy, range(4), sigma=SIGMA, n0=100, n=0, alpha=0.001, radius=0.3, max_samples=10**8)
    assert sum(c.decision == "certified" for c in capped) >= 3 and all(c.decision != "undecided" for c in capped)
    assert 60 <= max(max(d) for d in spy.draws) <= 64 and all(sum(d) <= 100 for d in spy.draws)
    spy = _SpyStreams(smooth.streams([x], [0]), stop_after=1)
    with pytest.raises(_Stop):
        run_method("cohen", spy, [0], sigma=SIGMA, n0=100, n=10**8, alpha=0.001)
    assert spy.draws == [[100], [64]]


def test_round_cap_changes_no_result(linear, monkeypatch):
    xs = [linear.point_at_distance(d) for d in (0.1, 0.3, 0.5, 0.7, -0.4)]
    run = lambda **kw: [
        (c.prediction, c.decision, c.evaluations, c.log_evalue)
        for c in Smooth(linear, 2, SIGMA, seed=0, value_range=None).certify_many(
            xs, method="anytime", radius=0.2, keys=range(5), progress=False, **kw
        )
    ]
    whole = run()
    monkeypatch.setattr(engine, "ROUND_SAMPLES", 1)  # one input per round
    assert run() == whole


def test_a_budget_of_1e8_on_the_command_line(digits_model, tmp_path):
    out = tmp_path / "r.csv"
    assert main(_certify_args(digits_model, "--radius", "0.1", "--max-samples", "100000000", "--out", str(out))) == 0
    assert (pd.read_csv(out)["evaluations"] < 100_000).all()
