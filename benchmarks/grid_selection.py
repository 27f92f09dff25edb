"""Grid mode's class selection: the clean prediction or Cohen's 100-sample pilot, on recorded streams.

    python benchmarks/grid_selection.py --streams runs/streams/fashion-mnist-sigma0.25-seed0 \
        --streams runs/streams/fashion-mnist-sigma0.5-seed0 --streams runs/streams/fashion-mnist-sigma1.0-seed0

For each recording: certified accuracy at every radius of the grid (points against Cohen's n = 100,000) and mean
evaluations for each selection and prior, without a budget and under run budgets (which pay for selection: the
pilot's 100 evaluations per input). The numbers behind grid mode's default (docs/certification.md).
"""

from __future__ import annotations

import argparse

from haltfast.bench.run import certified_at
from haltfast.bench.run import cohen
from haltfast.bench.run import evaluations
from haltfast.bench.run import load_contexts
from haltfast.bench.run import on_recording

GRID = (0.0, 0.25, 0.5, 0.75)
CONFIGS = (("clean", "jeffreys"), ("clean", "meta"), ("pilot", "pilot"), ("pilot", "meta"), ("pilot", "jeffreys"))
BUDGETS = (None, 1_000, 3_000)  # evaluations per input for the whole run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", action="append", required=True, help="a recording (repeat for several)")
    parser.add_argument("--max", type=int, default=None, help="the first MAX images of each recording")
    args = parser.parse_args()
    for ctx in load_contexts(args.streams, args.max, 0.001):
        reference = cohen(ctx)
        accuracy = certified_at(reference, GRID)
        print(f"\n## sigma {ctx.sigma:g} ({ctx.size} images)\n")
        print("| selection | prior | budget / input | " + " | ".join(f"r = {r:g}" for r in GRID) + " | mean evals |")
        print("|---|---|---|" + "---|" * len(GRID) + "---|")
        cells = " | ".join(f"{a:.3f}" for a in accuracy)
        print(f"| Cohen (n0 = 100, n = 100,000) | | | {cells} | {evaluations(reference).mean():,.0f} |")
        for budget in BUDGETS:
            for selection, prior in CONFIGS:
                if prior == "meta" and ctx.learner is None:
                    continue
                options = {"radii": GRID, "selection": selection, "prior": ctx.learner if prior == "meta" else prior}
                if budget:
                    options["budget"] = budget * ctx.size
                certs = on_recording(ctx, "anytime", **options)
                cells = " | ".join(
                    f"{a:.3f} ({100 * (a - c):+.1f})" for a, c in zip(certified_at(certs, GRID), accuracy)
                )
                mean = evaluations(certs).mean()
                print(f"| {selection} | {prior} | {budget or '-'} | {cells} | {mean:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
