"""The bench's live part: the same methods run on the model itself, side by side in one process, timed."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..certificate import Certificate
from ..errors import HaltfastError
from ..streams import RecordedStreams
from .report import _fmt
from .report import _ratio
from .run import ENTRIES
from .run import N0
from .run import Context
from .run import N
from .run import cohen
from .run import evaluations
from .run import replay

if TYPE_CHECKING:
    from ..data import Dataset
    from ..smooth import Smooth


@dataclass
class LiveSetup:
    """What a live run of one recording needs, prepared (and checked) before any replay."""

    smooth: Smooth
    data: Dataset
    sub: Context  # the recording cut to the live images


def live_setup(ctx: Context, images: int) -> LiveSetup:
    """The recording's model (hash-checked, tied to its meta-learner) and its first `images` images; refuses a
    recording whose data set does not give its images, so that a bench fails before its replays, not after."""
    from ..data import load_dataset
    from ..models import load_model
    from ..models import resolve_model_path
    from ..smooth import Smooth

    m = ctx.meta
    model, card = load_model(resolve_model_path(m["model"].removesuffix(".pt")))
    data = load_dataset(m["data"], m["split"]).subset(m["skip"], images)
    if list(data.indices) != list(m["indices"][: len(data)]):
        raise HaltfastError(f"{m['recording']}: the data set's images are not the recording's")
    logits = None if ctx.streams.logits is None else ctx.streams.logits[: len(data)]
    assert ctx.streams.clean_predictions is not None  # the bench's recordings hold clean predictions
    sub = Context(
        RecordedStreams(
            ctx.streams.streams[: len(data)],
            ctx.streams.num_classes,
            ctx.streams.clean_predictions[: len(data)],
            logits,
        ),
        {**m, "indices": m["indices"][: len(data)], "labels": m["labels"][: len(data)]},
        ctx.alpha,
    )
    sub.learner = ctx.learner
    smooth = Smooth(
        model,
        ctx.streams.num_classes,
        ctx.sigma,
        seed=m["seed"],
        batch_size=2000,
        weights_sha256=card["weights_sha256"],
    )
    return LiveSetup(smooth, data, sub)


def live_runs(ctx: Context, setup: LiveSetup, radius: float = 0.5, entries=ENTRIES) -> tuple[list[dict], bool]:
    """Run Cohen and each method live on the set-up images, one after the other.

    Returns one row per run (seconds, mean evaluations) and whether every live run reproduced the
    replay of the same images exactly (same noise seed and keys, so it must).
    """
    sub, data = setup.sub, setup.data
    runs: list[tuple[str, str, str, dict, Callable[[], list[Certificate]]]] = [
        ("Cohen", "radius", "cohen", {"n0": N0, "n": N}, lambda: cohen(sub))
    ]
    for e in entries:
        if e.oracle:
            continue
        modes = [(f"r = {radius:g}", radius)] + ([("radius", None)] if e.radius_mode else [])
        for mode, r in modes:
            options = {"radius": r, **e.options(sub)}
            runs.append((e.label, mode, e.method, options, functools.partial(replay, sub, e, r)))
    rows, identical = [], True
    # decisions, classes and evaluation counts must match exactly; radii to 1e-6: the clean logits that
    # select the class and feed the meta-learner differ in their last float32 bits between batch sizes
    strip = lambda c: (c.index, c.prediction, c.decision, c.evaluations, round(c.radius, 6))
    for label, mode, method, options, replayed in runs:
        start = time.perf_counter()
        certs = setup.smooth.certify_many(
            data.images, data.labels, keys=data.indices, alpha=ctx.alpha, method=method, progress=False, **options
        )
        seconds = time.perf_counter() - start
        identical &= [strip(c) for c in certs] == [strip(c) for c in replayed()]
        rows.append(
            {
                "label": label,
                "mode": mode,
                "seconds": seconds,
                "evaluations": evaluations(certs).mean(),
                "images": len(data),
            }
        )
    return rows, identical


def live_report(live: dict) -> str:
    import torch

    lines = [
        "## Live wall-clock",
        "",
        f"The same methods run live (the shipped model on the images themselves, not replayed), one after the "
        f"other in one process with {torch.get_num_threads()} torch threads, on the first images of each "
        f"recording; ratios are Cohen's seconds over the method's. Timings vary with the machine's load; the "
        f"replay tables above do not.",
        "",
        "| sigma | images | method | task | seconds per image | mean evals | Cohen time / this |",
        "|---|---|---|---|---|---|---|",
    ]
    for sigma, (rows, _identical) in live.items():
        base = rows[0]["seconds"]
        for row in rows:
            lines.append(
                f"| {sigma:g} | {row['images']} | {row['label']} | {row['mode']} | "
                f"{row['seconds'] / row['images']:.3f} | {_fmt(row['evaluations'])} | "
                f"{_ratio(base / row['seconds'])} |"
            )
    same = all(identical for _, identical in live.values())
    lines += [
        "",
        "Every live run gave the certificates of its replay (same noise seed and keys; same decision, "
        "class and evaluation count, radius to 1e-6, since the clean logits differ in their last float32 "
        f"bits between batch sizes): {'yes' if same else 'NO'}.",
    ]
    return "\n".join(lines)
