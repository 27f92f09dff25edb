"""`haltfast bench`: every method on the same recorded noise draws, a live wall-clock run, a report with plots.

The evaluation protocol (DESIGN sec. 4): per sigma, one recording of each evaluation image's
stream of noisy predictions (`haltfast record`), replayed by every method, so that all methods see
identical noise; the replay tables are deterministic (no timings). A live run of the same methods
on a few images, side by side in one process, gives wall-clock ratios to Cohen.

A method is one `Entry` of ENTRIES: a label, a `run_method` name and its options (which may depend
on the recording, as the oracle prior does). Adding a row is one line.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .certificate import Certificate, max_certifiable_radius, p_for_radius
from .errors import HaltfastError
from .recording import load_recording
from .methods import run_method
from .streams import RecordedStreams
from .statistics import log_beta_mixture_evalue, wald_expected_samples

N0, N = 100, 100_000                      # Cohen's selection and estimation samples
DECISION_RADII = (0.25, 0.5, 0.75, 1.0)
RADIUS_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
CAPS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)   # budget frontier: per-input caps / Cohen's n
DECISION_CAPS = (500, 1_000, 2_000, 5_000, 10_000, 20_000)        # the capped trade-off of decisions at r = 0.5
COHEN = "Cohen et al. 2019 (n0 = 100, n = 100,000)"
OURS = "haltfast (Jeffreys prior, no meta-learner)"


@dataclass
class Context:
    """One recording and what the methods may derive from it."""

    streams: RecordedStreams
    meta: dict
    alpha: float
    p_hat: np.ndarray = field(init=False)   # each image's p for its clean-predicted class, from its whole stream
    learner: object = None                  # the model's MetaLearner, when it has one

    def __post_init__(self):
        clean = self.streams.clean_predictions
        self.p_hat = np.array([np.mean(s == c) for s, c in zip(self.streams.streams, clean)])

    @property
    def sigma(self) -> float:
        return float(self.meta["sigma"])

    @property
    def size(self) -> int:
        return len(self.meta["indices"])


def oracle_prior(ctx: Context) -> dict:
    """Beta(hits + 1/2, misses + 1/2) of each image's whole recorded stream (meta.oracle_prior).

    An oracle, not a method: the prior is read off the very stream that is then tested, so its
    certificates carry no guarantee. It shows what a perfect meta-learner could reach.
    """
    from .meta import oracle_prior as posterior_of_whole_stream

    return {"prior": posterior_of_whole_stream(ctx.streams)}


def meta_prior(ctx: Context) -> dict:
    """The recording model's meta-learner (hash-checked), as `haltfast certify` uses it by default."""
    return {"prior": ctx.learner}


def pilot_only(ctx: Context) -> dict:
    """Cohen's 100-sample pilot for class selection, its Jeffreys posterior as the prior (no meta-learner)."""
    return {"prior": "pilot", "selection": "pilot"}


@dataclass(frozen=True)
class Entry:
    label: str
    method: str
    options: Callable[[Context], dict] = lambda ctx: {}
    radius_mode: bool = True
    oracle: bool = False     # reads the tested stream: a yardstick, not a method (never run live)
    frontier: bool = True    # run radius mode at every cap of the budget frontier
    meta: bool = False       # needs the model's meta-learner


META = "haltfast (meta-learner prior, the default)"
ENTRIES = (
    Entry("Horvath et al. 2022 adaptive sampling", "horvath", radius_mode=False),
    Entry("Voracek 2024 union-bound CS", "union-bound"),
    Entry("Voracek 2024 betting CS", "betting"),
    Entry("haltfast, Cohen's 100-sample pilot (selection + pilot prior)", "anytime", pilot_only, frontier=False),
    Entry(OURS, "anytime"),
    Entry(META, "anytime", meta_prior, meta=True),
    Entry("haltfast + oracle prior (not a method: a bound)", "anytime", oracle_prior, oracle=True),
)


def replay(ctx: Context, entry: Entry, radius: float | None, max_samples: int = N) -> list[Certificate]:
    """One method on a fresh copy of the recording (clean-prediction class selection, counted)."""
    return run_method(entry.method, ctx.streams.rewound(), range(ctx.size), sigma=ctx.sigma, n0=N0, n=N,
                      alpha=ctx.alpha, labels=ctx.meta["labels"], indices=ctx.meta["indices"], radius=radius,
                      max_samples=max_samples, **entry.options(ctx))


def cohen(ctx: Context, n: int = N) -> list[Certificate]:
    return run_method("cohen", ctx.streams.rewound(), range(ctx.size), sigma=ctx.sigma, n0=N0, n=n, alpha=ctx.alpha,
                      labels=ctx.meta["labels"], indices=ctx.meta["indices"])


def wald_limit(ctx: Context, radius: float, cap: int = N) -> np.ndarray:
    """Per image: Wald's lower bound on E[samples] at its p (miss rate alpha), capped, +1 for class selection."""
    p0 = p_for_radius(radius, ctx.sigma)
    return np.minimum(wald_expected_samples(ctx.p_hat, p0, ctx.alpha, ctx.alpha), cap) + 1


def evaluations(certs: list[Certificate]) -> np.ndarray:
    return np.array([c.evaluations for c in certs], dtype=float)


def certified_at(certs: list[Certificate], radii) -> np.ndarray:
    """Fraction of images certified, correct, at radius >= r, for each r."""
    radius = np.array([c.radius if c.decision == "certified" and c.correct else -1.0 for c in certs])
    return np.array([np.mean(radius >= r) for r in np.atleast_1d(radii)])


def acr(certs: list[Certificate]) -> float:
    return float(np.mean([c.radius if c.decision == "certified" and c.correct else 0.0 for c in certs]))


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def _ratio(x: float) -> str:
    return f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


@dataclass
class SigmaResult:
    """Everything the report and the plots need for one recording."""

    ctx: Context
    decision: dict = field(default_factory=dict)     # (label, r) -> certs
    radius: dict = field(default_factory=dict)       # (label, cap) -> certs
    cohen_n: dict = field(default_factory=dict)      # n -> certs
    wald: dict = field(default_factory=dict)         # r -> per-image limit
    radii: tuple = ()
    cap: int = N                                     # per-input budget: Cohen's n, every method's max_samples
    capped: dict = field(default_factory=dict)       # (label, cap) -> certs of decisions at r = 0.5


def run_replays(ctx: Context, entries=ENTRIES, caps=CAPS, log=print) -> SigmaResult:
    """All replayed runs of one recording: decision at each certifiable radius, radius mode, budget frontier."""
    res = SigmaResult(ctx)
    cap_full = res.cap = min(N, min(len(s) for s in ctx.streams.streams) - N0)
    r_max = max_certifiable_radius(cap_full, ctx.alpha, ctx.sigma)
    res.radii = tuple(r for r in DECISION_RADII if r < r_max)
    for n in caps:
        if n <= cap_full:
            res.cohen_n[n] = cohen(ctx, n)
    for r in res.radii:
        res.wald[r] = wald_limit(ctx, r, cap_full)
        for e in entries:
            start = time.perf_counter()
            res.decision[e.label, r] = replay(ctx, e, r, cap_full)
            log(f"  sigma={ctx.sigma:g} r={r:g} {e.label}: {time.perf_counter() - start:.1f} s")
    if 0.5 in res.radii:  # the capped trade-off: fewer evaluations for a little certified accuracy
        for e in entries:
            if e.method == "anytime" and e.frontier and not e.oracle:
                for cap in DECISION_CAPS:
                    if cap < cap_full:
                        res.capped[e.label, cap] = replay(ctx, e, 0.5, cap)
    for e in entries:
        if not e.radius_mode:
            continue
        # the budget frontier: baselines and ours at every cap; the oracle only at the full budget
        for cap in (caps if e.frontier and not e.oracle else (cap_full,)):
            if cap <= cap_full:
                start = time.perf_counter()
                res.radius[e.label, cap] = replay(ctx, e, None, cap)
                log(f"  sigma={ctx.sigma:g} radius mode, cap {cap:,}, {e.label}: {time.perf_counter() - start:.1f} s")
    return res


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def decision_table(res: SigmaResult, entries=ENTRIES) -> list[str]:
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    cohen_evals = evaluations(cohen_certs).mean()
    lines = ["| r | method | cert. acc. | mean evals | median evals | Cohen / mean | mean / Wald limit | "
             "not cert. | undecided |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res.radii:
        wald = res.wald[r].mean()
        lines.append(f"| {r:g} | {COHEN} | {certified_at(cohen_certs, r)[0]:.3f} | {_fmt(cohen_evals)} | "
                     f"{_fmt(cohen_evals)} | 1.0x | {cohen_evals / wald:.1f} | | |")
        for e in entries:
            certs = res.decision[e.label, r]
            ev = evaluations(certs)
            count = lambda d: sum(c.decision == d for c in certs)
            lines.append(f"| {r:g} | {e.label} | {certified_at(certs, r)[0]:.3f} | {_fmt(ev.mean())} | "
                         f"{_fmt(np.median(ev))} | {_ratio(cohen_evals / ev.mean())} | {ev.mean() / wald:.2f} | "
                         f"{count('not certified')} | {count('undecided')} |")
        lines.append(f"| {r:g} | Wald's limit (p known per image, miss rate alpha) | | {_fmt(wald)} | "
                     f"{_fmt(np.median(res.wald[r]))} | {_ratio(cohen_evals / wald)} | 1.00 | | |")
    return lines


def radius_table(res: SigmaResult, entries=ENTRIES) -> list[str]:
    ctx = res.ctx
    grid = [r for r in RADIUS_GRID if r < max_certifiable_radius(res.cap, ctx.alpha, ctx.sigma)]
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    cohen_evals = evaluations(cohen_certs).mean()
    rows = [(COHEN, cohen_certs)] + [(e.label, res.radius[e.label, res.cap]) for e in entries if (e.label, res.cap) in res.radius]
    lines = ["| method | " + " | ".join(f"r = {r:g}" for r in grid) + " | ACR | abstain | mean evals | "
             "median evals | Cohen / mean |", "|---|" + "---|" * (len(grid) + 5)]
    for label, certs in rows:
        ev = evaluations(certs)
        abstain = np.mean([c.decision == "abstain" for c in certs])
        lines.append(f"| {label} | " + " | ".join(f"{a:.3f}" for a in certified_at(certs, grid)) +
                     f" | {acr(certs):.4f} | {abstain:.3f} | {_fmt(ev.mean())} | {_fmt(np.median(ev))} | "
                     f"{_ratio(cohen_evals / ev.mean())} |")
    return lines


def frontier_table(res: SigmaResult, entries=ENTRIES) -> list[str]:
    caps = sorted(res.cohen_n)
    acr_cohen = acr(res.cohen_n[max(caps)])
    labels = [e.label for e in entries if e.radius_mode and e.frontier and not e.oracle]
    lines = ["| cap n | fixed-n Clopper-Pearson (Cohen) | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for cap in caps:
        cells = [res.cohen_n[cap]] + [res.radius.get((label, cap)) for label in labels]
        lines.append(f"| {cap:,} | " + " | ".join(
            "" if c is None else f"{acr(c):.4f} ({acr(c) / acr_cohen:.3f}) at {_fmt(evaluations(c).mean())}"
            for c in cells) + " |")
    return lines


def capped_table(res: SigmaResult) -> list[str]:
    """Decisions at r = 0.5 with a per-input cap: certified accuracy lost against Cohen, evaluations saved."""
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    acc_cohen, cohen_evals = certified_at(cohen_certs, 0.5)[0], evaluations(cohen_certs).mean()
    lines = ["| cap | method | cert. acc. | loss against Cohen (points) | mean evals | Cohen / mean |",
             "|---|---|---|---|---|---|"]
    for (label, cap), certs in sorted(res.capped.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        acc, ev = certified_at(certs, 0.5)[0], evaluations(certs).mean()
        lines.append(f"| {cap:,} | {label} | {acc:.3f} | {100 * (acc_cohen - acc):.1f} | {_fmt(ev)} | "
                     f"{_ratio(cohen_evals / ev)} |")
    return lines


def losses(res: SigmaResult, entries=ENTRIES) -> list[str]:
    """Plain statements of where haltfast's default (the meta-learner prior, else Jeffreys) does worse than a
    baseline or than Cohen."""
    out = []
    ctx = res.ctx
    OURS = META if any(e.meta for e in entries) else globals()["OURS"]
    others = [e for e in entries if e.label != OURS and not e.oracle and e.method != "anytime"]
    cohen_certs = res.cohen_n[max(res.cohen_n)]
    for r in res.radii:
        ours = res.decision[OURS, r]
        acc, ev = certified_at(ours, r)[0], evaluations(ours).mean()
        for e in others:
            theirs = res.decision[e.label, r]
            if evaluations(theirs).mean() < ev:
                out.append(f"sigma = {ctx.sigma:g}, r = {r:g}: {e.label} needs fewer evaluations "
                           f"({_fmt(evaluations(theirs).mean())} against our {_fmt(ev)}).")
            if certified_at(theirs, r)[0] > acc:
                out.append(f"sigma = {ctx.sigma:g}, r = {r:g}: {e.label} certifies more "
                           f"({certified_at(theirs, r)[0]:.3f} against our {acc:.3f}).")
        if certified_at(cohen_certs, r)[0] > acc:
            out.append(f"sigma = {ctx.sigma:g}, r = {r:g}: Cohen's fixed n = {res.cap:,} certifies "
                       f"{certified_at(cohen_certs, r)[0]:.3f} against our {acc:.3f} (inputs whose p lies so close "
                       f"to Phi(r/sigma) that {res.cap:,} samples decide them but the sequential test stays undecided "
                       f"or gives up).")
    if (OURS, res.cap) in res.radius:
        ours = res.radius[OURS, res.cap]
        a_ours, a_cohen = acr(ours), acr(cohen_certs)
        if a_ours < a_cohen:
            grid = np.linspace(0, max_certifiable_radius(res.cap, ctx.alpha, ctx.sigma), 400)
            gap = certified_at(cohen_certs, grid) - certified_at(ours, grid)
            worst = int(np.argmax(gap))
            where = (f"; certified accuracy falls short of Cohen's by up to {gap[worst]:.3f} "
                     f"(at r = {grid[worst]:.2f})" if gap[worst] > 0 else "")
            out.append(f"sigma = {ctx.sigma:g}, radius mode: ACR {a_ours:.4f} against Cohen's {a_cohen:.4f} "
                       f"({a_ours / a_cohen:.3f}) at {_fmt(evaluations(ours).mean())} evaluations per image{where}. "
                       f"An anytime-valid bound pays for its validity at every sample, and near the top of the "
                       f"curve a radius needs samples: there the fixed-n bound on all {res.cap:,} samples is tighter.")
        abstain = lambda certs: np.mean([c.decision == "abstain" for c in certs])
        if abstain(ours) > abstain(cohen_certs):
            out.append(f"sigma = {ctx.sigma:g}, radius mode: abstains on {abstain(ours):.3f} of the images against "
                       f"Cohen's {abstain(cohen_certs):.3f}, so certified accuracy at r = 0 is "
                       f"{certified_at(ours, 0)[0]:.3f} against {certified_at(cohen_certs, 0)[0]:.3f}: with p near "
                       f"1/2 the stopping rule sees no radius worth the rest of the budget and stops below 1/2.")
        for e in others:
            if (e.label, res.cap) in res.radius and acr(res.radius[e.label, res.cap]) > a_ours:
                out.append(f"sigma = {ctx.sigma:g}, radius mode: {e.label} reaches a larger ACR "
                           f"({acr(res.radius[e.label, res.cap]):.4f} against our {a_ours:.4f}).")
    return out


def replay_report(results: list[SigmaResult], entries=ENTRIES) -> str:
    """The deterministic part of the report: every replay table (no timings)."""
    lines = ["## Headline", "",
              "Decision at a required radius: mean model evaluations per image (certified accuracy), "
              "every evaluation counted.", "",
              "| sigma | r | " + " | ".join([COHEN] + [e.label for e in entries] + ["Wald's limit"]) + " |",
              "|---|---|" + "---|" * (len(entries) + 2)]
    for res in results:
        cohen_certs = res.cohen_n[max(res.cohen_n)]
        for r in res.radii:
            cells = [f"{_fmt(evaluations(cohen_certs).mean())} ({certified_at(cohen_certs, r)[0]:.3f})"]
            cells += [f"{_fmt(evaluations(res.decision[e.label, r]).mean())} "
                      f"({certified_at(res.decision[e.label, r], r)[0]:.3f})" for e in entries]
            cells.append(_fmt(res.wald[r].mean()))
            lines.append(f"| {res.ctx.sigma:g} | {r:g} | " + " | ".join(cells) + " |")
    lines += ["", "## Where haltfast loses", ""]
    lost = [s for res in results for s in losses(res, entries)]
    lines += [f"- {s}" for s in lost] or ["- Nowhere in these tables."]
    for res in results:
        ctx = res.ctx
        m = ctx.meta
        lines += ["", f"## sigma = {ctx.sigma:g}", "",
                  f"Recording `{m['recording']}`: {ctx.size} images (Fashion-MNIST {m['split']}, every "
                  f"{m['skip']}th), model {m['model']} (sha256 {m['weights_sha256'][:12]}), noise seed {m['seed']}, "
                  f"{m['length']:,} labels per image.", "",
                  "### Decision at a required radius", "",
                  f"Radii that no method can certify with {res.cap:,} samples (above "
                  f"{max_certifiable_radius(res.cap, ctx.alpha, ctx.sigma):.3f}) are left out. 'Cohen / mean': Cohen's "
                  f"evaluations per image divided by the method's; 'mean / Wald limit': the method's mean over the "
                  f"mean of the per-image Wald limits.", "", *decision_table(res, entries),
                  "", "### Radius estimation", "",
                  "Certified accuracy at each radius of the grid, average certified radius (ACR), abstain rate; "
                  f"per-input budget {res.cap:,} tested samples. Horvath et al. define no radius estimation.", "",
                  *radius_table(res, entries),
                  *(["", "### Capped decisions at r = 0.5: the trade-off", "",
                     "Each input stops at the cap (undecided) if its test has not decided by then.", "",
                     *capped_table(res)] if res.capped else []),
                  "", "### Budget frontier: ACR (fraction of Cohen's) at mean evaluations per image", "",
                  "Cohen's procedure with n tested samples against the anytime methods capped at n tested samples "
                  "per input (tolerance 0.01).", "", *frontier_table(res, entries)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Live wall-clock
# ---------------------------------------------------------------------------------------------

def live_runs(ctx: Context, images: int, radius: float = 0.5, entries=ENTRIES) -> tuple[list[dict], bool]:
    """Run Cohen and each method live on the first `images` images of the recording, one after the other.

    Returns one row per run (seconds, mean evaluations) and whether every live run reproduced the
    replay of the same images exactly (same noise seed and keys, so it must).
    """
    from .data import load_dataset
    from .models import load_model, resolve_model_path
    from .smooth import Smooth

    m = ctx.meta
    model, _ = load_model(resolve_model_path(m["model"].removesuffix(".pt")))
    data = load_dataset(m["data"], m["split"]).subset(m["skip"], images)
    if list(data.indices) != list(m["indices"][:len(data)]):
        raise RuntimeError("the data set's images are not the recording's")
    logits = None if ctx.streams.logits is None else ctx.streams.logits[:len(data)]
    sub = Context(RecordedStreams(ctx.streams.streams[:len(data)], ctx.streams.num_classes,
                                  ctx.streams.clean_predictions[:len(data)], logits),
                  {**m, "indices": m["indices"][:len(data)], "labels": m["labels"][:len(data)]}, ctx.alpha)
    sub.learner = ctx.learner
    smooth = Smooth(model, ctx.streams.num_classes, ctx.sigma, seed=m["seed"], batch_size=2000)
    runs = [("Cohen", "radius", "cohen", {"n0": N0, "n": N}, lambda: cohen(sub))]
    for e in entries:
        if e.oracle:
            continue
        runs.append((e.label, f"r = {radius:g}", e.method, {"radius": radius, **e.options(sub)},
                     lambda e=e: replay(sub, e, radius)))
        if e.radius_mode:
            runs.append((e.label, "radius", e.method, {"radius": None, **e.options(sub)},
                         lambda e=e: replay(sub, e, None)))
    rows, identical = [], True
    # decisions, classes and evaluation counts must match exactly; radii to 1e-6: the clean logits that
    # select the class and feed the meta-learner differ in their last float32 bits between batch sizes
    strip = lambda c: (c.index, c.prediction, c.decision, c.evaluations, round(c.radius, 6))
    for label, mode, method, options, replayed in runs:
        start = time.perf_counter()
        certs = smooth.certify_many(data.images, data.labels, keys=data.indices, alpha=ctx.alpha, method=method,
                                    progress=False, **options)
        seconds = time.perf_counter() - start
        identical &= [strip(c) for c in certs] == [strip(c) for c in replayed()]
        rows.append({"label": label, "mode": mode, "seconds": seconds, "evaluations": evaluations(certs).mean(),
                     "images": len(data)})
    return rows, identical


def live_report(live: dict) -> str:
    import torch

    lines = ["## Live wall-clock", "",
             f"The same methods run live (the shipped model on the images themselves, not replayed), one after the "
             f"other in one process with {torch.get_num_threads()} torch threads, on the first images of each "
             f"recording; ratios are Cohen's seconds over the method's. Timings vary with the machine's load; the "
             f"replay tables above do not.", "",
             "| sigma | images | method | task | seconds per image | mean evals | Cohen time / this |",
             "|---|---|---|---|---|---|---|"]
    for sigma, (rows, identical) in live.items():
        base = rows[0]["seconds"]
        for row in rows:
            lines.append(f"| {sigma:g} | {row['images']} | {row['label']} | {row['mode']} | "
                         f"{row['seconds'] / row['images']:.3f} | {_fmt(row['evaluations'])} | "
                         f"{_ratio(base / row['seconds'])} |")
    same = all(identical for _, identical in live.values())
    lines += ["", "Every live run gave the certificates of its replay (same noise seed and keys; same decision, "
              "class and evaluation count, radius to 1e-6, since the clean logits differ in their last float32 "
              f"bits between batch sizes): {'yes' if same else 'NO'}."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------

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
                ax.plot(res.radii, [certified_at(res.decision[e.label, r], r)[0] for r in res.radii], "o",
                        label=e.label + " (decision)", color=colors[e.label])
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
        ax.set(xscale="log", title=f"sigma = {res.ctx.sigma:g}, decision at r = {r:g}",
               xlabel="model evaluations per image", ylabel="fraction of images (ECDF)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    names.append(_save(fig, directory / "evaluations.png"))

    names.append(_trajectories(results[0], directory / "e-process-trajectories.png", plt))

    fig, axes = plt.subplots(1, k, figsize=(5 * k, 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        caps = sorted(res.cohen_n)
        ax.plot([evaluations(res.cohen_n[c]).mean() for c in caps], [acr(res.cohen_n[c]) for c in caps], "o-",
                label="fixed-n Clopper-Pearson (Cohen)", color=colors[COHEN])
        for e in entries:
            pts = sorted((evaluations(c).mean(), acr(c)) for (label, _), c in res.radius.items() if label == e.label)
            if pts:
                ax.plot(*zip(*pts), "s-" if len(pts) > 1 else "*", label=e.label, color=colors[e.label],
                        ms=5 if len(pts) > 1 else 12)
        ax.set(xscale="log", title=f"sigma = {res.ctx.sigma:g}", xlabel="mean model evaluations per image",
               ylabel="average certified radius")
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
        line, = ax.plot(t, log_e, label=f"image {ctx.meta['indices'][i]}: p = {ctx.p_hat[i]:.4f} -> "
                                        f"{ours[i].decision} after {ours[i].evaluations:,} evaluations")
        stop = ours[i].extra.get("stopped_at")
        if ours[i].decision == "certified" and stop:
            ax.plot([stop], [log_beta_mixture_evalue(np.cumsum(hits)[stop - 1], stop, p0, 0.5, 0.5)], "o",
                    color=line.get_color())
    ax.axhline(threshold, color="k", ls="--", label=f"log(1/alpha) = {threshold:.2f}")
    ax.set(xscale="log", xlabel="tested samples t", ylabel="log E_t",
           title=f"E-process trajectories, sigma = {ctx.sigma:g}, r = {r:g} (p0 = {p0:.4f}), Jeffreys prior")
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


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------

def methods_text(entries=ENTRIES) -> str:
    return "\n".join([
        "Methods (every one replays the same recorded noise draws; every model evaluation is counted):", "",
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
        *(["- **haltfast (meta-learner prior, the default)**: each image's Beta prior predicted from its clean "
           "logits by the model's meta-learner (`haltfast calibrate`, docs/meta-learner.md), hedged: the learned "
           "prior's test at 0.9 alpha beside a Jeffreys test at 0.1 alpha."] if any(e.meta for e in entries) else []),
        "- **haltfast + oracle prior**: the same with the prior Beta(hits + 1/2, misses + 1/2) of each image's "
        "whole recorded stream. The prior is read off the tested stream, so this row is a yardstick for a "
        "perfect meta-learner, not a valid method.",
        "- **Wald's limit**: per image, Wald's lower bound on the expected samples of any level-alpha "
        "sequential test at its p (miss rate alpha), capped at 100,000, plus 1 for class selection.",
        "",
        "All anytime methods and Horvath's select the class by the clean prediction (1 evaluation); the baselines "
        "(union-bound, betting) stop in radius mode by the same rule as ours so the comparison is like for like "
        "(Voracek stops at a target width instead).",
    ])


def run_bench(recordings: list[str], max_images: int | None, alpha: float, out: Path | None, plots: Path | None,
              live: int, command: str, log=print) -> str:
    """Run everything and return the report (also written to `out`, with plots under `plots`)."""
    from .provenance import git_commit, provenance

    from .meta import MetaLearner, meta_learner_path
    from .recording import recording_logits, recording_model_path

    commit, start = git_commit(), time.perf_counter()
    loaded = []
    for path in recordings:
        streams, meta = load_recording(path, max_images)
        try:
            learner_path = meta_learner_path(recording_model_path(meta))
            learner = MetaLearner.load(learner_path, meta["weights_sha256"]) if learner_path.is_file() else None
        except HaltfastError:
            learner = None
        if learner is not None:
            streams = RecordedStreams(streams.streams, streams.num_classes, streams.clean_predictions,
                                      recording_logits(meta))
        else:
            log(f"{path}: the model {meta['model']} has no meta-learner (haltfast calibrate makes one)")
        loaded.append((path, streams, meta, learner))
    entries = ENTRIES if all(item[3] is not None for item in loaded) else tuple(e for e in ENTRIES if not e.meta)
    results = []
    for path, streams, meta, learner in loaded:
        log(f"{path}: {len(meta['indices'])} images, sigma = {meta['sigma']}")
        ctx = Context(streams, {**meta, "recording": str(path)}, alpha)
        ctx.learner = learner
        results.append(run_replays(ctx, entries, log=log))
    replay_seconds = time.perf_counter() - start
    sizes = sorted({res.ctx.size for res in results})
    text = ["# Results: haltfast against the published methods", "",
            f"Fashion-MNIST, shipped noise-trained models, sigma in "
            f"{{{', '.join(f'{res.ctx.sigma:g}' for res in results)}}}, alpha = {alpha:g}, "
            f"{' / '.join(map(str, sizes))} evaluation images per sigma (every 20th test image"
            f"{'; the protocol has 500' if max(sizes) < 500 else ''}).", "", methods_text(entries), "",
            replay_report(results, entries)]
    if plots is not None:
        names = make_plots(results, plots, entries)
        rel = Path(_relative(plots, out.parent) if out is not None else plots)
        text += ["", "## Plots", ""] + [f"![{n}]({(rel / n).as_posix()})" for n in names]
    live_results = {}
    if live:
        for res in results:
            log(f"live: sigma = {res.ctx.sigma:g}, {live} images")
            live_results[res.ctx.sigma] = live_runs(res.ctx, live, entries=entries)
        text += ["", live_report(live_results)]
    text += ["", f"Replay part {replay_seconds:.0f} s. " + provenance(command, time.perf_counter() - start, commit=commit)]
    report = "\n".join(text) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    return report


def _relative(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), start.resolve())
