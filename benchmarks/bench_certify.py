"""Anytime certification against Cohen's CERTIFY on recorded streams (identical noise draws for every method).

Needs a recording of n0 + 100,000 labels per image (the evaluation protocol's 500 images):

    haltfast record --sigma 0.25 --skip 20 --n0 100 --n 100000 --out runs/streams/fashion-mnist-sigma0.25-seed0
    python benchmarks/bench_certify.py --streams runs/streams/fashion-mnist-sigma0.25-seed0 \
        --out docs/certification-benchmark.md

Reports: decision at fixed radii (certified accuracy, mean / median evaluations,
ratio to Cohen and to the per-image Wald limit), the capped trade-off, the
radius-mode budget frontier against fixed-n Clopper-Pearson, and a live
wall-clock comparison on a few images. Every evaluation count includes class
selection.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from haltfast.certify import max_certifiable_radius, p_for_radius, summarize
from haltfast.provenance import provenance
from haltfast.recording import load_recording
from haltfast.smooth import Smooth, run_method
from haltfast.statistics import wald_expected_samples


VARIANTS = (("pilot selection, Jeffreys prior", dict(prior="jeffreys", selection="pilot")),
            ("pilot selection, pilot prior", dict(prior="pilot", selection="pilot")),
            ("clean selection, Jeffreys prior", dict(prior="jeffreys", selection="clean")))


def run(rec, meta, method, **kw):
    n = len(meta["indices"])
    return run_method(method, rec.rewound(), list(range(n)), sigma=meta["sigma"], labels=meta["labels"],
                      indices=meta["indices"], **kw)


def stats(certs, radius=None):
    ev = np.array([c.evaluations for c in certs], dtype=float)
    radii = (radius,) if radius is not None else (0.0, 0.25, 0.5, 0.75, 1.0)
    s = summarize(certs, radii=radii)
    return ev.mean(), np.median(ev), s


def selected_p(rec, n0):
    """Each image's p for the pilot-selected class, estimated from its whole tested stream."""
    out = []
    for stream in rec.streams:
        c = np.bincount(stream[:n0], minlength=rec.num_classes).argmax()
        out.append(np.mean(stream[n0:] == c))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", required=True)
    ap.add_argument("--max", type=int, default=None, help="use only the first N recorded images")
    ap.add_argument("--radii", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--live", type=int, default=20, help="images for the live wall-clock comparison (0: skip)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    rec, meta = load_recording(args.streams, args.max)
    sigma, n0, alpha = meta["sigma"], 100, args.alpha
    n_full = meta["length"] - n0
    n_img = len(meta["indices"])
    lines = [f"Recording `{args.streams}`: {n_img} images, model {meta['model']} "
             f"(sha256 {meta['weights_sha256'][:12]}), sigma = {sigma}, seed {meta['seed']}, "
             f"{meta['length']:,} labels per image; alpha = {alpha}. Evaluations include class selection "
             f"(the 100-sample pilot, or the one clean evaluation). Wald limit: per image, `p` estimated from its {n_full:,} tested samples, miss rate = alpha, "
             f"capped at {n_full:,}, summed over images.", ""]

    cohen = run(rec, meta, "cohen", n0=n0, n=n_full, alpha=alpha)
    p_hat = selected_p(rec, n0)
    t0 = time.perf_counter()

    lines += ["## Decision at a required radius", "",
              "| r | method | cert. acc. | Cohen cert. acc. | mean evals | median evals | Cohen / mean | "
              "mean / Wald limit | undecided |", "|---|---|---|---|---|---|---|---|---|"]
    for r in args.radii:
        p0 = p_for_radius(r, sigma)
        wald = np.minimum(wald_expected_samples(p_hat, p0, alpha, alpha), n_full).sum() / n_img
        acc_cohen = summarize(cohen, radii=(r,))["certified_accuracy"][f"{r:g}"]
        if r >= max_certifiable_radius(n_full, alpha, sigma):
            continue
        for name, kw in VARIANTS:
            certs = run(rec, meta, "anytime", n0=n0, n=0, alpha=alpha, radius=r, max_samples=n_full, **kw)
            mean, med, s = stats(certs, r)
            lines.append(f"| {r:g} | anytime, {name} | {s['certified_accuracy'][f'{r:g}']:.3f} | "
                         f"{acc_cohen:.3f} | {mean:,.0f} | {med:,.0f} | {(n0 + n_full) / mean:.1f}x | "
                         f"{mean / wald:.2f} (Wald {wald:,.0f}) | {s['decisions'].get('undecided', 0)} |")
            print(lines[-1], flush=True)

    lines += ["", "## Per-input cap (r = 0.5): the trade-off", "",
              "| max_samples | variant | cert. acc. | Cohen cert. acc. | mean evals | Cohen / mean |", "|---|---|---|---|---|---|"]
    acc_cohen = summarize(cohen, radii=(0.5,))["certified_accuracy"]["0.5"]
    for cap in (1_000, 2_000, 5_000, 10_000, 20_000):
        if cap > n_full:
            continue
        for name, kw in VARIANTS:
            certs = run(rec, meta, "anytime", n0=n0, n=0, alpha=alpha, radius=0.5, max_samples=cap, **kw)
            mean, med, s = stats(certs, 0.5)
            lines.append(f"| {cap:,} | {name} | {s['certified_accuracy']['0.5']:.3f} | {acc_cohen:.3f} | "
                         f"{mean:,.0f} | {(n0 + n_full) / mean:.0f}x |")
            print(lines[-1], flush=True)

    acr_cohen = summarize(cohen)["average_certified_radius"]
    lines += ["", "## Radius estimation: average certified radius (ACR) against mean evaluations", "",
              f"Cohen (n0 = 100, n = {n_full:,}): ACR {acr_cohen:.4f} at {n0 + n_full:,} evaluations per image.", "",
              "| method | setting | mean evals | ACR | ACR / Cohen's | abstain |", "|---|---|---|---|---|---|"]
    frontier = []
    for budget in (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000):
        if budget > n_full:
            continue
        certs = run(rec, meta, "cohen", n0=n0, n=budget, alpha=alpha)
        mean, _, s = stats(certs)
        lines.append(f"| fixed-n Clopper-Pearson | n = {budget:,} | {mean:,.0f} | {s['average_certified_radius']:.4f} | "
                     f"{s['average_certified_radius'] / acr_cohen:.3f} | {s['abstain_rate']:.3f} |")
        print(lines[-1], flush=True)
    for tol in (0.1, 0.05, 0.02, 0.01, 0.005, 0.002):
        certs = run(rec, meta, "anytime", n0=n0, n=0, alpha=alpha, radius=None, prior="pilot", selection="pilot",
                    tolerance=tol, max_samples=n_full)
        mean, _, s = stats(certs)
        frontier.append((mean, s["average_certified_radius"]))
        lines.append(f"| anytime, pilot prior | tolerance {tol:g} | {mean:,.0f} | {s['average_certified_radius']:.4f} | "
                     f"{s['average_certified_radius'] / acr_cohen:.3f} | {s['abstain_rate']:.3f} |")
        print(lines[-1], flush=True)
    for tol in (0.05, 0.01):
        certs = run(rec, meta, "anytime", n0=n0, n=0, alpha=alpha, radius=None, tolerance=tol, max_samples=n_full)
        mean, _, s = stats(certs)
        frontier.append((mean, s["average_certified_radius"]))
        lines.append(f"| anytime, clean selection, Jeffreys prior | tolerance {tol:g} | {mean:,.0f} | "
                     f"{s['average_certified_radius']:.4f} | {s['average_certified_radius'] / acr_cohen:.3f} | "
                     f"{s['abstain_rate']:.3f} |")
        print(lines[-1], flush=True)
    reach = [m for m, acr in frontier if acr >= 0.99 * acr_cohen]
    lines += ["", "99% of Cohen's ACR reached by the anytime radius mode at " +
              (f"{min(reach):,.0f} mean evaluations per image." if reach else "no tolerance tried (see table).")]
    replay_seconds = time.perf_counter() - t0

    if args.live:
        from haltfast.data import load_dataset
        from haltfast.models import load_model, resolve_model_path

        model, _ = load_model(resolve_model_path(meta["model"].removesuffix(".pt")))
        data = load_dataset(meta["data"], meta["split"]).subset(meta["skip"], args.live)
        smooth = Smooth(model, 10, sigma, seed=meta["seed"], batch_size=2000)
        timings = {}
        for name, kw in (("cohen", dict(method="cohen", n0=n0, n=n_full)),
                         ("anytime r=0.5 (defaults)", dict(method="anytime", radius=0.5)),
                         ("anytime radius mode (defaults)", dict(method="anytime", radius=None))):
            start = time.perf_counter()
            certs = smooth.certify_many(data.images, data.labels, keys=data.indices, alpha=alpha, progress=False, **kw)
            timings[name] = (time.perf_counter() - start, np.mean([c.evaluations for c in certs]))
        lines += ["", f"## Live wall-clock ({len(data)} images, run side by side, {torch.get_num_threads()} threads)", "",
                  "| method | seconds per image | mean evals | Cohen time / this |", "|---|---|---|---|"]
        for name, (sec, ev) in timings.items():
            lines.append(f"| {name} | {sec / len(data):.3f} | {ev:,.0f} | {timings['cohen'][0] / sec:.1f}x |")

    cmd = f"python benchmarks/bench_certify.py --streams {args.streams}" + (f" --max {args.max}" if args.max else "")
    lines += ["", f"Replay part {replay_seconds:.0f} s. " + provenance(cmd)]
    text = "\n".join(lines)
    print(text)
    if args.out:
        open(args.out, "w").write("# Anytime certification benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
