"""`haltfast predict`: the smoothed classifier's abstaining prediction over a data set (or a recording).

Its options are in parsers/predict.py.
"""

from __future__ import annotations

import argparse
import sys
import time

from .inputs import load_inputs


def cmd_predict(args: argparse.Namespace) -> int:
    from ..errors import ModelError
    from ..files import check_writable
    from ..files import write_json
    from ..methods import run_predict
    from ..predictions import format_prediction_summary
    from ..predictions import summarize_predictions
    from ..predictions import write_predictions
    from ..progress import progress_bar

    check_writable(args.out, "predictions file")
    check_writable(args.summary_json, "summary file")
    inputs = load_inputs(args)
    options = {} if args.method == "cohen" else {"test": args.test, "selection": args.selection, "n0": args.n0}
    if options:
        options["switch"] = args.switch if args.test == "runner-up" else 0.0
    print(
        f"predicting {inputs.describe()}, sigma={inputs.sigma:g}, method={args.method}, alpha={args.alpha:g}, "
        f"n={args.n:,}" + (f", {args.test} test, {args.selection} selection" if options else ""),
        file=sys.stderr,
    )
    start = time.perf_counter()
    with progress_bar(not args.quiet, len(inputs.indices), desc="predict") as tick:
        results = run_predict(
            args.method,
            inputs.streams(args),
            list(range(len(inputs.indices))),
            n=args.n,
            alpha=args.alpha,
            labels=inputs.labels,
            indices=inputs.indices,
            progress=tick,
            **options,
        )
    seconds = time.perf_counter() - start
    failed = [r for r in results if r.decision == "error"]
    if results and len(failed) == len(results):
        raise ModelError(f"the base classifier failed on every input: {failed[0].error}")
    for r in failed:
        print(f"input {r.index}: error: {r.error}", file=sys.stderr)
    summary = summarize_predictions(results, seconds)
    summary.update(
        {"model": inputs.model_name, "weights_sha256": inputs.weights_sha256, "sigma": inputs.sigma}
        | {"method": args.method, "alpha": args.alpha, "n": args.n, "options": options}
    )
    if args.out:
        write_predictions(args.out, results, args.format)
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(format_prediction_summary(summary))
    return 0
