"""The bench's PREDICT section: anytime PREDICT against Cohen et al.'s PREDICT on the same recorded streams.

Cohen's PREDICT draws n samples per image (n = 100,000 is predict.py's default; their paper's appendix also
runs 100, 1,000 and 10,000); the anytime version stops each image as soon as its class is established. Every
method replays each image's stream from its start, so all see the same noise draws; the class selection (the
clean prediction, or a pilot of n0 samples) is counted in the evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np

from ..certificate import Certificate
from ..methods import PREDICTED
from ..methods import run_predict
from .run import Context

COHEN_NS = (100_000, 10_000, 1_000, 100)


@dataclass(frozen=True)
class PredictEntry:
    """One row of the PREDICT table: a label, the method, its n (Cohen's samples; the anytime cap) and options."""

    label: str
    method: str
    n: int = 100_000
    options: dict = field(default_factory=dict)


def predict_entries(cap: int) -> list[PredictEntry]:
    """Cohen's PREDICT at each n the recording holds, then the anytime tests and selections."""
    rows = [PredictEntry(f"Cohen et al. PREDICT, n = {n:,}", "cohen", n) for n in COHEN_NS if n <= cap]
    anytime = [
        (
            "haltfast anytime PREDICT (runner-up test, clean selection, switch; the default)",
            "runner-up",
            "clean",
            0,
            0.1,
        ),
        ("haltfast anytime PREDICT, runner-up test, clean selection, no switch", "runner-up", "clean", 0, 0.0),
        ("haltfast anytime PREDICT, P(A) > 1/2 test, clean selection", "half", "clean", 0, 0.0),
        (
            "haltfast anytime PREDICT, runner-up test, 100-sample pilot selection, switch",
            "runner-up",
            "pilot",
            100,
            0.1,
        ),
    ]
    for label, test, selection, n0, switch in anytime:
        options = {"test": test, "selection": selection, "switch": switch} | ({"n0": n0} if n0 else {})
        rows.append(PredictEntry(label, "anytime", min(100_000, cap - n0), options))
    return rows


def replay_predict(ctx: Context, entry: PredictEntry) -> list[Certificate]:
    """One PREDICT method on a fresh copy of the recording, every image with its label and index."""
    return run_predict(
        entry.method,
        ctx.streams.rewound(),
        range(ctx.size),
        n=entry.n,
        alpha=ctx.alpha,
        labels=ctx.meta["labels"],
        indices=ctx.meta["indices"],
        **entry.options,
    )


def predict_table(ctx: Context, results: dict[str, list[Certificate]]) -> list[str]:
    """Markdown rows: accuracy, abstain and wrong rates, agreement with the largest-n Cohen prediction, evaluations."""
    reference_label = next(iter(results))
    reference = np.array([r.prediction for r in results[reference_label]])
    cohen_evals = np.mean([r.evaluations for r in results[reference_label]])
    lines = [
        "| method | accuracy | abstain | wrong | agrees with the first row | mean evals | median evals | "
        "first row / mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, res in results.items():
        prediction = np.array([r.prediction for r in res])
        predicted = np.array([r.decision == PREDICTED for r in res])
        correct = predicted & (prediction == np.asarray(ctx.meta["labels"]))
        evals = np.array([r.evaluations for r in res], dtype=float)
        lines.append(
            f"| {label} | {correct.mean():.3f} | {np.mean(~predicted):.3f} | {np.mean(predicted & ~correct):.3f} | "
            f"{np.mean(prediction == reference):.3f} | {evals.mean():,.0f} | {np.median(evals):,.0f} | "
            f"{cohen_evals / evals.mean():.1f}x |"
        )
    return lines


def predict_section(contexts: list[Context], log=print) -> str:
    """The report's PREDICT section: one table per recording (the methods replayed on its streams)."""
    text = [
        "## PREDICT: the smoothed classifier's prediction (abstain when unsure)",
        "",
        "Each image's class by the smoothed classifier, or an abstention; a wrong class is returned with "
        "probability at most alpha. Accuracy: correct predictions over all images; wrong: predictions other "
        "than the label (the smoothed classifier's own errors, not the test's); 'agrees': the same output "
        "(class or abstention) as the first row. Cohen's PREDICT spends n samples on every image (n = 100,000 "
        "is predict.py's default); the anytime tests stop as soon as the selected class A is established, or when "
        "another class B is shown to beat it: then abstain, or with the switch test B on the labels drawn after "
        "that (at 0.1 alpha, A at 0.9 alpha), at most 100,000 tested samples in all. Runner-up test: one "
        "E-process per other class c on the labels that are A or c; P(A) > 1/2 test: one E-process on "
        "1[label = A], which must abstain where the top class has less than half the mass (docs/predict.md).",
    ]
    for ctx in contexts:
        cap = min(len(s) for s in ctx.streams.streams)
        results = {}
        for entry in predict_entries(cap):
            results[entry.label] = replay_predict(ctx, entry)
            log(f"  sigma={ctx.sigma:g} PREDICT {entry.label}")
        text += ["", f"### sigma = {ctx.sigma:g} ({ctx.size} images, alpha = {ctx.alpha:g})", ""]
        text += predict_table(ctx, results)
    return "\n".join(text)
