"""The bench's spending frontier: certified accuracy lost against Cohen per mean evaluations, for decisions at
one radius, spent by per-input caps, by the value rule and by run budgets, with Jeffreys' prior and with the
meta-learner (its calibration amortized), beside the oracle allocation bound."""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from ..certificate import CERTIFIED
from ..certificate import Certificate
from ..certificate import max_certifiable_radius
from ..predictors import OnlineLearner
from .run import Context
from .run import certified_at
from .run import evaluations
from .run import on_recording

SPENDING_RADII = (0.5, 1.0)  # decisions at these radii, where the recording's sigma can certify them
CAPS = (500, 1_000, 2_000, 5_000, 10_000, 20_000)  # per-input caps on tested samples
WORTHS = (10_000, 30_000, 100_000, 300_000, 1_000_000)  # the value rule: evaluations a certificate is worth
BUDGETS = (200, 300, 400, 600, 1_000, 2_000)  # run budgets, in evaluations per input
MAX_LOSSES = (0.0025, 0.005, 0.01, 0.02)  # target losses: certificates given up, as a fraction of the inputs
ORACLE_LOSSES = (0.0, 0.5, 1.0, 2.0, 5.0)  # points against Cohen at which the oracle allocation is reported
AMORTIZED_OVER = 10_000  # inputs a model's one-off calibration is spread over (a test set)
JEFFREYS, ONLINE, META = "Jeffreys prior", "online meta-learner", "calibrated meta-learner"
RULE_KINDS = ("cap", "value rule", "run budget", "target loss")


@dataclass
class Point:
    family: str  # JEFFREYS or META
    rule: str  # how the evaluations are spent
    certs: list[Certificate]
    one_off: int = 0  # calibration evaluations behind this row (the meta-learner's)


@dataclass
class Spending:
    """One recording's frontier at one radius."""

    radius: float
    cohen_accuracy: float
    cohen_mean: float
    points: list[Point] = field(default_factory=list)
    oracle: list = field(default_factory=list)  # (points lost against Cohen, mean evaluations) of the allocation


def spending_radii(ctx: Context, cap: int) -> tuple[float, ...]:
    return tuple(r for r in SPENDING_RADII if r < max_certifiable_radius(cap, ctx.alpha, ctx.sigma))


def run_spending(ctx: Context, radius: float, cap: int, cohen_certs: list[Certificate], log=print) -> Spending:
    """Every spending rule at `radius`, for Jeffreys' prior, the online meta-learner (nothing spent before the
    run) and (where the model has one) the calibrated meta-learner (its calibration amortized)."""
    res = Spending(radius, certified_at(cohen_certs, radius)[0], evaluations(cohen_certs).mean())
    families: dict[str, tuple[dict, int]] = {JEFFREYS: ({}, 0)}
    if ctx.streams.logits is not None:
        families[ONLINE] = ({"prior": OnlineLearner()}, 0)
    if ctx.learner is not None:
        families[META] = ({"prior": ctx.learner}, ctx.learner.calibration_evaluations)
    rules = (
        [(f"cap {c:,}", {"max_samples": c}) for c in CAPS if c < cap]
        + [(f"value rule, worth {w:,}", {"max_samples": cap, "worth": w}) for w in WORTHS]
        + [(f"run budget {b:,} per input", {"max_samples": cap, "budget": b * ctx.size}) for b in BUDGETS]
        + [(f"target loss {100 * m:g}% of inputs", {"max_samples": cap, "max_loss": m}) for m in MAX_LOSSES]
    )
    start = time.perf_counter()
    for family, (options, one_off) in families.items():
        full = on_recording(ctx, "anytime", radius=radius, max_samples=cap, **options)
        if family == JEFFREYS:
            res.oracle = oracle_allocation(full, res.cohen_accuracy)
        res.points.append(Point(family, "no limit", full, one_off))
        for rule, settings in rules:
            res.points.append(
                Point(family, rule, on_recording(ctx, "anytime", radius=radius, **settings, **options), one_off)
            )
    log(f"  sigma={ctx.sigma:g} frontier at r={radius:g}: {time.perf_counter() - start:.1f} s")
    return res


def certified(cert: Certificate) -> bool:
    return cert.decision == CERTIFIED and bool(cert.correct)


def oracle_allocation(full: list[Certificate], cohen_accuracy: float, losses=ORACLE_LOSSES) -> list:
    """(points lost against Cohen, mean evaluations per input) had the run known in advance which inputs its
    full run certifies and what each costs: the cheapest certifications bought first, 1 evaluation (selection)
    on every other input. A bound for spending rules at the same prior, not a method."""
    n = len(full)
    costs = np.sort([c.evaluations for c in full if certified(c)])
    out = []
    for loss in losses:
        k = int(np.ceil(n * (cohen_accuracy - loss / 100) - 1e-9))
        if 0 <= k <= costs.size:
            out.append((100 * (cohen_accuracy - k / n), float((costs[:k].sum() + (n - k)) / n)))
    return out


def amortized(point: Point) -> float:
    """Mean evaluations per input with the row's one-off calibration spread over AMORTIZED_OVER inputs."""
    return evaluations(point.certs).mean() + point.one_off / AMORTIZED_OVER


def loss_points(res: Spending, point: Point) -> float:
    return 100 * (res.cohen_accuracy - certified_at(point.certs, res.radius)[0])


def spending_table(res: Spending) -> list[str]:
    lines = [
        "| prior | spending rule | cert. acc. | points lost against Cohen | mean evals | with calibration "
        "amortized | Cohen / amortized |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in res.points:
        acc = certified_at(p.certs, res.radius)[0]
        lines.append(
            f"| {p.family} | {p.rule} | {acc:.3f} | {loss_points(res, p):.1f} | {evaluations(p.certs).mean():,.0f} | "
            f"{amortized(p):,.0f} | {res.cohen_mean / amortized(p):.0f}x |"
        )
    for loss, mean in res.oracle:
        lines.append(
            f"| oracle allocation (not a method) | the Jeffreys run's cheapest certifications first | "
            f"{res.cohen_accuracy - loss / 100:.3f} | {loss:.1f} | {mean:,.0f} | | {res.cohen_mean / mean:.0f}x |"
        )
    return lines


def best_within(res: Spending, points: list[Point], max_loss: float) -> Point | None:
    """The cheapest point (amortized) that loses at most max_loss points against Cohen."""
    ok = [p for p in points if loss_points(res, p) <= max_loss + 1e-9]
    return min(ok, key=amortized) if ok else None


def dominated_by_caps(res: Spending, point: Point) -> bool:
    """Whether some capped Jeffreys row is at least as cheap and loses no more."""
    caps = [p for p in res.points if p.family == JEFFREYS and p.rule.startswith("cap")]
    return any(amortized(c) <= amortized(point) and loss_points(res, c) <= loss_points(res, point) for c in caps)


def spending_summary(res: Spending, sigma: float) -> list[str]:
    """Plain statements: the cheapest row within 1 point of Cohen per rule family, and which value-rule and
    budget rows a capped Jeffreys row beats."""
    out = []
    for family in dict.fromkeys(p.family for p in res.points):
        for kind in RULE_KINDS:
            best = best_within(res, [p for p in res.points if p.family == family and p.rule.startswith(kind)], 1.0)
            if best is not None:
                out.append(
                    f"sigma = {sigma:g}, r = {res.radius:g}, {family}, {kind}: within 1.0 point of Cohen at best "
                    f"{res.cohen_mean / amortized(best):.0f}x fewer evaluations ({best.rule}, "
                    f"{loss_points(res, best):.1f} points, {amortized(best):,.0f} per input"
                    + (" with calibration amortized)" if best.one_off else ")")
                )
    adaptive = [p for p in res.points if not p.rule.startswith("cap") and p.rule != "no limit"]
    beaten = [p for p in adaptive if dominated_by_caps(res, p)]
    out.append(
        f"sigma = {sigma:g}, r = {res.radius:g}: {len(adaptive) - len(beaten)} of {len(adaptive)} value-rule, "
        f"budget and target-loss rows lie beyond the capped-Jeffreys frontier"
        + (" (beaten: " + "; ".join(f"{p.family}, {p.rule}" for p in beaten) + ")" if beaten else "")
    )
    return out


SPENDING_TEXT = (
    "Decisions at r = {r:g} with every evaluation counted: per-input caps (an input still undecided at the "
    "cap stops), the value rule (an input is given up once its predicted chance of a certificate per expected "
    "evaluation falls below 1/worth; `haltfast certify --worth`), run budgets (`--budget`, evaluations for "
    "the whole run; each round keeps the inputs with the best chance per expected evaluation that fit in "
    "what is left) and target losses (`--max-loss`: the value rule gives inputs up, the worst chance per "
    "evaluation first, while the predicted certificates given up stay within that share of the inputs "
    "finished; its price is set from the inputs' predictions before the run). The online meta-learner spends "
    "nothing before the run; the calibrated meta-learner's rows add its calibration ({one_off:,} evaluations) "
    f"spread over {AMORTIZED_OVER:,} inputs. The oracle allocation knows in advance which inputs the full Jeffreys run "
    "certifies and what each costs, buys the cheapest certifications first and spends only the selection "
    "evaluation on the rest: a bound for spending rules with that prior, not a method."
)


def spending_section(res: Spending, sigma: float) -> list[str]:
    one_off = max((p.one_off for p in res.points), default=0)
    return [
        "",
        f"### Spending by value: decisions at r = {res.radius:g}",
        "",
        SPENDING_TEXT.format(r=res.radius, one_off=one_off),
        "",
        *spending_table(res),
        "",
        *[f"- {s}" for s in spending_summary(res, sigma)],
    ]
