"""End-to-end evaluations/s of Smooth.certify_many against the model's raw batched rate, in the same run.

    python benchmarks/bench_throughput.py --out docs/throughput.md          # threads 2, 3 repeats
    python benchmarks/bench_throughput.py --profile decision                # cProfile one run of a mode instead

Two models: (a) the shipped Fashion-MNIST sigma = 0.25 model on 28 x 28 test images, (b) a StrideCNN for
3 x 32 x 32 inputs (random weights, seed 0, the biases of its dense layers zeroed so that its prediction
depends on the image) on synthetic colour images (a random colour, gradient and noise).

Raw rate: full batches of --batch noisy copies of an input, noise drawn in one torch.randn call, forward and
argmax, in a loop of --raw-batches batches: what the model can do. End-to-end: Smooth.certify_many (same batch
size) on --inputs inputs, evaluations (every model call, class selection included) over wall-clock, in four
modes: decision (radius 0.5), grid (radii 0.25, 0.5, 0.75, pilot selection as on the command line), radius
(estimate the radius) and Cohen's CERTIFY (n0 = 100, n = --max-samples). The anytime modes cap each input at
--max-samples. The inputs are the ones a per-input overhead could not hide behind: an untimed decision-mode run
on --candidates images picks the --inputs that took the most evaluations (thousands each). Every end-to-end run
follows its own raw measurement, so that the pair sees the same load; the table shows medians over --repeats
(and the range), the ratio as the median of the pairs' ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from haltfast import Smooth
from haltfast import load_model
from haltfast import shipped_model_path
from haltfast.data import open_dataset
from haltfast.models import StrideCNN
from haltfast.provenance import git_commit
from haltfast.provenance import provenance

SIGMA, RADIUS, GRID = 0.25, 0.5, (0.25, 0.5, 0.75)
MODES = ("decision", "grid", "radius", "cohen")


def fashion_mnist(candidates: int):
    """The shipped sigma = 0.25 model and every 20th Fashion-MNIST test image."""
    model, _ = load_model(shipped_model_path(SIGMA))
    view = open_dataset("fashion-mnist").subset(20, candidates)
    return "shipped Fashion-MNIST sigma 0.25 StrideCNN", "1 x 28 x 28", model, view.load(np.arange(len(view)))


def colour_cnn(candidates: int):
    """A StrideCNN for 3 x 32 x 32 inputs, seed 0, dense biases zeroed (else it predicts one class everywhere)."""
    torch.manual_seed(0)
    model = StrideCNN(in_channels=3, image_size=32).eval()
    with torch.no_grad():
        for layer in model.net:
            if isinstance(layer, torch.nn.Linear):
                layer.bias.zero_()
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:32, 0:32]
    images = []
    for _ in range(candidates):
        ramp = cols[..., None] * rng.uniform(-4, 4, 3) + rows[..., None] * rng.uniform(-4, 4, 3)
        pixels = rng.integers(0, 256, 3) + ramp + rng.normal(0, 10, (32, 32, 3))
        images.append(np.clip(pixels, 0, 255).astype(np.uint8).transpose(2, 0, 1))
    return "StrideCNN, random weights", "3 x 32 x 32", model, np.stack(images).astype(np.float32) / 255


def smooth(model, batch: int) -> Smooth:
    return Smooth(model, 10, SIGMA, seed=0, batch_size=batch)


def certify(model, images: np.ndarray, mode: str, args) -> list:
    """One end-to-end run of a mode on these images (keys 0..n-1); Cohen's on the first --cohen-inputs."""
    if mode == "cohen":
        images = images[: args.cohen_inputs]
    options: dict = {"keys": np.arange(len(images))}
    if mode == "cohen":
        options.update(method="cohen", n0=100, n=args.max_samples)
    else:
        options.update(method="anytime", max_samples=args.max_samples)
        options.update({"decision": {"radius": RADIUS}, "grid": {"radii": GRID, "selection": "pilot"}}.get(mode, {}))
    return smooth(model, args.batch).certify_many(images, **options)


def pick_long_inputs(model, candidates: np.ndarray, args) -> tuple[np.ndarray, np.ndarray]:
    """The --inputs candidates that took the most evaluations in an untimed decision-mode run, and their counts."""
    evaluations = np.array([c.evaluations for c in certify(model, candidates, "decision", args)])
    longest = np.argsort(-evaluations, kind="stable")[: args.inputs]
    return candidates[np.sort(longest)], evaluations[np.sort(longest)]


def raw_rate(model, image: np.ndarray, batch: int, batches: int) -> float:
    """Noisy samples/s of full batches: noise by one randn call into a buffer, one add, forward, argmax to numpy."""
    generator = torch.Generator().manual_seed(0)
    clean = torch.from_numpy(image)
    noise, noisy = torch.empty((batch, *image.shape)), torch.empty((batch, *image.shape))
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(batches):
            torch.randn(noise.shape, generator=generator, out=noise)
            torch.add(clean, noise, alpha=SIGMA, out=noisy)
            model(noisy).argmax(1).numpy()
        return batch * batches / (time.perf_counter() - start)


def end_to_end(model, images: np.ndarray, mode: str, args) -> tuple[float, float]:
    """(evaluations/s, mean evaluations per input) of one run."""
    start = time.perf_counter()
    certs = certify(model, images, mode, args)
    seconds = time.perf_counter() - start
    evaluations = sum(c.evaluations for c in certs)
    return evaluations / seconds, evaluations / len(certs)


def measure(name: str, shape: str, model, images: np.ndarray, threads: int, args, log) -> list[dict]:
    """The raw rate and every mode's end-to-end rate, --repeats times interleaved, for one model and thread count."""
    torch.set_num_threads(threads)
    log(f"{name}, {threads} threads:")
    raw: list[float] = []
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    ratios: dict[str, list[float]] = {mode: [] for mode in MODES}
    mean_evals: dict[str, float] = {}
    for repeat in range(args.repeats):
        for mode in MODES:  # each mode right after its own raw measurement: the pair sees the same load
            raw.append(raw_rate(model, images[repeat % len(images)], args.batch, args.raw_batches))
            rate, mean_evals[mode] = end_to_end(model, images, mode, args)
            rates[mode].append(rate)
            ratios[mode].append(rate / raw[-1])
        log(
            f"  repeat {repeat + 1}: "
            + ", ".join(f"{m} {rates[m][-1]:,.0f}/s ({ratios[m][-1]:.2f} of raw)" for m in MODES)
        )
    return [
        {
            "model": name,
            "shape": shape,
            "threads": threads,
            "raw": statistics.median(raw),
            "raw_range": (min(raw), max(raw)),
            "mode": mode,
            "inputs": min(len(images), args.cohen_inputs) if mode == "cohen" else len(images),
            "mean_evaluations": mean_evals[mode],
            "rate": statistics.median(rates[mode]),
            "range": (min(rates[mode]), max(rates[mode])),
            "ratio": statistics.median(ratios[mode]),
            "ratio_range": (min(ratios[mode]), max(ratios[mode])),
        }
        for mode in MODES
    ]


def span(low_high: tuple[float, float]) -> str:
    return f"{low_high[0]:,.0f}-{low_high[1]:,.0f}"


def batch_sweep(name: str, model, image: np.ndarray, threads: int, args) -> list[str]:
    """Raw samples/s per batch size (medians over --repeats), one table row."""
    torch.set_num_threads(threads)
    sizes = [int(b) for b in args.sweep.split(",")]
    total = args.raw_batches * args.batch
    rates = [
        statistics.median(raw_rate(model, image, b, max(1, total // b)) for _ in range(args.repeats)) for b in sizes
    ]
    return [f"| {name} | {threads} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |"]


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | input | threads | raw samples/s (range) | mode | inputs | evaluations per input | "
        "end-to-end evaluations/s (range) | end-to-end / raw (range) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['shape']} | {r['threads']} | {r['raw']:,.0f} ({span(r['raw_range'])}) "
            f"| {r['mode']} | {r['inputs']} | {r['mean_evaluations']:,.0f} | {r['rate']:,.0f} "
            f"({span(r['range'])}) | {r['ratio']:.2f} ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}) |"
        )
    return lines


def profile(model, images: np.ndarray, mode: str, args) -> None:
    """cProfile one end-to-end run of a mode; print the top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    rate, _ = end_to_end(model, images, mode, args)
    profiler.disable()
    print(f"{mode}: {rate:,.0f} evaluations/s under the profiler")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="2", help="torch CPU threads; a comma-separated list measures each")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the table shows medians (default 3)")
    parser.add_argument("--batch", type=int, default=2000, help="model batch size (default 2000)")
    parser.add_argument("--raw-batches", type=int, default=30, help="batches per raw measurement (default 30)")
    parser.add_argument("--candidates", type=int, default=200, help="images the long inputs are picked from")
    parser.add_argument("--inputs", type=int, default=32, help="inputs of each end-to-end run (default 32)")
    parser.add_argument("--max-samples", type=int, default=10_000, help="cap per input; Cohen's n (default 10000)")
    parser.add_argument("--cohen-inputs", type=int, default=8, help="inputs of Cohen's runs (one at a time)")
    parser.add_argument("--sweep", default="250,500,1000,2000,4000", help="batch sizes of the raw-rate sweep")
    parser.add_argument("--models", default="fashion-mnist,colour", help="fashion-mnist, colour or both")
    parser.add_argument("--profile", choices=MODES, default=None, help="profile one run of this mode instead")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    commit, start = git_commit(), time.perf_counter()
    threads = [int(t) for t in args.threads.split(",")]
    log = lambda line: print(line, file=sys.stderr, flush=True)
    setups = {"fashion-mnist": fashion_mnist, "colour": colour_cnn}
    rows: list[dict] = []
    sweep: list[str] = []
    for setup in (setups[name] for name in args.models.split(",")):
        torch.set_num_threads(1)  # the pick is untimed, and its result does not depend on threads
        name, shape, model, candidates = setup(args.candidates)
        images, picked = pick_long_inputs(model, candidates, args)
        log(f"{name}: {len(images)} inputs, {picked.min():,}-{picked.max():,} evaluations in decision mode")
        if args.profile:
            profile(model, images, args.profile, args)
            continue
        rows += [row for t in threads for row in measure(name, shape, model, images, t, args, log)]
        sweep += [line for t in threads for line in batch_sweep(name, model, images[0], t, args)]
    if args.profile:
        return
    torch.set_num_threads(threads[0])  # the footer names the first thread count
    report = "\n".join(report_lines(rows, sweep, args, commit, time.perf_counter() - start)) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


def report_lines(rows: list[dict], sweep: list[str], args, commit: str, seconds: float) -> list[str]:
    return [
        "# Throughput: end-to-end against the model's raw rate",
        "",
        f"Batch {args.batch}, medians over {args.repeats} repeats (range in brackets). Every end-to-end run "
        "follows its own raw measurement, and the ratio is the median of those pairs' ratios, so that a load "
        "change between measurements moves one pair, not the figure. "
        f"Anytime modes capped at {args.max_samples:,} samples per input; Cohen "
        f"with n0 = 100, n = {args.max_samples:,}. The inputs are the {args.inputs} of {args.candidates} "
        f"candidates that took the most evaluations in decision mode (radius {RADIUS}, sigma {SIGMA}). See "
        "benchmarks/bench_throughput.py for what each rate counts.",
        "",
        *table(rows),
        "",
        "Raw samples/s by batch size (the same loop; medians over the repeats):",
        "",
        "| model | threads | " + " | ".join(f"batch {int(b):,}" for b in args.sweep.split(",")) + " |",
        "|---|---|" + "---|" * len(args.sweep.split(",")),
        *sweep,
        "",
        *(
            [
                "A ratio above 1: the end-to-end runs fill part of their model batches (the inputs' chunks are "
                "smaller than a batch in some rounds), and on this machine smaller batches run faster per sample "
                "than the raw loop's full batches (see the sweep).",
                "",
            ]
            if any(r["ratio"] > 1 for r in rows)
            else []
        ),
        "The machine is shared with other jobs, so both rates "
        "vary from repeat to repeat; the ratio compares rates measured under the same load.",
        "",
        provenance(
            "python benchmarks/bench_throughput.py " + " ".join(map(shlex.quote, sys.argv[1:])), seconds, commit=commit
        ),
    ]


if __name__ == "__main__":
    main()
