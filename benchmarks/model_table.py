"""Table of the shipped models: base accuracy under noise and Cohen's certified accuracy.

For each sigma: the model card's clean / noisy test accuracy, and Cohen's CERTIFY
(n0 = 100, n = 10,000, alpha = 0.001) on the first 100 images of the evaluation
set (skip 20), certified accuracy at r = 0, 0.25, 0.5, 1.0.

    python benchmarks/model_table.py --out docs/models.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from haltfast.data import load_dataset
from haltfast.models import SHIPPED_SIGMAS
from haltfast.models import load_model
from haltfast.models import shipped_model_path
from haltfast.provenance import provenance
from haltfast.smooth import Smooth
from haltfast.summary import summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=100)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    data = load_dataset("fashion-mnist", "test").subset(20, args.max)
    radii = (0.0, 0.25, 0.5, 1.0)
    rows = [
        "| sigma | clean acc. | noisy acc. | samples/s | " + " | ".join(f"cert. acc. r={r:g}" for r in radii) + " |",
        "|---|---|---|---|" + "---|" * len(radii),
    ]
    for sigma in SHIPPED_SIGMAS:
        model, card = load_model(shipped_model_path(sigma))
        smooth = Smooth(model, 10, sigma, seed=0, batch_size=2000)
        certs = smooth.certify_many(
            data.images, data.labels, n0=100, n=args.n, alpha=0.001, method="cohen", keys=data.indices, progress=False
        )
        acc = summarize(certs, radii=radii)["certified_accuracy"]
        rows.append(
            f"| {sigma:g} | {card['clean_test_accuracy']:.3f} | {card['noisy_test_accuracy']:.3f} | "
            f"{card['samples_per_second']:,} | " + " | ".join(f"{acc[f'{r:g}']:.2f}" for r in radii) + " |"
        )
        print(rows[-1], file=sys.stderr)
    text = "\n".join(
        [
            f"Certified accuracy: Cohen's CERTIFY, n0 = 100, n = {args.n:,}, alpha = 0.001, first {len(data)} "
            "evaluation images (Fashion-MNIST test, skip 20). Accuracies under noise are the model cards' (full test "
            "set, one noise draw per image); samples/s from the cards (batch 2000, CPU).",
            "",
            *rows,
            "",
            provenance(f"python benchmarks/model_table.py --max {args.max} --n {args.n}"),
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text("# Shipped models\n\n" + text + "\n")


if __name__ == "__main__":
    main()
