"""One recording's replays, in the order the report reads them: decisions at each certifiable radius,
spending by value, grid mode, radius mode and the budget frontier."""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field

from ..certificate import max_certifiable_radius
from .grid import GridResult
from .grid import run_grid
from .run import CAPS
from .run import DECISION_RADII
from .run import ENTRIES
from .run import N0
from .run import Context
from .run import N
from .run import cohen
from .run import replay
from .run import wald_limit
from .spending import run_spending
from .spending import spending_radii


@dataclass
class SigmaResult:
    """Everything the report and the plots need for one recording."""

    ctx: Context
    decision: dict = field(default_factory=dict)  # (label, r) -> certs
    radius: dict = field(default_factory=dict)  # (label, cap) -> certs
    cohen_n: dict = field(default_factory=dict)  # n -> certs
    wald: dict = field(default_factory=dict)  # r -> per-image limit
    radii: tuple = ()
    cap: int = N  # per-input budget: Cohen's n, every method's max_samples
    spending: list = field(default_factory=list)  # spending.Spending per radius
    grid: GridResult | None = None


def run_replays(ctx: Context, entries=ENTRIES, caps=CAPS, log=print) -> SigmaResult:
    """All replayed runs of one recording: decision at each certifiable radius, radius mode, budget frontier."""
    res = SigmaResult(ctx)
    cap_full = res.cap = min(N, min(len(s) for s in ctx.streams.streams) - N0)
    r_max = max_certifiable_radius(cap_full, ctx.alpha, ctx.sigma)
    res.radii = tuple(r for r in DECISION_RADII if r < r_max)
    caps = sorted({*(c for c in caps if c <= cap_full), cap_full})  # a short recording's length is a cap too
    for n in caps:
        res.cohen_n[n] = cohen(ctx, n)
    for r in res.radii:
        res.wald[r] = wald_limit(ctx, r, cap_full)
        for e in entries:
            start = time.perf_counter()
            res.decision[e.label, r] = replay(ctx, e, r, cap_full)
            log(f"  sigma={ctx.sigma:g} r={r:g} {e.label}: {time.perf_counter() - start:.1f} s")
    cohen_full = res.cohen_n[max(res.cohen_n)]
    res.spending = [run_spending(ctx, r, cap_full, cohen_full, log) for r in spending_radii(ctx, cap_full)]
    res.grid = run_grid(ctx, cap_full, log)
    for e in entries:
        if not e.radius_mode:
            continue
        # the budget frontier: baselines and ours at every cap; the oracle only at the full budget
        for cap in caps if e.frontier and not e.oracle else [cap_full]:
            start = time.perf_counter()
            res.radius[e.label, cap] = replay(ctx, e, None, cap)
            log(f"  sigma={ctx.sigma:g} radius mode, cap {cap:,}, {e.label}: {time.perf_counter() - start:.1f} s")
    return res
