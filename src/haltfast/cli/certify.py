"""`haltfast certify`: certify the inputs of a data set (or replay a recording), journaled and resumable.

Its options are in parsers/certify.py.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

from ..errors import ModelError
from ..errors import UsageError
from .inputs import Inputs
from .inputs import load_inputs
from .inputs import resolve_prior


def cmd_certify(args: argparse.Namespace) -> int:
    from ..files import check_writable
    from ..journal import journal_path

    distributed = args.workers is not None or args.ray_address is not None
    if distributed and args.streams:
        raise UsageError("--workers and --ray-address run the model; replaying --streams is cheap, run it without them")
    check_spending(args)
    check_writable(args.out, "results file")
    check_writable(journal_path(args.out) if args.out else None, "results journal")
    check_writable(args.summary_json, "summary file")
    inputs = load_inputs(args)
    check_target(args, inputs)
    options, prior_id = method_options(args, inputs)
    config, knobs = run_config(args, inputs, options, prior_id)
    certs, fresh, seconds = run_journaled(args, inputs, options, config, knobs, distributed)
    report(args, inputs, certs, fresh, seconds, options)
    return 0


def check_spending(args: argparse.Namespace) -> None:
    """Refuse spending options the method or mode does not have, before anything loads."""
    values = {"--worth": args.worth or None, "--budget": args.budget, "--seconds": args.seconds}
    given = [name for name, value in {**values, "--max-loss": args.max_loss}.items() if value is not None]
    if given and args.method != "anytime":
        raise UsageError(f"{', '.join(given)}: spending by value is for --method anytime, not {args.method}")
    by_value = [option for option in given if option not in ("--seconds", "--budget")]
    if by_value and args.radius is None and args.radii is None:
        raise UsageError(
            f"{', '.join(by_value)}: spending by value needs --radius or --radii (decision or grid mode); "
            "radius mode spends each input's --max-samples by its --tolerance (--budget or --seconds stop it "
            "sooner)"
        )


def check_target(args: argparse.Namespace, inputs: Inputs) -> None:
    """Refuse an impossible radius, grid or alpha now, before any certification work."""
    from ..engine import Target

    if args.radii is not None and args.method in ("cohen", "horvath"):
        raise UsageError(f"method {args.method!r} has no grid mode (--radii): use anytime, union-bound or betting")
    if args.method != "cohen":
        Target(
            inputs.sigma, args.alpha, args.radius, args.max_samples, None if args.radii is None else tuple(args.radii)
        )


def method_options(args: argparse.Namespace, inputs: Inputs) -> tuple[dict, str | None]:
    """The chosen method's options, and the prior's identity for the journal (anytime only)."""
    if args.method == "cohen":
        return {}, None
    options: dict = {"radius": args.radius, "max_samples": args.max_samples}
    if args.method in ("union-bound", "betting"):
        options["tolerance"] = args.tolerance
        if args.radii is not None:
            options["radii"] = tuple(args.radii)
    if args.method != "anytime":
        return options, None
    prior, prior_id = resolve_prior(args, inputs)
    if args.selection is None:  # grid mode's radius 0 asks for the noisy top class, as Cohen's pilot finds it
        args.selection = "pilot" if args.radii is not None else "clean"
    options.update(budget=args.budget, seconds=args.seconds, max_loss=args.max_loss)
    options.update(
        prior=prior,
        selection=args.selection,
        tolerance=args.tolerance,
        futility_alpha=args.futility_alpha,
        worth="auto" if args.worth is None else args.worth,
    )
    if args.radii is not None:
        options["radii"] = tuple(args.radii)
    return options, prior_id


SPENDING = ("max_samples", "budget", "seconds", "worth", "max_loss")  # anytime: a rerun may change these


def run_config(args: argparse.Namespace, inputs: Inputs, options: dict, prior_id: str | None) -> tuple[dict, dict]:
    """(Everything a certificate depends on, the spending options): a journal written under another
    configuration is refused; the anytime method's spending options (the cap per input, the run's budget,
    deadline, worth and target loss) may change from one session to the next, which extends the run.

    --max, --skip, --batch, --threads and --workers change which inputs run or how fast, never a result.
    """
    from .. import __version__

    sizes = {"n0": args.n0, "n": args.n} if args.method == "cohen" else {"n0": args.n0}
    identity = {k: v for k, v in inputs.identity.items() if k != "skip"}
    shown = {k: (prior_id if k == "prior" else v) for k, v in options.items()}
    knobs = {k: shown.pop(k, None) for k in SPENDING} if args.method == "anytime" else {}
    seed = args.seed
    if not inputs.live:
        assert inputs.recording_meta is not None  # a replay has its recording's metadata
        seed = inputs.recording_meta["seed"]
    config = {
        "haltfast": __version__,
        "sigma": inputs.sigma,
        "alpha": args.alpha,
        "method": args.method,
        **sizes,
        **shown,
        "seed": seed,
        **identity,
    }
    return config, knobs


def coupled(options: dict) -> bool:
    """Whether one input's result depends on the others' (a budget, deadline or target loss is shared): then a
    resumed run replays every input from the journal rather than keeping finished ones."""
    return any(options.get(k) is not None for k in ("budget", "seconds", "max_loss"))


def run_journaled(args, inputs: Inputs, options: dict, config: dict, knobs: dict, distributed: bool):
    """Certify the inputs the journal does not hold final results for, reading every label the journal holds
    instead of evaluating it again; returns (all certificates in input order, the new ones, seconds)."""
    from ..journal import ResultsJournal
    from ..journal import journal_path

    journal = ResultsJournal.open(journal_path(args.out), config, knobs=knobs) if args.out else None
    with journal or contextlib.nullcontext():
        done = journal.finished if journal and not coupled(options) else {}
        todo = np.array([k for k, index in enumerate(inputs.indices) if int(index) not in done], dtype=np.int64)
        if journal is not None:
            tell_resume(journal, inputs, todo, options, knobs)
        print(
            f"certifying {inputs.describe()}, sigma={inputs.sigma:g}, method={args.method}, alpha={args.alpha:g}"
            + (f", prior {args.prior}" if args.method == "anytime" else "")
            + (f", on Ray ({args.ray_address or 'local'})" if distributed else ""),
            file=sys.stderr,
        )
        if args.prior == "oracle" and len(todo):
            from ..predictors import oracle_prior

            options["prior"] = oracle_prior(inputs.recording, todo.tolist())
        start = time.perf_counter()
        if journal is not None and len(todo):
            journal.labels.keep_only(inputs.indices[todo])
            journal.start_run(knobs)
        fresh = run_inputs(args, inputs, todo, options, journal)
        seconds = time.perf_counter() - start
    by_index = {**done, **{c.index: c for c in fresh}}
    return [by_index[int(index)] for index in inputs.indices], fresh, seconds


def tell_resume(journal, inputs: Inputs, todo: np.ndarray, options: dict, knobs: dict) -> None:
    """Say what a rerun on an existing journal does: keep finished inputs, or replay the run on its labels."""
    finished = len(inputs.indices) - len(todo)
    held = journal.labels.evaluations
    if finished:
        print(
            f"resuming {journal.path}: {finished} of {len(inputs.indices)} inputs already finished, certifying "
            f"the other {len(todo)}",
            file=sys.stderr,
        )
    elif journal.runs and (held or any(journal.runs)):
        why = (
            "the run shares a budget, deadline or target loss across its inputs"
            if coupled(options) and knobs == journal.runs[-1]
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


def run_inputs(args, inputs: Inputs, todo: np.ndarray, options: dict, journal) -> list:
    """Run the method on inputs todo: on a recording, or live with labels from this process or a Ray pool,
    every live label read from the journal as far as it holds it (the anytime method) and journaled."""
    from ..journal import JournaledLabels
    from ..methods import run_method
    from ..progress import progress_bar
    from ..streams import Streams

    if not len(todo):
        return []
    labels, indices = inputs.labels[todo], inputs.indices[todo]
    on_result = journal.append if journal is not None else None
    common = {"n0": args.n0, "n": args.n, "alpha": args.alpha, "on_result": on_result, **options}
    with progress_bar(not args.quiet, len(todo), desc="certify") as tick, contextlib.ExitStack() as stack:
        streams: Streams | None = inputs.recording
        items = todo.tolist()
        if inputs.live:
            source = inputs.label_source(args, todo)
            if hasattr(source, "close"):
                stack.callback(source.close)
            if journal is not None and args.method == "anytime":
                source = JournaledLabels(source, indices, journal)
            streams, items = Streams(source, len(todo)), list(range(len(todo)))
        return run_method(
            args.method,
            streams,
            items,
            sigma=inputs.sigma,
            labels=labels,
            indices=indices,
            progress=tick,
            **common,
        )


def report(args, inputs: Inputs, certs: list, fresh: list, seconds: float, options: dict) -> None:
    """Error lines, the results file, the summary JSON and the printed summary."""
    from ..files import write_json
    from ..results import write_results
    from ..summary import format_summary
    from ..summary import summarize

    failed = [c for c in certs if c.decision == "error"]
    if certs and len(failed) == len(certs):
        raise ModelError(
            f"the base classifier failed on every input: {failed[0].error}; check that the model fits the data "
            f"(--model, --normalize, --resize)"
        )
    for c in failed:
        print(f"input {c.index}: error: {c.error}", file=sys.stderr)
    if args.radii is not None:
        radii = tuple(args.radii)
    elif args.radius is None or args.method == "cohen":
        radii = (0.0, 0.25, 0.5, 0.75, 1.0)
    else:
        radii = (args.radius,)
    summary = summarize(certs, radii=radii, seconds=seconds)
    summary.update(
        {
            "model": inputs.model_name,
            "weights_sha256": inputs.weights_sha256,
            "sigma": inputs.sigma,
            "method": args.method,
            "alpha": args.alpha,
            "options": {k: (v if k != "prior" else args.prior) for k, v in options.items()},
        }
    )
    if not inputs.live:
        summary["recording"] = str(args.streams)
    if len(certs) > len(fresh):
        summary["resumed"] = len(certs) - len(fresh)
        summary["evaluations_per_second"] = sum(c.evaluations for c in fresh) / max(seconds, 1e-9)
    if args.out:
        write_results(args.out, certs, args.format)
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(format_summary(summary))
