"""Every row's stopped_at against an independent first-crossing computation, on the bench's recordings.

    python benchmarks/check_stopped_at.py --streams runs/streams/fashion-mnist-sigma0.25-seed0 \
        --streams runs/streams/fashion-mnist-sigma0.5-seed0 --streams runs/streams/fashion-mnist-sigma1.0-seed0

Replays what `haltfast bench` replays (decisions at each certifiable radius for every method and prior but the
oracle, a yardstick whose prior is read off the tested stream and whose incomplete beta functions underflow double
precision; grid mode
with the pilot, Jeffreys' and the meta-learner's priors, the spending rules at r = 0.5) and recomputes each row's
stopping sample with haltfast.bench.crossings, which evaluates every E-value and threshold at every sample from the
definitions. Prints the rows checked and the mismatches per run; exits 1 if any row differs (the target is zero).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from haltfast.bench.crossings import check_anytime_rows
from haltfast.bench.crossings import check_baseline_rows
from haltfast.bench.grid import grid_for
from haltfast.bench.run import ENTRIES
from haltfast.bench.run import N0
from haltfast.bench.run import N
from haltfast.bench.run import load_contexts
from haltfast.bench.run import on_recording
from haltfast.certificate import max_certifiable_radius
from haltfast.methods.anytime import default_selection


def components_of(ctx, options: dict):
    """components(z)[i] of each input's tests, as the run built them (the prior's definition, not its tests)."""
    prior = options.get("prior", "jeffreys")
    n = ctx.size
    if prior is ctx.learner and prior is not None:
        logits = ctx.streams.logits

        def learned(z):
            parts = prior.parts(z, logits, n)
            return [
                [(float(np.broadcast_to(w, (n,))[i]), float(a[i]), float(b[i])) for w, a, b in parts] for i in range(n)
            ]

        return learned
    if isinstance(prior, str) and prior == "pilot":
        counts = [np.bincount(ctx.streams.streams[i][:N0], minlength=ctx.streams.num_classes) for i in range(n)]
        hits = [int(c.max()) for c in counts]  # the pilot's majority class (ties to the lowest) and its count
        return lambda z: [[(1.0, 0.5 + h, 0.5 + N0 - h)] for h in hits]
    if isinstance(prior, str):
        a, b = {"jeffreys": (0.5, 0.5), "uniform": (1.0, 1.0)}[prior]
        return lambda z: [[(1.0, a, b)]] * n
    arr = np.asarray(prior, dtype=float)
    return lambda z: [[(1.0, float(arr[i, 0]), float(arr[i, 1]))] for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", action="append", required=True, help="a recording (repeat for several)")
    parser.add_argument("--max", type=int, default=None, help="the first MAX images of each recording")
    parser.add_argument("--alpha", type=float, default=0.001)
    args = parser.parse_args()
    total_rows = total_bad = 0
    for ctx in load_contexts(args.streams, args.max, args.alpha, log=lambda line: print(line, file=sys.stderr)):
        cap = min(N, min(len(s) for s in ctx.streams.streams) - N0)
        radii = [r for r in (0.25, 0.5, 0.75, 1.0) if r < max_certifiable_radius(cap, ctx.alpha, ctx.sigma)]
        runs = []
        for r in radii:
            for entry in ENTRIES:
                if (entry.meta and ctx.learner is None) or entry.oracle:
                    continue  # the oracle is no method: its prior, read off the stream, underflows double precision
                runs.append((f"r={r:g} {entry.label}", entry.method, {"radius": r, **entry.options(ctx)}))
        if 0.5 in radii:
            spend = [{"worth": 100_000}, {"budget": 400 * ctx.size}, {"max_loss": 0.01}, {"max_samples": 2_000}]
            runs += [(f"r=0.5 anytime {o}", "anytime", {"radius": 0.5, **o}) for o in spend]
        grid = grid_for(ctx, cap)
        grids = [{}, {"selection": "pilot", "prior": "pilot", "worth": None}, {"selection": "clean"}]
        if ctx.learner is not None:
            grids.append({"selection": "pilot", "prior": ctx.learner})
        for o in grids:
            selection, prior = default_selection("grid", o.get("selection"), o.get("prior"), N0)
            prior = "meta" if prior is ctx.learner else prior
            label = f"grid {selection} selection, {prior} prior, worth {o.get('worth', 'auto')}"
            runs.append((label, "anytime", {"radii": grid, **o}))
        for label, method, options in runs:
            start = time.perf_counter()
            options = {"max_samples": cap, **options}
            rows = [c.row() for c in on_recording(ctx, method, **options)]
            if method == "anytime":  # the selection and prior the run used, defaults included
                mode = "grid" if "radii" in options else "decision"
                selection, prior = default_selection(mode, options.get("selection"), options.get("prior"), N0)
                options = {**options, "selection": selection, "prior": prior}
                n0 = N0 if selection == "pilot" else 0
                bad = check_anytime_rows(
                    ctx.streams,
                    rows,
                    components_of(ctx, options),
                    ctx.alpha,
                    ctx.sigma,
                    radius=options.get("radius"),
                    radii=options.get("radii"),
                    n0=n0,
                )
            else:
                bad = check_baseline_rows(
                    ctx.streams, rows, method, ctx.alpha, ctx.sigma, options["radius"], options["max_samples"]
                )
            total_rows += len(rows)
            total_bad += len(bad)
            seconds = time.perf_counter() - start
            print(f"sigma={ctx.sigma:g} {label}: {len(rows)} rows, {len(bad)} differ ({seconds:.0f} s)", flush=True)
            for m in bad[:5]:
                print(f"    input {m.index} ({m.decision}): stopped_at {m.stopped_at}, expected {m.expected}: {m.why}")
    print(f"{total_rows} rows checked, {total_bad} where stopped_at differs from the first crossing")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
