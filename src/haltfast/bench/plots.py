"""The bench's plots: PNG figures a reader understands at a glance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..certificate import CERTIFIED
from ..certificate import max_certifiable_radius
from ..certificate import p_for_radius
from ..statistics import log_beta_mixture_evalue
from .run import COHEN
from .run import ENTRIES
from .run import N0
from .run import OURS
from .run import SigmaResult
from .run import acr
from .run import certified_at
from .run import evaluations


def make_plots(results: list[SigmaResult], directory: Path, entries=ENTRIES) -> list[str]:
    """Write the four PNG figures; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    colors = dict(zip([COHEN] + [e.label for e in entries], plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    k = len(results)
    names = []

    fig, axes = plt.subplots(1, k, figsize=(5 * k, 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        r_top = max_certifiable_radius(res.cap, res.ctx.alpha, res.ctx.sigma)
        grid = np.linspace(0, r_top, 300)
        ax.plot(grid, certified_at(res.cohen_n[res.cap], grid), label=COHEN, color=colors[COHEN], lw=2.5, alpha=0.6)
        for e in entries:
            if (e.label, res.cap) in res.radius:
                ax.plot(grid, certified_at(res.radius[e.label, res.cap], grid), label=e.label, color=colors[e.label])
            elif not e.radius_mode:
                ax.plot(
                    res.radii,
                    [certified_at(res.decision[e.label, r], r)[0] for r in res.radii],
                    "o",
                    label=e.label + " (decision)",
                    color=colors[e.label],
                )
        ax.set(title=f"sigma = {res.ctx.sigma:g}", xlabel="radius", ylabel="certified accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    names.append(_save(fig, directory / "certified-accuracy.png"))

    fig, axes = plt.subplots(1, k, figsize=(5 * k, 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        r = 0.5 if 0.5 in res.radii else res.radii[0]
        for e in entries:
            ev = np.sort(evaluations(res.decision[e.label, r]))
            ax.step(ev, np.arange(1, ev.size + 1) / ev.size, where="post", label=e.label, color=colors[e.label])
        w = np.sort(res.wald[r])
        ax.step(w, np.arange(1, w.size + 1) / w.size, where="post", label="Wald's limit", color="k", ls=":")
        ax.axvline(N0 + res.cap, color=colors[COHEN], lw=2.5, alpha=0.6, label=COHEN)
        ax.set(
            xscale="log",
            title=f"sigma = {res.ctx.sigma:g}, decision at r = {r:g}",
            xlabel="model evaluations per image",
            ylabel="fraction of images (ECDF)",
        )
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    names.append(_save(fig, directory / "evaluations.png"))

    names.append(_trajectories(results[0], directory / "e-process-trajectories.png", plt))

    fig, axes = plt.subplots(1, k, figsize=(5 * k, 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        caps = sorted(res.cohen_n)
        ax.plot(
            [evaluations(res.cohen_n[c]).mean() for c in caps],
            [acr(res.cohen_n[c]) for c in caps],
            "o-",
            label="fixed-n Clopper-Pearson (Cohen)",
            color=colors[COHEN],
        )
        for e in entries:
            pts = sorted((evaluations(c).mean(), acr(c)) for (label, _), c in res.radius.items() if label == e.label)
            if pts:
                ax.plot(
                    *zip(*pts),
                    "s-" if len(pts) > 1 else "*",
                    label=e.label,
                    color=colors[e.label],
                    ms=5 if len(pts) > 1 else 12,
                )
        ax.set(
            xscale="log",
            title=f"sigma = {res.ctx.sigma:g}",
            xlabel="mean model evaluations per image",
            ylabel="average certified radius",
        )
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    names.append(_save(fig, directory / "budget-frontier.png"))
    return names


def _trajectories(res: SigmaResult, path: Path, plt) -> str:
    """log E_t of haltfast's E-process (Jeffreys prior) on four recorded streams of different difficulty."""
    ctx = res.ctx
    r = 0.5 if 0.5 in res.radii else res.radii[0]
    p0 = p_for_radius(r, ctx.sigma)
    clean = ctx.streams.clean_predictions
    correct = np.array([c == y for c, y in zip(clean, ctx.meta["labels"])])
    picks = []
    for target in (1.0, p0 + 0.8 * (1 - p0), p0 + 0.35 * (1 - p0), p0 - 0.5 * (1 - p0)):
        cand = [i for i in np.argsort(np.abs(ctx.p_hat - target)) if correct[i] and i not in picks]
        if cand:
            picks.append(int(cand[0]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    threshold = math.log(1 / ctx.alpha)
    ours = res.decision[OURS, r]
    for i in picks:
        hits = ctx.streams.streams[i] == clean[i]
        t_end = min(hits.size, max(int(ours[i].extra.get("tested", 0)) * 2, 2000))
        t = np.unique(np.geomspace(1, t_end, 400).astype(int))
        log_e = log_beta_mixture_evalue(np.cumsum(hits)[t - 1], t, p0, 0.5, 0.5)
        (line,) = ax.plot(
            t,
            log_e,
            label=f"image {ctx.meta['indices'][i]}: p = {ctx.p_hat[i]:.4f} -> "
            f"{ours[i].decision} after {ours[i].evaluations:,} evaluations",
        )
        stop = ours[i].extra.get("stopped_at")
        if ours[i].decision == CERTIFIED and stop:
            ax.plot(
                [stop],
                [log_beta_mixture_evalue(np.cumsum(hits)[stop - 1], stop, p0, 0.5, 0.5)],
                "o",
                color=line.get_color(),
            )
    ax.axhline(threshold, color="k", ls="--", label=f"log(1/alpha) = {threshold:.2f}")
    ax.set(
        xscale="log",
        xlabel="tested samples t",
        ylabel="log E_t",
        title=f"E-process trajectories, sigma = {ctx.sigma:g}, r = {r:g} (p0 = {p0:.4f}), Jeffreys prior",
    )
    ax.set_ylim(bottom=max(ax.get_ylim()[0], -15))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path.name
