"""`haltfast certify`: certify the inputs of a data set (or replay a recording), journaled and resumable.

Its options are in parsers/certify.py.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import UsageError
from .inputs import Inputs
from .inputs import load_inputs
from .inputs import resolve_prior
from .runs import check_failures
from .runs import coupled
from .runs import describe_run
from .runs import on_ray
from .runs import run_identity
from .runs import run_journaled
from .runs import run_on_streams
from .runs import where


def cmd_certify(args: argparse.Namespace) -> int:
    from ..files import check_writable
    from ..journal import journal_path

    on_ray(args)
    check_spending(args)
    check_writable(args.out, "results file")
    check_writable(journal_path(args.out) if args.out else None, "results journal")
    check_writable(args.summary_json, "summary file")
    inputs = load_inputs(args)
    check_target(args, inputs)
    options, prior_id = method_options(args, inputs)
    config, knobs = run_config(args, inputs, options, prior_id)
    certs, fresh, seconds = run_journaled(
        args,
        inputs,
        config,
        knobs,
        shared=coupled(options),
        verb="certifying",
        begin=lambda todo: begin(args, inputs, todo, options),
        run=lambda todo, journal: run_inputs(args, inputs, todo, options, journal),
    )
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
    from ..methods.anytime import GRID_WORTH
    from ..methods.anytime import default_selection

    mode = "grid" if args.radii is not None else "decision" if args.radius is not None else "radius"
    if mode == "grid":  # the API's defaults for grid mode: Cohen's pilot selects, its posterior is the prior
        args.selection, grid_prior = default_selection(mode, args.selection, args.prior)
        if args.prior is None and grid_prior == "pilot":
            args.prior = grid_prior
    prior, prior_id = resolve_prior(args, inputs, online=True)
    args.selection = args.selection or "clean"
    if args.worth is None:  # GRID_WORTH in grid mode (unless a target loss sets the price), else off
        worth = GRID_WORTH if mode == "grid" and args.max_loss is None else None
    else:
        worth = args.worth or None  # 0: off
    options.update(budget=args.budget, seconds=args.seconds, max_loss=args.max_loss)
    options.update(
        prior=prior,
        selection=args.selection,
        tolerance=args.tolerance,
        futility_alpha=args.futility_alpha,
        worth=worth,
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
    shown = {k: (prior_id if k == "prior" else v) for k, v in options.items()}
    knobs = {k: shown.pop(k, None) for k in SPENDING} if args.method == "anytime" else {}
    config = {
        "haltfast": __version__,
        "sigma": inputs.sigma,
        "alpha": args.alpha,
        "method": args.method,
        **sizes,
        **shown,
        **run_identity(args, inputs),
    }
    return config, knobs


def begin(args, inputs: Inputs, todo: np.ndarray, options: dict) -> None:
    """Say what is certified; resolve the oracle prior on the inputs that run (benchmarks)."""
    print(
        f"certifying {inputs.describe()}, sigma={inputs.sigma:g}, method={args.method}, alpha={args.alpha:g}"
        + (f", prior {args.prior}" if args.method == "anytime" else "")
        + where(args),
        file=sys.stderr,
    )
    if args.prior == "oracle" and len(todo):
        from ..predictors import oracle_prior

        options["prior"] = oracle_prior(inputs.recording, todo.tolist())


def run_inputs(args, inputs: Inputs, todo: np.ndarray, options: dict, journal) -> list:
    """Run the method on inputs todo: on a recording, or live with labels from this process or a Ray pool,
    every live label read from the journal as far as it holds it (the anytime method) and journaled."""
    from ..methods import run_method

    def certify(streams, items, progress, on_result) -> list:
        return run_method(
            args.method,
            streams,
            items,
            sigma=inputs.sigma,
            labels=inputs.labels[todo],
            indices=inputs.indices[todo],
            progress=progress,
            n0=args.n0,
            n=args.n,
            alpha=args.alpha,
            on_result=on_result,
            **options,
        )

    if args.method == "cohen":  # a fixed number of evaluations per input: the total is known
        expected, at_most = len(todo) * (args.n0 + args.n), False
    else:  # a run budget bounds what is left; without one nothing does (an input's cost is not known)
        expected, at_most = options.get("budget"), True
    return run_on_streams(
        args, inputs, todo, journal, args.method == "anytime", "certify", certify, evaluations=expected, at_most=at_most
    )


def report(args, inputs: Inputs, certs: list, fresh: list, seconds: float, options: dict) -> None:
    """Error lines, the results file, the summary JSON and the printed summary."""
    from ..files import write_json
    from ..results import write_results
    from ..summary import format_summary
    from ..summary import summarize

    check_failures(certs)
    if args.radii is not None:
        radii = tuple(args.radii)
    elif args.radius is None or args.method == "cohen":
        radii = (0.0, 0.25, 0.5, 0.75, 1.0)
    else:
        radii = (args.radius,)
    shown = {k: (v if k != "prior" else args.prior) for k, v in options.items()}
    summary = describe_run(summarize(certs, radii=radii, seconds=seconds), args, inputs, shown, certs, fresh, seconds)
    if args.method == "anytime":  # evaluations spent before the run on its learner (0: the online one learns here)
        summary["calibration_evaluations"] = int(getattr(options.get("prior"), "calibration_evaluations", 0))
    if args.out:
        write_results(args.out, certs, args.format)
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(format_summary(summary))
