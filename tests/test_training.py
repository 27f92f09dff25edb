"""Noise-augmented training of any model: noise in pixel space, held-out split, resume, the card certify accepts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from haltfast.cli import main
from haltfast.data import Dataset
from haltfast.data import open_dataset
from haltfast.errors import OutputError
from haltfast.errors import UsageError
from haltfast.models import load_base_model
from haltfast.models.training import Recipe
from haltfast.models.training import checkpoint_path
from haltfast.models.training import split_heldout
from haltfast.models.training import train_classifier

FACTORY = """
import torch
from torch import nn


def tiny(num_classes: int = 10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))


def three_classes():
    return tiny(3)
"""


class Spy(nn.Module):
    """A linear classifier that keeps every training batch it sees."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(features, classes)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def _constant_images(count: int = 64, value: float = 0.5) -> Dataset:
    images = np.full((count, 1, 4, 4), value, dtype=np.float32)
    labels = np.arange(count) % 2
    return Dataset("constant", "train", images, labels, np.arange(count), 2)


def _state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_noise_is_added_in_pixel_space_at_sigma():
    """Every training batch is the image plus fresh N(0, sigma^2) noise: mean 0.5, standard deviation sigma."""
    spy = Spy(16, 2)
    train_classifier(spy, _constant_images(), 0.5, Recipe(epochs=2, batch_size=16, holdout=0.0), seed=3)
    seen = torch.cat(spy.seen)
    assert seen.shape == (128, 1, 4, 4)
    assert abs(float(seen.mean()) - 0.5) < 0.05
    assert abs(float(seen.std()) - 0.5) < 0.03
    assert not torch.equal(spy.seen[0], spy.seen[4])  # epoch 2 draws new noise for the same images


def test_heldout_split_is_disjoint_seeded_and_never_trained_on():
    train, held = split_heldout(100, 0.1, seed=0)
    assert len(held) == 10 and len(train) == 90 and not set(train) & set(held)
    assert np.array_equal(split_heldout(100, 0.1, seed=0)[1], held)
    data = _constant_images(40)
    data.images[:] = np.arange(40, dtype=np.float32)[:, None, None, None] / 40  # each image tells its position
    spy = Spy(16, 2)
    result = train_classifier(spy, data, 0.0, Recipe(epochs=1, batch_size=8, holdout=0.25), seed=1)
    seen_positions = set(np.round(torch.cat(spy.seen)[:, 0, 0, 0].numpy() * 40).astype(int))
    assert len(result.heldout) == 10 and seen_positions == set(range(40)) - set(result.heldout.tolist())
    assert result.history[0].heldout_clean_accuracy is not None


def test_resume_from_a_checkpoint_gives_the_uninterrupted_weights(tmp_path):
    data = open_dataset("digits", "train")
    recipe = Recipe(epochs=3, batch_size=64, lr=0.05)

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    straight = train_classifier(model(), data, 0.25, recipe, seed=7)

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record.epoch == 2:
            raise Stop

    path = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        train_classifier(model(), data, 0.25, recipe, seed=7, checkpoint=path, on_epoch=stop_after_two)
    resumed = train_classifier(model(), data, 0.25, recipe, seed=7, checkpoint=path)
    assert resumed.resumed_from == 2 and len(resumed.history) == 3
    for key, value in _state(straight.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    with pytest.raises(OutputError, match="another training run.*sigma"):
        train_classifier(model(), data, 0.5, recipe, seed=7, checkpoint=path)


def test_recipe_values_are_checked():
    for bad in ({"optimizer": "adam"}, {"schedule": "step"}, {"holdout": 1.0}, {"lr": -1.0}, {"epochs": 0}):
        with pytest.raises(UsageError):
            Recipe(**bad)


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(FACTORY)
    return path


@pytest.mark.slow
def test_cli_trains_a_factory_model_that_certify_accepts_at_once(tmp_path, factory, capsys):
    out = tmp_path / "tiny.pt"
    args = ["train", "--model", f"{factory}:tiny", "--data", "digits", "--sigma", "0.25", "--epochs", "2"]
    assert main([*args, "--normalize", "0.5/0.25", "--out", str(out), "--quiet"]) == 0
    card = json.loads((tmp_path / "tiny.pt.card.json").read_text())
    assert card["sigma"] == 0.25 and card["num_classes"] == 10 and card["input_shape"] == [1, 8, 8]
    assert card["normalize"] == {"mean": [0.5], "std": [0.25]} and len(card["history"]) == 2
    assert card["recipe"]["optimizer"] == "sgd" and card["recipe"]["schedule"] == "cosine"
    assert card["train_cpu_seconds"] >= 0 and card["train_seconds"] >= 0  # rounded to 0.1 s: this run is short
    assert not checkpoint_path(out).exists()
    model, loaded = load_base_model(f"{factory}:tiny", out)
    assert loaded["verified"] and loaded["sigma"] == 0.25 and loaded["normalize"] == card["normalize"]
    assert isinstance(model, nn.Sequential) and len(model) == 2  # the NormalizeLayer in front, from the card
    certify = ["certify", "--model", f"{factory}:tiny", "--weights", str(out), "--data", "digits", "--max", "2"]
    assert main([*certify, "--radius", "0.1", "--max-samples", "500", "--quiet"]) == 0
    assert "certified accuracy" in capsys.readouterr().out


def test_cli_refuses_what_cannot_train_before_any_work(tmp_path, factory, capsys):
    base = ["train", "--data", "digits", "--sigma", "0.25", "--out", str(tmp_path / "m.pt")]
    assert main([*base, "--normalize", "cifar10"]) == 2
    assert "--normalize needs --model" in capsys.readouterr().err
    assert main([*base, "--model", f"{factory}:three_classes"]) == 2
    assert "returns 3 logits" in capsys.readouterr().err
    assert main([*base, "--model", "model.pt"]) == 2
    assert "file.py:factory" in capsys.readouterr().err
    assert main([*base, "--holdout", "1.5"]) == 2
    assert not (tmp_path / "m.pt").exists()
