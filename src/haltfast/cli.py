"""Command-line interface: `haltfast train | certify | record | ...`; every command has --help."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .errors import HaltfastError


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _add_data_args(p: argparse.ArgumentParser, split: str = "test") -> None:
    p.add_argument("--data", default="fashion-mnist", help="data set: fashion-mnist, digits, or idx (with --data-dir)")
    p.add_argument("--data-dir", default=None,
                   help="directory of MNIST-format idx files (default: $HALTFAST_DATA_DIR or "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--split", default=split, choices=["train", "calibration", "test"], help=f"split (default {split})")


def cmd_train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .data import load_dataset
    from .models import measure_throughput, noisy_accuracy, save_model, train_model

    torch.set_num_threads(args.threads) if args.threads else None
    train = load_dataset(args.data, "train", args.data_dir)
    test = load_dataset(args.data, "test", args.data_dir)
    bar = tqdm(total=args.epochs, desc=f"train sigma={args.sigma:g}", unit="epoch")

    def progress(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    start = time.perf_counter()
    model = train_model(train, args.sigma, epochs=args.epochs, seed=args.seed, batch_size=args.batch,
                        lr=args.lr, width=args.width, progress=progress)
    bar.close()
    card = {
        "data": {"name": args.data, "train_split": f"train[0:{len(train)}]",
                 "calibration_split": "train[50000:60000] (held out)", "test_split": f"test ({len(test)} images)"},
        "sigma": args.sigma, "epochs": args.epochs, "seed": args.seed, "batch_size": args.batch, "lr": args.lr,
        "train_seconds": round(time.perf_counter() - start, 1),
        "clean_test_accuracy": noisy_accuracy(model, test.images, test.labels, 0.0),
        "noisy_test_accuracy": noisy_accuracy(model, test.images, test.labels, args.sigma, seed=1),
        "samples_per_second": round(measure_throughput(model, test.images.shape[1:])),
        "throughput_setting": f"batch 2000, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU",
        "command": "haltfast " + " ".join(shlex.quote(a) for a in args.argv),
    }
    card = save_model(model, args.out, card)
    print(f"saved {args.out}: clean accuracy {card['clean_test_accuracy']:.4f}, "
          f"noisy accuracy {card['noisy_test_accuracy']:.4f}, {card['samples_per_second']:,} samples/s")
    return 0


def _load_model_for(args: argparse.Namespace, dataset) -> tuple:
    from .models import load_model, resolve_model_path

    path = resolve_model_path(args.model, args.sigma)
    model, card = load_model(path)
    cfg = card.get("model", {})
    expected = (cfg.get("in_channels"), cfg.get("image_size"), cfg.get("image_size"))
    if tuple(dataset.images.shape[1:]) != expected:
        raise HaltfastError(f"model {path.name} expects images of shape {expected}, data set {dataset.name} has "
                            f"{tuple(dataset.images.shape[1:])}")
    sigma = args.sigma if args.sigma is not None else card.get("sigma")
    if sigma is None:
        raise HaltfastError("--sigma is required: the model card does not record one")
    if card.get("sigma") not in (None, sigma):
        print(f"note: model {path.name} was trained at sigma={card['sigma']}, certifying at sigma={sigma}",
              file=sys.stderr)
    return path, model, card, float(sigma)


def _write_atomically(path: Path, write) -> None:
    """Write through a temporary file and rename, so a failed run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _method_options(args: argparse.Namespace) -> dict:
    if args.method == "cohen":
        return {}
    if args.method == "horvath":
        return {"radius": args.radius, "max_samples": args.max_samples}
    if args.method in ("union-bound", "betting"):
        return {"radius": args.radius, "max_samples": args.max_samples, "tolerance": args.tolerance}
    return {"radius": args.radius, "max_samples": args.max_samples, "prior": args.prior,
            "selection": args.selection, "tolerance": args.tolerance, "futility_alpha": args.futility_alpha}


def _run_config(args: argparse.Namespace, options: dict, sigma: float, model_sha256: str, data: dict) -> dict:
    """Everything a certificate depends on: a journal written under another configuration is refused.

    --max, --skip, --batch, --threads and --workers change which inputs run or how fast, never a result.
    """
    from . import __version__

    sizes = {"n0": args.n0, "n": args.n} if args.method == "cohen" else {"n0": args.n0}
    return {"haltfast": __version__, "model_sha256": model_sha256, "sigma": sigma, "alpha": args.alpha,
            "method": args.method, **sizes, **options, "seed": data.pop("seed"), **data}


def _resolve_cli_prior(args: argparse.Namespace, weights_path: Path, weights_sha256: str):
    """The prior the user asked for and its identity for the journal: a name, or the model's meta-learner.

    --prior meta is the default when <model>.meta.json exists; 'oracle' is resolved per input later.
    """
    from .meta import MetaLearner, meta_learner_path
    from .models import weights_hash

    path = meta_learner_path(weights_path)
    if args.prior is None:
        args.prior = "meta" if path.is_file() else "jeffreys"
    if args.prior == "meta":
        if not path.is_file():
            raise HaltfastError(f"no meta-learner for {weights_path.name} ({path} missing): run `haltfast calibrate "
                                f"--model {weights_path}` or choose --prior jeffreys")
        return MetaLearner.load(path, weights_sha256), f"meta:{weights_hash(path)[:16]}"
    if args.prior == "oracle" and not args.streams:
        raise HaltfastError("--prior oracle is for benchmarks on recorded streams only (it needs --streams)")
    return args.prior, args.prior


def cmd_certify(args: argparse.Namespace) -> int:
    import contextlib
    import json

    import numpy as np
    import pandas as pd
    import torch

    from .certificate import Certificate, validate_alpha
    from .progress import progress_bar
    from .summary import format_summary, summarize
    from .results import ResultsJournal, journal_path
    from .methods import run_method
    from .smooth import Smooth

    validate_alpha(args.alpha)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = _method_options(args)
    distributed = args.workers is not None or args.ray_address is not None
    if args.streams:
        from .recording import load_recording

        if distributed:
            raise HaltfastError("--workers and --ray-address run the model; replaying --streams is cheap, run it "
                                "without them")
        streams, meta = load_recording(args.streams, args.max)
        sigma, labels, indices = meta["sigma"], np.asarray(meta["labels"]), np.asarray(meta["indices"])
        source = f"replaying {len(indices)} recorded streams from {args.streams}"
        if args.method == "anytime":
            from .recording import recording_logits, recording_model_path
            from .streams import RecordedStreams

            weights = Path(meta["model"])
            if args.prior in (None, "meta"):
                try:
                    weights = recording_model_path(meta)
                except HaltfastError:
                    if args.prior == "meta":
                        raise
            options["prior"], prior_id = _resolve_cli_prior(args, weights, meta["weights_sha256"])
            if args.prior == "meta":  # its features: the clean logits, recomputed with the same model
                streams = RecordedStreams(streams.streams, streams.num_classes, streams.clean_predictions,
                                          recording_logits(meta, weights))
        summary_meta = {"recording": str(args.streams), "weights_sha256": meta["weights_sha256"],
                        "model": meta["model"], "seed": meta["seed"]}
        data = {"source": "recording", "data": meta.get("data"), "split": meta.get("split"), "seed": meta["seed"]}
    else:
        from .data import load_dataset

        full = load_dataset(args.data, args.split, args.data_dir)
        dataset = full.subset(args.skip, args.max)
        path, model, card, sigma = _load_model_for(args, dataset)
        labels, indices = dataset.labels, dataset.indices
        source = (f"certifying {len(dataset)} {dataset.name}/{dataset.split} images (skip {args.skip}) "
                  f"with {path.name}")
        summary_meta = {"model": path.name, "weights_sha256": card["weights_sha256"], "seed": args.seed}
        data = {"source": "live", "data": dataset.name, "split": dataset.split, "data_sha256": full.fingerprint(),
                "seed": args.seed}
        if args.method == "anytime":
            options["prior"], prior_id = _resolve_cli_prior(args, path, card["weights_sha256"])
    config = _run_config(args, {**options, "prior": prior_id} if "prior" in options else options, sigma,
                         summary_meta["weights_sha256"], data)

    journal = ResultsJournal.open(journal_path(args.out), config) if args.out else None
    with journal or contextlib.nullcontext():
        done = journal.finished if journal else {}
        todo = np.array([k for k, index in enumerate(indices) if int(index) not in done], dtype=np.int64)
        if len(indices) - len(todo):
            print(f"resuming {journal.path}: {len(indices) - len(todo)} of {len(indices)} inputs already finished, "
                  f"certifying the other {len(todo)}", file=sys.stderr)
        on_result = journal.append if journal else None
        print(f"{source}, sigma={sigma:g}, method={args.method}, alpha={args.alpha:g}"
              + (f", prior {args.prior}" if args.method == "anytime" else "")
              + (f", on Ray ({args.ray_address or 'local'})" if distributed else ""), file=sys.stderr)
        if args.prior == "oracle" and len(todo):
            from .meta import oracle_prior

            options["prior"] = oracle_prior(streams, todo.tolist())
        start = time.perf_counter()
        if not len(todo):
            fresh = []
        elif args.streams:
            with progress_bar(not args.quiet, len(todo)) as tick:
                fresh = run_method(args.method, streams, todo.tolist(), sigma=sigma, n0=args.n0, n=args.n,
                                   alpha=args.alpha, labels=labels[todo], indices=indices[todo], progress=tick,
                                   on_result=on_result, **options)
        elif distributed:
            from .distributed import RayPool, WorkerSpec

            spec = WorkerSpec(model, dataset.num_classes, sigma, args.seed, args.batch, args.method, args.n0, args.n,
                              args.alpha, options)
            with RayPool(spec, args.workers, args.ray_address) as pool, \
                    progress_bar(not args.quiet, len(todo)) as tick:
                print(f"{pool.workers} Ray workers", file=sys.stderr)
                fresh = pool.certify(dataset.images[todo], labels[todo], indices[todo], on_result=on_result,
                                     progress=tick)
        else:
            smooth = Smooth(model, dataset.num_classes, sigma, seed=args.seed, batch_size=args.batch)
            fresh = smooth.certify_many(dataset.images[todo], labels[todo], n0=args.n0, n=args.n, alpha=args.alpha,
                                        method=args.method, keys=indices[todo], indices=indices[todo],
                                        progress=not args.quiet, on_result=on_result, **options)
        seconds = time.perf_counter() - start
    by_index = {**done, **{c.index: c for c in fresh}}
    certs: list[Certificate] = [by_index[int(index)] for index in indices]
    failed = [c for c in certs if c.decision == "error"]
    if certs and len(failed) == len(certs):
        raise HaltfastError(f"the base classifier failed on every input: {failed[0].error}")
    for c in failed:
        print(f"input {c.index}: error: {c.error}", file=sys.stderr)
    radii = (0.0, 0.25, 0.5, 0.75, 1.0) if args.radius is None or args.method == "cohen" else (args.radius,)
    summary = summarize(certs, radii=radii, seconds=seconds)
    summary.update({**summary_meta, "sigma": sigma, "method": args.method, "alpha": args.alpha,
                    "options": {k: (v if k != "prior" else args.prior) for k, v in options.items()}})
    if len(certs) > len(fresh):
        summary["resumed"] = len(certs) - len(fresh)
        summary["evaluations_per_second"] = sum(c.evaluations for c in fresh) / max(seconds, 1e-9)
    if args.out:
        frame = pd.DataFrame([c.row() for c in certs])
        _write_atomically(args.out, lambda tmp: frame.to_csv(tmp, index=False))
    if args.summary_json:
        _write_atomically(args.summary_json, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    print(format_summary(summary))
    return 0


def _data_and_model(args: argparse.Namespace) -> tuple:
    """Set torch threads, load the --skip/--max slice of the split and the model for it (checked)."""
    import torch

    from .data import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data, args.split, args.data_dir).subset(args.skip, args.max)
    return (dataset, *_load_model_for(args, dataset))


def cmd_record(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .recording import record_streams
    from .smooth import Smooth

    dataset, path, model, card, sigma = _data_and_model(args)
    smooth = Smooth(model, dataset.num_classes, sigma, seed=args.seed, batch_size=args.batch)
    streams = smooth.streams(dataset.images, dataset.indices, None)
    meta = {"model": path.name, "weights_sha256": card["weights_sha256"], "sigma": sigma, "seed": args.seed,
            "data": dataset.name, "split": dataset.split, "skip": args.skip, "num_classes": dataset.num_classes,
            "indices": dataset.indices.tolist(), "labels": dataset.labels.tolist()}
    length = args.n0 + args.n
    with tqdm(total=len(dataset), unit="input", desc="record", disable=args.quiet) as bar:
        record_streams(streams, args.out, meta, length, progress=lambda k, e: bar.update(k))
    print(f"recorded {len(dataset)} streams of {length:,} labels in {args.out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .meta import CalibrationData, calibrate, fit_meta_learner, meta_learner_path
    from .smooth import Smooth

    dataset, path, model, card, sigma = _data_and_model(args)
    data_path = args.data_out or Path("runs") / "calibration" / f"{path.stem}-{dataset.split}-{args.samples}.npz"
    calib = None
    if data_path.exists() and not args.resample:
        calib = CalibrationData.load(data_path)
        if (calib.weights_sha256, calib.sigma, calib.samples, len(calib.hits)) != \
                (card["weights_sha256"], sigma, args.samples, len(dataset)):
            raise HaltfastError(f"{data_path} holds calibration data of another configuration; pass --resample "
                                f"to overwrite it or --data-out for another file")
        print(f"reusing calibration data {data_path} ({len(calib.hits):,} images)", file=sys.stderr)
    if calib is None:
        smooth = Smooth(model, dataset.num_classes, sigma, seed=args.seed, batch_size=args.batch)
        streams = smooth.streams(dataset.images, dataset.indices, None)
        start = time.perf_counter()
        with tqdm(total=len(dataset), unit="image", desc="calibrate", disable=args.quiet) as bar:
            logits, hits = calibrate(streams, args.samples, progress=lambda k, e: bar.update(k))
        calib = CalibrationData(logits, hits, args.samples, dataset.indices, dataset.labels, sigma, args.seed,
                                card["weights_sha256"], path.name, round(time.perf_counter() - start, 1))
        calib.save(data_path)
        print(f"calibration data: {len(hits):,} {dataset.name}/{dataset.split} images x {args.samples + 1:,} "
              f"evaluations in {calib.seconds:.0f} s -> {data_path}", file=sys.stderr)
    learner, fit = fit_meta_learner(calib, alpha=args.alpha, max_samples=args.tune_max_samples,
                                    tune_images=args.tune_images)
    out = args.out or meta_learner_path(path)
    learner.params["command"] = "haltfast " + " ".join(shlex.quote(a) for a in args.argv)
    _write_atomically(out, learner.save)
    z_rows = "; ".join(f"{z}: {'/'.join(f'{v:g}' for v in row)}"
                       for z, row in zip(learner.params["z_grid"], learner.params["strengths"]))
    print(f"meta-learner for {path.name} -> {out}\n"
          f"held-out error: |logit p| {fit['heldout_logit_mae']:.3f}, |p| {fit['heldout_p_mae']:.4f}; "
          f"prior strength per r/sigma (per gap bin, 0 = Jeffreys): {z_rows}")
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    import json

    import torch

    from .policies import load_policies
    from .triage import format_triage_summary, triage

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.streams:
        from .recording import load_recording

        streams, meta = load_recording(args.streams, args.max)
        sigma, labels, indices = meta["sigma"], meta["labels"], meta["indices"]
    else:
        from .data import load_dataset
        from .smooth import Smooth

        dataset = load_dataset(args.data, args.split, args.data_dir).subset(args.skip, args.max)
        _, model, _, sigma = _load_model_for(args, dataset)
        smooth = Smooth(model, dataset.num_classes, sigma, seed=args.seed, batch_size=args.batch)
        streams = smooth.streams(dataset.images, dataset.indices, None)
        labels, indices = dataset.labels, dataset.indices
    policies = load_policies(args.policies, sigma)
    from tqdm import tqdm

    with tqdm(total=len(indices), unit="input", desc=f"triage ({args.policy})", disable=args.quiet) as bar:
        report = triage(streams, list(range(len(indices))), policies, sigma=sigma, budget_evaluations=args.budget,
                        budget_seconds=args.seconds, policy=args.policy, n0=args.n0, prior=args.prior,
                        labels=labels, indices=indices, progress=lambda k, e: bar.update(k))
    if args.out:
        _write_atomically(args.out, report.write_csv)
    summary = report.summary()
    if args.summary_json:
        _write_atomically(args.summary_json, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    print(format_triage_summary(summary))
    return 130 if report.stop_reason == "interrupted" else 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from .bench import run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    command = "haltfast " + " ".join(shlex.quote(a) for a in args.argv)
    report = run_bench(args.streams, args.max, args.alpha, args.out, args.plots, args.live, command,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.out is None:
        print(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haltfast",
        description="Certify image classifiers by randomized smoothing with anytime-valid early stopping. "
                    "Run `haltfast COMMAND --help` for each command's options.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a noise-augmented base classifier",
                       description="Train a StrideCNN with Gaussian noise augmentation and write weights + model card.")
    _add_data_args(p)
    p.add_argument("--sigma", type=_positive_float, required=True, help="noise level used for augmentation")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=_positive_int, default=128)
    p.add_argument("--lr", type=_positive_float, default=2e-3)
    p.add_argument("--width", type=_positive_int, default=16, help="channels of the first convolution")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="weights file (.pt); the card is written beside it")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("certify", help="certify inputs of a data set with a smoothed classifier",
                       description="Certify every --skip-th image of a split; write one CSV row per input and print "
                                   "certified accuracy, average certified radius, abstain rate and evaluations.")
    _add_data_args(p)
    p.add_argument("--model", default=None,
                   help="weights file (.pt with its .json card) or a shipped name such as fashion-mnist-sigma0.25; "
                        "default: the shipped Fashion-MNIST model for --sigma (0.25 if not given)")
    p.add_argument("--sigma", type=_positive_float, default=None, help="noise level (default: the model card's)")
    p.add_argument("--skip", type=_positive_int, default=20, help="certify every skip-th image (default 20)")
    p.add_argument("--max", type=_positive_int, default=None, help="certify at most this many images")
    p.add_argument("--method", default="anytime", choices=["anytime", "cohen", "horvath", "union-bound", "betting"],
                   help="anytime: early-stopping E-process / confidence sequence (default); cohen: Cohen et al.'s "
                        "fixed-n CERTIFY; baselines: horvath (Horvath et al. 2022 adaptive sampling, needs "
                        "--radius), union-bound and betting (Voracek 2024 confidence sequences)")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability of each certificate")
    p.add_argument("--n0", type=_positive_int, default=100, help="selection (pilot) samples")
    p.add_argument("--n", type=_positive_int, default=100_000, help="estimation samples (cohen)")
    p.add_argument("--radius", type=float, default=None,
                   help="anytime: decide certification at this required radius (decision mode); "
                        "omit to estimate each input's radius (radius mode)")
    p.add_argument("--max-samples", type=_positive_int, default=100_000,
                   help="anytime and baselines: most tested samples per input (selection not included)")
    p.add_argument("--prior", default=None, choices=["meta", "jeffreys", "uniform", "pilot", "oracle"],
                   help="anytime: meta (each input's prior predicted by the model's meta-learner; the default when "
                        "<model>.meta.json exists, else jeffreys), jeffreys, uniform, pilot (the Jeffreys "
                        "posterior after the selection pilot; needs --selection pilot), or oracle (benchmarks on "
                        "--streams only: the posterior of the whole recorded stream, not a valid prior)")
    p.add_argument("--selection", default="clean", choices=["clean", "pilot"],
                   help="anytime: choose the class by the clean prediction (1 evaluation, default) or by n0 noisy "
                        "pilot samples (Cohen's selection)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="anytime, union-bound, betting radius mode: stop when the rest of the budget would add less "
                        "than this radius")
    p.add_argument("--futility-alpha", type=float, default=None,
                   help="anytime decision mode: level of the 'not certifiable' test (default: --alpha)")
    p.add_argument("--streams", type=Path, default=None,
                   help="replay a recording made by `haltfast record` instead of running the model")
    p.add_argument("--batch", type=_positive_int, default=2000, help="model batch size")
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives bit-identical results")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="certify on a local Ray cluster of this many worker processes (one torch thread each; "
                        "needs pip install 'haltfast[ray]'); certificates are identical to a single-process run")
    p.add_argument("--ray-address", default=None,
                   help="certify on an existing Ray cluster (e.g. auto, or ray://head:10001); one worker per CPU "
                        "of the cluster unless --workers says otherwise")
    p.add_argument("--out", type=Path, default=None,
                   help="CSV file, one row per input, in input order. Each finished input is also appended to "
                        "OUT.journal at once, so rerunning the same command after a crash or Ctrl-C skips finished "
                        "inputs; a journal from another configuration is refused")
    p.add_argument("--summary-json", type=Path, default=None, help="write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_certify)

    p = sub.add_parser("record", help="record each input's stream of noisy predictions for replay",
                       description="Record n0 + n predicted labels under noise per input (and the clean "
                                   "prediction), so every method can be compared on identical noise draws. "
                                   "Resumable: rerun the same command to finish an interrupted recording.")
    _add_data_args(p)
    p.add_argument("--model", default=None, help="weights file or shipped name (see certify --help)")
    p.add_argument("--sigma", type=_positive_float, default=None, help="noise level (default: the model card's)")
    p.add_argument("--skip", type=_positive_int, default=20)
    p.add_argument("--max", type=_positive_int, default=None)
    p.add_argument("--n0", type=_positive_int, default=100)
    p.add_argument("--n", type=_positive_int, default=100_000)
    p.add_argument("--batch", type=_positive_int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--out", type=Path, required=True, help="recording directory")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("calibrate", help="fit the meta-learner that predicts each input's prior",
                       description="Run the base model on the calibration split (held out of training and "
                                   "evaluation): one clean evaluation per image for the features and --samples "
                                   "noisy ones for the target p; fit the meta-learner and write it beside the "
                                   "model as <model>.meta.json, tied to the weights' SHA-256. The calibration "
                                   "data is kept and reused; --resample draws it again.")
    _add_data_args(p, split="calibration")
    p.add_argument("--model", default=None, help="weights file or shipped name (see certify --help)")
    p.add_argument("--sigma", type=_positive_float, default=None, help="noise level (default: the model card's)")
    p.add_argument("--skip", type=_positive_int, default=1, help="use every skip-th calibration image (default 1)")
    p.add_argument("--max", type=_positive_int, default=None, help="use at most this many calibration images")
    p.add_argument("--samples", type=_positive_int, default=1000, help="noisy evaluations per image (default 1000)")
    p.add_argument("--alpha", type=float, default=0.001, help="alpha the prior strengths are tuned for")
    p.add_argument("--tune-max-samples", type=_positive_int, default=20_000,
                   help="cap of the simulated E-processes that tune the prior strength")
    p.add_argument("--tune-images", type=_positive_int, default=2000,
                   help="held-out calibration images whose simulated E-processes tune the prior strength")
    p.add_argument("--batch", type=_positive_int, default=2000)
    p.add_argument("--seed", type=int, default=1, help="noise seed of the calibration draws")
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--data-out", type=Path, default=None,
                   help="calibration data file (default runs/calibration/<model>-<split>-<samples>.npz)")
    p.add_argument("--resample", action="store_true", help="draw the calibration data again even if it exists")
    p.add_argument("--out", type=Path, default=None, help="meta-learner file (default: beside the model)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("triage", help="spend one budget across many inputs by their risk policies",
                       description="Certify many inputs, each with its own required radius and alpha (a TOML policy "
                                   "file, see docs/triage.md), under one global budget; a scheduler decides which "
                                   "inputs get the next model batch. Ctrl-C or an exhausted budget still reports "
                                   "every input's state (certified / refuted / pending / undecided).")
    _add_data_args(p)
    p.add_argument("--policies", type=Path, required=True, help="TOML policy file (see docs/triage-example.toml)")
    p.add_argument("--model", default=None, help="weights file or shipped name (see certify --help)")
    p.add_argument("--sigma", type=_positive_float, default=None, help="noise level (default: the model card's)")
    p.add_argument("--skip", type=_positive_int, default=20)
    p.add_argument("--max", type=_positive_int, default=None)
    p.add_argument("--budget", type=int, default=None, help="total model evaluations (never exceeded)")
    p.add_argument("--seconds", type=_positive_float, default=None, help="wall-clock budget (approximate)")
    p.add_argument("--policy", default="max-decisions",
                   choices=["max-decisions", "max-weighted", "risk", "round-robin"], help="scheduling policy")
    p.add_argument("--n0", type=_positive_int, default=100, help="selection pilot samples per input")
    p.add_argument("--prior", default="pilot", help="jeffreys, uniform or pilot (default)")
    p.add_argument("--batch", type=_positive_int, default=2000, help="model batch size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--streams", type=Path, default=None, help="replay a recording instead of running the model")
    p.add_argument("--out", type=Path, default=None, help="CSV: every input's state")
    p.add_argument("--summary-json", type=Path, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_triage)

    p = sub.add_parser("bench", help="reproduce the results report: every method on recorded streams, plots, live",
                       description="Replay every method (Cohen, Horvath et al., Voracek's union-bound and betting "
                                   "confidence sequences, haltfast, the oracle prior, Wald's limit) on recorded "
                                   "streams (one recording per sigma, made by `haltfast record`), time them live on "
                                   "a few images, and write the Markdown report and PNG plots (docs/results.md).")
    p.add_argument("--streams", type=Path, nargs="+", required=True, help="recording directories, one per sigma")
    p.add_argument("--max", type=_positive_int, default=None, help="use only the first N images of each recording")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability of each certificate")
    p.add_argument("--out", type=Path, default=None, help="Markdown report (default: print it)")
    p.add_argument("--plots", type=Path, default=None, help="directory for the PNG plots")
    p.add_argument("--live", type=int, default=0, help="images per sigma for the live wall-clock run (0: none)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except HaltfastError as exc:
        print(f"haltfast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("haltfast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
