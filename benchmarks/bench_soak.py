"""Soak test of the Ray path: the whole Fashion-MNIST test set in radius mode, memory and throughput over time.

    python benchmarks/bench_soak.py --max 10000 --max-samples 1000 --workers 1,2 --out docs/soak-benchmark.md

For each worker count, certifies the first --max test images (shipped sigma = 0.25
model, anytime radius mode, budget --max-samples per input) with a pool of Ray workers
evaluating the model and the engine in this process, journaling every label and
certificate as `haltfast certify --out` does, and records at
checkpoints (1k, 5k, 10k inputs, scaled down for a smaller --max) the throughput and
the peak resident memory (VmHWM) of the driver and of each worker. Also checks that
every worker count gives the same certificates.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from haltfast.data import load_dataset
from haltfast.distributed import RayPool
from haltfast.distributed import WorkerRecipe
from haltfast.distributed import given
from haltfast.journal import JournaledLabels
from haltfast.journal import ResultsJournal
from haltfast.methods import run_method
from haltfast.models import load_model
from haltfast.models import shipped_model_path
from haltfast.streams import Streams


def memory_kib(pid: int | str = "self") -> dict:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def soak(workers: int, data, model, args, checkpoints: list[int]) -> tuple[list[dict], list]:
    """One run on a pool of `workers` Ray workers, the engine and journal in this process as in the CLI."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    options = {"radius": None, "max_samples": args.max_samples}
    recipe = WorkerRecipe(given(model), given(data.images), data.indices, data.num_classes, args.sigma, seed=0)
    rows, done, evals = [], [0], [0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        RayPool(recipe, workers=workers) as pool,
        ResultsJournal.open(Path(tmp) / "soak.csv.journal", {"workers": workers, **options}) as journal,
    ):
        start = time.perf_counter()
        marks = list(checkpoints)

        def on_result(cert) -> None:
            journal.append(cert)
            done[0] += 1
            evals[0] += cert.evaluations
            while marks and done[0] >= marks[0]:
                marks.pop(0)
                elapsed = time.perf_counter() - start
                worker_mem = [memory_kib(pid) for pid in pool.pids]
                rows.append(
                    {
                        "inputs": done[0],
                        "seconds": elapsed,
                        "evaluations": evals[0],
                        "driver_hwm": memory_kib()["VmHWM"],
                        "driver_rss": memory_kib()["VmRSS"],
                        "worker_hwm": [m["VmHWM"] for m in worker_mem],
                        "worker_rss": [m["VmRSS"] for m in worker_mem],
                    }
                )
                print(f"workers={workers} {rows[-1]}", file=sys.stderr, flush=True)

        streams = Streams(JournaledLabels(pool, data.indices, journal), len(data.indices))
        certs = run_method(
            "anytime",
            streams,
            range(len(data.indices)),
            sigma=args.sigma,
            n0=100,
            n=0,
            alpha=0.001,
            labels=data.labels,
            indices=data.indices,
            on_result=on_result,
            **options,
        )
    ray.shutdown()
    return rows, certs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=10_000, help="inputs (the first of the test split)")
    parser.add_argument("--max-samples", type=int, default=1000)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--out", type=Path, default=None, help="write the report (markdown) here")
    args = parser.parse_args()

    # the code measured is the code at the start (commits made while it runs do not count)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "benchmarks"], capture_output=True, text=True
    ).stdout.strip()
    data = load_dataset("fashion-mnist", "test").subset(1, args.max)
    model, _card = load_model(shipped_model_path(args.sigma))
    checkpoints = sorted({c for c in (1000, 5000, 10_000) if c < len(data)} | {len(data)})
    results, reference = {}, None
    for w in (int(x) for x in args.workers.split(",")):
        rows, certs = soak(w, data, model, args, checkpoints)
        key = [(c.index, c.prediction, c.decision, c.radius, c.evaluations) for c in certs]
        results[w] = (rows, key == reference if reference is not None else None)
        reference = reference or key

    mib = lambda kib: f"{kib / 1024:,.0f}"
    lines = [
        "# Soak benchmark: the Fashion-MNIST test set on Ray",
        "",
        f"{len(data):,} test images, shipped sigma = {args.sigma} model, anytime radius mode, "
        f"max_samples = {args.max_samples:,} per input, alpha = 0.001, every certificate journaled "
        f"with every label drawn (append + flush per draw and per input), the engine in the driver and the "
        f"model on the Ray workers. Peak memory is VmHWM (peak resident set) from /proc; throughput is model "
        f"evaluations (selection included) per wall-clock second since the run started (Ray start-up and "
        f"actor creation excluded).",
        "",
    ]
    for w, (rows, same) in results.items():
        lines += [
            f"## {w} worker{'s' if w > 1 else ''}",
            "",
            "| inputs done | seconds | evaluations/s | inputs/s | driver peak MiB | worker peak MiB (each) |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['inputs']:,} | {r['seconds']:.0f} | {r['evaluations'] / r['seconds']:,.0f} | "
                f"{r['inputs'] / r['seconds']:.1f} | {mib(r['driver_hwm'])} | "
                f"{', '.join(mib(k) for k in r['worker_hwm'])} |"
            )
        if same is not None:
            lines += [
                "",
                f"Certificates identical to the {next(iter(results))}-worker run "
                f"(index, prediction, decision, radius, evaluations): **{same}**.",
            ]
        lines.append("")
    cmd = "python benchmarks/bench_soak.py " + " ".join(sys.argv[1:])
    lines += [
        f"Produced by `{cmd}` at commit {commit}{' (with uncommitted changes)' if dirty else ''} on "
        f"{platform.machine()}, {os.cpu_count()} CPU threads, {datetime.date.today().isoformat()}."
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
