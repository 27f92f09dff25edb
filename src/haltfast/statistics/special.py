"""Special functions in log space: the upper regularized incomplete beta function where scipy's underflows."""

from __future__ import annotations

import numpy as np
from scipy import special as sc

# Below this value betaincc's result is no longer trusted (subnormal or zero): switch to the
# continued fraction evaluated in log space.
_Q_UNDERFLOW = 1e-280
_CF_TINY = 1e-300


def _log_betainc_cf(a, b, x, y, maxiter=20000):
    """log I_x(a, b) by the modified-Lentz continued fraction (x + y == 1, both given exactly).

    Accurate where the fraction converges fast, x < (a + 1) / (a + b + 2), i.e. in the lower tail,
    which is the only place it is used (where betainc itself underflows).
    """
    shape = np.broadcast(a, b, x, y).shape
    a, b, x, y = (np.array(np.broadcast_to(np.asarray(v, float), shape)).ravel() for v in (a, b, x, y))
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = np.ones_like(a)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < _CF_TINY, _CF_TINY, d)
    d = 1.0 / d
    h = d.copy()
    idx = np.arange(a.size)
    for m in range(1, maxiter + 1):
        if idx.size == 0:
            break
        aa_, bb_, xx_ = a[idx], b[idx], x[idx]
        cc, dd, hh = c[idx], d[idx], h[idx]
        m2 = 2.0 * m
        num = m * (bb_ - m) * xx_ / ((qam[idx] + m2) * (aa_ + m2))
        dd = 1.0 + num * dd
        dd = np.where(np.abs(dd) < _CF_TINY, _CF_TINY, dd)
        cc = 1.0 + num / cc
        cc = np.where(np.abs(cc) < _CF_TINY, _CF_TINY, cc)
        dd = 1.0 / dd
        hh = hh * dd * cc
        num = -(aa_ + m) * (qab[idx] + m) * xx_ / ((aa_ + m2) * (qap[idx] + m2))
        dd = 1.0 + num * dd
        dd = np.where(np.abs(dd) < _CF_TINY, _CF_TINY, dd)
        cc = 1.0 + num / cc
        cc = np.where(np.abs(cc) < _CF_TINY, _CF_TINY, cc)
        dd = 1.0 / dd
        delta = dd * cc
        hh = hh * delta
        c[idx], d[idx], h[idx] = cc, dd, hh
        idx = idx[np.abs(delta - 1.0) >= 4e-16]
    front = a * np.log(x) + b * np.log(y) - np.log(a) - sc.betaln(a, b)
    return (front + np.log(h)).reshape(shape)


def log_betaincc(a, b, x):
    """log(1 - I_x(a, b)), the log upper regularized incomplete beta function.

    Uses ``scipy.special.betaincc`` where its result is a normal float, and a continued fraction in
    log space where it underflows, so the result is finite (and accurate) for any a, b > 0 and
    0 < x < 1, including a, b up to 1e7 and x within 1e-6 of 1.  Returns 0 at x = 0, -inf at x = 1.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    x = np.asarray(x, float)
    if not (a.shape == b.shape == x.shape):
        a, b, x = np.broadcast_arrays(a, b, x)
    q = sc.betaincc(a, b, x)
    bad = ~(q > _Q_UNDERFLOW)
    if not bad.any():
        return np.log(q)
    fix = bad & (x > 0.0) & (x < 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.array(np.log(q), dtype=float)  # -inf at x = 1
    if fix.any():
        # 1 - I_x(a, b) = I_{1-x}(b, a): lower tail of Beta(b, a) at 1 - x, by continued fraction.
        if out.ndim == 0:
            return _log_betainc_cf(b, a, 1.0 - x, x)[()]
        out[fix] = _log_betainc_cf(b[fix], a[fix], 1.0 - x[fix], x[fix])
    return out[()] if out.ndim == 0 else out
