"""One run however it is executed (docs/runs.md), for certify and predict: the inputs a results journal does not
hold final results for run on labels from this process or a Ray pool, every label the journal holds read from it
instead of evaluated again, and every new one journaled; the finished inputs are kept."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..errors import UsageError
from .inputs import Inputs

if TYPE_CHECKING:
    from ..journal import ResultsJournal


def on_ray(args: argparse.Namespace) -> bool:
    """Whether the model runs on Ray workers (--workers, --ray-address); refused with a recording (--streams)."""
    distributed = args.workers is not None or args.ray_address is not None
    if distributed and args.streams:
        raise UsageError("--workers and --ray-address run the model; replaying --streams is cheap, run it without them")
    return distributed


def where(args: argparse.Namespace) -> str:
    """What a command's first line says about where the model runs (nothing: in this process)."""
    return f", on Ray ({args.ray_address or 'local'})" if on_ray(args) else ""


def run_identity(args: argparse.Namespace, inputs: Inputs) -> dict:
    """What a run's results depend on besides the method: the noise seed (a replay's is its recording's), the
    model and the data; not --skip, --max, --batch, --threads or --workers (which inputs run, or how fast)."""
    seed = args.seed
    if not inputs.live:
        assert inputs.recording_meta is not None  # a replay has its recording's metadata
        seed = inputs.recording_meta["seed"]
    return {"seed": seed, **{k: v for k, v in inputs.identity.items() if k != "skip"}}


def coupled(options: dict) -> bool:
    """Whether one input's result depends on the others' (a budget, deadline or target loss is shared, or the
    online learner sets each input's prior from the inputs started before it): then a resumed run replays every
    input from the journal rather than keeping finished ones."""
    online = getattr(options.get("prior"), "online", False)
    return online or any(options.get(k) is not None for k in ("budget", "seconds", "max_loss"))


def run_journaled(
    args: argparse.Namespace,
    inputs: Inputs,
    config: dict,
    knobs: dict,
    *,
    shared: bool,
    verb: str,
    begin: Callable[[np.ndarray], None],
    run: Callable[[np.ndarray, ResultsJournal | None], list],
) -> tuple[list, list, float]:
    """Run the inputs the journal beside --out (if any) does not hold final results for; returns (every result in
    input order, the new ones, seconds). config is what a result depends on, knobs the spending options a rerun
    may change (which extends the run); shared: the inputs share a budget, deadline, target loss or learner, so
    every input is replayed. begin(todo) says what runs before the clock starts; run(todo, journal) returns the
    new results."""
    from ..journal import ResultsJournal
    from ..journal import journal_path

    journal = ResultsJournal.open(journal_path(args.out), config, knobs=knobs) if args.out else None
    with journal or contextlib.nullcontext():
        done = journal.finished if journal and not shared else {}
        todo = np.array([k for k, index in enumerate(inputs.indices) if int(index) not in done], dtype=np.int64)
        if journal is not None:
            tell_resume(journal, inputs, todo, shared, knobs, verb)
        begin(todo)
        start = time.perf_counter()
        if journal is not None and len(todo):
            journal.labels.keep_only(inputs.indices[todo])
            journal.start_run(knobs)
        fresh = run(todo, journal)
        seconds = time.perf_counter() - start
    by_index = {**done, **{c.index: c for c in fresh}}
    return [by_index[int(index)] for index in inputs.indices], fresh, seconds


def tell_resume(
    journal: ResultsJournal, inputs: Inputs, todo: np.ndarray, shared: bool, knobs: dict, verb: str
) -> None:
    """Say what a rerun on an existing journal does: keep finished inputs, or replay the run on its labels."""
    finished = len(inputs.indices) - len(todo)
    held = journal.labels.evaluations
    if finished:
        print(
            f"resuming {journal.path}: {finished} of {len(inputs.indices)} inputs already finished, {verb} "
            f"the other {len(todo)}",
            file=sys.stderr,
        )
    elif journal.runs and (held or any(journal.runs)):
        why = (
            "the run shares a budget, deadline, target loss or online learner across its inputs"
            if shared and knobs == journal.runs[-1]
            else "its spending options changed (" + changed_knobs(journal.runs[-1], knobs) + ")"
        )
        print(
            f"continuing {journal.path}: {why}, so every input is replayed on the {held:,} model evaluations the "
            f"journal holds and continued beyond them",
            file=sys.stderr,
        )


def changed_knobs(old: dict | None, new: dict) -> str:
    old = old or {}
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new.get(k)) or "none"


def check_failures(results: list) -> None:
    """One line per input the model failed on; an error if it failed on every input."""
    failed = [r for r in results if r.decision == "error"]
    if results and len(failed) == len(results):
        raise ModelError(
            f"the base classifier failed on every input: {failed[0].error}; check that the model fits the data "
            f"(--model, --normalize, --resize)"
        )
    for r in failed:
        print(f"input {r.index}: error: {r.error}", file=sys.stderr)


def describe_run(
    summary: dict, args: argparse.Namespace, inputs: Inputs, options: dict, results: list, fresh: list, seconds: float
) -> dict:
    """The summary with what ran (model, sigma, method, alpha, options, the recording replayed) and, when an earlier
    session finished some inputs, how many and this session's rate."""
    summary.update(
        {
            "model": inputs.model_name,
            "weights_sha256": inputs.weights_sha256,
            "sigma": inputs.sigma,
            "method": args.method,
            "alpha": args.alpha,
            "options": options,
        }
    )
    if not inputs.live:
        summary["recording"] = str(args.streams)
    if len(results) > len(fresh):
        summary["resumed"] = len(results) - len(fresh)
        summary["evaluations_per_second"] = sum(r.evaluations for r in fresh) / max(seconds, 1e-9)
    return summary


def run_on_streams(
    args: argparse.Namespace,
    inputs: Inputs,
    todo: np.ndarray,
    journal: ResultsJournal | None,
    journaled: bool,
    desc: str,
    method: Callable[..., list],
    evaluations: int | None = None,
    at_most: bool = True,
) -> list:
    """method(streams, items, progress, on_result) on inputs todo: on the recording, or live with labels from this
    process or a Ray pool, read from the journal as far as it holds them and journaled (journaled: the method
    replays on its labels), each result journaled as it finishes. `evaluations` (at most, if `at_most`) is what
    the progress bar may count on for a time left."""
    from ..journal import JournaledLabels
    from ..progress import progress_bar
    from ..streams import Streams

    if not len(todo):
        return []
    on_result = journal.append if journal is not None else None
    bar = progress_bar(not args.quiet, len(todo), desc=desc, evaluations=evaluations, at_most=at_most)
    with bar as tick, contextlib.ExitStack() as stack:
        streams: Streams | None = inputs.recording
        items = todo.tolist()
        if inputs.live:
            source = inputs.label_source(args, todo)
            if hasattr(source, "close"):
                stack.callback(source.close)
            if journal is not None and journaled:
                source = JournaledLabels(source, inputs.indices[todo], journal)
            streams, items = Streams(source, len(todo)), list(range(len(todo)))
        return method(streams, items, tick, on_result)
