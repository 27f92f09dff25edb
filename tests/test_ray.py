"""Ray as a pool of model evaluators: the labels it returns are the model's, request by request, so a run on
N workers is the single-process run; a model in the user's own file and a TorchScript file load in the workers."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given as for_all
from hypothesis import strategies as st
from test_own_model import project  # noqa: F401 - the user's folder: resnet.py, a checkpoint, photos
from test_own_model import user  # noqa: F401

from haltfast.cli import main
from haltfast.data import load_dataset
from haltfast.distributed import BATCHES_PER_REQUEST
from haltfast.distributed import MIN_REQUEST
from haltfast.distributed import RayPool
from haltfast.distributed import WorkerRecipe
from haltfast.distributed import _Worker
from haltfast.distributed import given
from haltfast.distributed import request_size
from haltfast.distributed import split_requests
from haltfast.models import load_model
from haltfast.sampling import BaseClassifier
from haltfast.sampling import ModelLabels
from haltfast.sampling import NoiseSampler


class InProcessPool(RayPool):
    """The pool's request splitting and reassembly with its workers in this process (no Ray)."""

    def __init__(self, recipe: WorkerRecipe, workers: int):
        self.num_classes, self.batch_size, self.workers = recipe.num_classes, recipe.batch_size, workers
        self.actors = [_Worker(recipe) for _ in range(workers)]
        self.calls = 0

    def _map(self, tasks, stop=None):
        out = []
        for k, (method, args) in enumerate(tasks):
            if stop is not None and k and stop():
                out.append(None)
                continue
            self.calls += 1
            out.append(getattr(self.actors[k % len(self.actors)], method)(*args))
        return out


class FailsOnBright:
    """A base classifier that raises on any batch holding an image brighter than 0.6 on average."""

    def __call__(self, batch):
        if (batch.reshape(len(batch), -1).mean(axis=1) > 0.6).any():
            raise RuntimeError("too bright")
        return np.zeros(len(batch), dtype=np.int64)


def _requests(rng, n_items, size):
    items = rng.choice(n_items, size=size, replace=False)
    return items, rng.integers(0, 500, size), rng.integers(1, 700, size)


@for_all(total=st.integers(1, 200_000), workers=st.integers(1, 8), batch=st.sampled_from([8, 100, 500, 2000, 8192]))
def test_a_draw_is_cut_into_equal_requests_for_every_worker(total, workers, batch):
    """The engine waits for a round's whole draw: its requests are equal (up to rounding), a whole number per
    worker, at most BATCHES_PER_REQUEST model batches (they bound how far a deadline is overrun), and none
    below MIN_REQUEST unless such a request is smaller."""
    size = request_size(total, workers, batch)
    pieces = -(-total // size)
    assert min(MIN_REQUEST, BATCHES_PER_REQUEST * batch) <= size <= BATCHES_PER_REQUEST * batch
    if total >= workers * MIN_REQUEST and BATCHES_PER_REQUEST * batch >= MIN_REQUEST:
        assert pieces * size - total < pieces  # equal up to rounding: the last is short by less than one per piece
        assert pieces % workers == 0  # the same number of requests for each worker
        assert size <= -(-total // workers)


def test_split_requests_covers_every_sample_once_in_order():
    counts = np.array([5, 0, 12, 1, 7])
    pieces = split_requests(counts, 4)
    assert [(lo, hi) for lo, hi, *_ in pieces] == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 25)]
    covered = np.concatenate([np.repeat(rows, sizes) for _, _, rows, _, sizes in pieces])
    offsets = np.concatenate(
        [np.concatenate([o + np.arange(s) for o, s in zip(off, sizes)]) for *_, off, sizes in pieces]
    )
    assert covered.tolist() == np.repeat(np.arange(5), counts).tolist()
    assert offsets.tolist() == np.concatenate([np.arange(c) for c in counts]).tolist()
    assert all(hi - lo <= 4 and sizes.sum() == hi - lo for lo, hi, _, _, sizes in pieces)


def test_pool_answers_every_request_as_the_model_in_this_process(digits_model):
    data = load_dataset("digits", "test").subset(7, 30)
    model, _ = load_model(digits_model)
    recipe = WorkerRecipe(given(model), given(data.images), data.indices, 10, 0.25, seed=5, batch_size=256)
    local = ModelLabels(
        NoiseSampler(BaseClassifier(model, 10), 0.25, 5, 1000), torch.as_tensor(data.images), data.indices
    )
    pool = InProcessPool(recipe, workers=3)
    rng = np.random.default_rng(0)
    for size in (1, 5, len(data.indices)):
        items, starts, counts = _requests(rng, len(data.indices), size)
        want = local.labels(items, starts, counts)
        got = pool.labels(items, starts, counts)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert pool.calls > len(pool.actors)  # requests were split over the workers
    items = np.arange(len(data.indices))
    np.testing.assert_array_equal(pool.clean_logits(items)[0], local.clean_logits(items)[0])
    np.testing.assert_array_equal(pool.clean(items)[0], local.clean(items)[0])


def test_pool_fails_only_the_inputs_the_model_fails_on_and_stops_on_request():
    images = np.full((6, 1, 4, 4), 0.2, dtype=np.float32)
    images[[1, 4]] = 0.9
    recipe = WorkerRecipe(given(FailsOnBright()), given(images), np.arange(6), 2, 0.01, seed=0, batch_size=8)
    pool = InProcessPool(recipe, workers=2)
    counts = np.array([10, 30, 5, 7, 20, 3])
    labels, drawn, errors = pool.labels(np.arange(6), np.zeros(6, dtype=np.int64), counts)
    assert drawn.tolist() == [10, 0, 5, 7, 0, 3] and sorted(errors) == [1, 4] and "too bright" in errors[1]
    assert labels.size == 25 and not labels.any()
    polls = iter([True])  # the deadline has passed once the first request (2 batches of 8) is under way
    labels, drawn, _ = pool.labels(
        np.array([0, 2, 3]), np.zeros(3, dtype=np.int64), np.array([10, 5, 7]), lambda: next(polls)
    )
    assert drawn.tolist() == [10, 5, 1]  # the first 16 samples of the request: a prefix
    assert labels.size == 16


@pytest.mark.slow
def test_a_model_in_the_users_file_and_a_torchscript_file_certify_on_ray_workers(ray_cluster, user):  # noqa: F811
    """The workers load the user's resnet.py factory with its checkpoint, and a TorchScript file, by path."""
    from test_own_model import CERTIFY
    from test_own_model import SIZES

    from haltfast.models import load_base_model

    def certify(model: list[str], out: str, *extra: str) -> pd.DataFrame:
        assert main([CERTIFY[0], *model, *CERTIFY[5:-1], out, *SIZES["certify"], *extra]) == 0
        return pd.read_csv(out).drop(columns="seconds")

    factory = CERTIFY[1:5]
    pd.testing.assert_frame_equal(certify(factory, "one.csv"), certify(factory, "ray.csv", "--workers", "2"))
    model, _ = load_base_model("resnet.py:resnet", "checkpoint.pth.tar")
    torch.jit.save(torch.jit.script(model), "resnet.ts")
    card = ["card", "--model", "resnet.ts", "--sigma", "0.25", "--data", "photos", "--classes", "classes.txt"]
    assert main(card) == 0
    scripted = ["--model", "resnet.ts"]
    pd.testing.assert_frame_equal(certify(scripted, "ts.csv"), certify(scripted, "ts-ray.csv", "--workers", "2"))
