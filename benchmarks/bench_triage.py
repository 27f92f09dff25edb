"""Risk-based triage on recorded streams: decided inputs against a global budget, per scheduling policy.

Needs a recording (the evaluation protocol's 500 images at sigma = 0.5):

    haltfast record --sigma 0.5 --skip 20 --n0 100 --n 100000 --out runs/streams/fashion-mnist-sigma0.5-seed0
    python benchmarks/bench_triage.py --streams runs/streams/fashion-mnist-sigma0.5-seed0 \
        --out docs/triage-benchmark.md --plot docs/triage.png

Mixed risk classes, assigned deterministically: every 5th image (positions 0, 5, 10, ...) is
"critical" (r = 1.0, alpha = 1e-4, priority 2), the rest "routine" (r = 0.25, alpha = 1e-2,
priority 1); both with the per-input cap max_samples = min(100,000, recorded length - n0).
Budgets are fractions of Cohen's total, images x (100 + 100,000) evaluations.

Definitions. Decided input: certified or not certified at its own radius (ours); an input Cohen ran to
completion (n0 = 100, n = 100,000 at that input's alpha; certified if its Clopper-Pearson radius
>= r_i, else not certified): with budget B Cohen completes floor(B / 100,100) inputs. Oracle: each
input decided at its Wald limit (p from the whole recorded stream, miss rate = alpha_i) plus the
pilot, inputs taken cheapest first; inputs whose limit exceeds the cap are never decided. A
recording shorter than n0 + 100,000 caps both our methods and Cohen's n (reported).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from haltfast.bench.run import load_contexts
from haltfast.certificate import CERTIFIED
from haltfast.certificate import NOT_CERTIFIED
from haltfast.certificate import PENDING
from haltfast.certificate import UNDECIDED
from haltfast.certificate import p_for_radius
from haltfast.methods import run_method
from haltfast.provenance import provenance
from haltfast.statistics import wald_expected_samples
from haltfast.triage import PolicyClass
from haltfast.triage import assign_classes
from haltfast.triage import triage

N0 = 100
N_COHEN = 100_000
POLICY_NAMES = ("max-decisions", "max-weighted", "risk", "round-robin")
CLEAN = "max-decisions, clean selection (1 evaluation, Jeffreys prior)"
META = "max-decisions + meta-learner (clean selection, its belief steers the schedule)"
BUDGETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0)


def make_policies(cap: int) -> list[PolicyClass]:
    return [
        PolicyClass("critical", radius=1.0, alpha=1e-4, priority=2, max_samples=cap, every=5),
        PolicyClass("routine", radius=0.25, alpha=1e-2, priority=1, max_samples=cap),
    ]


def cohen_reference(rec, policies, classes, sigma, n) -> np.ndarray:
    """Per input: True if Cohen's CERTIFY (n0 = 100, n tested, alpha_i) certifies radius >= r_i."""
    certified = np.zeros(len(classes), dtype=bool)
    for k, pc in enumerate(policies):
        items = np.nonzero(classes == k)[0].tolist()
        certs = run_method("cohen", rec.rewound(), items, sigma=sigma, n0=N0, n=n, alpha=pc.alpha)
        certified[items] = [c.decision == "certified" and c.radius >= pc.radius for c in certs]
    return certified


def oracle_costs(rec, policies, classes, sigma, cap) -> np.ndarray:
    """Per input: pilot + Wald's limit for its decision (inf where the limit exceeds the cap)."""
    costs = np.empty(len(classes))
    for j, stream in enumerate(rec.streams):
        c_hat = np.bincount(stream[:N0], minlength=rec.num_classes).argmax()
        p = np.mean(stream[N0 : N0 + cap] == c_hat)
        pc = policies[classes[j]]
        alpha_f = pc.futility_alpha or pc.alpha
        w = float(wald_expected_samples(p, p_for_radius(pc.radius, sigma), pc.alpha, alpha_f))
        costs[j] = N0 + np.ceil(w) if w <= cap else np.inf
    return costs


def oracle_decided(costs: np.ndarray, budget: int) -> int:
    c = np.sort(costs[np.isfinite(costs)])
    return int(np.searchsorted(np.cumsum(c), budget, side="right"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", required=True, help="recording directory (haltfast record)")
    ap.add_argument("--max", type=int, default=None, help="use only the first N recorded images")
    ap.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=list(BUDGETS),
        help="budgets as fractions of Cohen's total (images x 100,100)",
    )
    ap.add_argument("--batch", type=int, default=4000, help="samples per round")
    ap.add_argument("--small-n0", type=int, default=20, help="also run max-decisions with this smaller pilot (0: skip)")
    ap.add_argument("--out", default=None, help="markdown report")
    ap.add_argument("--plot", default=None, help="PNG of decided inputs against budget")
    args = ap.parse_args()

    (ctx,) = load_contexts([args.streams], args.max, alpha=0.001, log=print)
    rec, meta = ctx.streams, ctx.meta
    sigma = float(meta["sigma"])
    n_img = len(meta["indices"])
    cap = min(N_COHEN, int(meta["length"]) - N0)
    policies = make_policies(cap)
    classes = assign_classes(policies, n_img)
    cohen_total = n_img * (N0 + N_COHEN)
    budgets = sorted(set(args.budgets))
    t_start = time.perf_counter()

    cohen_cert = cohen_reference(rec, policies, classes, sigma, cap)
    costs = oracle_costs(rec, policies, classes, sigma, cap)
    per_class = {pc.name: classes == k for k, pc in enumerate(policies)}

    variants = [(name, name, N0, "pilot") for name in POLICY_NAMES]
    if args.small_n0:
        variants.append((f"max-decisions, n0={args.small_n0}", "max-decisions", args.small_n0, "pilot"))
    variants.append((CLEAN, "max-decisions", 1, "jeffreys"))
    if ctx.learner is not None:
        variants.append((META, "max-decisions", 1, ctx.learner))
    labels_ = [v[0] for v in variants]
    results: dict[str, list[dict]] = {label: [] for label in labels_}
    for label, name, n0, prior in variants:
        for frac in budgets:
            budget = round(frac * cohen_total)
            start = time.perf_counter()
            rep = triage(
                rec.rewound(),
                range(n_img),
                policies,
                sigma=sigma,
                classes=classes,
                policy=name,
                n0=n0,
                prior=prior,
                selection="pilot" if prior == "pilot" else "clean",
                batch=args.batch,
                budget_evaluations=budget,
                labels=meta["labels"],
                indices=meta["indices"],
            )
            seconds = time.perf_counter() - start
            rows = rep.rows()
            assert rep.evaluations <= budget
            state = np.array([r["state"] for r in rows])
            ours_cert, ours_not = state == CERTIFIED, state == NOT_CERTIFIED
            entry = {
                "frac": frac,
                "budget": budget,
                "used": rep.evaluations,
                "seconds": seconds,
                "decided": int(np.sum(ours_cert | ours_not)),
                "pending": int(np.sum(state == PENDING)),
                "undecided": int(np.sum(state == UNDECIDED)),
                "both_cert": int(np.sum(ours_cert & cohen_cert)),
                "only_ours": int(np.sum(ours_cert & ~cohen_cert)),
                "not_cert_cohen_cert": int(np.sum(ours_not & cohen_cert)),
            }
            for cname, mask in per_class.items():
                entry[f"cert_{cname}"] = int(np.sum(ours_cert & mask))
                entry[f"not_{cname}"] = int(np.sum(ours_not & mask))
            results[label].append(entry)
            print(
                f"{label:14s} {frac:7.4f} decided {entry['decided']:4d} used {entry['used']:>11,} {seconds:5.1f} s",
                flush=True,
            )
    total_seconds = time.perf_counter() - t_start

    def cohen_decided(budget: int) -> int:
        return min(n_img, budget // (N0 + N_COHEN))

    n_cohen_cert = int(cohen_cert.sum())
    feasible = int(np.isfinite(costs).sum())
    short = cap < N_COHEN
    lines = [
        f"Recording `{args.streams}`: {n_img} images, model {meta['model']} "
        f"(sha256 {meta['weights_sha256'][:12]}), sigma = {sigma}, seed {meta['seed']}, "
        f"{meta['length']:,} labels per image.",
        "",
    ]
    if short:
        lines += [
            f"**This recording holds {meta['length']:,} labels per image, fewer than Cohen's n0 + n = "
            f"{N0 + N_COHEN:,}.** Our per-input cap is therefore {cap:,} tested samples and Cohen's "
            f"reference decisions use n = {cap:,} (a looser Clopper-Pearson bound than n = 100,000, so "
            f"its certified counts below are lower than at n = 100,000); Cohen's cost on the budget axis "
            f"is still its protocol cost of {N0 + N_COHEN:,} per image.",
            "",
        ]
    lines += [
        "Classes: "
        + "; ".join(
            f"**{pc.name}** r = {pc.radius:g}, alpha = {pc.alpha:g}, priority "
            f"{pc.priority:g}, {int(np.sum(classes == k))} images"
            for k, pc in enumerate(policies)
        )
        + f"; every 5th image (positions 0, 5, ...) is critical. n0 = {N0} pilot (counted), prior "
        f"'pilot', futility at alpha_i, per-input cap {cap:,} tested samples, {args.batch} samples per "
        f"round. Cohen's total: {cohen_total:,} evaluations.",
        "",
        f"Cohen (n = {cap:,}) certifies {n_cohen_cert} of {n_img} images at their radius "
        + "("
        + ", ".join(f"{cname}: {int(np.sum(cohen_cert & m))} of {int(m.sum())}" for cname, m in per_class.items())
        + f") and decides all {n_img} "
        f"(certified or not) for {cohen_total:,} evaluations. The oracle can decide {feasible} images "
        f"within the cap, for {np.sum(costs[np.isfinite(costs)]):,.0f} evaluations in all "
        f"({np.sum(costs[np.isfinite(costs)]) / cohen_total:.2%} of Cohen's total).",
        "",
        "## Decided inputs against the budget",
        "",
        "| budget (of Cohen's) | evaluations | Cohen | oracle | " + " | ".join(labels_) + " |",
        "|---|---|---|---|" + "---|" * len(labels_),
    ]
    for i, frac in enumerate(budgets):
        budget = results[POLICY_NAMES[0]][i]["budget"]
        lines.append(
            f"| {frac:.2%} | {budget:,} | {cohen_decided(budget)} | {oracle_decided(costs, budget)} | "
            + " | ".join(str(results[p][i]["decided"]) for p in labels_)
            + " |"
        )

    lines += [
        "",
        "## Per policy: what was decided",
        "",
        "Certified / not certified per class; `pending` = not finished when the budget ran out; `undecided` = "
        "reached the cap; agreement with Cohen: both certified / certified only by us / not certified by us "
        "although Cohen certified.",
        "",
        "| policy | budget | used | decided | crit. cert. | crit. not cert. | rout. cert. | rout. not cert. | "
        "pending | undecided | decided per 1k evals | agreement | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in labels_:
        for e in results[name]:
            lines.append(
                f"| {name} | {e['frac']:.2%} | {e['used']:,} | {e['decided']} | {e['cert_critical']} | "
                f"{e['not_critical']} | {e['cert_routine']} | {e['not_routine']} | {e['pending']} | "
                f"{e['undecided']} | {1000 * e['decided'] / max(e['used'], 1):.2f} | "
                f"{e['both_cert']} / {e['only_ours']} / {e['not_cert_cohen_cert']} | {e['seconds']:.1f} |"
            )

    # targets
    best = results["max-decisions"]
    lines += ["", "## Targets", ""]
    at5 = [e for e in best if abs(e["frac"] - 0.05) < 1e-12]
    if at5:
        e = at5[0]
        ok = e["decided"] >= 0.95 * n_img
        lines.append(
            f"- **5% of Cohen's budget, at least 95% of its decisions**: max-decisions decides "
            f"{e['decided']} of {n_img} images with {e['used']:,} evaluations (Cohen decides {n_img} with "
            f"{cohen_total:,}): {'met' if ok else 'NOT met'} ({e['decided'] / n_img:.1%}). Counting "
            f"certifications only: {e['cert_critical'] + e['cert_routine']} certified against Cohen's "
            f"{n_cohen_cert} ({(e['cert_critical'] + e['cert_routine']) / max(n_cohen_cert, 1):.1%}); "
            f"{e['both_cert']} certified by both, {e['not_cert_cohen_cert']} not certified by us but certified "
            f"by Cohen."
        )
        first = next((x for x in best if x["decided"] >= 0.95 * n_img), None)
        if first:
            lines.append(
                f"- 95% of Cohen's decisions are first reached at {first['frac']:.2%} of its budget "
                f"({first['used']:,} evaluations) in this grid."
            )
    rr = results["round-robin"]
    more = [(e["frac"], e["decided"], r["decided"]) for e, r in zip(best, rr)]
    per_eval = [
        (e["frac"], e["decided"] / max(e["used"], 1), r["decided"] / max(r["used"], 1)) for e, r in zip(best, rr)
    ]
    n_more = sum(a > b for _, a, b in more)
    n_tie = sum(a == b for _, a, b in more)
    n_less = sum(a < b for _, a, b in more)
    eval_more = sum(a > b for _, a, b in per_eval)
    lines.append(
        f"- **More decisions per evaluation than round-robin at every budget**: max-decisions decides more "
        f"inputs at {n_more} of {len(more)} budgets, as many at {n_tie}"
        + (" (" + ", ".join(f"{f:.2%}: {a}" for f, a, b in more if a == b) + ")" if n_tie else "")
        + f", fewer at {n_less}"
        + (" (" + ", ".join(f"{f:.2%}: {a} vs {b}" for f, a, b in more if a < b) + ")" if n_less else "")
        + f". Per evaluation actually used (decided / used) it is higher at {eval_more} of {len(per_eval)}"
        + (
            " (not at "
            + ", ".join(f"{f:.2%}: {1000 * a:.3f} vs {1000 * b:.3f} per 1k" for f, a, b in per_eval if a <= b)
            + ")"
            if eval_more < len(per_eval)
            else ""
        )
        + ". Target "
        + (
            "met."
            if eval_more == len(per_eval) and n_less == 0
            else f"met wherever more was possible: where neither is ahead, both decided all "
            f"{feasible} inputs that even the oracle can decide within the caps."
            if n_less == 0
            and all(a >= feasible for f, a, b in more if a == b)
            and all(x > y or m[1] >= feasible for (f, x, y), m in zip(per_eval, more))
            else "NOT met at every budget."
        )
    )
    if args.small_n0:
        small = results[f"max-decisions, n0={args.small_n0}"]
        pairs = [(e["frac"], e["decided"], b["decided"]) for e, b in zip(small, best) if e["frac"] <= 0.005]
        lines.append(
            f"- With a pilot of n0 = {args.small_n0} instead of {N0} (not the protocol's n0; Cohen and the "
            f"oracle keep n0 = {N0}), max-decisions decides "
            + ", ".join(f"{a} instead of {b} at {f:.2%}" for f, a, b in pairs)
            + ": at small budgets the pilot is most of the cost of an easy input."
        )
    if META in results:
        others = [label for label in labels_ if label != META]
        for e in results[META]:
            if e["frac"] > 0.001 + 1e-12:
                continue
            best_other = max(
                others,
                key=lambda label: next(
                    x["decided"] for x in results[label] if x is not None and x["frac"] == e["frac"]
                ),
            )
            b = next(x["decided"] for x in results[best_other] if x["frac"] == e["frac"])
            lines.append(
                f"- **Triage with the meta-learner at {e['frac']:.2%} of Cohen's total**: {e['decided']} inputs "
                f"decided against {b} for the best other policy ({best_other}): "
                f"{'more' if e['decided'] > b else 'NOT more'}."
            )
    lines.append(
        f"- Scheduler overhead on replayed streams (no model): {total_seconds:.0f} s for all "
        f"{len(labels_) * len(budgets)} runs."
    )

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = np.geomspace(min(budgets), 1.0, 300) * cohen_total
        fig, ax = plt.subplots(figsize=(7, 5.6))
        # max-weighted often decides exactly as many inputs as max-decisions: it is drawn first, wide, with large
        # open squares, and max-decisions on top with small dots, so that both stay visible where they coincide
        styles = {
            "max-decisions": {"fmt": "o-", "ms": 3.5, "lw": 1.3, "zorder": 4},
            "max-weighted": {"fmt": "s--", "ms": 8, "lw": 3, "mfc": "none", "mew": 1.3, "alpha": 0.8, "zorder": 3},
        }
        others = iter(("^-", "v-", "D:", "P-.", "X-"))
        for name in labels_:
            style = dict(styles[name]) if name in styles else {"fmt": next(others), "ms": 4, "zorder": 3}
            fmt = style.pop("fmt")
            ax.plot(
                [e["budget"] / cohen_total for e in results[name]],
                [e["decided"] for e in results[name]],
                fmt,
                label=name,
                **style,
            )
        ax.plot(
            grid / cohen_total,
            [oracle_decided(costs, int(b)) for b in grid],
            "k:",
            label=f"oracle (Wald limit, n0 = {N0})",
        )
        ax.step(
            grid / cohen_total,
            [cohen_decided(int(b)) for b in grid],
            "-",
            color="gray",
            where="post",
            label="Cohen, fixed n = 100,000",
        )
        ax.axhline(0.95 * n_img, color="gray", lw=0.8, ls="--", label="95% of the inputs (target)")
        ax.set_xscale("log")
        ax.set_xlabel("total budget (fraction of Cohen's total evaluations)")
        ax.set_ylabel("decided inputs")
        ax.set_title(f"Triage, Fashion-MNIST sigma = {sigma}, {n_img} images, cap {cap:,}")
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=1))
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=130, bbox_inches="tight")
        lines += ["", f"![decided inputs against budget]({args.plot.split('/')[-1]})"]

    cmd = f"python benchmarks/bench_triage.py --streams {args.streams}" + (f" --max {args.max}" if args.max else "")
    lines += ["", provenance(cmd, total_seconds)]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Triage benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
