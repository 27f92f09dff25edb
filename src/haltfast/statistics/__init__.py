"""The statistics core: anytime-valid tests and confidence sequences for a Bernoulli rate.

Pure numpy/scipy (no torch). Everything is vectorised over many streams and computed in log space,
so it stays finite for streams of up to 1e7 draws, for p0 up to 1 - 1e-6 and for all-successes streams.

The stream is X_t = 1[f(x + e_t) = c_hat], i.i.d. Bernoulli(p). A certificate at radius r is the
claim p > p0 = Phi(r / sigma). The tools:

* ``log_beta_mixture_evalue``: the E-process of a Beta(a, b) prior restricted to [p0, 1] (valid for
  the composite null p <= p0), and the point-null (untruncated) variant.
* ``BetaMixtureTest``: a stateful sequential test over many streams, fed in batches; it reports the
  exact sample at which the E-process first reached 1/alpha.
* ``ConfidenceSequence``, ``beta_mixture_lower_bound`` / ``beta_mixture_upper_bound``: anytime-valid
  bounds on p obtained by inverting the beta-mixture test.
* ``UnionTest`` / ``hedged_mixture_test`` / ``UnionConfidenceSequence``: Bonferroni unions that hedge
  an informative prior with Jeffreys'.
* One-sided Clopper-Pearson bounds (the fixed-n baseline) and Wald's lower bound on E[tau].

The mathematics, the numerical choices and their validation are in docs/statistics.md; the published
baselines' statistics live with their methods (haltfast.methods), the exact validation tools in
haltfast.validation.

This module is the public face; inside, imports point one way: ``special`` (the incomplete beta function in
log space) <- ``closed_form`` <- ``mixture_test`` (BetaMixtureTest, OutcomeBatch) <- ``confidence`` and
``union``.
"""

from .closed_form import bernoulli_kl
from .closed_form import clopper_pearson_lower
from .closed_form import clopper_pearson_upper
from .closed_form import log_beta_mixture_evalue
from .closed_form import wald_expected_samples
from .confidence import ConfidenceSequence
from .confidence import RunningBounds
from .confidence import beta_mixture_lower_bound
from .confidence import beta_mixture_upper_bound
from .mixture_test import BetaMixtureTest
from .mixture_test import OutcomeBatch
from .special import log_betaincc
from .union import UnionConfidenceSequence
from .union import UnionTest
from .union import hedged_mixture_test

__all__ = [
    "BetaMixtureTest",
    "ConfidenceSequence",
    "OutcomeBatch",
    "RunningBounds",
    "UnionConfidenceSequence",
    "UnionTest",
    "bernoulli_kl",
    "beta_mixture_lower_bound",
    "beta_mixture_upper_bound",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "hedged_mixture_test",
    "log_beta_mixture_evalue",
    "log_betaincc",
    "wald_expected_samples",
]
