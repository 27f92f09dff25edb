"""`haltfast bench`: every method on the same recorded noise draws, a live wall-clock run, a report with plots.

run.py replays one method on a recording, grid.py and spending.py run grid mode and the spending rules,
replays.py runs all of them on one recording, predict.py compares PREDICT methods, report.py writes the
tables, plots.py the figures, throughput.py and live.py time the statistics and the methods on the model
itself. The replay tables are deterministic: a rerun gives them to the last digit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .live import live_report
from .live import live_runs
from .live import live_setup
from .plots import make_plots
from .predict import predict_section
from .replays import run_replays
from .report import methods_text
from .report import replay_report
from .run import ENTRIES
from .run import load_contexts
from .throughput import replay_throughput
from .throughput import throughput_section


def run_bench(
    recordings: list[str],
    max_images: int | None,
    alpha: float,
    out: Path | None,
    plots: Path | None,
    live: int,
    command: str,
    log=print,
) -> str:
    """Run everything and return the report (also written to `out`, with plots under `plots`)."""
    from ..files import write_text
    from ..provenance import git_commit
    from ..provenance import provenance

    commit, start = git_commit(), time.perf_counter()
    contexts = load_contexts(recordings, max_images, alpha, log)
    setups = [live_setup(ctx, live) for ctx in contexts] if live else []  # a live run that cannot start fails now
    entries = tuple(
        e
        for e in ENTRIES
        if all(ctx.learner is not None for ctx in contexts) or not e.meta
        if all(ctx.streams.logits is not None for ctx in contexts) or not e.logits
    )
    results = []
    for ctx in contexts:
        log(f"{ctx.meta['recording']}: {ctx.size} images, sigma = {ctx.sigma:g}")
        results.append(run_replays(ctx, entries, log=log))
    replay_seconds = time.perf_counter() - start
    rates = [row for res in results for row in replay_throughput(res, log=log)]
    sizes = sorted({res.ctx.size for res in results})
    text = [
        "# Results: haltfast against the published methods",
        "",
        f"Fashion-MNIST, shipped noise-trained models, sigma in "
        f"{{{', '.join(f'{res.ctx.sigma:g}' for res in results)}}}, alpha = {alpha:g}, "
        f"{' / '.join(map(str, sizes))} evaluation images per sigma (every 20th test image"
        f"{'; the protocol has 500' if max(sizes) < 500 else ''}).",
        "",
        methods_text(entries),
        "",
        replay_report(results, entries),
    ]
    if plots is not None:
        names = make_plots(results, plots, entries)
        rel = Path(os.path.relpath(plots.resolve(), out.parent.resolve()) if out is not None else plots)
        text += ["", "## Plots", ""] + [f"![{n}]({(rel / n).as_posix()})" for n in names]
    text += ["", predict_section(contexts, log=log)]
    text += ["", throughput_section(rates)]  # timed: everything above it is deterministic

    def footer() -> list[str]:
        elapsed = time.perf_counter() - start
        return ["", f"Replay part {replay_seconds:.0f} s. " + provenance(command, elapsed, commit=commit)]

    if out is not None:  # the replays are kept even if the live part fails
        write_text(out, "\n".join(text + footer()) + "\n")
    if live:
        live_results = {}
        for res, setup in zip(results, setups):
            log(f"live: sigma = {res.ctx.sigma:g}, {live} images")
            live_results[res.ctx.sigma] = live_runs(res.ctx, setup, entries=entries)
        text += ["", live_report(live_results)]
    report = "\n".join(text + footer()) + "\n"
    if out is not None:
        write_text(out, report)
    return report
