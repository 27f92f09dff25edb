"""Cohen, Rosenfeld and Kolter's (ICML 2019) procedures: CERTIFY (fixed n, Clopper-Pearson) and PREDICT."""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from .. import engine
from ..certificate import ABSTAIN
from ..certificate import ABSTAINED
from ..certificate import CERTIFIED
from ..certificate import Certificate
from ..certificate import StopReason
from ..certificate import radius_from_p
from ..certificate import validate_alpha
from ..certificate import validate_count
from ..engine import Run
from ..engine import Target
from ..errors import HaltfastError
from ..statistics import clopper_pearson_lower


def cohen_certify(run: Run, target: Target, *, n0: int, n: int) -> list[Certificate]:
    """Cohen et al.'s CERTIFY: n0 samples choose the class, n fresh samples give a one-sided Clopper-Pearson bound.

    The n samples are drawn and counted in pieces of at most engine.MAX_CHUNK, so any n fits in memory.
    """
    n0, n = validate_count("n0", n0), validate_count("n", n)
    if target.radius is not None:
        raise HaltfastError("method 'cohen' estimates each input's radius; it takes no required radius")
    for j in range(run.n):
        one = np.array([j])
        pilot = run.draw(one, [n0])[0]
        if pilot is None:
            continue
        c_hat = int(np.bincount(pilot, minlength=run.streams.num_classes).argmax())
        hits = 0
        for lo in range(0, n, engine.MAX_CHUNK):
            drawn = run.draw(one, [min(engine.MAX_CHUNK, n - lo)])[0]
            if drawn is None:
                break
            hits += int(np.count_nonzero(drawn == c_hat))
        if run.certs[j] is None:
            p_low = float(clopper_pearson_lower(hits, n, target.alpha))
            if p_low < 0.5:
                cert = Certificate(ABSTAIN, 0.0, ABSTAINED, 0, p_lower=p_low, stop_reason=StopReason.FIXED_N)
            else:
                cert = Certificate(
                    c_hat,
                    float(radius_from_p(p_low, target.sigma)),
                    CERTIFIED,
                    0,
                    p_lower=p_low,
                    stop_reason=StopReason.FIXED_N,
                )
            run.finish(j, cert)
    return run.results()


def cohen_predict(streams, item: int, n: int, alpha: float) -> int:
    """Cohen et al.'s PREDICT: the top class if a two-sided binomial test against the runner-up passes, else ABSTAIN."""
    n, alpha = validate_count("n", n), validate_alpha(alpha)
    drawn, errors = streams.draw([item], [n])
    if drawn[0] is None:
        raise HaltfastError(f"base classifier failed: {errors[item]}")
    counts = np.bincount(drawn[0], minlength=streams.num_classes)
    top2 = counts.argsort()[::-1][:2]
    n_a, n_b = int(counts[top2[0]]), int(counts[top2[1]])
    if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(top2[0])
