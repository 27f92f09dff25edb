"""`haltfast predict`: the smoothed classifier's abstaining prediction over a data set (or a recording), journaled
and resumable, in this process or on Ray workers, as certify runs (cli/runs.py).

Its options are in parsers/predict.py.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import UsageError
from .inputs import Inputs
from .inputs import load_inputs
from .runs import check_failures
from .runs import coupled
from .runs import describe_run
from .runs import on_ray
from .runs import run_identity
from .runs import run_journaled
from .runs import run_on_streams
from .runs import where

SPENDING = ("n", "budget", "seconds")  # anytime: a rerun may change these, which extends the run


def cmd_predict(args: argparse.Namespace) -> int:
    from ..files import check_writable
    from ..journal import journal_path

    on_ray(args)
    limits = [name for name, value in (("--budget", args.budget), ("--seconds", args.seconds)) if value is not None]
    if limits and args.method != "anytime":
        raise UsageError(f"{', '.join(limits)}: a run's budget and deadline are for --method anytime, not cohen")
    check_writable(args.out, "predictions file")
    check_writable(journal_path(args.out) if args.out else None, "results journal")
    check_writable(args.summary_json, "summary file")
    inputs = load_inputs(args)
    options = predict_options(args)
    config, knobs = run_config(args, inputs, options)
    results, fresh, seconds = run_journaled(
        args,
        inputs,
        config,
        knobs,
        shared=coupled(options),
        verb="predicting",
        begin=lambda todo: announce(args, inputs, options),
        run=lambda todo, journal: run_inputs(args, inputs, todo, options, journal),
    )
    report(args, inputs, results, fresh, seconds, options)
    return 0


def predict_options(args: argparse.Namespace) -> dict:
    """The method's options (the anytime method's, with the run's budget and deadline; Cohen's has none)."""
    if args.method == "cohen":
        return {}
    switch = args.switch if args.test == "runner-up" else 0.0
    options = {"test": args.test, "selection": args.selection, "n0": args.n0, "switch": switch}
    return {**options, "budget": args.budget, "seconds": args.seconds}


def run_config(args: argparse.Namespace, inputs: Inputs, options: dict) -> tuple[dict, dict]:
    """(Everything a prediction depends on, the spending options): the anytime method's cap (--n), budget and
    deadline may change from one session to the next, which extends the run; Cohen's n is part of the run."""
    from .. import __version__

    knobs = {"n": args.n, **{k: options.get(k) for k in SPENDING[1:]}} if args.method == "anytime" else {}
    config = {
        "haltfast": __version__,
        "command": "predict",
        "sigma": inputs.sigma,
        "alpha": args.alpha,
        "method": args.method,
        **({"n": args.n} if args.method == "cohen" else {}),
        **{k: v for k, v in options.items() if k not in SPENDING},
        **run_identity(args, inputs),
    }
    return config, knobs


def announce(args, inputs: Inputs, options: dict) -> None:
    print(
        f"predicting {inputs.describe()}, sigma={inputs.sigma:g}, method={args.method}, alpha={args.alpha:g}, "
        f"n={args.n:,}" + (f", {args.test} test, {args.selection} selection" if options else "") + where(args),
        file=sys.stderr,
    )


def run_inputs(args, inputs: Inputs, todo: np.ndarray, options: dict, journal) -> list:
    """PREDICT on inputs todo, on a recording or live (the anytime method's labels read from the journal as far as
    it holds them, and journaled)."""
    from ..methods import run_predict

    def predict(streams, items, progress, on_result) -> list:
        return run_predict(
            args.method,
            streams,
            items,
            n=args.n,
            alpha=args.alpha,
            labels=inputs.labels[todo],
            indices=inputs.indices[todo],
            progress=progress,
            on_result=on_result,
            **options,
        )

    return run_on_streams(args, inputs, todo, journal, args.method == "anytime", "predict", predict)


def report(args, inputs: Inputs, results: list, fresh: list, seconds: float, options: dict) -> None:
    """Error lines, the predictions file, the summary JSON and the printed summary."""
    from ..files import write_json
    from ..predictions import format_prediction_summary
    from ..predictions import summarize_predictions
    from ..predictions import write_predictions

    check_failures(results)
    summary = describe_run(summarize_predictions(results, seconds), args, inputs, options, results, fresh, seconds)
    summary["n"] = args.n
    if args.out:
        write_predictions(args.out, results, args.format)
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(format_prediction_summary(summary))
