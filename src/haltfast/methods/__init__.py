"""The certification procedures, one module each, behind one dispatcher.

* cohen: Cohen et al.'s CERTIFY and PREDICT (fixed n, Clopper-Pearson).
* anytime: haltfast's E-process decisions and confidence-sequence radii (the default).
* horvath: Horvath et al.'s adaptive sampling (decision at a required radius only).
* voracek: Voracek's union-bound and betting confidence sequences.

Every streaming method takes (streams, items, *, sigma, alpha, ..., labels, indices, progress, on_result)
and returns one Certificate per item; live and recorded streams take the same path.
"""

from __future__ import annotations

import inspect

from ..certificate import Certificate
from ..errors import HaltfastError
from .anytime import certify_anytime
from .cohen import cohen_certify, cohen_predict
from .horvath import certify_horvath
from .voracek import certify_betting, certify_union_bound

STREAMING_METHODS = {
    "anytime": certify_anytime,
    "horvath": certify_horvath,
    "union-bound": certify_union_bound,
    "betting": certify_betting,
}
METHODS = ("cohen", *STREAMING_METHODS)

__all__ = ["METHODS", "STREAMING_METHODS", "certify_anytime", "cohen_certify", "cohen_predict", "run_method"]


def run_method(method: str, streams, items, *, sigma: float, n0: int, n: int, alpha: float, labels=None,
               indices=None, progress=None, on_result=None, **options) -> list[Certificate]:
    """Run one certification procedure on these items; every certificate holds with probability >= 1 - alpha."""
    if method == "cohen":
        if options:
            raise HaltfastError(f"method 'cohen' takes no options {sorted(options)}")
        return cohen_certify(streams, items, n0, n, alpha, sigma, labels=labels, indices=indices,
                             progress=progress, on_result=on_result)
    procedure = STREAMING_METHODS.get(method)
    if procedure is None:
        raise HaltfastError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "anytime":
        options["n0"] = n0
    common = {"sigma": sigma, "alpha": alpha, "labels": labels, "indices": indices, "progress": progress,
              "on_result": on_result}
    try:
        inspect.signature(procedure).bind(streams, items, **common, **options)
    except TypeError as exc:
        raise HaltfastError(f"method {method!r}: {exc}") from None
    return procedure(streams, items, **common, **options)
