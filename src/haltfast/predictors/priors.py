"""Priors of the beta-mixture E-process: one interface shared by certify, triage and the baselines.

A prior is fixed before an input's tested stream starts. It may depend on the clean input (its logits),
on selection pilot samples that are never tested again, or on other inputs' streams; then every
certificate stays valid whatever the prior says, and a bad prior only costs samples.

The engine asks a prior for the components of each input's test: a list of (share of alpha, a, b).
One component with share 1 is a plain Beta(a, b) mixture; several are a Bonferroni union, which is how
a learned prior is hedged with Jeffreys'.
"""

from __future__ import annotations

from typing import Protocol
from typing import runtime_checkable

import numpy as np

from ..errors import HaltfastError

Parts = list[tuple[float, np.ndarray, np.ndarray]]
NAMED_PRIORS = {"jeffreys": (0.5, 0.5), "uniform": (1.0, 1.0)}


@runtime_checkable
class Predictor(Protocol):
    """Anything that predicts each input's prior before its tested stream starts (a meta-learner)."""

    needs_logits: bool

    def parts(self, z, logits: np.ndarray | None, n: int) -> Parts:
        """Components (share of alpha, a, b) per input for threshold z = r / sigma (None in radius mode)."""
        ...


def jeffreys(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, 0.5), np.full(n, 0.5)


def resolve_prior(prior, pilot_hits: np.ndarray | None, pilot_size: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Beta(a, b) parameters per input of a prior given by name or numbers, fixed before the tested stream starts.

    'jeffreys' = Beta(1/2, 1/2), 'uniform' = Beta(1, 1), 'pilot' = the Jeffreys posterior
    after the selection pilot (its samples are never tested again, so this stays valid),
    or explicit (a, b) / an (n, 2) array. Any such prior keeps every certificate valid.
    """
    if isinstance(prior, str):
        if prior in NAMED_PRIORS:
            a, b = NAMED_PRIORS[prior]
            return np.full(n_items, a), np.full(n_items, b)
        if prior == "pilot":
            if pilot_hits is None:
                raise HaltfastError("prior 'pilot' needs pilot samples: use selection='pilot' with n0 >= 1")
            return 0.5 + pilot_hits.astype(float), 0.5 + (pilot_size - pilot_hits).astype(float)
        if prior == "meta":
            raise HaltfastError(
                "prior 'meta' needs the model's meta-learner: pass prior=MetaLearner.load(path, "
                "weights_sha256) (the CLI finds <model>.meta.json beside the weights)"
            )
        names = ", ".join([*NAMED_PRIORS, "pilot"])
        raise HaltfastError(f"unknown prior {prior!r}; choose one of {names}, a MetaLearner, or give (a, b)")
    arr = np.asarray(prior, dtype=float)
    if arr.shape == (2,):
        arr = np.broadcast_to(arr, (n_items, 2))
    if arr.shape != (n_items, 2) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise HaltfastError(f"prior must be a name, (a, b) with a, b > 0, or an array of shape ({n_items}, 2)")
    return arr[:, 0].copy(), arr[:, 1].copy()


def check_prior(prior, with_pilot: bool, n_items: int | None = None) -> None:
    """Fail up front, before any model evaluation, on a prior that cannot be resolved."""
    if isinstance(prior, Predictor):
        return
    if isinstance(prior, str):
        resolve_prior(prior, np.zeros(0) if with_pilot else None, 0, 0)
    elif n_items is not None:
        resolve_prior(prior, None, 1, n_items)


def prior_parts(prior, z, logits: np.ndarray | None, pilot_hits: np.ndarray | None, pilot_size: int, n: int) -> Parts:
    """The test components of each of n inputs: a Predictor's (checked by check_parts), or one Beta(a, b) with the
    whole alpha."""
    if isinstance(prior, Predictor):
        return check_parts(prior.parts(z, logits, n), n, f"predictor {type(prior).__name__}")
    a, b = resolve_prior(prior, pilot_hits, pilot_size, n)
    return [(1.0, a, b)]


def check_parts(parts, n: int, who: str = "the prior") -> Parts:
    """The components of n inputs' tests, checked where they enter a test: a non-empty list of (share, a, b), each
    share in (0, 1] (a number, or one per input), the shares of one input summing to at most 1 (up to rounding),
    a and b finite and > 0, one per input. Shares summing to more than 1 would run the union's components at
    more than alpha in all and break every certificate's guarantee, so they are refused with one HaltfastError.
    """
    if not isinstance(parts, (list, tuple)) or not parts:
        raise HaltfastError(f"{who} gave {parts!r} as its test components; expected a list of (share of alpha, a, b)")
    shares = []
    checked: Parts = []
    for k, part in enumerate(parts):
        if not isinstance(part, (list, tuple)) or len(part) != 3:
            raise HaltfastError(f"{who}: component {k} is {part!r}, expected (share of alpha, a, b)")
        share, a, b = part
        try:
            w = np.broadcast_to(np.asarray(share, dtype=float), (n,))
            a, b = (np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in (a, b))
        except (TypeError, ValueError):
            raise HaltfastError(
                f"{who}: component {k} must hold a share (a number or one per input) and a, b for each of {n} inputs"
            ) from None
        if not np.all((w > 0) & (w <= 1)):
            bad = float(w[~((w > 0) & (w <= 1))][0])
            raise HaltfastError(f"{who}: component {k} has a share of alpha of {bad:g}; each share must lie in (0, 1]")
        if not (np.all(np.isfinite(a) & (a > 0)) and np.all(np.isfinite(b) & (b > 0))):
            raise HaltfastError(f"{who}: component {k} has a Beta prior parameter that is not a finite number > 0")
        shares.append(w)
        checked.append((share, a, b))
    total = np.sum(shares, axis=0)
    if np.any(total > 1.0 + len(shares) * np.finfo(float).eps):
        raise HaltfastError(
            f"{who}: the shares of alpha of one test sum to {float(total.max()):g}; they must sum to at most 1 "
            f"(a union of tests at levels share x alpha has level sum(shares) x alpha, so more would break the "
            f"certificates' guarantee)"
        )
    return checked


def parts_rows(parts: Parts, rows: np.ndarray) -> Parts:
    """The components of a subset of the inputs."""
    return [(share, a[rows], b[rows]) for share, a, b in parts]


def oracle_prior(streams, items=None) -> np.ndarray:
    """Benchmarks only: Beta(hits + 1/2, misses + 1/2) of each recorded stream's whole length, clean class.

    It looks at the very samples it then tests, so it is not a valid prior for real
    use; it shows how far a perfect prediction of p could take the E-process.
    """
    items = range(len(streams.streams)) if items is None else items
    c_hat, _ = streams.clean(list(items))
    hits = np.array([np.count_nonzero(streams.streams[i] == c) for i, c in zip(items, c_hat)], dtype=float)
    length = np.array([len(streams.streams[i]) for i in items], dtype=float)
    return np.column_stack([hits + 0.5, length - hits + 0.5])
