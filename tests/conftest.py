import numpy as np
import pytest
import torch

torch.set_num_threads(1)


class LinearClassifier:
    """f(x) = 1[w.x + b > 0] with ||w|| = 1: the smoothed p is Phi((w.x + b) / sigma) exactly,
    and the true certified radius of the smoothed classifier is the distance |w.x + b| to the hyperplane."""

    def __init__(self, dim: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        w = rng.normal(size=dim)
        self.w = (w / np.linalg.norm(w)).astype(np.float64)
        self.b = 0.0
        self.dim = dim

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return (batch.reshape(len(batch), -1) @ self.w + self.b > 0).astype(np.int64)

    def point_at_distance(self, d: float) -> np.ndarray:
        """An input on the class-1 side at distance d from the hyperplane."""
        return (self.w * d).reshape(1, 4, self.dim // 4).astype(np.float32)


@pytest.fixture
def linear():
    return LinearClassifier()


def record_linear(path, distances, keys, labels, sigma: float, length: int):
    """A recording, as `haltfast record` makes one, of the linear classifier at these distances from its hyperplane
    (p = Phi(d / sigma) known), with noise keys `keys` (the data set indices) and seed 3."""
    from haltfast.recording import record_streams
    from haltfast.smooth import Smooth

    linear = LinearClassifier()
    meta = {
        "model": "linear.pt",
        "weights_sha256": "0" * 64,
        "sigma": sigma,
        "seed": 3,
        "data": "linear",
        "split": "test",
        "skip": 1,
        "num_classes": 2,
        "indices": list(keys),
        "labels": list(labels),
    }
    xs = [linear.point_at_distance(d) for d in distances]
    record_streams(Smooth(linear, 2, sigma, seed=3, value_range=None).streams(xs, list(keys)), path, meta, length)
    return path


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """A tiny noise-trained model on scikit-learn's digits, trained through the CLI."""
    from haltfast.cli import main

    out = tmp_path_factory.mktemp("models") / "digits.pt"
    assert main(["train", "--data", "digits", "--sigma", "0.25", "--epochs", "15", "--out", str(out)]) == 0
    return out


@pytest.fixture
def certify_digits(digits_model):
    """`haltfast certify` arguments for the digits model on scikit-learn's digits, then these options."""
    return lambda *options: ["certify", "--data", "digits", "--model", str(digits_model), *options]


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the tests that run on Ray (started once, shut down at the end)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()
