"""Scale-out on Ray: a pool of workers that evaluate the base model, while the run stays in one engine.

The engine (in the driver) keeps every round, test, budget, deadline, price and journal line; the pool only
answers "the labels of input i at stream positions s .. s + m" (haltfast.streams.LabelSource), one byte per
sample back. Each worker builds the base classifier and opens the images itself from a recipe (the model
file, factory and weights, or TorchScript, by path; the data set by name or path), so nothing but the
recipe is pickled, and a model defined in the user's own file loads in the worker as it did in the driver.
A stream is a pure function of (seed, key, position), so certificates, totals and journals are the same
for 0, 1 or N workers by construction. Ray is optional (`pip install 'haltfast[ray]'`); nothing else
imports it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import HaltfastError
from .streams import Stop

IN_FLIGHT_PER_WORKER = 3  # requests queued on each worker, so it never waits for the driver
BATCHES_PER_REQUEST = 2  # model batches per request: the pool stops within about this much of a deadline
MIN_REQUEST = 256  # labels: below this Ray's cost per request (about 2 ms) outweighs spreading a small draw


@dataclass(frozen=True)
class WorkerRecipe:
    """What every worker builds for itself: all picklable, nothing of the driver's model or images.

    `model()` returns the base classifier (a torch.nn.Module on its device, or a callable), `images()` the
    inputs' images: an array (N, C, H, W) or a lazy source whose `load(positions)` reads items 0..N-1;
    `keys[i]` is input i's noise stream.
    """

    model: Callable[[], Any]
    images: Callable[[], Any]
    keys: np.ndarray
    num_classes: int
    sigma: float
    seed: int
    batch_size: int = 2000
    device: str = "cpu"
    value_range: tuple[float, float] | None = (0.0, 1.0)
    threads: int = 1
    cwd: str | None = None  # relative model and data paths resolve here, where this folder exists


def given(value) -> Callable[[], Any]:
    """A recipe for something the driver already holds and can pickle (an array, a module): it returns `value`."""
    return functools.partial(_identity, value)


def _identity(value):
    return value


class _Worker:
    """One Ray actor: the base classifier under noise on the recipe's images (a haltfast.sampling.ModelLabels)."""

    def __init__(self, recipe: WorkerRecipe):
        import torch

        from .sampling import BaseClassifier
        from .sampling import ModelLabels
        from .sampling import NoiseSampler

        torch.set_num_threads(recipe.threads)
        if recipe.cwd and os.path.isdir(recipe.cwd):
            os.chdir(recipe.cwd)
        sampler = NoiseSampler(
            BaseClassifier(recipe.model(), recipe.num_classes),
            recipe.sigma,
            recipe.seed,
            recipe.batch_size,
            recipe.device,
        )
        images = recipe.images()
        if not hasattr(images, "load"):
            images = torch.as_tensor(np.asarray(images, dtype=np.float32))
        self.source = ModelLabels(sampler, images, recipe.keys, recipe.value_range)
        self.dtype = np.uint8 if recipe.num_classes <= 256 else np.int32

    def pid(self) -> int:
        return os.getpid()

    def labels(self, items: np.ndarray, starts: np.ndarray, counts: np.ndarray):
        labels, drawn, errors = self.source.labels(items, starts, counts)
        return labels.astype(self.dtype), drawn, errors

    def clean(self, items: np.ndarray):
        return self.source.clean(items)

    def clean_logits(self, items: np.ndarray):
        return self.source.clean_logits(items)

    def forget(self, items: np.ndarray) -> None:
        self.source.forget(items)


def import_ray():
    """The ray module, or a HaltfastError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise HaltfastError(
            "--workers and --ray-address need Ray: pip install 'haltfast[ray]' "
            "(or run without them: the single-process path gives the same certificates)"
        ) from None
    return ray


def split_requests(counts: np.ndarray, piece: int) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Cut requests (counts[i] samples of request i, back to back) into pieces of at most `piece` samples:
    [(flat start, flat end, request numbers, offsets into each request, samples of each)] in order."""
    ends = np.cumsum(counts)
    firsts = ends - counts
    total = int(ends[-1]) if ends.size else 0
    out = []
    for lo in range(0, total, piece):
        hi = min(lo + piece, total)
        first, last = np.searchsorted(ends, lo, side="right"), np.searchsorted(ends, hi - 1, side="right")
        rows = np.arange(first, last + 1)
        start = np.maximum(firsts[rows], lo)
        stop = np.minimum(ends[rows], hi)
        keep = stop > start
        out.append((lo, hi, rows[keep], (start - firsts[rows])[keep], (stop - start)[keep]))
    return out


def request_size(total: int, workers: int, batch_size: int) -> int:
    """Labels per request for a draw of `total` labels: at most BATCHES_PER_REQUEST model batches, and equal
    shares for the workers (a whole number of requests each), so that no worker idles while another finishes
    the engine's round; not below MIN_REQUEST unless a request of BATCHES_PER_REQUEST batches is smaller."""
    workers, most = max(workers, 1), BATCHES_PER_REQUEST * batch_size
    per_worker = -(-total // (workers * most))  # requests each, at most `most` labels
    return min(most, max(MIN_REQUEST, -(-total // (workers * max(per_worker, 1)))))


class RayPool:
    """Ray workers that evaluate the base model for one engine: a label source (haltfast.streams.LabelSource).

    Starts a local cluster with `workers` CPUs unless Ray is already initialized or `address` names an
    existing cluster; `close` shuts down only what it started. With device 'cuda' every worker takes one GPU.
    """

    def __init__(self, recipe: WorkerRecipe, workers: int | None = None, address: str | None = None):
        ray = import_ray()
        self._ray = ray
        self._started = False
        self.num_classes = int(recipe.num_classes)
        self.batch_size = int(recipe.batch_size)
        if workers is not None and int(workers) < 1:
            raise HaltfastError(f"--workers must be at least 1, got {workers}")
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
                else:
                    ray.init(
                        num_cpus=workers or os.cpu_count(),
                        include_dashboard=False,
                        logging_level="ERROR",
                        log_to_driver=False,
                    )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise HaltfastError(
                    f"cannot start or reach the Ray cluster{f' at {address}' if address else ''}: {exc}"
                ) from exc
            self._started = True
        self.workers = int(workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        actor = ray.remote(num_cpus=recipe.threads, num_gpus=1 if recipe.device == "cuda" else 0)(_Worker)
        recipe_ref = ray.put(recipe)
        self.actors = [actor.remote(recipe_ref) for _ in range(self.workers)]
        try:
            self.pids = self._get([a.pid.remote() for a in self.actors])
        except BaseException:
            self.close()
            raise

    def _get(self, refs):
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HaltfastError):
                raise type(cause)(str(cause)) from None
            raise HaltfastError(f"a Ray worker failed: {cause or exc}") from None
        except ray.exceptions.RayActorError as exc:
            cause = getattr(exc, "cause", None) or exc
            raise HaltfastError(
                f"a Ray worker died ({cause}); rerun the same command to resume: what was drawn is in the journal"
            ) from None

    def _map(self, tasks: list[tuple[str, tuple]], stop: Stop | None = None) -> list:
        """Run (method, args) tasks on the workers, a few in flight on each; results in task order, None for the
        tasks not started because `stop` said so."""
        ray = self._ray
        results: list = [None] * len(tasks)
        in_flight: dict = {}
        next_task = 0
        free = [a for _ in range(IN_FLIGHT_PER_WORKER) for a in self.actors]
        try:
            while next_task < len(tasks) or in_flight:
                while free and next_task < len(tasks) and not (stop is not None and next_task and stop()):
                    actor = free.pop(0)
                    method, args = tasks[next_task]
                    in_flight[getattr(actor, method).remote(*args)] = (actor, next_task)
                    next_task += 1
                if stop is not None and next_task < len(tasks) and stop():
                    next_task = len(tasks)  # the deadline passed: start nothing more
                if not in_flight:
                    break
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                actor, k = in_flight.pop(ref)
                results[k] = self._get(ref)
                free.append(actor)
        finally:
            for ref in in_flight:  # after an error or Ctrl-C: drop the queued requests
                with contextlib.suppress(Exception):  # already finished, or the actor is gone
                    ray.cancel(ref)
        return results

    def labels(
        self, items: np.ndarray, starts: np.ndarray, counts: np.ndarray, stop: Stop | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Item i's labels at positions starts[i] .. starts[i] + counts[i], back to back, evaluated on the workers
        in requests of a few model batches; a `stop` ends the draw after the requests under way (a prefix)."""
        items, starts, counts = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (items, starts, counts))
        pieces = split_requests(counts, request_size(int(counts.sum()), len(self.actors), self.batch_size))
        tasks = [("labels", (items[rows], starts[rows] + offsets, sizes)) for _, _, rows, offsets, sizes in pieces]
        results = self._map(tasks, stop)
        flat = np.zeros(int(counts.sum()), dtype=np.int64)
        done, errors = 0, {}
        failed = np.zeros(items.size, dtype=bool)
        for (lo, hi, rows, _, sizes), result in zip(pieces, results):
            if result is None:
                break
            labels, drawn, piece_errors = result
            errors.update(piece_errors)
            ok = drawn == sizes
            failed[rows[~ok]] = True  # a model error on any part of an item's request fails the item
            flat[lo:hi][np.repeat(ok, sizes)] = labels
            done = hi
        drawn_all = np.where(failed, 0, np.clip(done - (np.cumsum(counts) - counts), 0, counts))
        return flat[:done][np.repeat(~failed, counts)[:done]], drawn_all, errors

    def clean(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        return self._clean("clean", items, ())

    def clean_logits(self, items: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        return self._clean("clean_logits", items, (self.num_classes,))

    def _clean(self, method: str, items: np.ndarray, shape: tuple) -> tuple[np.ndarray, dict[int, str]]:
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        chunks = [items[lo : lo + self.batch_size] for lo in range(0, items.size, self.batch_size)]
        out = np.full((items.size, *shape), -1.0)
        errors: dict[int, str] = {}
        lo = 0
        for chunk, (values, chunk_errors) in zip(chunks, self._map([(method, (c,)) for c in chunks])):
            out[lo : lo + chunk.size] = values
            errors.update(chunk_errors)
            lo += chunk.size
        return (out if shape else out.astype(np.int64)), errors

    def forget(self, items: np.ndarray) -> None:
        """Every worker may free these finished inputs' images and noise (no reply is awaited)."""
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        for actor in self.actors:
            actor.forget.remote(items)

    def close(self) -> None:
        """Stop the workers, and the local cluster if this pool started it."""
        for a in self.actors:
            with contextlib.suppress(Exception):
                self._ray.kill(a)
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
