"""The bench's certified-accuracy table: grid mode against Cohen, fixed-n Cohen at equal cost, decision mode
once per radius, Voracek's betting CS with the same stopping rule, and the two yardsticks with p known."""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from ..certificate import Certificate
from ..certificate import max_certifiable_radius
from ..certificate import p_for_radius
from ..predictors import OnlineLearner
from ..statistics import wald_expected_samples
from .run import N0
from .run import Context
from .run import certified_at
from .run import evaluations
from .run import on_recording

# the protocol's grids: a quarter of sigma at sigma 0.25 and 0.5, half of it at sigma 1, up to 3 sigma
GRIDS = {
    0.25: (0.0, 0.25, 0.5, 0.75),
    0.5: (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
    1.0: (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
}

GRID_DEFAULT = "haltfast grid mode (the default: pilot selection and prior, the value rule)"
GRID_FULL = "haltfast grid mode, every bucket decided (no value rule)"
GRID_META = "haltfast grid mode, calibrated meta-learner prior"
GRID_ONLINE = "haltfast grid mode, online meta-learner prior (pilot selection, the value rule)"
BETTING = "Voracek 2024 betting CS, the same stopping rule (every bucket decided)"


@dataclass
class GridResult:
    """One recording's grid-mode runs and yardsticks."""

    grid: tuple
    runs: dict = field(default_factory=dict)  # label -> certs
    per_radius: dict = field(default_factory=dict)  # r -> decision-mode certs at r
    equal_cost_n: int = 0
    decide_bucket: float = 0.0  # mean evaluations to decide every bucket with p known (Wald)
    certify_top: float = 0.0  # to certify the top bucket only


def grid_for(ctx: Context, cap: int) -> tuple:
    """The protocol's grid for this sigma, cut to what `cap` samples can certify."""
    grid = GRIDS.get(ctx.sigma) or tuple(ctx.sigma * k / 2 for k in range(7))
    return tuple(r for r in grid if r < max_certifiable_radius(cap, ctx.alpha, ctx.sigma))


def run_grid(ctx: Context, cap: int, log=print) -> GridResult:
    """Every grid-mode row of one recording."""
    res = GridResult(grid_for(ctx, cap))
    variants: dict[str, tuple[str, dict]] = {
        GRID_DEFAULT: ("anytime", {"selection": "pilot", "prior": "pilot"}),
        GRID_FULL: ("anytime", {"selection": "pilot", "prior": "pilot", "worth": None}),
        BETTING: ("betting", {}),
    }
    if ctx.streams.logits is not None:
        variants[GRID_ONLINE] = ("anytime", {"selection": "pilot", "prior": OnlineLearner()})
    if ctx.learner is not None:
        variants[GRID_META] = ("anytime", {"selection": "pilot", "prior": ctx.learner})
    for label, (method, options) in variants.items():
        start = time.perf_counter()
        res.runs[label] = on_recording(ctx, method, radii=res.grid, max_samples=cap, **options)
        log(f"  sigma={ctx.sigma:g} grid {label}: {time.perf_counter() - start:.1f} s")
    for r in res.grid:
        res.per_radius[r] = on_recording(ctx, "anytime", radius=r, max_samples=cap, selection="pilot", prior="pilot")
    res.equal_cost_n = max(round(evaluations(res.runs[GRID_DEFAULT]).mean()) - N0, 1)
    res.runs[f"fixed-n Cohen at the same mean evaluations (n0 = 100, n = {res.equal_cost_n:,})"] = on_recording(
        ctx, "cohen", n=res.equal_cost_n
    )
    res.decide_bucket, res.certify_top = grid_yardsticks(ctx, res.grid, cap)
    return res


def grid_yardsticks(ctx: Context, grid: tuple, cap: int) -> tuple[float, float]:
    """Mean evaluations per image with p known (Wald's limit, miss rate alpha, capped, +1 for selection): to
    decide each image's bucket (certify it and refute the next radius), and to certify its top bucket only."""
    p0 = np.array([p_for_radius(r, ctx.sigma) for r in grid])
    p = ctx.p_hat
    bucket = np.searchsorted(p0, p, side="left")  # grid radii whose threshold lies below p

    def wald(q):
        return np.minimum(wald_expected_samples(p, q, ctx.alpha, ctx.alpha), cap)

    top = np.where(bucket > 0, wald(p0[np.maximum(bucket - 1, 0)]), 0.0)
    refute = np.where(bucket < len(grid), wald(p0[np.minimum(bucket, len(grid) - 1)]), 0.0)
    return float(np.mean(np.maximum(top, refute)) + 1), float(np.mean(top) + 1)


def grid_table(res: GridResult, cohen_certs: list[Certificate], cohen_name: str) -> list[str]:
    """The certified-accuracy table: each method's accuracy at every grid radius, its evaluations, and the
    points it loses against Cohen at each radius."""
    cohen_acc = certified_at(cohen_certs, res.grid)
    cohen_mean = evaluations(cohen_certs).mean()
    head = "| method | " + " | ".join(f"r = {r:g}" for r in res.grid) + " | mean evals | Cohen / mean |"
    lines = [head, "|---|" + "---|" * (len(res.grid) + 2)]

    def row(label: str, acc, mean: float) -> str:
        cells = [
            f"{a:.3f} ({100 * (a - c):+.1f})" if label != cohen_name else f"{a:.3f}" for a, c in zip(acc, cohen_acc)
        ]
        return f"| {label} | " + " | ".join(cells) + f" | {mean:,.0f} | {cohen_mean / mean:.1f}x |"

    lines.append(row(cohen_name, cohen_acc, cohen_mean))
    for label, certs in res.runs.items():
        lines.append(row(label, certified_at(certs, res.grid), evaluations(certs).mean()))
    per_radius = [certified_at(res.per_radius[r], r)[0] for r in res.grid]
    total = sum(evaluations(res.per_radius[r]).mean() for r in res.grid)
    lines.append(row("haltfast decision mode once per radius (pilot selection and prior)", per_radius, total))
    blanks = " |" * len(res.grid)
    for label, mean in (("decide every bucket", res.decide_bucket), ("certify the top bucket only", res.certify_top)):
        lines.append(f"| yardstick, p known: {label} |{blanks} {mean:,.0f} | {cohen_mean / mean:.1f}x |")
    return lines


GRID_TEXT = (
    "Grid mode certifies every image at the largest radius of the grid its evidence supports, in one run "
    "(`haltfast certify --radii ...`). Cells: certified accuracy (points against Cohen's n = {n:,}). "
    "'Decision mode once per radius' adds up the evaluations of one decision run per grid radius. The "
    "yardsticks use each image's p estimated from its whole recorded stream and Wald's limit (miss rate "
    "alpha) per threshold: to decide the bucket (certify it and refute the next radius), or to certify the "
    "top bucket only. The value rule gives the next radius up where its chance per expected evaluation falls "
    "below 1/1,000,000 (docs/certification.md)."
)


def grid_section(res: GridResult, cohen_certs: list[Certificate], cohen_name: str, cap: int) -> list[str]:
    return [
        "",
        "### The certified-accuracy table (grid mode)",
        "",
        GRID_TEXT.format(n=cap),
        "",
        *grid_table(res, cohen_certs, cohen_name),
    ]
