"""Triage policies: classes of inputs, each with a required radius, a risk level, a priority and a cap.

A TOML file holds one [classes.NAME] table per class (see docs/triage.md); every mistake in it is one
PolicyError naming the class and the key. `assign_classes` deals the inputs to the classes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..certificate import check_radius
from ..certificate import is_number
from ..errors import HaltfastError
from ..errors import PolicyError
from ..errors import UsageError

__all__ = ["PolicyClass", "assign_classes", "load_policies", "parse_policies", "validate_policies"]

_CLASS_KEYS = (
    "radius",
    "alpha",
    "priority",
    "max_samples",
    "futility_alpha",
    "fraction",
    "every",
    "offset",
    "indices",
    "description",
)
_RULE_KEYS = ("indices", "every", "fraction")


@dataclass(frozen=True)
class PolicyClass:
    """A risk class: certify at `radius` with false-certification probability <= `alpha` per input.

    `max_samples` caps the tested samples per input (the n0 pilot not included); `futility_alpha`
    is the level of the "not certified" test (default `alpha`). At most one selection rule: `indices`
    (data set indices), `every`/`offset` (input positions j with j % every == offset) or
    `fraction`; a class with none takes the inputs no rule claimed.
    """

    name: str
    radius: float
    alpha: float
    priority: float = 1.0
    max_samples: int = 100_000
    futility_alpha: float | None = None
    fraction: float | None = None
    every: int | None = None
    offset: int = 0
    indices: tuple[int, ...] | None = None
    description: str = ""

    @property
    def rule(self) -> str:
        """'indices', 'every', 'fraction' or 'default' (takes what no rule claimed)."""
        for key in _RULE_KEYS:
            if getattr(self, key) is not None:
                return key
        return "default"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise PolicyError(f"{where}: {message}")


def _parse_class(name: str, spec, where: str) -> PolicyClass:
    """One [classes.NAME] table, every value checked."""
    _require(isinstance(spec, dict), where, f"expected a table of settings, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_CLASS_KEYS))
    _require(not unknown, where, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_CLASS_KEYS)}")
    for key in ("radius", "alpha"):
        _require(key in spec, where, f"'{key}' is required")
    radius, alpha = spec["radius"], spec["alpha"]
    _require(is_number(radius) and radius >= 0, where, f"radius must be a finite number >= 0, got {radius!r}")
    _require(is_number(alpha) and 0 < alpha < 1, where, f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    priority = spec.get("priority", 1.0)
    _require(is_number(priority) and priority > 0, where, f"priority must be a number > 0, got {priority!r}")
    max_samples = spec.get("max_samples", 100_000)
    _require(
        _is_int(max_samples) and max_samples >= 1, where, f"max_samples must be an integer >= 1, got {max_samples!r}"
    )
    fut = spec.get("futility_alpha")
    _require(
        fut is None or (is_number(fut) and 0 < fut < 1),
        where,
        f"futility_alpha must lie strictly between 0 and 1, got {fut!r}",
    )
    rules = [k for k in _RULE_KEYS if k in spec]
    _require(len(rules) <= 1, where, f"give at most one of {', '.join(_RULE_KEYS)} (got {', '.join(rules)})")
    fraction, every, indices = _parse_rule(spec, where)
    description = spec.get("description", "")
    _require(isinstance(description, str), where, "description must be a string")
    return PolicyClass(
        str(name),
        float(radius),
        float(alpha),
        float(priority),
        int(max_samples),
        None if fut is None else float(fut),
        fraction,
        every,
        int(spec.get("offset", 0)),
        indices,
        description,
    )


def _parse_rule(spec: dict, where: str) -> tuple[float | None, int | None, tuple[int, ...] | None]:
    """The class's selection rule: (fraction, every, indices), at most one of them set."""
    fraction = spec.get("fraction")
    _require(
        fraction is None or (is_number(fraction) and 0 < fraction <= 1),
        where,
        f"fraction must lie in (0, 1], got {fraction!r}",
    )
    every = spec.get("every")
    _require(every is None or (_is_int(every) and every >= 1), where, f"every must be an integer >= 1, got {every!r}")
    offset = spec.get("offset", 0)
    _require("offset" not in spec or every is not None, where, "offset is only meaningful with every")
    _require(
        _is_int(offset) and (every is None or 0 <= offset < every),
        where,
        f"offset must be an integer in [0, every), got {offset!r}",
    )
    indices = spec.get("indices")
    if indices is not None:
        _require(
            isinstance(indices, list) and all(_is_int(i) and i >= 0 for i in indices),
            where,
            "indices must be a list of integers >= 0",
        )
        _require(len(set(indices)) == len(indices), where, "indices lists an index twice")
        indices = tuple(indices)
    return None if fraction is None else float(fraction), every, indices


def parse_policies(config: dict, sigma: float | None = None, source: str = "policy config") -> list[PolicyClass]:
    """Policy classes from a parsed config mapping ({'classes': {name: {...}}}); every mistake raises PolicyError.

    With `sigma`, also refuses a radius that a class's cap can never certify (see validate_policies).
    """
    _require(isinstance(config, dict), source, "expected a table with [classes.NAME] sections")
    extra = sorted(set(config) - {"classes"})
    _require(
        not extra,
        source,
        f"unknown top-level key(s) {', '.join(map(repr, extra))}; only [classes.NAME] tables are allowed",
    )
    classes = config.get("classes")
    _require(
        isinstance(classes, dict) and bool(classes),
        source,
        "no classes; add at least one [classes.NAME] table with radius and alpha",
    )
    assert isinstance(classes, dict)  # _require above refused anything else
    out = [_parse_class(name, spec, f"{source}: class {name!r}") for name, spec in classes.items()]
    defaults = [p.name for p in out if p.rule == "default"]
    _require(
        len(defaults) <= 1,
        source,
        f"classes {', '.join(defaults)} have no selection rule; at most one class may take the remaining "
        f"inputs (give the others indices, every or fraction)",
    )
    total = sum(p.fraction for p in out if p.fraction is not None)
    _require(total <= 1 + 1e-9, source, f"the fractions add up to {total:g} > 1")
    seen: dict[int, str] = {}
    for p in out:
        for i in p.indices or ():
            _require(i not in seen, source, f"index {i} is listed by both class {seen.get(i)!r} and class {p.name!r}")
            seen[i] = p.name
    if sigma is not None:
        validate_policies(out, sigma)
    return out


def load_policies(path: str | Path, sigma: float | None = None) -> list[PolicyClass]:
    """Policy classes from a TOML file (see docs/triage.md); a bad file raises PolicyError naming the mistake."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read policy config {path}: {exc.strerror or exc}") from exc
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from exc
    return parse_policies(config, sigma, source=str(path))


def validate_policies(policies: Sequence[PolicyClass], sigma: float) -> None:
    """Raise PolicyError if a class's radius can never be certified within its cap, even if every sample hits."""
    if not (is_number(sigma) and sigma > 0):
        raise UsageError(f"sigma must be a positive number, got {sigma}")
    if not policies:
        raise PolicyError("no policy classes given")
    for p in policies:
        try:
            check_radius(p.radius, p.max_samples, p.alpha, sigma, what=f"class {p.name!r}: radius")
        except HaltfastError as exc:  # a class of the policy file asks the impossible at this sigma
            raise PolicyError(f"{exc} (or certify at another --sigma)") from None


def assign_classes(
    policies: Sequence[PolicyClass], n_inputs: int, indices: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Class number (position in `policies`) of each input; deterministic, every input gets exactly one class.

    Order of precedence: `indices` rules (data set indices; `indices` defaults to 0..n-1), then `every`
    rules in file order (first match wins), then the remaining inputs are dealt in order among the
    `fraction` classes and the default class (whose share is 1 - sum of fractions): each input goes to
    the class furthest below its share so far, so every prefix is split as evenly as possible.
    """
    n = int(n_inputs)
    ids = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if ids.shape != (n,):
        raise UsageError(f"indices has {ids.size} entries for {n} inputs")
    cls = np.full(n, -1, dtype=np.int64)
    for k, p in enumerate(policies):
        if p.indices is not None:
            cls[np.isin(ids, np.asarray(p.indices, dtype=np.int64)) & (cls < 0)] = k
    pos = np.arange(n)
    for k, p in enumerate(policies):
        if p.every is not None:
            cls[(pos % p.every == p.offset) & (cls < 0)] = k
    share = [(k, p.fraction) for k, p in enumerate(policies) if p.fraction is not None]
    default = [k for k, p in enumerate(policies) if p.rule == "default"]
    rest = np.nonzero(cls < 0)[0]
    if rest.size:
        total = sum(f for _, f in share)
        if default:
            share.append((default[0], max(0.0, 1.0 - total)))
        elif total < 1 - 1e-9:
            first = int(rest[0])
            raise PolicyError(
                f"{rest.size} input(s) match no class (the first: position {first}, index {int(ids[first])}); "
                f"the fractions add up to {total:g} < 1 and no class without a selection rule "
                f"takes the rest"
            )
        if not share:
            raise PolicyError(f"{rest.size} input(s) match no class; add a class without a selection rule")
        ks = np.array([k for k, _ in share])
        fr = np.array([f for _, f in share])
        count = np.zeros(len(share))
        for m, j in enumerate(rest):
            c = int(np.argmax(fr * (m + 1) - count))
            cls[j] = ks[c]
            count[c] += 1
    return cls
