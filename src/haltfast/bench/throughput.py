"""The bench's statistics throughput: replayed evaluations per second of each mode (model cost zero), the
median of a few repeats, side by side in one process."""

from __future__ import annotations

import os
import time

import numpy as np

from ..predictors import OnlineLearner
from .grid import grid_for
from .replays import SigmaResult
from .run import Context
from .run import evaluations
from .run import on_recording

REPEATS = 3
TARGETS = {"decision": 10e6, "radius": 5e6, "grid": 5e6}  # evaluations/s the statistics must keep up with


def modes(ctx: Context, cap: int) -> list[tuple[str, str, dict]]:
    """(mode, prior, run options) of every timed run: each mode with Jeffreys' prior and the meta-learners."""
    priors: list[tuple[str, dict]] = (
        [("Jeffreys", {})]
        + ([("online meta-learner", {"prior": OnlineLearner()})] if ctx.streams.logits is not None else [])
        + ([("calibrated meta-learner", {"prior": ctx.learner})] if ctx.learner is not None else [])
    )
    shapes: list[tuple[str, dict]] = [
        ("decision", {"radius": 0.5}),
        ("radius", {"radius": None}),
        ("grid", {"radii": grid_for(ctx, cap)}),
    ]
    return [
        (mode, prior, {**shape, **options, "max_samples": cap}) for mode, shape in shapes for prior, options in priors
    ]


def replay_throughput(res: SigmaResult, repeats: int = REPEATS, log=print) -> list[dict]:
    """One row per mode and prior: evaluations per run, the median seconds over `repeats` runs, the rate."""
    rows = []
    for mode, prior, options in modes(res.ctx, res.cap):
        seconds, count = [], 0
        for _ in range(repeats):
            start = time.perf_counter()
            certs = on_recording(res.ctx, "anytime", **options)
            seconds.append(time.perf_counter() - start)
            count = int(evaluations(certs).sum())
        median = float(np.median(seconds))
        rows.append({"sigma": res.ctx.sigma, "mode": mode, "prior": prior, "evaluations": count, "seconds": median})
        log(f"  sigma={res.ctx.sigma:g} throughput {mode}, {prior}: {count / median / 1e6:.2f}M evaluations/s")
    return rows


def throughput_section(rows: list[dict]) -> str:
    lines = [
        "## Statistics throughput (replay: the model costs nothing)",
        "",
        f"Every evaluation of a whole run over the recording divided by its wall-clock seconds, the median of "
        f"{REPEATS} runs, one process on {os.cpu_count()} CPUs; decision mode at r = 0.5, grid mode on the "
        f"grid of the table above. The statistics keep up with a model as fast as this rate; a GPU model runs "
        f"1e5 to 1e6 evaluations/s.",
        "",
        "| sigma | mode | prior | evaluations per run | median seconds | evaluations/s | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = r["evaluations"] / r["seconds"]
        target = TARGETS[r["mode"]]
        lines.append(
            f"| {r['sigma']:g} | {r['mode']} | {r['prior']} | {r['evaluations']:,} | {r['seconds']:.2f} | "
            f"{rate / 1e6:.1f}M | {target / 1e6:.0f}M ({'met' if rate >= target else 'not met'}) |"
        )
    return "\n".join(lines)
