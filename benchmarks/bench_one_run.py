"""Issue 20's targets: one run however it is executed, measured on the shipped Fashion-MNIST sigma = 0.25 model.

    python benchmarks/bench_one_run.py --out docs/one-run-benchmark.md

1. Budgets are the run's: `--radius 0.5 --budget 30000 --max 100` in one process and with `--workers 2` (spent,
   certified, identical CSVs), and `--radii 0,0.25,0.5,0.75 --budget 5000 --max 100` (spent, selection included).
2. A deadline: `--seconds 5` on 10,000 test images; the run's own time (from its start, class selection
   included) against the deadline, and one model batch's time at the measured rate.
3. Extension: `--max-samples 10000`, then `--max-samples 100000` on the same --out, against one run at 100,000:
   the model calls of both sessions (from the journal's draw lines) and whether any stream position was drawn
   twice, and whether the results are identical.
4. Ray throughput: 200 test images (every 50th), decision mode at r = 0.5, Jeffreys prior: evaluations/s of one
   process with 2 torch threads and of 2 Ray workers (1 thread each; the engine in the driver), median over
   --repeats alternating runs, the pool started once (its start-up time reported apart), and how the driver's
   own time (statistics, journal) and the pool's waiting compare.

Every CLI run is a subprocess (`python -m haltfast`), as a user runs it; the throughput runs are in-process so
that the pool's start-up is outside the timed part.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from haltfast.provenance import git_commit
from haltfast.provenance import provenance

HALTFAST = [sys.executable, "-m", "haltfast"]


def cli(*args: str) -> tuple[dict, pd.DataFrame, float]:
    """Run `haltfast certify ARGS --summary-json ...`: (summary, results table, wall seconds of the process)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "s.json"
        start = time.perf_counter()
        subprocess.run([*HALTFAST, "certify", *args, "--quiet", "--summary-json", str(summary)], check=True)
        wall = time.perf_counter() - start
        out = Path(args[args.index("--out") + 1])
        return json.loads(summary.read_text()), pd.read_csv(out), wall


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return a.drop(columns="seconds").equals(b.drop(columns="seconds"))


def journal_draws(path: Path) -> tuple[int, int, int]:
    """(noisy evaluations drawn, clean evaluations, stream positions drawn more than once) from a journal."""
    drawn, clean, intervals = 0, 0, {}
    for line in path.read_text().splitlines()[1:]:
        entry = json.loads(line)
        if "draw" in entry:
            d = entry["draw"]
            for key, start, count in zip(d["keys"], d["starts"], d["counts"]):
                intervals.setdefault(key, []).append((start, start + count))
                drawn += count
        elif "clean" in entry:
            clean += len(entry["clean"]["keys"])
    twice = 0
    for spans in intervals.values():
        spans.sort()
        reach = 0
        for lo, hi in spans:
            twice += max(0, min(hi, reach) - lo)
            reach = max(reach, hi)
    return drawn, clean, twice


def budgets(tmp: Path) -> list[str]:
    lines = ["## 1. Budgets are the run's", ""]
    base = ["--radius", "0.5", "--budget", "30000", "--max", "100"]
    _one, one_table, _ = cli(*base, "--out", str(tmp / "b1.csv"))
    _ray, ray_table, _ = cli(*base, "--workers", "2", "--out", str(tmp / "b2.csv"))
    _grid, grid_table, _ = cli(
        "--radii", "0,0.25,0.5,0.75", "--budget", "5000", "--max", "100", "--out", str(tmp / "g.csv")
    )
    lines += [
        "| command | evaluations | certified | identical to one process |",
        "|---|---|---|---|",
        f"| `certify {shlex.join(base)}` | {one_table.evaluations.sum():,} | "
        f"{(one_table.decision == 'certified').sum()} | |",
        f"| `certify {shlex.join(base)} --workers 2` | {ray_table.evaluations.sum():,} | "
        f"{(ray_table.decision == 'certified').sum()} | {'yes' if same(one_table, ray_table) else 'NO'} |",
        f"| `certify --radii 0,0.25,0.5,0.75 --budget 5000 --max 100` | {grid_table.evaluations.sum():,} | "
        f"{(grid_table.decision == 'certified').sum()} | |",
        "",
    ]
    return lines


def deadline(tmp: Path, seconds: float) -> list[str]:
    args = ["--skip", "1", "--max", "10000", "--radius", "0.5", "--seconds", str(seconds), "--out", str(tmp / "d.csv")]
    summary, table, wall = cli(*args)
    rate = table.evaluations.sum() / summary["seconds"]
    batch = 2000 / rate
    return [
        "## 2. A deadline",
        "",
        f"`certify {shlex.join(args[:-2])}`: the run took {summary['seconds']:.2f} s from its start (the "
        f"deadline {seconds:g} s; over by {summary['seconds'] - seconds:+.2f} s), the process {wall:.1f} s "
        f"(with loading the model and data). {table.evaluations.sum():,} evaluations at {rate:,.0f}/s: one model "
        f"batch of 2,000 takes {batch:.3f} s. Certified {(table.decision == 'certified').sum():,} of "
        f"{len(table):,}; {(table.stop_reason.str.contains('deadline')).sum():,} inputs ended at the deadline.",
        "",
    ]


def extension(tmp: Path) -> list[str]:
    base = ["--radius", "0.5", "--max", "100"]
    ext = tmp / "ext.csv"
    _first, _, _ = cli(*base, "--max-samples", "10000", "--out", str(ext))
    drawn1, clean1, _ = journal_draws(Path(f"{ext}.journal"))
    _, extended, _ = cli(*base, "--max-samples", "100000", "--out", str(ext))
    drawn, clean, twice = journal_draws(Path(f"{ext}.journal"))
    _, whole, _ = cli(*base, "--max-samples", "100000", "--out", str(tmp / "whole.csv"))
    drawn_whole, clean_whole, _ = journal_draws(Path(f"{tmp / 'whole.csv'}.journal"))
    return [
        "## 3. Extending a run",
        "",
        "| session | model calls (noisy + clean) |",
        "|---|---|",
        f"| `--max-samples 10000` | {drawn1:,} + {clean1} |",
        f"| then `--max-samples 100000`, same --out | {drawn - drawn1:,} + {clean - clean1} |",
        f"| both sessions | {drawn:,} + {clean} |",
        f"| one run at `--max-samples 100000` | {drawn_whole:,} + {clean_whole} |",
        "",
        f"Stream positions evaluated twice: {twice}. Extended results identical to the one run: "
        f"{'yes' if same(extended, whole) else 'NO'}.",
        "",
    ]


def throughput(repeats: int) -> list[str]:
    import torch

    from haltfast import load_model
    from haltfast import shipped_model_path
    from haltfast.data import open_dataset
    from haltfast.distributed import RayPool
    from haltfast.distributed import WorkerRecipe
    from haltfast.distributed import given
    from haltfast.methods import run_method
    from haltfast.sampling import BaseClassifier
    from haltfast.sampling import ModelLabels
    from haltfast.sampling import NoiseSampler
    from haltfast.streams import Streams

    model, _ = load_model(shipped_model_path(0.25))
    view = open_dataset("fashion-mnist").subset(50, 200)
    images = view.load(np.arange(len(view)))
    options = {"radius": 0.5, "max_samples": 100_000, "prior": "jeffreys"}
    waiting = [0.0]

    def run(source) -> tuple[float, int]:
        start = time.perf_counter()
        certs = run_method(
            "anytime", Streams(source, len(view)), range(len(view)), sigma=0.25, n0=100, n=0, alpha=0.001, **options
        )
        return time.perf_counter() - start, sum(c.evaluations for c in certs)

    torch.set_num_threads(2)
    local = ModelLabels(NoiseSampler(BaseClassifier(model, 10), 0.25, 0, 2000), torch.as_tensor(images), view.indices)
    started = time.perf_counter()
    recipe = WorkerRecipe(given(model), given(images), view.indices, 10, 0.25, seed=0, batch_size=2000)
    pool = RayPool(recipe, workers=2)
    startup = time.perf_counter() - started
    labels = pool.labels

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return labels(*args, **kwargs)
        finally:
            waiting[0] += time.perf_counter() - t

    pool.labels = timed  # type: ignore[method-assign]
    rows = []
    try:
        for _ in range(repeats):
            s_local, e_local = run(local)
            waiting[0] = 0.0
            s_ray, e_ray = run(pool)
            rows.append((e_local / s_local, e_ray / s_ray, waiting[0] / s_ray, e_local == e_ray))
        round_trips = {}
        for size in (1, 4000):  # one label, and a full request of two model batches
            times = []
            for k in range(10):
                t = time.perf_counter()
                labels(np.array([0]), np.array([10_000 * k]), np.array([size]))
                times.append(time.perf_counter() - t)
            round_trips[size] = statistics.median(times)
    finally:
        pool.close()
    ratio = statistics.median(r[1] / r[0] for r in rows)
    return [
        "## 4. Ray throughput",
        "",
        "| repeat | one process, 2 threads (evaluations/s) | 2 Ray workers (evaluations/s) | ratio | "
        "share of the Ray run waiting for workers | same evaluations |",
        "|---|---|---|---|---|---|",
        *[
            f"| {k + 1} | {a:,.0f} | {b:,.0f} | {b / a:.2f} | {w:.0%} | {'yes' if same_e else 'NO'} |"
            for k, (a, b, w, same_e) in enumerate(rows)
        ],
        "",
        f"Median ratio {ratio:.2f}. Starting the pool (2 workers importing torch and building the model) took "
        f"{startup:.1f} s, outside the timed runs. The rest of the Ray run's time is the driver's own: the "
        "statistics, chunk sizes and bookkeeping of the engine, and handing requests to Ray. A request for one "
        f"label takes {round_trips[1] * 1e3:.1f} ms there and back (Ray's cost per request, the transfer "
        f"included), one of 4,000 labels (two model batches, the size the pool sends) "
        f"{round_trips[4000] * 1e3:.0f} ms (median of 10).",
        "",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="write the report here (markdown)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--parts", default="budgets,deadline,extension,throughput")
    args = p.parse_args()
    command = f"python {shlex.join(sys.argv)}"
    commit = git_commit(("src", "benchmarks"))
    started_all = time.perf_counter()
    lines = ["# One run however executed: budgets, deadline, extension, Ray", ""]
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts.split(","):
            started = time.perf_counter()
            if part == "budgets":
                lines += budgets(Path(tmp))
            elif part == "deadline":
                lines += deadline(Path(tmp), args.seconds)
            elif part == "extension":
                lines += extension(Path(tmp))
            elif part == "throughput":
                lines += throughput(args.repeats)
            print(f"{part}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    lines += [provenance(command, time.perf_counter() - started_all, commit=commit)]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
