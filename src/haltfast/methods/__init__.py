"""The certification procedures, one module each, behind one dispatcher.

* cohen: Cohen et al.'s CERTIFY and PREDICT (fixed n, Clopper-Pearson).
* anytime: haltfast's E-process decisions and confidence-sequence radii (the default).
* horvath: Horvath et al.'s adaptive sampling (decision at a required radius only).
* voracek: Voracek's union-bound and betting confidence sequences.
* predict: PREDICT, the abstaining prediction: Cohen et al.'s fixed n and the anytime version (run_predict).

Every procedure takes (run, target, **its options): the engine's Run over the inputs' streams and the Target
(sigma, alpha, radius, max_samples, checked once), and returns one Certificate per input; live and recorded
streams take the same path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..certificate import Certificate
from ..engine import Run
from ..engine import Target
from ..errors import HaltfastError
from .anytime import certify_anytime
from .cohen import cohen_certify
from .cohen import cohen_predict
from .horvath import certify_horvath
from .predict import PREDICTED
from .predict import run_predict
from .voracek import certify_betting
from .voracek import certify_union_bound

PROCEDURES: dict[str, Callable[..., list[Certificate]]] = {
    "cohen": cohen_certify,
    "anytime": certify_anytime,
    "horvath": certify_horvath,
    "union-bound": certify_union_bound,
    "betting": certify_betting,
}
METHODS = tuple(PROCEDURES)

__all__ = [
    "METHODS",
    "PREDICTED",
    "PROCEDURES",
    "certify_anytime",
    "cohen_certify",
    "cohen_predict",
    "run_method",
    "run_predict",
]


def run_method(
    method: str,
    streams,
    items,
    *,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    labels=None,
    indices=None,
    progress=None,
    on_result=None,
    **options,
) -> list[Certificate]:
    """Run one certification procedure on these items; every certificate holds with probability >= 1 - alpha.

    `options` are the method's own (radius and max_samples for the streaming methods, see each method), and
    for 'anytime' the run's `budget` (evaluations, selection included, never exceeded) and `seconds` (a
    deadline counted from the start, selection included); `progress(inputs, evaluations)` and `on_result(cert)`
    follow the run (see engine.Run).
    """
    procedure = PROCEDURES.get(method)
    if procedure is None:
        raise HaltfastError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "cohen":
        if options:
            raise HaltfastError(f"method 'cohen' takes no options {sorted(options)}")
        options = {"n0": n0, "n": n}
    elif method == "anytime":
        options["n0"] = n0
    radius, max_samples = options.pop("radius", None), options.pop("max_samples", 100_000)
    radii = options.pop("radii", None)
    budget, seconds = options.pop("budget", None), options.pop("seconds", None)
    if method != "anytime" and (budget is not None or seconds is not None):
        raise HaltfastError(f"a run's budget and deadline are for method 'anytime', not {method!r}")
    run = Run(streams, items, labels, indices, progress, on_result, budget=budget, seconds=seconds)
    target = Target(sigma, alpha, radius, max_samples, None if radii is None else tuple(radii))
    try:
        inspect.signature(procedure).bind(run, target, **options)
    except TypeError as exc:
        raise HaltfastError(f"method {method!r}: {exc}") from None
    return procedure(run, target, **options)
