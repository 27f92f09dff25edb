"""The other subcommands' runs: record, calibrate, triage, bench and card (their options: cli/parsers/)."""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..errors import UsageError
from .inputs import load_inputs
from .inputs import resolve_prior
from .runs import on_ray


def command_line(args: argparse.Namespace) -> str:
    return "haltfast " + " ".join(shlex.quote(a) for a in args.argv)


# ---------------------------------------------------------------------------------------------- record


def cmd_record(args: argparse.Namespace) -> int:
    from ..files import check_writable_dir
    from ..progress import progress_bar
    from ..recording import record_streams

    check_writable_dir(args.out, "recording directory")
    inputs = load_inputs(args)
    meta = {
        "model": inputs.model_name,
        "weights_sha256": inputs.weights_sha256,
        "sigma": inputs.sigma,
        "seed": args.seed,
        "data": inputs.identity["data"],
        "split": inputs.identity["split"],
        "skip": args.skip,
        "num_classes": inputs.num_classes,
        "indices": inputs.indices.tolist(),
        "labels": inputs.labels.tolist(),
    }
    length = args.n0 + args.n
    total = len(inputs.indices) * length
    with progress_bar(not args.quiet, len(inputs.indices), desc="record", evaluations=total, at_most=True) as tick:
        record_streams(inputs.streams(args), args.out, meta, length, progress=tick)
    print(f"recorded {len(inputs.indices)} streams of {length:,} labels in {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------- calibrate


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..files import check_writable
    from ..files import data_home
    from ..predictors import check_calibration_size
    from ..predictors import fit_meta_learner
    from ..predictors import format_strengths
    from ..predictors import user_meta_learner_path

    inputs = load_inputs(args)
    check_calibration_size(len(inputs.indices))
    out = args.out or user_meta_learner_path(inputs.weights_sha256)
    name = f"{inputs.weights_sha256[:16]}-{inputs.identity['split']}-{len(inputs.indices)}x{args.samples}.npz"
    data_path = args.data_out or data_home() / "calibration" / name
    check_writable(out, "meta-learner file")
    check_writable(data_path, "calibration data file")
    calib = calibration_data(args, inputs, data_path)
    learner, fit = fit_meta_learner(
        calib, alpha=args.alpha, max_samples=args.tune_max_samples, tune_paths=args.tune_paths
    )
    learner.params["command"] = command_line(args)
    learner.save(out)
    print(
        f"meta-learner for {inputs.model_name} -> {out}\n"
        f"calibration: {len(calib.hits):,} images x {calib.samples + 1:,} evaluations = "
        f"{calib.evaluations:,} evaluations\n"
        f"cross-fitted error: |logit p| {fit['heldout_logit_mae']:.3f}, |p| {fit['heldout_p_mae']:.4f}\n"
        f"{format_strengths(learner)}"
    )
    return 0


def calibration_data(args: argparse.Namespace, inputs, data_path: Path):
    """The calibration data of these inputs: reused from data_path when it matches, else drawn and saved."""
    from ..predictors import CalibrationData
    from ..predictors import calibrate
    from ..progress import progress_bar

    if data_path.exists() and not args.resample:
        calib = CalibrationData.load(data_path)
        if (calib.weights_sha256, calib.sigma, calib.samples, len(calib.hits)) != (
            inputs.weights_sha256,
            inputs.sigma,
            args.samples,
            len(inputs.indices),
        ):
            raise OutputError(
                f"{data_path} holds calibration data of another configuration; pass --resample to "
                f"overwrite it or --data-out for another file"
            )
        print(f"reusing calibration data {data_path} ({len(calib.hits):,} images)", file=sys.stderr)
        return calib
    start = time.perf_counter()
    total = len(inputs.indices) * (args.samples + 1)
    with progress_bar(not args.quiet, len(inputs.indices), desc="calibrate", unit="image", evaluations=total) as tick:
        logits, hits = calibrate(inputs.streams(args), args.samples, progress=tick)
    calib = CalibrationData(
        logits,
        hits,
        args.samples,
        inputs.indices,
        inputs.labels,
        inputs.sigma,
        args.seed,
        inputs.weights_sha256,
        inputs.model_name,
        round(time.perf_counter() - start, 1),
    )
    calib.save(data_path)
    print(
        f"calibration data: {len(hits):,} images x {args.samples + 1:,} evaluations in {calib.seconds:.0f} s -> "
        f"{data_path}",
        file=sys.stderr,
    )
    return calib


# ---------------------------------------------------------------------------------------------- triage


def cmd_triage(args: argparse.Namespace) -> int:
    import contextlib

    from ..files import check_writable
    from ..files import write_json
    from ..journal import JournaledLabels
    from ..journal import ResultsJournal
    from ..journal import journal_path
    from ..progress import progress_bar
    from ..streams import Streams
    from ..triage import format_triage_summary
    from ..triage import load_policies
    from ..triage import triage
    from ..triage import validate_policies

    on_ray(args)
    check_writable(args.out, "results file")
    check_writable(journal_path(args.out) if args.out else None, "results journal")
    check_writable(args.summary_json, "summary file")
    policies = load_policies(args.policies)  # a bad file is refused before the model and data are loaded
    inputs = load_inputs(args)
    validate_policies(policies, inputs.sigma)
    prior, prior_id = resolve_prior(args, inputs, fallback="pilot")
    everything = np.arange(len(inputs.indices))
    config = {
        "command": "triage",
        "sigma": inputs.sigma,
        "policies_sha256": hashlib.sha256(Path(args.policies).read_bytes()).hexdigest(),
        "policy": args.policy,
        "n0": args.n0,
        "prior": prior_id,
        "selection": args.selection,
        "seed": args.seed if inputs.live else (inputs.recording_meta or {}).get("seed"),
        **{k: v for k, v in inputs.identity.items() if k != "skip"},
    }
    knobs = {"budget": args.budget, "seconds": args.seconds}
    journal = ResultsJournal.open(journal_path(args.out), config, knobs=knobs) if args.out else None
    with journal or contextlib.nullcontext(), contextlib.ExitStack() as stack:
        streams: Streams | None = inputs.recording
        if inputs.live:
            source = inputs.label_source(args, everything)
            if hasattr(source, "close"):
                stack.callback(source.close)
            if journal is not None:
                if journal.labels.evaluations:
                    print(
                        f"continuing {journal.path}: the run is replayed on the {journal.labels.evaluations:,} "
                        f"model evaluations the journal holds and continued beyond them",
                        file=sys.stderr,
                    )
                journal.start_run(knobs)
                source = JournaledLabels(source, inputs.indices, journal)
            streams = Streams(source, len(everything))
        bar = progress_bar(
            not args.quiet, len(inputs.indices), desc=f"triage ({args.policy})", evaluations=args.budget, at_most=True
        )
        with bar as tick:
            report = triage(
                streams,
                everything.tolist(),
                policies,
                sigma=inputs.sigma,
                budget_evaluations=args.budget,
                budget_seconds=args.seconds,
                policy=args.policy,
                n0=args.n0,
                prior=prior,
                selection=args.selection,
                labels=inputs.labels,
                indices=inputs.indices,
                progress=tick,
            )
    if args.out:
        report.write_csv(args.out)
    summary = report.summary()
    if args.summary_json:
        write_json(args.summary_json, summary)
    print(format_triage_summary(summary))
    return 130 if report.stop_reason == "interrupted" else 0


# ---------------------------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import run_bench
    from ..files import check_writable
    from ..files import check_writable_dir

    check_writable(args.out, "report file")
    if args.plots is not None:
        check_writable_dir(args.plots, "plot folder")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = run_bench(
        args.streams,
        args.max,
        args.alpha,
        args.out,
        args.plots,
        args.live,
        command_line(args),
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.out is None:
        print(report)
    return 0


# ---------------------------------------------------------------------------------------------- card


def cmd_card(args: argparse.Namespace) -> int:
    from ..models import make_card

    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise UsageError(f"--input-shape must be C,H,W such as 3,32,32, got {args.input_shape!r}") from None
    elif args.data:
        from ..data import open_dataset

        shape = open_dataset(args.data, resize=args.resize, center_crop=args.center_crop).shape
    else:
        raise UsageError("give --input-shape C,H,W or --data (whose images give the shape)")
    if args.normalize is not None:
        from .inputs import check_normalize_channels

        check_normalize_channels(args.normalize, shape[0])
    classes = card_classes(args)
    path, card = make_card(
        args.model,
        args.weights,
        input_shape=shape,
        sigma=args.sigma,
        data=args.data,
        normalize=args.normalize,
        command=command_line(args),
        overwrite=args.overwrite,
        classes=classes,
    )
    named = f" ({', '.join(card['classes'][:4])}{', ...' if len(card['classes']) > 4 else ''})" if classes else ""
    print(f"wrote {path}: sha256 {card['weights_sha256'][:16]}..., {card['num_classes']} classes{named}, input {shape}")
    return 0


def card_classes(args: argparse.Namespace) -> list[str] | None:
    """`haltfast card --classes`: the names given (a file or NAME,NAME,...), or with 'sorted' the sorted class
    folders of --data (an image folder)."""
    from .options import read_class_names

    if args.classes is None:
        return None
    names = read_class_names(args.classes)
    if not isinstance(names, str):
        return names
    from ..data import open_dataset

    if not args.data:
        raise UsageError("--classes sorted takes the class names from --data's class folders: give --data FOLDER")
    source = open_dataset(args.data, resize=args.resize, center_crop=args.center_crop)
    if source.format != "imagefolder" or not source.classes:
        raise UsageError(f"--classes sorted takes the names of class folders; {args.data} is {source.format}")
    return list(source.classes)
