"""Closed-form quantities for a Bernoulli rate: the beta-mixture E-value, KL, Clopper-Pearson, Wald's bound.

`log_beta_mixture_evalue` and the stateful test (mixture_test.py) compute log E with the same core
(`_log_mixture_core`), so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import special as sc

from .special import log_betaincc


def bernoulli_kl(p, q):
    """KL(Bernoulli(p) || Bernoulli(q)) in nats; 0 <= p <= 1, 0 < q < 1 (inf at q in {0,1} unless p == q)."""
    p = np.asarray(p, float)
    q = np.asarray(q, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sc.xlogy(p, p) - sc.xlogy(p, q) + sc.xlog1py(1.0 - p, -p) - sc.xlog1py(1.0 - p, -q)
    out = np.maximum(out, 0.0)
    return out[()] if np.ndim(out) == 0 else out


def clopper_pearson_lower(k, n, alpha):
    """One-sided Clopper-Pearson lower bound: P(p >= bound) >= 1 - alpha for a fixed n.

    The alpha-quantile of Beta(k, n - k + 1); 0 at k = 0.
    """
    k, n, alpha = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float), np.asarray(alpha, float))
    with np.errstate(invalid="ignore"):
        out = sc.betaincinv(np.maximum(k, 1.0), n - k + 1.0, alpha)
    out = np.where(k <= 0, 0.0, out)
    return out[()] if out.ndim == 0 else out


def clopper_pearson_upper(k, n, alpha):
    """One-sided Clopper-Pearson upper bound: P(p <= bound) >= 1 - alpha.

    The (1 - alpha)-quantile of Beta(k + 1, n - k); 1 at k = n.
    """
    k, n, alpha = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float), np.asarray(alpha, float))
    with np.errstate(invalid="ignore"):
        # upper quantile via the mirrored lower bound: 1 - lower(n - k, n, alpha); exact identity,
        # more accurate than betaincinv(.., 1 - alpha) when alpha is tiny.
        out = 1.0 - sc.betaincinv(np.maximum(n - k, 1.0), k + 1.0, alpha)
    out = np.where(k >= n, 1.0, out)
    return out[()] if out.ndim == 0 else out


def log_beta_mixture_evalue(successes, trials, p0, a, b, truncated=True):
    """log E_t(p0) of the Beta(a, b) mixture (docs/statistics.md), vectorised with broadcasting.

    truncated=True: prior restricted to [p0, 1]; E_t is a nonnegative supermartingale with E_0 = 1
    under every p <= p0, so P(sup_t E_t >= 1/alpha) <= alpha (Ville) for the composite null p <= p0.
    truncated=False: the untruncated (point-null p = p0) mixture, valid only for p = p0.
    Finite for 0 < p0 < 1, a, b > 0, 0 <= successes <= trials (tested to trials = 1e7, p0 = 1 - 1e-6).
    """
    s = np.asarray(successes, float)
    t = np.asarray(trials, float)
    p0 = np.asarray(p0, float)
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if truncated:
        lnorm = sc.betaln(a, b) + log_betaincc(a, b, p0)
    else:
        lnorm = sc.betaln(a, b)
    out = np.asarray(_log_mixture_core(s, t, p0, a, b, np.log(p0), np.log1p(-p0), lnorm, truncated), float)
    return out[()] if out.ndim == 0 else out


def _log_mixture_core(s, t, p0, a, b, lp0, l1p0, lnorm, truncated=True):
    """log E from precomputed log p0, log(1 - p0) and prior normaliser (shared by all callers, so that
    the function and the stateful test agree bit for bit)."""
    f = t - s
    out = _log_mixture_untruncated(s, f, a, b, lp0, l1p0, lnorm)
    if truncated:
        out = out + log_betaincc(a + s, b + f, p0)
    return out


def _log_mixture_untruncated(s, f, a, b, lp0, l1p0, lnorm):
    """log E without the posterior's truncation term log Q(a+S, b+F; p0) <= 0: an upper bound on the truncated
    log E, computed with the same operations so that the bound holds bit for bit."""
    return sc.betaln(a + s, b + f) - lnorm - s * lp0 - f * l1p0


def wald_expected_samples(p, p0, alpha, beta=0.0):
    """Wald's lower bound on E_p[tau] for any level-alpha sequential test of p <= p0 with miss rate beta.

    p > p0: ((1-beta) log((1-beta)/alpha) + beta log(beta/(1-alpha))) / KL(p || p0);
    p < p0 (futility side): the same with alpha and beta swapped (inf when beta == 0);
    p == p0: inf.  KL(1 || p0) = -log p0 handles all-successes streams.
    """
    p, p0, alpha, beta = np.broadcast_arrays(*(np.asarray(v, float) for v in (p, p0, alpha, beta)))

    def num(al, be):
        with np.errstate(divide="ignore", invalid="ignore"):
            return sc.xlogy(1.0 - be, 1.0 - be) - sc.xlogy(1.0 - be, al) + sc.xlogy(be, be) - sc.xlogy(be, 1.0 - al)

    kl = bernoulli_kl(p, p0)
    n = np.where(p >= p0, num(alpha, beta), num(beta, alpha))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(kl > 0, n / np.where(kl > 0, kl, 1.0), np.inf)
    out = np.where(np.isnan(out), np.inf, out)
    return out[()] if out.ndim == 0 else out
