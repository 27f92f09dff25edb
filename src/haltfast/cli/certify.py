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
from .inputs import batch_size
from .inputs import load_inputs
from .inputs import resolve_prior


def cmd_certify(args: argparse.Namespace) -> int:
    from ..files import check_writable
    from ..results import journal_path

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
    config = run_config(args, inputs, options, prior_id)
    certs, fresh, seconds = run_journaled(args, inputs, options, config, distributed)
    report(args, inputs, certs, fresh, seconds, options)
    return 0


def check_spending(args: argparse.Namespace) -> None:
    """Refuse spending options the method or mode does not have, before anything loads."""
    values = {"--worth": args.worth or None, "--budget": args.budget, "--seconds": args.seconds}
    given = [name for name, value in {**values, "--max-loss": args.max_loss}.items() if value is not None]
    if given and args.method != "anytime":
        raise UsageError(f"{', '.join(given)}: spending by value is for --method anytime, not {args.method}")
    by_value = [option for option in given if option != "--seconds"]
    if by_value and args.radius is None and args.radii is None:
        raise UsageError(
            f"{', '.join(by_value)}: spending by value needs --radius or --radii (decision or grid mode); "
            "radius mode spends each input's --max-samples by its --tolerance (--seconds sets a deadline)"
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
    if args.budget is not None or args.seconds is not None:
        options.update(budget=args.budget, seconds=args.seconds)
    if args.max_loss is not None:
        options["max_loss"] = args.max_loss
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


def run_config(args: argparse.Namespace, inputs: Inputs, options: dict, prior_id: str | None) -> dict:
    """Everything a certificate depends on: a journal written under another configuration is refused.

    --max, --skip, --batch, --threads and --workers change which inputs run or how fast, never a result.
    """
    from .. import __version__

    sizes = {"n0": args.n0, "n": args.n} if args.method == "cohen" else {"n0": args.n0}
    identity = {k: v for k, v in inputs.identity.items() if k != "skip"}
    shown = {k: (prior_id if k == "prior" else v) for k, v in options.items()}
    seed = args.seed
    if not inputs.live:
        assert inputs.recording_meta is not None  # a replay has its recording's metadata
        seed = inputs.recording_meta["seed"]
    return {
        "haltfast": __version__,
        "sigma": inputs.sigma,
        "alpha": args.alpha,
        "method": args.method,
        **sizes,
        **shown,
        "seed": seed,
        **identity,
    }


def run_journaled(args, inputs: Inputs, options: dict, config: dict, distributed: bool):
    """Certify the inputs the journal does not hold yet; returns (all certificates in input order, the new ones,
    seconds)."""
    from ..results import ResultsJournal
    from ..results import journal_path

    journal = ResultsJournal.open(journal_path(args.out), config) if args.out else None
    with journal or contextlib.nullcontext():
        done = journal.finished if journal else {}
        todo = np.array([k for k, index in enumerate(inputs.indices) if int(index) not in done], dtype=np.int64)
        if len(inputs.indices) - len(todo):
            assert journal is not None  # only a journal holds finished inputs
            print(
                f"resuming {journal.path}: {len(inputs.indices) - len(todo)} of {len(inputs.indices)} inputs "
                f"already finished, certifying the other {len(todo)}",
                file=sys.stderr,
            )
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
        fresh = run_inputs(args, inputs, todo, options, journal.append if journal else None, distributed)
        seconds = time.perf_counter() - start
    by_index = {**done, **{c.index: c for c in fresh}}
    return [by_index[int(index)] for index in inputs.indices], fresh, seconds


def run_inputs(args, inputs: Inputs, todo: np.ndarray, options: dict, on_result, distributed: bool) -> list:
    """The three ways to run: replay a recording, spread the inputs over Ray workers, or certify here."""
    from ..methods import run_method
    from ..progress import progress_bar

    if not len(todo):
        return []
    labels, indices = inputs.labels[todo], inputs.indices[todo]
    common = {"n0": args.n0, "n": args.n, "alpha": args.alpha, "on_result": on_result, **options}
    with progress_bar(not args.quiet, len(todo), desc="certify") as tick:
        if not inputs.live:
            return run_method(
                args.method,
                inputs.recording,
                todo.tolist(),
                sigma=inputs.sigma,
                labels=labels,
                indices=indices,
                progress=tick,
                **common,
            )
        if distributed:
            return run_on_ray(args, inputs, todo, options, on_result, tick)
        smooth = inputs.smooth(args)
        return smooth.certify_many(
            Selection(inputs.source, todo),
            labels,
            method=args.method,
            keys=indices,
            indices=indices,
            progress=tick or False,
            **common,
        )


def run_on_ray(args, inputs: Inputs, todo: np.ndarray, options: dict, on_result, tick) -> list:
    from ..distributed import RayPool
    from ..distributed import WorkerSpec

    assert inputs.model is not None  # a live run has its model
    spec = WorkerSpec(
        inputs.model,
        inputs.num_classes,
        inputs.sigma,
        args.seed,
        batch_size(args, inputs),
        args.method,
        args.n0,
        args.n,
        args.alpha,
        options,
        device=inputs.identity["device"],
        weights_sha256=inputs.weights_sha256,
    )
    with RayPool(spec, args.workers, args.ray_address) as pool:
        print(f"{pool.workers} Ray workers", file=sys.stderr)
        return pool.certify(
            Selection(inputs.source, todo),
            inputs.labels[todo],
            inputs.indices[todo],
            on_result=on_result,
            progress=tick,
        )


class Selection:
    """Some positions of a lazy image source, itself lazy: `load(ps)` reads source positions positions[ps]."""

    def __init__(self, source, positions: np.ndarray):
        self.source, self.positions = source, np.asarray(positions, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def load(self, positions) -> np.ndarray:
        return self.source.load(self.positions[np.asarray(positions, dtype=np.int64)])


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
