"""Batches of outcomes for many streams: their checks and ragged layouts, shared by the statistics."""

from __future__ import annotations

import numpy as np


def broadcast_params(n_streams, **params):
    """Broadcast scalar/array parameters to 1-D arrays of a common length n_streams."""
    arrs = {k: np.asarray(v, dtype=float) for k, v in params.items() if v is not None}
    for k, v in arrs.items():
        if v.ndim > 1:
            raise ValueError(f"{k} must be a scalar or a 1-D array, got shape {v.shape}")
    shape = np.broadcast_shapes(*(v.shape for v in arrs.values())) if arrs else ()
    if n_streams is None:
        n_streams = shape[0] if len(shape) else 1
    n_streams = int(n_streams)
    if n_streams < 1:
        raise ValueError("n_streams must be >= 1")
    try:
        out = {k: np.array(np.broadcast_to(v, (n_streams,)), dtype=float) for k, v in arrs.items()}
    except ValueError:
        raise ValueError(f"parameters of shape {shape} do not broadcast to n_streams={n_streams}") from None
    return n_streams, out


def check_open_unit(name, v):
    if not np.all((v > 0.0) & (v < 1.0)):
        raise ValueError(f"{name} must lie strictly between 0 and 1")


def check_positive(name, v):
    if not np.all((v > 0.0) & np.isfinite(v)):
        raise ValueError(f"{name} must be positive and finite")


def outcome_batch(outcomes, streams, n_streams):
    """Normalise (outcomes, streams) to a (k, m) uint8 array of 0/1 and int64 stream indices.

    Returns (X, rows, scalar_output) where scalar_output is True for a 1-D outcomes input.
    """
    X = np.asarray(outcomes)
    scalar = X.ndim == 1
    if scalar:
        X = X[None, :]
    if X.ndim != 2:
        raise ValueError(f"outcomes must be 1-D (m,) or 2-D (k, m), got shape {X.shape}")
    X = _binary(X).view(np.uint8)
    k = X.shape[0]
    if streams is None:
        if k != n_streams:
            raise ValueError(f"{k} rows of outcomes but {n_streams} streams: pass streams=")
        rows = np.arange(k, dtype=np.int64)
    else:
        rows = np.asarray(streams, dtype=np.int64).reshape(-1)
        if rows.shape[0] != k:
            raise ValueError(f"streams has {rows.shape[0]} entries for {k} rows of outcomes")
        if k and (rows.min() < 0 or rows.max() >= n_streams):
            raise ValueError("stream index out of range")
        if k > 1 and np.unique(rows).size != k:
            raise ValueError("a stream may appear only once per update call")
    return X, rows, scalar


def flat_batch(outcomes, streams, lengths, n_streams):
    """Check a flat batch: 0/1 outcomes back to back, one segment per stream (each stream at most once).

    Returns (outcomes as bool, streams as int64, lengths as int64).
    """
    x = np.asarray(outcomes)
    rows = np.asarray(streams, dtype=np.int64).reshape(-1)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"flat outcomes must be 1-D, got shape {x.shape}")
    if lengths.shape != rows.shape or np.any(lengths < 0) or int(lengths.sum()) != x.size:
        raise ValueError("lengths must give one non-negative segment length per stream, summing to len(outcomes)")
    if rows.size and (rows.min() < 0 or rows.max() >= n_streams):
        raise ValueError("stream index out of range")
    if rows.size > 1 and np.unique(rows).size != rows.size:
        raise ValueError("a stream may appear only once per update call")
    return _binary(x), rows, lengths


def _binary(x: np.ndarray) -> np.ndarray:
    """0/1 outcomes as bool; anything else is a ValueError."""
    if x.dtype == np.bool_:
        return x
    if x.size and (
        not np.issubdtype(x.dtype, np.number)
        or x.min() < 0
        or x.max() > 1
        or (np.issubdtype(x.dtype, np.floating) and np.any((x != 0) & (x != 1)))
    ):
        raise ValueError("outcomes must be 0/1 (or bool)")
    return x != 0


def ragged_positions(start, length):
    """Flat (row, position) pairs for row i covering start[i] .. start[i] + length[i] - 1."""
    tot = int(length.sum())
    rowrep = np.repeat(np.arange(start.size), length)
    ends = np.cumsum(length)
    pos = np.arange(tot) + np.repeat(start - (ends - length), length)
    return rowrep, pos, ends - 1


def least_integer(predicate, high):
    """Per entry i, the least integer k in [0, high[i]] with predicate(k, where) true, high[i] + 1 if none.

    `predicate` must be monotone in k (false, then true); it is called with the candidate counts of the
    entries still searched and the boolean mask `where` of those entries, so that per-entry parameters
    can be indexed. Bisection: about log2(max(high)) vectorised calls.
    """
    high = np.asarray(high, dtype=np.int64)
    lo = np.full(high.shape, -1, dtype=np.int64)  # predicate false (virtually)
    hi = high + 1  # predicate true (virtually)
    while True:
        gap = hi - lo > 1
        if not gap.any():
            return hi
        mid = (lo + hi) // 2
        holds = np.zeros(high.shape, dtype=bool)
        holds[gap] = predicate(mid[gap], gap)
        lo = np.where(gap & ~holds, mid, lo)
        hi = np.where(gap & holds, mid, hi)
