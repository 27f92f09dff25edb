"""Issue 23's live targets: the online meta-learner against the Jeffreys prior, run as a user runs them.

    python benchmarks/bench_online.py --work runs/online-bench --out runs/online-benchmark.md
    python benchmarks/bench_online.py --parts full --work runs/online-bench --out runs/online-full.md

1. `live`: 200 Fashion-MNIST test images (every 50th), the shipped sigma = 0.25 model, decision mode at r = 0.25
   and r = 0.5: `--prior jeffreys`, `--prior online` (the online learner alone: no calibration, no learner file),
   `--prior meta` (the online learner starting from the shipped calibrated learner) and `--prior calibrated` (the
   shipped learner alone, 1,000,000 calibration evaluations). Every evaluation counted (class selection
   included; nothing is amortized because the online learner spends nothing before the run); the share of
   inputs with the same decision as Jeffreys'; the wall-clock seconds of each run (waves start fewer inputs at
   first, so the first model batches are smaller: the seconds say what that costs here).
2. `full`: the whole 10,000-image test set at r = 0.5, `--prior jeffreys` and `--prior online` (about 2 x 23M
   model evaluations; each run is journaled under --work, so an interrupted benchmark resumes where it stopped).
3. `walltime`: what the waves and the refits cost in time: the same 200 images at r = 0.5 in one process (2 torch
   threads), Jeffreys and the online learner alternating, `--repeats` times: the median seconds, evaluations per
   second, and the seconds the learner's refits took.
4. `adversarial`: what a misled online learner costs. Simulated streams (no model): 200 decoy inputs, which
   finish first and teach the learner, then 800 inputs of another kind, all with the same clean logits (one
   bin, so what the decoys taught applies to every later input until the later ones outweigh them); decision
   at p0 = Phi(2) (r = 0.5 at sigma = 0.25), alpha = 0.001, 20,000 samples at most. The later inputs' mean
   evaluations with the online learner against Jeffreys' prior on the same streams.

The live and full runs are subprocesses (`python -m haltfast certify`), as a user runs them, one after the other.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from haltfast.methods import run_method
from haltfast.predictors import OnlineLearner
from haltfast.provenance import git_commit
from haltfast.provenance import provenance
from haltfast.streams import RecordedStreams

HALTFAST = [sys.executable, "-m", "haltfast"]
LIVE = ("jeffreys", "online", "meta", "calibrated")
FULL = ("jeffreys", "online")


def certify(work: Path, name: str, *args: str) -> tuple[dict, pd.DataFrame, float]:
    """`haltfast certify ARGS` into work/name.csv: (summary, results table, wall seconds of the process)."""
    out, summary = work / f"{name}.csv", work / f"{name}.json"
    start = time.perf_counter()
    subprocess.run(
        [*HALTFAST, "certify", *args, "--out", str(out), "--summary-json", str(summary), "--quiet"], check=True
    )
    return json.loads(summary.read_text()), pd.read_csv(out), time.perf_counter() - start


def compare(work: Path, title: str, args: list[str], priors: tuple, radius: float) -> list[str]:
    """One table: each prior's evaluations against Jeffreys', its decisions and its seconds."""
    runs = {p: certify(work, f"{title}-r{radius:g}-{p}", *args, "--radius", str(radius), "--prior", p) for p in priors}
    _, base, _ = runs["jeffreys"]
    lines = [
        f"### {title}, r = {radius:g}",
        "",
        "| prior | calibration evaluations | mean evaluations per input | against Jeffreys | certified accuracy | "
        "same decision as Jeffreys | wall seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for prior, (summary, frame, seconds) in runs.items():
        same = (frame["decision"].to_numpy() == base["decision"].to_numpy()).mean()
        accuracy = ((frame["decision"] == "certified") & frame["correct"].astype(bool)).mean()
        lines.append(
            f"| {prior} | {summary.get('calibration_evaluations', 0):,} | {frame['evaluations'].mean():,.0f} | "
            f"{frame['evaluations'].sum() / base['evaluations'].sum():.3f}x | {accuracy:.3f} | {same:.1%} | "
            f"{seconds:.0f} |"
        )
    return [*lines, ""]


P0 = float(norm.cdf(2.0))
ADVERSARIES = {  # (decoys' p, later inputs' p)
    "decoys sure (0.9999), later just above the threshold (p0 + 0.005)": (0.9999, P0 + 0.005),
    "decoys sure (0.9999), later just below the threshold (p0 - 0.005)": (0.9999, P0 - 0.005),
    "decoys sure (0.9999), later at the threshold (p0)": (0.9999, P0),
    "decoys hopeless (0.5), later sure (0.999)": (0.5, 0.999),
    "decoys just above the threshold (p0 + 0.003), later sure (0.9999)": (P0 + 0.003, 0.9999),
    "decoys at 0.99, later far below (0.9)": (0.99, 0.9),
}


def adversarial(decoys: int = 200, later: int = 800, cap: int = 20_000) -> list[str]:
    """The later inputs' mean evaluations, online learner against Jeffreys, behind misleading decoys."""
    lines = [
        "## What misleading inputs cost the online learner",
        "",
        f"{decoys} decoys first, then {later} later inputs, every input with the same clean logits; decision at "
        f"p0 = Phi(2) = {P0:.4f}, alpha = 0.001, at most {cap:,} tested samples per input. Mean evaluations of "
        "the later inputs (selection included).",
        "",
        "| case | Jeffreys | online learner | online / Jeffreys |",
        "|---|---|---|---|",
    ]
    worst = 0.0
    for k, (case, (p_decoy, p_later)) in enumerate(ADVERSARIES.items()):
        rng = np.random.default_rng(k)
        p = np.r_[np.full(decoys, p_decoy), np.full(later, p_later)]
        labels = (rng.random((p.size, cap + 1)) < p[:, None]).astype(np.uint8)
        rec = RecordedStreams(
            labels, 2, clean=np.ones(p.size, dtype=np.int64), logits=np.tile([[0.0, 3.0]], (p.size, 1))
        )
        means = []
        for prior in ("jeffreys", OnlineLearner()):
            certs = run_method(
                "anytime",
                rec.rewound(),
                range(p.size),
                sigma=0.25,
                n0=0,
                n=0,
                alpha=0.001,
                radius=0.5,
                max_samples=cap,
                prior=prior,
            )
            means.append(np.mean([c.evaluations for c in certs[decoys:]]))
        worst = max(worst, means[1] / means[0])
        lines.append(f"| {case} | {means[0]:,.0f} | {means[1]:,.0f} | {means[1] / means[0]:.3f} |")
    return [*lines, "", f"Worst case: {worst:.3f}x the evaluations of the Jeffreys prior.", ""]


def walltime(repeats: int, threads: int) -> list[str]:
    """Median seconds of Jeffreys and the online learner on the same live images, and the refits' own seconds."""
    import torch

    from haltfast import Smooth
    from haltfast import load_model
    from haltfast import shipped_model_path
    from haltfast.data import load_dataset
    from haltfast.predictors import OnlineSession

    torch.set_num_threads(threads)
    model, card = load_model(shipped_model_path(0.25))
    data = load_dataset("fashion-mnist", "test").subset(50, 200)
    smooth = Smooth(model, 10, 0.25, seed=0, batch_size=2000, weights_sha256=card["weights_sha256"])
    fit, fitting = OnlineSession.fit, [0.0]

    def timed_fit(session, *args):
        start = time.perf_counter()
        fit(session, *args)
        fitting[0] += time.perf_counter() - start

    OnlineSession.fit = timed_fit  # type: ignore[method-assign]
    runs: dict[str, list] = {"jeffreys": [], "online": []}
    for _ in range(repeats):
        for prior in runs:
            fitting[0] = 0.0
            start = time.perf_counter()
            certs = smooth.certify_many(
                data.images, data.labels, keys=data.indices, method="anytime", radius=0.5, prior=prior
            )
            runs[prior].append((time.perf_counter() - start, sum(c.evaluations for c in certs), fitting[0]))
    OnlineSession.fit = fit  # type: ignore[method-assign]
    lines = [
        "## What the waves and refits cost in time",
        "",
        f"200 test images (every 50th), r = 0.5, one process with {threads} torch threads, model batches of 2,000; "
        f"the two priors alternating, {repeats} runs each, medians.",
        "",
        "| prior | seconds | evaluations | evaluations/s | refits' seconds |",
        "|---|---|---|---|---|",
    ]
    for prior, rows in runs.items():
        seconds, count, fitting_seconds = (float(np.median([row[k] for row in rows])) for k in range(3))
        lines.append(f"| {prior} | {seconds:.1f} | {count:,.0f} | {count / seconds:,.0f} | {fitting_seconds:.1f} |")
    return [*lines, ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="results and journals of every run (resumable)")
    p.add_argument("--out", type=Path, default=None, help="write the report here (markdown)")
    p.add_argument("--parts", default="live", help="live, full, walltime, adversarial, or several: live,walltime")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="walltime: runs of each prior")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    command = f"python {shlex.join(sys.argv)}"
    commit = git_commit(("src", "benchmarks"))
    started = time.perf_counter()
    common = ["--sigma", "0.25", "--threads", str(args.threads)]
    lines = ["# The online meta-learner: live runs and misleading inputs", ""]
    for part in args.parts.split(","):
        if part == "live":
            lines += ["## 200 test images (every 50th), shipped sigma = 0.25 model", ""]
            for radius in (0.25, 0.5):
                lines += compare(args.work, "live", [*common, "--skip", "50", "--max", "200"], LIVE, radius)
        elif part == "walltime":
            lines += walltime(args.repeats, args.threads)
        elif part == "adversarial":
            lines += adversarial()
        elif part == "full":
            lines += ["## The whole test set (10,000 images), shipped sigma = 0.25 model", ""]
            lines += compare(args.work, "full", [*common, "--skip", "1"], FULL, 0.5)
        else:
            raise SystemExit(f"unknown part {part!r}")
    lines += [provenance(command, time.perf_counter() - started, commit=commit)]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
