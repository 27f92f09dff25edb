"""The bench's plots: PNG figures a reader understands at a glance.

Each figure has one panel per sigma and one legend below the panels (never over the data); every method
keeps one colour, line style and marker across figures, so lines that coincide stay distinguishable.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..certificate import CERTIFIED
from ..certificate import max_certifiable_radius
from ..certificate import p_for_radius
from ..statistics import log_beta_mixture_evalue
from .replays import SigmaResult
from .run import COHEN
from .run import ENTRIES
from .run import N0
from .run import OURS
from .run import acr
from .run import certified_at
from .run import cohen_label
from .run import evaluations

LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def make_plots(results: list[SigmaResult], directory: Path, entries=ENTRIES) -> list[str]:
    """Write the five PNG figures; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    styles = _styles([COHEN] + [e.label for e in entries])
    return [
        certified_accuracy_figure(results, directory / "certified-accuracy.png", entries, styles),
        evaluations_figure(results, directory / "evaluations.png", entries, styles),
        trajectories_figure(results[0], directory / "e-process-trajectories.png"),
        frontier_figure(results, directory / "budget-frontier.png", entries, styles),
        spending_figure(results, directory / "spending.png"),
    ]


def certified_accuracy_figure(results, path: Path, entries, styles) -> str:
    """Certified accuracy against radius in radius mode (decision-only methods as points at their radii)."""
    fig, axes = _panels(len(results))
    for ax, res in zip(axes, results):
        grid = np.linspace(0, max_certifiable_radius(res.cap, res.ctx.alpha, res.ctx.sigma), 300)
        ax.plot(
            grid,
            certified_at(res.cohen_n[res.cap], grid),
            label=cohen_label(res.cap),
            lw=2.5,
            alpha=0.5,
            **_line(styles[COHEN]),
        )
        for e in entries:
            if (e.label, res.cap) in res.radius:
                ax.plot(
                    grid,
                    certified_at(res.radius[e.label, res.cap], grid),
                    label=e.label,
                    markevery=30,
                    **_line(styles[e.label]),
                )
            elif not e.radius_mode:
                acc = [certified_at(res.decision[e.label, r], r)[0] for r in res.radii]
                ax.plot(res.radii, acc, ls="none", label=f"{e.label} (decision)", **_marker(styles[e.label]))
        _label(ax, f"sigma = {res.ctx.sigma:g}", "radius", "certified accuracy")
    return _finish(fig, axes, path)


def evaluations_figure(results, path: Path, entries, styles) -> str:
    """The distribution (ECDF) of each method's evaluations per image when deciding at r = 0.5."""
    fig, axes = _panels(len(results))
    for ax, res in zip(axes, results):
        r = 0.5 if 0.5 in res.radii else res.radii[0]
        for e in entries:
            ev = np.sort(evaluations(res.decision[e.label, r]))
            ax.step(ev, np.arange(1, ev.size + 1) / ev.size, where="post", label=e.label, **_line(styles[e.label]))
        w = np.sort(res.wald[r])
        ax.step(w, np.arange(1, w.size + 1) / w.size, where="post", label="Wald's limit", color="k", ls=":")
        ax.axvline(N0 + res.cap, lw=2.5, alpha=0.5, label=cohen_label(res.cap), color=styles[COHEN][0])
        ax.set_xscale("log")
        _label(
            ax,
            f"sigma = {res.ctx.sigma:g}, decision at r = {r:g}",
            "model evaluations per image",
            "fraction of images (ECDF)",
        )
    return _finish(fig, axes, path)


def frontier_figure(results, path: Path, entries, styles) -> str:
    """Average certified radius against mean evaluations: fixed-n Clopper-Pearson against each method's caps."""
    fig, axes = _panels(len(results))
    for ax, res in zip(axes, results):
        caps = sorted(res.cohen_n)
        ax.plot(
            [evaluations(res.cohen_n[c]).mean() for c in caps],
            [acr(res.cohen_n[c]) for c in caps],
            label="fixed-n Clopper-Pearson (Cohen)",
            **_line_and_marker(styles[COHEN]),
        )
        for e in entries:
            pts = sorted((evaluations(c).mean(), acr(c)) for (label, _), c in res.radius.items() if label == e.label)
            if pts:
                ax.plot(*zip(*pts), label=e.label, **_line_and_marker(styles[e.label]))
        ax.set_xscale("log")
        _label(ax, f"sigma = {res.ctx.sigma:g}", "mean model evaluations per image", "average certified radius")
    return _finish(fig, axes, path)


def spending_figure(results, path: Path) -> str:
    """Points of certified accuracy lost against Cohen against mean evaluations (calibration amortized), per
    spending rule and prior, with the oracle allocation: one panel per sigma and radius."""
    from .spending import RULE_KINDS
    from .spending import amortized
    from .spending import loss_points

    panels = [(res, sp) for res in results for sp in res.spending]
    fig, axes = _panels(max(len(panels), 1), width=4.2)
    families = sorted({p.family for _, sp in panels for p in sp.points})
    styles = _styles([f"{f}, {kind}" for f in families for kind in RULE_KINDS])
    for ax, (res, sp) in zip(axes, panels):
        for family in families:
            for kind in RULE_KINDS:
                pts = sorted(
                    (amortized(p), loss_points(sp, p))
                    for p in sp.points
                    if p.family == family and p.rule.startswith(kind)
                )
                if pts:
                    label = f"{family}, {kind}"
                    ax.plot(*zip(*pts), label=label, **_line_and_marker(styles[label]))
        if sp.oracle:
            ax.plot(
                [m for _, m in sp.oracle], [loss for loss, _ in sp.oracle], "k:", label="oracle allocation (a bound)"
            )
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(-0.5, 10)
        _label(
            ax,
            f"sigma = {res.ctx.sigma:g}, decisions at r = {sp.radius:g}",
            "mean evaluations per image (calibration amortized)",
            "points lost against Cohen",
        )
    return _finish(fig, axes, path)


def trajectories_figure(res: SigmaResult, path: Path) -> str:
    """log E_t of haltfast's E-process (Jeffreys prior) on four recorded streams of different difficulty."""
    ctx = res.ctx
    r = 0.5 if 0.5 in res.radii else res.radii[0]
    p0 = p_for_radius(r, ctx.sigma)
    fig, axes = _panels(1, width=8)
    ax = axes[0]
    ours = res.decision[OURS, r]
    assert ctx.streams.clean_predictions is not None  # the bench's recordings hold clean predictions
    for k, i in enumerate(_trajectory_picks(ctx, p0)):
        hits = np.cumsum(ctx.streams.streams[i] == ctx.streams.clean_predictions[i])
        t = np.unique(np.geomspace(1, min(hits.size, max(int(ours[i].extra.get("tested", 0)) * 2, 2000)), 400))
        t = t.astype(int)
        (line,) = ax.plot(
            t,
            log_beta_mixture_evalue(hits[t - 1], t, p0, 0.5, 0.5),
            ls=LINE_STYLES[k % 4],
            label=f"image {ctx.meta['indices'][i]}: p = {ctx.p_hat[i]:.4f}: {ours[i].decision} "
            f"after {ours[i].evaluations:,} evaluations",
        )
        stop = ours[i].extra.get("stopped_at")
        if ours[i].decision == CERTIFIED and stop:
            ax.plot([stop], [log_beta_mixture_evalue(hits[stop - 1], stop, p0, 0.5, 0.5)], "o", color=line.get_color())
    threshold = math.log(1 / ctx.alpha)
    ax.axhline(threshold, color="k", ls="--", label=f"certification threshold log(1/alpha) = {threshold:.2f}")
    ax.set_xscale("log")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], -15))
    _label(
        ax,
        f"E-process trajectories, sigma = {ctx.sigma:g}, r = {r:g} (p0 = {p0:.4f}), Jeffreys prior",
        "tested samples t",
        "log E_t",
    )
    return _finish(fig, axes, path)


def _trajectory_picks(ctx, p0: float) -> list[int]:
    """Correctly classified images whose p is nearest 1, well above p0, just above it, and below it."""
    correct = ctx.streams.clean_predictions == np.asarray(ctx.meta["labels"])
    picks: list[int] = []
    for target in (1.0, p0 + 0.8 * (1 - p0), p0 + 0.35 * (1 - p0), p0 - 0.5 * (1 - p0)):
        cand = [i for i in np.argsort(np.abs(ctx.p_hat - target)) if correct[i] and i not in picks]
        if cand:
            picks.append(int(cand[0]))
    return picks


def _styles(labels: list[str]) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, marker) per label: no two methods share all three."""
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {
        label: (colors[k % len(colors)], LINE_STYLES[k % len(LINE_STYLES)], MARKERS[k % len(MARKERS)])
        for k, label in enumerate(labels)
    }


def _line(style) -> dict:
    return {"color": style[0], "ls": style[1]}


def _marker(style) -> dict:
    return {"color": style[0], "marker": style[2], "ms": 5}


def _line_and_marker(style) -> dict:
    return {**_line(style), **_marker(style)}


def _panels(k: int, width: float = 5.0):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, k, figsize=(width * k, 4.2), squeeze=False)
    return fig, list(axes[0])


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _finish(fig, axes, path: Path) -> str:
    """One legend for all panels, below them, then save the figure."""
    import matplotlib.pyplot as plt

    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    columns = 2 if len(axes) > 1 else 1
    fig.legend(
        [handles[label] for label in labels],
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=columns,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return path.name
