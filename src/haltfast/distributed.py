"""Scale-out on Ray: Ray actors certify chunks of inputs, each with the cross-input batched certifier.

Every input's noise stream is keyed by (seed, data set index) and a certificate
depends only on its input's own stream, so the certificates are identical to a
single-process run with the same seed, whatever the number of workers or the
chunking. Ray is optional (`pip install 'haltfast[ray]'`); nothing else imports it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from .certificate import Certificate
from .errors import HaltfastError

IN_FLIGHT_PER_WORKER = 2  # chunks queued on each actor, so it never waits for the driver


@dataclass
class WorkerSpec:
    """What a worker needs to rebuild the smoothed classifier and run the procedure: all picklable."""

    model: Callable[..., Any]  # a torch.nn.Module or a picklable callable
    num_classes: int
    sigma: float
    seed: int
    batch_size: int = 2000
    method: str = "anytime"
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    options: dict = field(default_factory=dict)
    device: str = "cpu"
    weights_sha256: str | None = None


class _Worker:
    """One Ray actor: a Smooth built once, certifying chunk after chunk with one torch thread."""

    def __init__(self, spec: WorkerSpec):
        import torch

        from .smooth import Smooth

        torch.set_num_threads(1)
        self.spec = spec
        self.smooth = Smooth(
            spec.model,
            spec.num_classes,
            spec.sigma,
            seed=spec.seed,
            batch_size=spec.batch_size,
            device=spec.device,
            weights_sha256=spec.weights_sha256,
        )

    def pid(self) -> int:
        return os.getpid()

    def certify(self, images: np.ndarray, labels, indices: np.ndarray) -> list[Certificate]:
        s = self.spec
        return self.smooth.certify_many(
            images,
            labels,
            n0=s.n0,
            n=s.n,
            alpha=s.alpha,
            method=s.method,
            keys=indices,
            indices=indices,
            progress=False,
            **s.options,
        )


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


def default_chunk_size(n_inputs: int, workers: int) -> int:
    """Inputs per Ray task: about four chunks per worker, between 1 and 256 (small enough to lose little on a crash)."""
    return int(min(256, max(1, math.ceil(n_inputs / (4 * max(workers, 1))))))


class RayPool:
    """Ray actors holding the smoothed classifier; `certify` spreads inputs over them.

    Starts a local cluster with `workers` CPUs unless Ray is already initialized or
    `address` names an existing cluster; `close` shuts down only what it started.
    """

    def __init__(self, spec: WorkerSpec, workers: int | None = None, address: str | None = None):
        ray = import_ray()
        self._ray = ray
        self._started = False
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
        actor = ray.remote(num_cpus=1, num_gpus=1 if spec.device == "cuda" else 0)(_Worker)
        spec_ref = ray.put(spec)
        self.actors = [actor.remote(spec_ref) for _ in range(self.workers)]
        self.pids = self._get([a.pid.remote() for a in self.actors])

    def _get(self, refs):
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HaltfastError):
                raise HaltfastError(str(cause)) from None
            raise HaltfastError(f"a Ray worker failed: {cause or exc}") from None
        except ray.exceptions.RayActorError as exc:
            raise HaltfastError(
                f"a Ray worker died ({exc}); rerun the same command to resume: finished inputs are kept in the journal"
            ) from None

    def certify(
        self,
        images,
        labels: Sequence[int] | np.ndarray | None,
        indices: Sequence[int] | np.ndarray,
        *,
        chunk_size: int | None = None,
        on_result: Callable[[Certificate], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Certificate]:
        """Certificates for all inputs, in input order; on_result/progress see each as its chunk returns.

        `images` is an array (N, C, H, W) or a lazy source (`load(positions)`), read a chunk at a time as chunks
        are sent; indices are the per-input noise keys (data set indices), as in a single-process run.
        """
        ray = self._ray
        n = len(indices)
        indices = np.asarray(indices, dtype=np.int64)
        labels = None if labels is None else np.asarray(labels)
        chunk = chunk_size or default_chunk_size(n, self.workers)
        chunks = [np.arange(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)][::-1]
        results: list[Certificate | None] = [None] * n
        in_flight: dict = {}

        def submit(actor) -> None:
            pos = chunks.pop()
            chunk_images = images.load(pos) if hasattr(images, "load") else images[pos]
            ref = actor.certify.remote(chunk_images, None if labels is None else labels[pos], indices[pos])
            in_flight[ref] = (actor, pos)

        for _ in range(IN_FLIGHT_PER_WORKER):
            for actor in self.actors:
                if chunks:
                    submit(actor)
        try:
            while in_flight:
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                actor, pos = in_flight.pop(ref)
                certs = self._get(ref)
                if chunks:
                    submit(actor)
                for p, cert in zip(pos, certs):
                    results[p] = cert
                    if on_result is not None:
                        on_result(cert)
                    if progress is not None:
                        progress(1, cert.evaluations)
        finally:
            for ref in in_flight:  # after an error or Ctrl-C: drop queued chunks (finished ones are journaled)
                with contextlib.suppress(Exception):  # already finished, or the actor is gone
                    ray.cancel(ref)
        missing = sum(cert is None for cert in results)
        if missing:
            raise HaltfastError(f"the Ray workers returned no certificate for {missing} of {n} inputs")
        return [cert for cert in results if cert is not None]

    def close(self) -> None:
        """Stop the actors, and the local cluster if this pool started it."""
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []
        if self._started:
            self._ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
