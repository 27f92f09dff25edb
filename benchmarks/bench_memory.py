"""Peak memory of `haltfast certify` (the command line, end to end) on 1,000 against 10,000 inputs, drawn from a
large synthetic .npz and from one five times larger.

    python benchmarks/bench_memory.py --out docs/memory-benchmark.md
    python benchmarks/bench_memory.py --work /tmp/hf-mem      # keep (and reuse) the synthetic data there

Writes two .npz files of random 3 x 32 x 32 uint8 images with labels 0..9 (np.savez layout, uncompressed, written
in chunks so the writer's memory stays small): --sizes, by default 20,000 and 100,000 images. A tiny model (a
strided convolution and a linear layer, in a factory file, seed 0) gets its card from `haltfast card`. For every
(data set, number of inputs) a fresh Python process runs `haltfast certify` through haltfast.cli.main on every
k-th image (k = size / inputs) in decision mode (radius 0.25, --max-samples 100, results to a CSV and its
journal) and reports its peak resident memory: VmHWM from /proc/self/status, before (after imports) and after the
run. The target: peak(10,000 inputs) <= 1.2 x peak(1,000 inputs), whatever the data set's size.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from bench_data_memory import peak_rss_kib

from haltfast.provenance import git_commit
from haltfast.provenance import provenance

SHAPE, CLASSES = (3, 32, 32), 10
TINY_MODEL = """
from torch import nn


def tiny():
    return nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
"""


def write_npz(path: Path, count: int, seed: int = 0) -> Path:
    """An uncompressed .npz with x (count, 3, 32, 32) uint8 and y, as np.savez writes it, streamed in chunks."""
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    partial = path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": (count, *SHAPE)}
            np.lib.format.write_array_header_2_0(member, header)
            for start in range(0, count, 10_000):
                member.write(rng.integers(0, 256, (min(10_000, count - start), *SHAPE), dtype=np.uint8).tobytes())
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, rng.integers(0, CLASSES, count))
    partial.rename(path)
    return path


def write_model(work: Path) -> list[str]:
    """The tiny model's factory file, weights and card; returns the --model/--weights options."""
    import torch

    from haltfast.cli import main
    from haltfast.models import build_from_factory
    from haltfast.models import parse_factory_spec

    factory, weights = work / "tiny.py", work / "tiny.pt"
    options = ["--model", f"{factory}:tiny", "--weights", str(weights)]
    if not (work / "tiny.pt.card.json").is_file():
        factory.write_text(TINY_MODEL)
        torch.manual_seed(0)
        torch.save(build_from_factory(parse_factory_spec(options[1])).state_dict(), weights)
        assert main(["card", *options, "--sigma", "0.25", "--input-shape", "3,32,32"]) == 0
    return options


def child(argv: list[str]) -> None:
    """One measurement, in its own process: `haltfast certify ARGV`, then the peak resident memory."""
    import torch  # noqa: F401 - imported before the baseline, as the run would import it

    import haltfast.smooth  # noqa: F401
    from haltfast.cli import main

    baseline = peak_rss_kib()
    start = time.perf_counter()
    status = main(argv)
    seconds = time.perf_counter() - start
    print(json.dumps({"status": status, "baseline_kib": baseline, "peak_kib": peak_rss_kib(), "seconds": seconds}))


def certify_args(model: list[str], data: Path, size: int, inputs: int, out: Path, max_samples: int) -> list[str]:
    return [
        "certify",
        *model,
        "--data",
        str(data),
        "--skip",
        str(size // inputs),
        "--max",
        str(inputs),
        "--radius",
        "0.25",
        "--max-samples",
        str(max_samples),
        "--prior",
        "jeffreys",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(out),
    ]


def measure(argv: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", *argv]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if row["status"] != 0:
        raise RuntimeError(f"haltfast certify failed: {done.stderr}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="where to write the synthetic data (default: temp)")
    parser.add_argument("--sizes", default="20000,100000", help="data set sizes (comma-separated)")
    parser.add_argument("--inputs", default="1000,10000", help="numbers of inputs certified (comma-separated)")
    parser.add_argument("--max-samples", type=int, default=100, help="most tested samples per input (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median peak is shown")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    commit, start = git_commit(), time.perf_counter()
    sizes, counts = [int(s) for s in args.sizes.split(",")], [int(k) for k in args.inputs.split(",")]
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        model = write_model(work)
        rows = []
        for size in sizes:
            data = write_npz(work / f"colour-{size}.npz", size)
            for inputs in counts:
                out = work / f"results-{size}-{inputs}.csv"
                runs = []
                for _ in range(args.repeats):
                    for stale in (out, out.with_name(out.name + ".journal")):
                        stale.unlink(missing_ok=True)
                    runs.append(measure(certify_args(model, data, size, inputs, out, args.max_samples)))
                runs.sort(key=lambda run: run["peak_kib"])
                row = {**runs[len(runs) // 2], "low_kib": runs[0]["peak_kib"], "high_kib": runs[-1]["peak_kib"]}
                rows.append({"size": size, "inputs": inputs, "bytes": data.stat().st_size, **row})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    command = "python benchmarks/bench_memory.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    report = "\n".join(
        report_lines(rows, counts, args, provenance(command, time.perf_counter() - start, commit=commit))
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


def report_lines(rows: list[dict], counts: list[int], args, footer: str) -> list[str]:
    low, high = min(counts), max(counts)
    peaks = {(r["size"], r["inputs"]): r["peak_kib"] for r in rows}
    lines = [
        "# Memory: `haltfast certify` on 1,000 against 10,000 inputs",
        "",
        "Peak resident memory (VmHWM) of a fresh process running `haltfast certify` through the command line's "
        "entry point on every k-th image of a synthetic .npz of 3 x 32 x 32 uint8 colour images (uncompressed), "
        f"with a tiny model (a strided convolution and a linear layer), decision mode at radius 0.25, "
        f"--max-samples {args.max_samples}, 1 thread, results to a CSV and its journal. 'After imports' is the "
        "peak before the run (Python, torch and haltfast imported); 'run' is what the run added to it.",
        "",
        f"Each configuration ran {args.repeats} times in fresh processes; the table shows the run with the median "
        "peak, and the range of the peaks.",
        "",
        "| data set | file MB | inputs | peak MiB (range) | after imports MiB | run MiB | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} images | {r['bytes'] / 1e6:,.0f} | {r['inputs']:,} | {r['peak_kib'] / 1024:.1f} "
            f"({r['low_kib'] / 1024:.0f}-{r['high_kib'] / 1024:.0f}) | "
            f"{r['baseline_kib'] / 1024:.1f} | {(r['peak_kib'] - r['baseline_kib']) / 1024:.1f} | "
            f"{r['seconds']:.1f} |"
        )
    lines.append("")
    for size in sorted({r["size"] for r in rows}):
        ratio = peaks[size, high] / peaks[size, low]
        verdict = "meets" if ratio <= 1.2 else "misses"
        lines.append(f"- {size:,} images: peak({high:,}) / peak({low:,}) = {ratio:.3f} ({verdict} the target <= 1.2).")
    sizes = sorted({r["size"] for r in rows})
    for inputs in counts:
        ratio = peaks[sizes[-1], inputs] / peaks[sizes[0], inputs]
        lines.append(f"- {inputs:,} inputs: peak on {sizes[-1]:,} images / on {sizes[0]:,} images = {ratio:.3f}.")
    from haltfast.methods.anytime import certify_anytime
    from haltfast.sampling import NOISE_BLOCK
    from haltfast.sampling import NoiseSampler

    pixels = int(np.prod(SHAPE))
    block = NOISE_BLOCK * pixels * 4  # one block of noise samples, float32
    cache = inspect.signature(NoiseSampler).parameters["cache_bytes"].default
    blocks = max(1, cache // block)
    active = inspect.signature(certify_anytime).parameters["max_active"].default
    lines += [
        "",
        "What the run adds (read from the code paths, with the arithmetic): the noise sampler "
        f"(sampling.NoiseSampler) keeps each active input's current block of {NOISE_BLOCK} noise samples "
        f"({NOISE_BLOCK} x 3 x 32 x 32 float32, {block / 2**10:.0f} KiB), at most cache_bytes = "
        f"{cache / 2**20:.0f} MiB of them: {blocks:,} blocks, {blocks * block / 2**20:.0f} MiB, full from "
        f"{blocks:,} active inputs on (a run keeps up to {active:,} active; beyond {blocks:,} the least recently "
        "used block makes room). A finished input's block and an evicted one take the next block's noise in "
        "place, so those blocks are allocated once and the cache's memory does not grow with the number of "
        f"inputs; the model batch buffer is 2,000 x 3 x 32 x 32 float32 ({2000 * pixels * 4 / 2**20:.0f} MiB); "
        "the live streams (sampling.LiveStreams) hold the images of unfinished inputs only, as they are "
        "first sampled (the clean selection keeps none): "
        f"{active:,} x 3 x 32 x 32 float32 = {active * pixels * 4 / 2**20:.0f} MiB, each a view into the batch "
        "read in the round it was first sampled, which stays until the last input read with it finishes. What "
        "grows with the number of inputs: the certificates the run returns and its per-input state (a Python "
        "object and a few dozen numbers each, under 1 KiB: under "
        f"{max(counts) * 1024 / 2**20:.0f} MiB at {max(counts):,} inputs); the data set's size adds nothing "
        "but its labels and indices.",
        "",
        footer,
    ]
    return lines


if __name__ == "__main__":
    main()
