"""Triage's scheduling policies: each proposes (inputs, chunk sizes) for the next round, in order of preference.

A policy sees only the run's past (each input's counts, E-values and costs so far), so whatever it proposes,
each input's certificate stays valid at its class's alpha.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

POLICIES = ("max-decisions", "max-weighted", "risk", "round-robin")


class TriageState(Protocol):
    """What a scheduling policy reads of a run (triage.run.Triage): per-input arrays of its past and settings,
    and the run's estimates built from them. The policies only read; the run admits what they propose."""

    n: int
    n0: int
    min_chunk: int
    policies: list
    alpha: np.ndarray
    priority: np.ndarray
    cap: np.ndarray
    cls: np.ndarray
    piloted: np.ndarray
    served: np.ndarray
    tested: np.ndarray
    evaluations: np.ndarray

    @property
    def pending(self) -> np.ndarray: ...

    @property
    def decided(self) -> np.ndarray: ...

    @property
    def budget_left(self) -> int | None: ...

    def default_chunks(self, js: np.ndarray) -> np.ndarray: ...

    def remaining_cost_quantiles(self, js: np.ndarray) -> np.ndarray: ...


def schedule_round_robin(tri: TriageState, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal chunks to every pending input, least-served first (pilots of n0 first)."""
    js = np.nonzero(tri.pending)[0]
    js = js[np.lexsort((js, tri.served[js]))]
    chunk = max(tri.min_chunk, room // max(js.size, 1))
    counts = np.where(tri.piloted[js], chunk, tri.n0)
    return js, counts


def schedule_risk(tri: TriageState, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Only the highest pending priority is served (smallest alpha, then input order, first within it),
    so a lower priority gets nothing while a higher one has pending inputs; chunks by certify_anytime's rule."""
    js = np.nonzero(tri.pending)[0]
    if js.size:
        js = js[tri.priority[js] == tri.priority[js].max()]
    js = js[np.lexsort((js, tri.alpha[js]))]
    return js, tri.default_chunks(js)


def decision_rates(tri: TriageState, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Expected decisions per evaluation of each pending input, and its expected remaining cost.

    Piloted inputs: the posterior mean of 1{cost(p) <= horizon} / cost(p), horizon = min(cap left,
    budget left), and the posterior median of cost(p). Inputs not yet piloted: the mean of
    1{feasible} / (n0 + spent + cost) over the inputs of the same class already piloted (its
    inverse is their expected cost); while a class has none, its first input gets rate inf (explored
    first) and the others 0.
    """
    pend = np.nonzero(tri.pending)[0]
    rate = np.zeros(tri.n)
    expected = np.full(tri.n, np.inf)
    pil = pend[tri.piloted[pend]]
    left = tri.budget_left
    k = len(tri.policies)
    total, count = np.zeros(k), np.zeros(k)
    if pil.size:
        cost = tri.remaining_cost_quantiles(pil)
        horizon = (tri.cap[pil] - tri.tested[pil]).astype(float)
        if left is not None:
            horizon = np.minimum(horizon, float(left))
        ok = cost <= horizon[:, None]
        rate[pil] = np.where(ok, 1.0 / cost, 0.0).mean(axis=1)
        expected[pil] = np.median(cost, axis=1)
        whole = np.where(ok, 1.0 / (tri.n0 + tri.tested[pil][:, None] + cost), 0.0).mean(axis=1)
        total += np.bincount(tri.cls[pil], whole, minlength=k)
        count += np.bincount(tri.cls[pil], minlength=k)
    done = np.nonzero(tri.piloted & ~tri.pending)[0]
    if done.size:  # finished inputs tell what a whole input of their class cost
        decided = tri.decided[done]
        value = np.where(decided, 1.0 / np.maximum(tri.evaluations[done], 1), 0.0)
        total += np.bincount(tri.cls[done], value, minlength=k)
        count += np.bincount(tri.cls[done], minlength=k)
    new = pend[~tri.piloted[pend]]
    if new.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            class_rate = np.where(count > 0, total / np.maximum(count, 1), np.inf)
            class_cost = np.where(np.isinf(class_rate), tri.n0, 1.0 / class_rate)
        rate[new] = class_rate[tri.cls[new]]
        expected[new] = class_cost[tri.cls[new]]
        unknown = new[np.isinf(rate[new])]
        if unknown.size:  # explore a class by one pilot at a time, not a whole batch of them
            first = np.unique(tri.cls[unknown], return_index=True)[1]
            rate[unknown] = 0.0
            rate[unknown[first]] = np.inf
    if weighted:
        rate = rate * tri.priority
    return rate, expected


def schedule_max_decisions(tri: TriageState, room: int, weighted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Largest expected decisions per evaluation first (ties: smallest expected cost).

    With an evaluation budget, inputs with a positive rate are kept greedily in that order only
    while their expected remaining costs fit in the budget left (the best input always), so the
    end of the budget is not spread over inputs it cannot finish; a round may then be smaller
    than `batch`.
    """
    rate, expected = decision_rates(tri, weighted)
    js = np.nonzero(tri.pending)[0]
    js = js[np.lexsort((js, expected[js], -rate[js]))]
    left = tri.budget_left
    if left is not None and js.size > 1:
        keep = np.zeros(js.size, dtype=bool)
        keep[0] = True
        room_left, most = float(left), room // tri.min_chunk + 1  # a round cannot take more inputs than that
        for i, (c, r) in enumerate(zip(expected[js].tolist(), rate[js].tolist())):
            if r > 0 and c <= room_left:
                keep[i] = True
                room_left -= c
                most -= 1
                if most <= 0:
                    break
        js = js[keep]
    return js, tri.default_chunks(js)


Scheduler = Callable[[TriageState, int], tuple[np.ndarray, np.ndarray]]
SCHEDULERS: dict[str, Scheduler] = {
    "max-decisions": schedule_max_decisions,
    "max-weighted": lambda tri, room: schedule_max_decisions(tri, room, weighted=True),
    "risk": schedule_risk,
    "round-robin": schedule_round_robin,
}
