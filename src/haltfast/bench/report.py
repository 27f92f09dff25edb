"""The bench's report: Markdown tables of the replays, the methods, and where haltfast loses."""

from __future__ import annotations

import numpy as np

from ..certificate import ABSTAINED
from ..certificate import NOT_CERTIFIED
from ..certificate import UNDECIDED
from ..certificate import max_certifiable_radius
from ..predictors import HEDGE
from .grid import grid_section
from .replays import SigmaResult
from .run import CALIBRATED
from .run import COHEN
from .run import ENTRIES
from .run import META
from .run import ONLINE
from .run import OURS
from .run import RADIUS_GRID
from .run import acr
from .run import certified_at
from .run import cohen_label
from .run import evaluations
from .spending import spending_section


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def _ratio(x: float) -> str:
    return f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def decision_table(res: SigmaResult, entries=ENTRIES) -> list[str]:
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    cohen_evals = evaluations(cohen_certs).mean()
    lines = [
        "| r | method | cert. acc. | mean evals | median evals | Cohen / mean | mean / Wald limit | "
        "not cert. | undecided |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res.radii:
        wald = res.wald[r].mean()
        lines.append(
            f"| {r:g} | {cohen_label(res.cap)} | {certified_at(cohen_certs, r)[0]:.3f} | {_fmt(cohen_evals)} | "
            f"{_fmt(cohen_evals)} | 1.0x | {cohen_evals / wald:.1f} | | |"
        )
        for e in entries:
            certs = res.decision[e.label, r]
            ev = evaluations(certs)
            count = lambda d, certs=certs: sum(c.decision == d for c in certs)
            lines.append(
                f"| {r:g} | {e.label} | {certified_at(certs, r)[0]:.3f} | {_fmt(ev.mean())} | "
                f"{_fmt(np.median(ev))} | {_ratio(cohen_evals / ev.mean())} | {ev.mean() / wald:.2f} | "
                f"{count(NOT_CERTIFIED)} | {count(UNDECIDED)} |"
            )
        lines.append(
            f"| {r:g} | Wald's limit (p known per image, miss rate alpha) | | {_fmt(wald)} | "
            f"{_fmt(np.median(res.wald[r]))} | {_ratio(cohen_evals / wald)} | 1.00 | | |"
        )
    return lines


def radius_table(res: SigmaResult, entries=ENTRIES) -> list[str]:
    ctx = res.ctx
    grid = [r for r in RADIUS_GRID if r < max_certifiable_radius(res.cap, ctx.alpha, ctx.sigma)]
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    cohen_evals = evaluations(cohen_certs).mean()
    rows = [(cohen_label(res.cap), cohen_certs)] + [
        (e.label, res.radius[e.label, res.cap]) for e in entries if (e.label, res.cap) in res.radius
    ]
    lines = [
        "| method | " + " | ".join(f"r = {r:g}" for r in grid) + " | ACR | abstain | mean evals | "
        "median evals | Cohen / mean |",
        "|---|" + "---|" * (len(grid) + 5),
    ]
    for label, certs in rows:
        ev = evaluations(certs)
        abstain = np.mean([c.decision == ABSTAINED for c in certs])
        lines.append(
            f"| {label} | "
            + " | ".join(f"{a:.3f}" for a in certified_at(certs, grid))
            + f" | {acr(certs):.4f} | {abstain:.3f} | {_fmt(ev.mean())} | {_fmt(np.median(ev))} | "
            f"{_ratio(cohen_evals / ev.mean())} |"
        )
    return lines


def frontier_table(res: SigmaResult, entries=ENTRIES) -> list[str]:
    caps = sorted(res.cohen_n)
    acr_cohen = acr(res.cohen_n[max(caps)])
    labels = [e.label for e in entries if e.radius_mode and e.frontier and not e.oracle]
    lines = [
        "| cap n | fixed-n Clopper-Pearson (Cohen) | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for cap in caps:
        cells = [res.cohen_n[cap]] + [res.radius.get((label, cap)) for label in labels]
        lines.append(
            f"| {cap:,} | "
            + " | ".join(
                "" if c is None else f"{acr(c):.4f} ({acr(c) / acr_cohen:.3f}) at {_fmt(evaluations(c).mean())}"
                for c in cells
            )
            + " |"
        )
    return lines


def default_entry(entries=ENTRIES) -> str:
    """The row of haltfast's default: the online meta-learner (from the calibrated one where the models have
    one), else (no clean logits) Jeffreys."""
    labels = {e.label for e in entries}
    return META if META in labels else ONLINE if ONLINE in labels else OURS


def losses(res: SigmaResult, entries=ENTRIES) -> list[str]:
    """Plain statements of where haltfast's default (the online meta-learner, else Jeffreys) does worse than a
    baseline or than Cohen."""
    return decision_losses(res, entries) + radius_losses(res, entries)


def baselines(entries=ENTRIES) -> list:
    """The published methods among the entries (not haltfast's rows, not the oracle)."""
    ours_label = default_entry(entries)
    return [e for e in entries if e.label != ours_label and not e.oracle and e.method != "anytime"]


def decision_losses(res: SigmaResult, entries=ENTRIES) -> list[str]:
    """Decision-mode radii where a baseline needs fewer evaluations or certifies more, or Cohen certifies more."""
    out = []
    ctx = res.ctx
    ours_label, others = default_entry(entries), baselines(entries)
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    for r in res.radii:
        ours = res.decision[ours_label, r]
        acc, ev = certified_at(ours, r)[0], evaluations(ours).mean()
        for e in others:
            theirs = res.decision[e.label, r]
            if evaluations(theirs).mean() < ev:
                out.append(
                    f"sigma = {ctx.sigma:g}, r = {r:g}: {e.label} needs fewer evaluations "
                    f"({_fmt(evaluations(theirs).mean())} against our {_fmt(ev)})."
                )
            if certified_at(theirs, r)[0] > acc:
                out.append(
                    f"sigma = {ctx.sigma:g}, r = {r:g}: {e.label} certifies more "
                    f"({certified_at(theirs, r)[0]:.3f} against our {acc:.3f})."
                )
        if certified_at(cohen_certs, r)[0] > acc:
            out.append(
                f"sigma = {ctx.sigma:g}, r = {r:g}: Cohen's fixed n = {res.cap:,} certifies "
                f"{certified_at(cohen_certs, r)[0]:.3f} against our {acc:.3f} (inputs whose p lies so close "
                f"to Phi(r/sigma) that {res.cap:,} samples decide them but the sequential test stays undecided "
                f"or gives up)."
            )
    return out


def radius_losses(res: SigmaResult, entries=ENTRIES) -> list[str]:
    """Radius mode against Cohen (ACR, abstentions) and against the baselines' ACR."""
    out: list[str] = []
    ctx = res.ctx
    ours_label, others = default_entry(entries), baselines(entries)
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    if (ours_label, res.cap) not in res.radius:
        return out
    ours = res.radius[ours_label, res.cap]
    a_ours, a_cohen = acr(ours), acr(cohen_certs)
    if a_ours < a_cohen:
        grid = np.linspace(0, max_certifiable_radius(res.cap, ctx.alpha, ctx.sigma), 400)
        gap = certified_at(cohen_certs, grid) - certified_at(ours, grid)
        worst = int(np.argmax(gap))
        where = (
            f"; certified accuracy falls short of Cohen's by up to {gap[worst]:.3f} (at r = {grid[worst]:.2f})"
            if gap[worst] > 0
            else ""
        )
        out.append(
            f"sigma = {ctx.sigma:g}, radius mode: ACR {a_ours:.4f} against Cohen's {a_cohen:.4f} "
            f"({a_ours / a_cohen:.3f}) at {_fmt(evaluations(ours).mean())} evaluations per image{where}. "
            f"An anytime-valid bound pays for its validity at every sample, and near the top of the "
            f"curve a radius needs samples: there the fixed-n bound on all {res.cap:,} samples is tighter."
        )
    abstain = lambda certs: np.mean([c.decision == ABSTAINED for c in certs])
    if abstain(ours) > abstain(cohen_certs):
        out.append(
            f"sigma = {ctx.sigma:g}, radius mode: abstains on {abstain(ours):.3f} of the images against "
            f"Cohen's {abstain(cohen_certs):.3f}, so certified accuracy at r = 0 is "
            f"{certified_at(ours, 0)[0]:.3f} against {certified_at(cohen_certs, 0)[0]:.3f}: with p near "
            f"1/2 the stopping rule sees no radius worth the rest of the budget and stops below 1/2."
        )
    for e in others:
        if (e.label, res.cap) in res.radius and acr(res.radius[e.label, res.cap]) > a_ours:
            out.append(
                f"sigma = {ctx.sigma:g}, radius mode: {e.label} reaches a larger ACR "
                f"({acr(res.radius[e.label, res.cap]):.4f} against our {a_ours:.4f})."
            )
    return out


def replay_report(results: list[SigmaResult], entries=ENTRIES) -> str:
    """The deterministic part of the report: every replay table (no timings)."""
    lines = headline_table(results, entries)
    lines += ["", "## Where haltfast loses", ""]
    lost = [s for res in results for s in losses(res, entries)]
    lines += [f"- {s}" for s in lost] or ["- Nowhere in these tables."]
    for res in results:
        lines += sigma_section(res, entries)
    return "\n".join(lines)


def headline_table(results: list[SigmaResult], entries) -> list[str]:
    """Mean evaluations (certified accuracy) of every method at every decision radius of every sigma."""
    lines = [
        "## Headline",
        "",
        "Decision at a required radius: mean model evaluations per image (certified accuracy), "
        "every evaluation counted.",
        "",
        "| sigma | r | " + " | ".join([COHEN] + [e.label for e in entries] + ["Wald's limit"]) + " |",
        "|---|---|" + "---|" * (len(entries) + 2),
    ]
    for res in results:
        cohen_certs = res.cohen_n[max(res.cohen_n)]
        for r in res.radii:
            cells = [f"{_fmt(evaluations(cohen_certs).mean())} ({certified_at(cohen_certs, r)[0]:.3f})"]
            cells += [
                f"{_fmt(evaluations(res.decision[e.label, r]).mean())} "
                f"({certified_at(res.decision[e.label, r], r)[0]:.3f})"
                for e in entries
            ]
            cells.append(_fmt(res.wald[r].mean()))
            lines.append(f"| {res.ctx.sigma:g} | {r:g} | " + " | ".join(cells) + " |")
    return lines


def sigma_section(res: SigmaResult, entries) -> list[str]:
    """One recording's section: decisions, radius mode, spending, grid mode and the budget frontier."""
    ctx = res.ctx
    m = ctx.meta
    assert res.grid is not None  # run_replays runs grid mode on every recording
    return [
        "",
        f"## sigma = {ctx.sigma:g}",
        "",
        f"Recording `{m['recording']}`: {ctx.size} images (Fashion-MNIST {m['split']}, every "
        f"{m['skip']}th), model {m['model']} (sha256 {m['weights_sha256'][:12]}), noise seed {m['seed']}, "
        f"{m['length']:,} labels per image.",
        "",
        "### Decision at a required radius",
        "",
        f"Radii that no method can certify with {res.cap:,} samples (above "
        f"{max_certifiable_radius(res.cap, ctx.alpha, ctx.sigma):.3f}) are left out. 'Cohen / mean': Cohen's "
        f"evaluations per image divided by the method's; 'mean / Wald limit': the method's mean over the "
        f"mean of the per-image Wald limits.",
        "",
        *decision_table(res, entries),
        "",
        "### Radius estimation",
        "",
        "Certified accuracy at each radius of the grid, average certified radius (ACR), abstain rate; "
        f"per-input budget {res.cap:,} tested samples. Horvath et al. define no radius estimation. Radius "
        "mode is for an input's own largest certified radius when no radius is required (one input, or "
        "a radius per input to inspect); for the table papers publish, grid mode below certifies every "
        "radius of a grid in one run at a fraction of the cost. A radius needs samples: at equal mean "
        "evaluations radius mode is level with fixed-n Clopper-Pearson (the budget frontier at the end "
        "of this section), not better. ACR is a secondary figure: it rewards the budget more than the "
        "method.",
        "",
        *radius_table(res, entries),
        *[line for spending in res.spending for line in spending_section(spending, ctx.sigma)],
        "",
        *grid_section(res.grid, res.cohen_n[res.cap], cohen_label(res.cap), res.cap),
        "",
        "### Budget frontier: ACR (fraction of Cohen's) at mean evaluations per image",
        "",
        "Cohen's procedure with n tested samples against the anytime methods capped at n tested samples "
        "per input (tolerance 0.01).",
        "",
        *frontier_table(res, entries),
    ]


def methods_text(entries=ENTRIES) -> str:
    return "\n".join(
        [
            "Methods (every one replays the same recorded noise draws; every model evaluation is counted):",
            "",
            f"- **{COHEN}**: 100 pilot samples choose the class, 100,000 fresh samples give a one-sided "
            "Clopper-Pearson bound. In decision mode it certifies r when its radius is >= r; its fixed-n column "
            "of the frontier uses n tested samples.",
            "- **Horvath et al. 2022 adaptive sampling**: stages of 1,000, 10,000 and 89,000 fresh samples (the "
            "paper's 125,000 cut to the 100,000 budget), Clopper-Pearson at alpha/3, futility at beta = 1e-4. "
            "Decision only.",
            "- **Voracek 2024 union-bound CS**: Clopper-Pearson bounds at geometric checkpoints with alpha_j summing "
            "to alpha; certify when the lower bound exceeds Phi(r/sigma), stop when the upper bound falls below it.",
            "- **Voracek 2024 betting CS**: the Krichevsky-Trofimov bet, i.e. the untruncated Beta(1/2, 1/2) "
            "mixture, with the public code's threshold 1/(2 alpha) (valid for p >= 0.5008, see docs/certification.md).",
            f"- **{OURS}**: the truncated Beta(1/2, 1/2) mixture E-process (decision) and confidence sequence "
            "(radius mode, stopping when the rest of the budget would add less than 0.01 to the radius), "
            "chunks shared across inputs.",
            "- **haltfast, Cohen's 100-sample pilot**: 100 noisy samples choose the class (counted) and give the "
            "prior, their Jeffreys posterior; the tested stream starts after them.",
            *(
                [
                    f"- **{CALIBRATED}**: each image's Beta prior predicted from its clean logits by the model's "
                    "calibrated meta-learner (`haltfast calibrate`, docs/meta-learner.md), hedged: the learned "
                    f"prior's test at {HEDGE:g} alpha beside a Jeffreys test at {1 - HEDGE:.2g} alpha."
                ]
                if CALIBRATED in {e.label for e in entries}
                else []
            ),
            *(
                [
                    f"- **{ONLINE}**: the online meta-learner (`--prior online`, docs/meta-learner.md): the run "
                    "starts its images in waves and learns each one's prior from the images started before it "
                    "(empirical Bayes on the clean logit gap, the prior of least expected stopping time), hedged "
                    "the same way; no calibration, nothing spent before the run. The report replays the images "
                    "in their recorded order."
                ]
                if ONLINE in {e.label for e in entries}
                else []
            ),
            *(
                [f"- **{META}**: the same, its first wave's priors from the calibrated meta-learner (`--prior meta`)."]
                if META in {e.label for e in entries}
                else []
            ),
            "- **haltfast + oracle prior**: the same with the prior Beta(hits + 1/2, misses + 1/2) of each image's "
            "whole recorded stream. The prior is read off the tested stream, so this row is a yardstick for a "
            "perfect meta-learner, not a valid method.",
            "- **Wald's limit**: per image, Wald's lower bound on the expected samples of any level-alpha "
            "sequential test at its p (miss rate alpha), capped at 100,000, plus 1 for class selection.",
            "",
            "All anytime methods and Horvath's select the class by the clean prediction (1 evaluation); the baselines "
            "(union-bound, betting) stop in radius mode by the same rule as ours so the comparison is like for like "
            "(Voracek stops at a target width instead).",
        ]
    )
