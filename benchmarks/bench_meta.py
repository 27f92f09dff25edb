"""What a wrong meta-learner costs, and what the meta-learner's inference costs, on recorded streams.

    python benchmarks/bench_meta.py --streams runs/streams/fashion-mnist-sigma0.25-seed0 \
        --streams runs/streams/fashion-mnist-sigma0.5-seed0 --out docs/meta-benchmark.md

For each recording and radius: mean evaluations per image (and certified accuracy)
with the Jeffreys prior, the shipped meta-learner, and meta-learners forced to
predict the worst priors we could think of (every prior far on the wrong side,
or concentrated just above the threshold, at the largest strength), all hedged as
`haltfast certify` hedges them. Then the meta-learner's inference time against
the whole certification's time.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
from scipy.special import logit

from haltfast.certificate import max_certifiable_radius
from haltfast.certificate import p_for_radius
from haltfast.methods import run_method
from haltfast.predictors import MetaLearner
from haltfast.predictors import meta_learner_path
from haltfast.provenance import git_commit
from haltfast.provenance import provenance
from haltfast.recording import load_recording
from haltfast.recording import recording_logits
from haltfast.recording import recording_model_path
from haltfast.streams import RecordedStreams

RADII = (0.25, 0.5, 0.75, 1.0)


def forced(learner: MetaLearner, p_center: float, strength: float) -> MetaLearner:
    """The same learner with its MLP replaced by a constant: every input gets Beta(p s, (1 - p) s)."""
    params = dict(learner.params)
    params["coefs"] = [np.zeros_like(np.asarray(w)).tolist() for w in learner.params["coefs"]]
    params["intercepts"] = [np.zeros_like(np.asarray(b)).tolist() for b in learner.params["intercepts"][:-1]] + [
        [float(logit(p_center))]
    ]
    params["strengths"] = np.full_like(np.asarray(learner.params["strengths"], dtype=float), strength).tolist()
    return MetaLearner(params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", action="append", required=True)
    ap.add_argument("--max", type=int, default=None)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    commit, start = git_commit(), time.perf_counter()
    lines = [
        "# The meta-learner: the cost of a wrong one, and of inference",
        "",
        "Mean model evaluations per image (certified accuracy in brackets) on recorded streams, alpha = "
        f"{args.alpha:g}, decision at each radius. Forced priors replace the meta-learner's prediction by a "
        "constant Beta(p s, (1 - p) s) for every image, hedged exactly as `haltfast certify` hedges the real "
        "one (the learned prior's test at 0.9 alpha beside a Jeffreys test at 0.1 alpha). "
        "'worst / Jeffreys' is the largest ratio over the forced priors; the target is at most 2x.",
        "",
    ]
    timing = []
    for path in args.streams:
        rec, meta = load_recording(path, args.max)
        sigma, n = meta["sigma"], len(meta["indices"])
        learner = MetaLearner.load(meta_learner_path(recording_model_path(meta)), meta["weights_sha256"])
        rec = RecordedStreams(rec.streams, rec.num_classes, rec.clean_predictions, recording_logits(meta))
        lines += [
            f"## sigma = {sigma:g} ({n} images, `{path}`)",
            "",
            "| r | Jeffreys | meta-learner | forced: p = 0.001, s = 1024 | forced: just above p0, s = 1024 | "
            "forced: p = 0.999999, s = 1024 | worst / Jeffreys |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in RADII:
            if r >= max_certifiable_radius(100_000, args.alpha, sigma):
                continue
            p0 = p_for_radius(r, sigma)
            priors = [
                ("jeffreys", "jeffreys"),
                ("meta", learner),
                ("low", forced(learner, 1e-3, 1024.0)),
                ("edge", forced(learner, min(p0 + 1e-3, 1 - 1e-9), 1024.0)),
                ("high", forced(learner, 1 - 1e-6, 1024.0)),
            ]
            cells, means = [], {}
            for name, prior in priors:
                t = time.perf_counter()
                certs = run_method(
                    "anytime",
                    rec.rewound(),
                    list(range(n)),
                    sigma=sigma,
                    n0=100,
                    n=100_000,
                    alpha=args.alpha,
                    labels=meta["labels"],
                    indices=meta["indices"],
                    radius=r,
                    prior=prior,
                )
                seconds = time.perf_counter() - t
                ev = np.mean([c.evaluations for c in certs])
                acc = np.mean([c.decision == "certified" and c.correct for c in certs])
                means[name] = ev
                cells.append(f"{ev:,.0f} ({acc:.3f})")
                if name == "meta":
                    timing.append((sigma, r, seconds))
            worst = max(means[k] for k in ("low", "edge", "high")) / means["jeffreys"]
            lines.append(f"| {r:g} | " + " | ".join(cells) + f" | {worst:.2f}x |")
            print(lines[-1], flush=True)
        # inference: features + MLP + prior for every image, against the replayed certification's time
        t = time.perf_counter()
        for _ in range(100):
            learner.prior(rec.logits, 0.5)
        per_image = (time.perf_counter() - t) / 100 / n
        lines += [
            "",
            f"Meta-learner inference (features, MLP, prior): {per_image * 1e6:.2f} microseconds per image.",
            "",
        ]
        timing_line = ", ".join(f"r = {r:g}: {s / n * 1e3:.2f} ms" for sg, r, s in timing if sg == sigma)
        lines += [
            f"Replayed certification with the meta-learner, per image (no model time: replay): {timing_line}. "
            f"Live, every evaluation costs about 1/30,000 s to 1/10,000 s on this machine's 2 cores, so "
            f"inference is a smaller share still.",
            "",
        ]
    command = "python benchmarks/bench_meta.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines.append(provenance(command, time.perf_counter() - start, commit=commit))
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
