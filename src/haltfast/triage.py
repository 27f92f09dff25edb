"""Risk-based compute triage: many inputs, each with its own risk policy, one global budget.

Every input has its own anytime-valid E-processes (certification and futility, as in
`certify_anytime`'s decision mode) on its own canonical noise stream. A scheduler decides, round
by round, which inputs get the next model batch and how many samples each; inputs are paused and
resumed freely. The schedule is a function of past data only, and each E-process is fed only its
own input's samples, so Ville's inequality holds for each input whatever the schedule: the
probability that an input is ever certified at its radius r_i although p <= Phi(r_i / sigma) is
at most its alpha_i, at whatever moment the run stops (budget, time, interruption).

See docs/triage.md for the configuration format, the scheduling policies and the benchmark.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import special as sc

from .certify import (ABSTAIN, _chunk_grid, max_certifiable_radius, p_for_radius, radius_from_p,
                      resolve_prior, validate_alpha, validate_count)
from .errors import HaltfastError
from .sampling import RecordedStreams
from .statistics import BetaMixtureTest, bernoulli_kl, beta_mixture_lower_bound

__all__ = ["PolicyClass", "POLICIES", "STATES", "load_policies", "parse_policies", "validate_policies",
           "assign_classes", "Triage", "TriageReport", "triage", "format_summary"]

POLICIES = ("max-decisions", "max-weighted", "risk", "round-robin")
STATES = ("certified", "refuted", "pending", "undecided", "error")
_PENDING, _CERTIFIED, _REFUTED, _UNDECIDED, _ERROR = range(5)
_STATE_NAMES = np.array(["pending", "certified", "refuted", "undecided", "error"])

_CLASS_KEYS = ("radius", "alpha", "priority", "max_samples", "futility_alpha", "fraction", "every", "offset",
               "indices", "description")
_RULE_KEYS = ("indices", "every", "fraction")
_QUADRATURE = 12          # posterior quantiles used to estimate an input's remaining cost


# ---------------------------------------------------------------------------------------------
# Policies: classes of inputs with a required radius, a risk level, a priority and a cap
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyClass:
    """A risk class: certify at `radius` with false-certification probability <= `alpha` per input.

    `max_samples` caps the tested samples per input (the n0 pilot not included); `futility_alpha`
    is the level of the "refuted" test (default `alpha`). At most one selection rule: `indices`
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


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_policies(config: dict, sigma: float | None = None, source: str = "policy config") -> list[PolicyClass]:
    """Policy classes from a parsed config mapping ({'classes': {name: {...}}}); every mistake raises HaltfastError.

    With `sigma`, also refuses a radius that a class's cap can never certify (see validate_policies).
    """
    if not isinstance(config, dict):
        raise HaltfastError(f"{source}: expected a table with [classes.NAME] sections")
    extra = sorted(set(config) - {"classes"})
    if extra:
        raise HaltfastError(f"{source}: unknown top-level key(s) {', '.join(map(repr, extra))}; only [classes.NAME] "
                            f"tables are allowed")
    classes = config.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise HaltfastError(f"{source}: no classes; add at least one [classes.NAME] table with radius and alpha")
    out: list[PolicyClass] = []
    for name, spec in classes.items():
        where = f"{source}: class {name!r}"
        if not isinstance(spec, dict):
            raise HaltfastError(f"{where}: expected a table of settings, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(_CLASS_KEYS))
        if unknown:
            raise HaltfastError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                                f"{', '.join(_CLASS_KEYS)}")
        for key in ("radius", "alpha"):
            if key not in spec:
                raise HaltfastError(f"{where}: '{key}' is required")
        radius, alpha = spec["radius"], spec["alpha"]
        if not _is_number(radius) or radius < 0:
            raise HaltfastError(f"{where}: radius must be a finite number >= 0, got {radius!r}")
        if not _is_number(alpha) or not 0 < alpha < 1:
            raise HaltfastError(f"{where}: alpha must lie strictly between 0 and 1, got {alpha!r}")
        priority = spec.get("priority", 1.0)
        if not _is_number(priority) or priority <= 0:
            raise HaltfastError(f"{where}: priority must be a number > 0, got {priority!r}")
        max_samples = spec.get("max_samples", 100_000)
        if not _is_int(max_samples) or max_samples < 1:
            raise HaltfastError(f"{where}: max_samples must be an integer >= 1, got {max_samples!r}")
        fut = spec.get("futility_alpha")
        if fut is not None and (not _is_number(fut) or not 0 < fut < 1):
            raise HaltfastError(f"{where}: futility_alpha must lie strictly between 0 and 1, got {fut!r}")
        rules = [k for k in _RULE_KEYS if k in spec]
        if len(rules) > 1:
            raise HaltfastError(f"{where}: give at most one of {', '.join(_RULE_KEYS)} (got {', '.join(rules)})")
        fraction = spec.get("fraction")
        if fraction is not None and (not _is_number(fraction) or not 0 < fraction <= 1):
            raise HaltfastError(f"{where}: fraction must lie in (0, 1], got {fraction!r}")
        every = spec.get("every")
        if every is not None and (not _is_int(every) or every < 1):
            raise HaltfastError(f"{where}: every must be an integer >= 1, got {every!r}")
        offset = spec.get("offset", 0)
        if "offset" in spec and every is None:
            raise HaltfastError(f"{where}: offset is only meaningful with every")
        if not _is_int(offset) or (every is not None and not 0 <= offset < every):
            raise HaltfastError(f"{where}: offset must be an integer in [0, every), got {offset!r}")
        indices = spec.get("indices")
        if indices is not None:
            if not isinstance(indices, list) or not all(_is_int(i) and i >= 0 for i in indices):
                raise HaltfastError(f"{where}: indices must be a list of integers >= 0")
            if len(set(indices)) != len(indices):
                raise HaltfastError(f"{where}: indices lists an index twice")
            indices = tuple(indices)
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise HaltfastError(f"{where}: description must be a string")
        out.append(PolicyClass(str(name), float(radius), float(alpha), float(priority), int(max_samples),
                               None if fut is None else float(fut), None if fraction is None else float(fraction),
                               every, int(offset), indices, description))
    defaults = [p.name for p in out if p.rule == "default"]
    if len(defaults) > 1:
        raise HaltfastError(f"{source}: classes {', '.join(defaults)} have no selection rule; at most one class may "
                            f"take the remaining inputs (give the others indices, every or fraction)")
    total = sum(p.fraction for p in out if p.fraction is not None)
    if total > 1 + 1e-9:
        raise HaltfastError(f"{source}: the fractions add up to {total:g} > 1")
    seen: dict[int, str] = {}
    for p in out:
        for i in p.indices or ():
            if i in seen:
                raise HaltfastError(f"{source}: index {i} is listed by both class {seen[i]!r} and class {p.name!r}")
            seen[i] = p.name
    if sigma is not None:
        validate_policies(out, sigma)
    return out


def load_policies(path: str | Path, sigma: float | None = None) -> list[PolicyClass]:
    """Policy classes from a TOML file (see docs/triage.md); a bad file raises HaltfastError naming the mistake."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise HaltfastError(f"cannot read policy config {path}: {exc.strerror or exc}") from exc
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HaltfastError(f"{path}: not valid TOML: {exc}") from exc
    return parse_policies(config, sigma, source=str(path))


def validate_policies(policies: Sequence[PolicyClass], sigma: float) -> None:
    """Raise HaltfastError if a class's radius can never be certified within its cap, even if every sample hits."""
    if not (_is_number(sigma) and sigma > 0):
        raise HaltfastError(f"sigma must be a positive number, got {sigma}")
    if not policies:
        raise HaltfastError("no policy classes given")
    for p in policies:
        r_max = max_certifiable_radius(p.max_samples, p.alpha, sigma)
        if p.radius >= r_max:
            log_p = float(np.log(p_for_radius(p.radius, sigma)))
            need = math.log(p.alpha) / log_p if log_p < 0 else math.inf
            need_s = f"max_samples >= {math.ceil(need):,}" if need < 1e12 else "more than 10^12 samples"
            raise HaltfastError(f"class {p.name!r}: radius {p.radius:g} can never be certified with max_samples="
                                f"{p.max_samples:,} at alpha={p.alpha:g} and sigma={sigma:g}: even if every "
                                f"sample hits, the largest certifiable radius is {r_max:.4f}; it needs {need_s}")


def assign_classes(policies: Sequence[PolicyClass], n_inputs: int, indices: Sequence[int] | None = None) -> np.ndarray:
    """Class number (position in `policies`) of each input; deterministic, every input gets exactly one class.

    Order of precedence: `indices` rules (data set indices; `indices` defaults to 0..n-1), then `every`
    rules in file order (first match wins), then the remaining inputs are dealt in order among the
    `fraction` classes and the default class (whose share is 1 - sum of fractions): each input goes to
    the class furthest below its share so far, so every prefix is split as evenly as possible.
    """
    n = int(n_inputs)
    ids = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if ids.shape != (n,):
        raise HaltfastError(f"indices has {ids.size} entries for {n} inputs")
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
            j = int(rest[0])
            raise HaltfastError(f"{rest.size} input(s) match no class (the first: position {j}, index {int(ids[j])}); "
                                f"the fractions add up to {total:g} < 1 and no class without a selection rule "
                                f"takes the rest")
        if not share:
            raise HaltfastError(f"{rest.size} input(s) match no class; add a class without a selection rule")
        ks = np.array([k for k, _ in share])
        fr = np.array([f for _, f in share])
        count = np.zeros(len(share))
        for m, j in enumerate(rest):
            c = int(np.argmax(fr * (m + 1) - count))
            cls[j] = ks[c]
            count[c] += 1
    return cls


# ---------------------------------------------------------------------------------------------
# The triage run
# ---------------------------------------------------------------------------------------------


class Triage:
    """Spends a global budget of model evaluations across many inputs with per-input risk policies.

    Guarantees, whatever the scheduling policy (built-in or a callable): each input certified at
    its class radius is wrong with probability at most its class alpha; the evaluations spent
    (pilots included, every sample requested from the streams) never exceed `budget_evaluations`;
    after every round the state is consistent, so `report()` may be called at any time, and `run()`
    may be called again to resume with a larger budget.

    `classes` gives each input's class (numbers into `policies`, or names); default: the policies'
    selection rules (assign_classes). `batch` is the number of samples per round (one shared draw).
    `progress(newly_final_inputs, evaluations)` is called after every round, `on_round(self)` too.

    `policy` is one of POLICIES or a callable `scheduler(triage, room) -> (js, counts)` proposing
    inputs (positions 0..n-1) and chunk sizes in order of preference; the run clips the proposal to
    pending inputs, to each input's cap, to a full pilot of n0 for inputs not yet piloted, and to
    `room` (the smaller of `batch` and the budget left). `prior` is as in `certify_anytime`
    ('pilot', 'jeffreys', 'uniform', (a, b), an (n, 2) array), or a callable `prior(js, c_hat, hits)
    -> (a, b)` called when the pilots of inputs js finish (a meta-learner's priors); each input's
    prior is fixed before its tested stream starts.
    """

    def __init__(self, streams, items, policies, *, sigma: float, classes=None, policy="max-decisions",
                 n0: int = 100, prior="pilot", batch: int = 4000, min_chunk: int = 16, growth: float = 1 / 16,
                 labels=None, indices=None, progress: Callable[[int, int], None] | None = None,
                 on_round: Callable[["Triage"], None] | None = None):
        if isinstance(policies, (str, Path)):
            policies = load_policies(policies, sigma)
        self.policies = list(policies)
        validate_policies(self.policies, sigma)
        self.sigma = float(sigma)
        self.streams, self.items = streams, [int(i) for i in items]
        n = self.n = len(self.items)
        self.n0 = validate_count("n0", n0)
        self.batch = validate_count("batch", batch)
        if self.batch < self.n0:
            raise HaltfastError(f"batch ({self.batch}) must be at least n0 ({self.n0}): a pilot is never split")
        self.min_chunk = validate_count("min_chunk", min_chunk)
        self.growth = float(growth)
        if not (callable(policy) or policy in POLICIES):
            raise HaltfastError(f"unknown scheduling policy {policy!r}; choose one of {', '.join(POLICIES)}")
        self.policy = policy
        self.policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", "custom")
        self._scheduler = policy if callable(policy) else _SCHEDULERS[policy]
        self.indices = np.asarray(indices if indices is not None else self.items, dtype=np.int64)
        if self.indices.shape != (n,):
            raise HaltfastError(f"indices has {self.indices.size} entries for {n} inputs")
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and self.labels.shape != (n,):
            raise HaltfastError(f"labels has {self.labels.size} entries for {n} inputs")
        if classes is None:
            classes = assign_classes(self.policies, n, self.indices)
        classes = np.asarray(classes)
        if classes.dtype.kind in "USO":            # class names
            number = {p.name: k for k, p in enumerate(self.policies)}
            unknown = sorted({str(c) for c in classes.tolist()} - set(number))
            if unknown:
                raise HaltfastError(f"unknown class name(s) {', '.join(map(repr, unknown))}; the policies define "
                                    f"{', '.join(number)}")
            classes = np.array([number[str(c)] for c in classes.tolist()], dtype=np.int64)
        self.cls = np.asarray(classes, dtype=np.int64)
        if self.cls.shape != (n,) or (n and (self.cls.min() < 0 or self.cls.max() >= len(self.policies))):
            raise HaltfastError(f"classes must hold one class number in [0, {len(self.policies)}) per input")
        if callable(prior):
            self._prior = prior
        else:
            if isinstance(prior, str):
                resolve_prior(prior, np.zeros(0), 0, 0)  # a bad name fails up front
            else:
                resolve_prior(prior, None, self.n0, n)   # a bad shape fails up front
            self._prior = prior
        self.progress, self.on_round = progress, on_round

        P = self.policies
        self.radius = np.array([P[k].radius for k in self.cls], dtype=float)
        self.alpha = np.array([P[k].alpha for k in self.cls], dtype=float)
        self.alpha_fut = np.array([P[k].futility_alpha or P[k].alpha for k in self.cls], dtype=float)
        self.priority = np.array([P[k].priority for k in self.cls], dtype=float)
        self.cap = np.array([P[k].max_samples for k in self.cls], dtype=np.int64)
        self.p0 = np.array([p_for_radius(P[k].radius, self.sigma) for k in self.cls], dtype=float)
        if isinstance(streams, RecordedStreams):         # a recording: refuse caps it cannot serve, up front
            recorded = streams.streams
            for j, item in enumerate(self.items):
                have = len(recorded[item]) - int(streams.positions[item])
                if have < self.n0 + self.cap[j]:
                    pc = P[self.cls[j]]
                    raise HaltfastError(f"the recorded stream of input {int(self.indices[j])} has {have:,} labels "
                                        f"left; class {pc.name!r} needs n0 + max_samples = "
                                        f"{self.n0 + pc.max_samples:,}: set max_samples <= "
                                        f"{max(have - self.n0, 0):,} for that class or record longer streams")
        self.thr = -np.log(self.alpha)
        self.thr_fut = -np.log(self.alpha_fut)

        self.state = np.full(n, _PENDING, dtype=np.int64)
        self.piloted = np.zeros(n, dtype=bool)
        self.c_hat = np.full(n, ABSTAIN, dtype=np.int64)
        self.hits = np.zeros(n, dtype=np.int64)
        self.a = np.full(n, np.nan)
        self.b = np.full(n, np.nan)
        self.tested = np.zeros(n, dtype=np.int64)
        self.successes = np.zeros(n, dtype=np.int64)
        self.evaluations = np.zeros(n, dtype=np.int64)
        self.served = np.zeros(n, dtype=np.int64)
        self.log_evalue = np.zeros(n)
        self.log_evalue_fut = np.zeros(n)
        self.stopped_at = np.full(n, -1, dtype=np.int64)
        self.errors: dict[int, str] = {}
        # one certification test over all inputs (each row gets its prior when its pilot ends) and one futility test
        self._cert = BetaMixtureTest(self.p0, self.alpha, 0.5, 0.5, n_streams=n) if n else None
        self._fut = BetaMixtureTest(self.p0, self.alpha_fut, 0.5, 0.5, n_streams=n, alternative="less") \
            if n else None
        self._dirty = np.ones(n, dtype=bool)       # scheduler caches to refresh
        self._cost_q = np.zeros((n, _QUADRATURE))
        self.used = 0
        self.budget_evaluations: int | None = None
        self.budget_seconds: float | None = None
        self.rounds = 0
        self.seconds = 0.0
        self.stop_reason = "not started"
        self._stop_flag = False

    # -- views used by schedulers -------------------------------------------------------------

    @property
    def pending(self) -> np.ndarray:
        """Boolean mask of inputs that may still be scheduled."""
        return self.state == _PENDING

    @property
    def budget_left(self) -> int | None:
        return None if self.budget_evaluations is None else self.budget_evaluations - self.used

    def default_chunks(self, js: np.ndarray) -> np.ndarray:
        """certify_anytime's chunk rule: the fewest samples that could still decide, else t * growth, on a 2^(1/4) grid.

        Inputs not yet piloted get n0. The estimate of p uses the pilot too (scheduling may use any past data).
        """
        js = np.asarray(js, dtype=np.int64)
        t = self.tested[js]
        phat = (self.hits[js] + self.successes[js] + 0.5) / (self.n0 + t + 1.0)
        p0 = self.p0[js]
        need_cert = (self.thr[js] - self.log_evalue[js]) / -np.log(p0)
        need_fut = (self.thr_fut[js] - self.log_evalue_fut[js]) / -np.log1p(-p0)
        base = np.ceil(np.where(phat > p0, need_cert, need_fut))
        size = _chunk_grid(np.maximum(base, np.ceil(self.growth * t)), self.min_chunk)
        size = np.minimum(size, self.cap[js] - t)
        return np.where(self.piloted[js], size, self.n0).astype(np.int64)

    def remaining_cost_quantiles(self, js: np.ndarray) -> np.ndarray:
        """(len(js), 12) estimates of the tested samples each input still needs for a decision.

        One per posterior quantile of p (Jeffreys prior updated with pilot and tested counts):
        the E-process gap to its threshold divided by KL(p || p0) (Wald), on the side p falls,
        never below the fewest samples that could close the gap; inf at p = p0.
        """
        js = np.asarray(js, dtype=np.int64)
        refresh = js[self._dirty[js]]
        if refresh.size:
            A = 0.5 + self.hits[refresh] + self.successes[refresh]
            B = 0.5 + (self.n0 - self.hits[refresh]) + (self.tested[refresh] - self.successes[refresh])
            u = (np.arange(_QUADRATURE) + 0.5) / _QUADRATURE
            p = sc.betaincinv(A[:, None], B[:, None], u[None, :])
            p0 = self.p0[refresh][:, None]
            up = p > p0
            gap_c = np.maximum(self.thr[refresh] - self.log_evalue[refresh], 0.0)[:, None]
            gap_f = np.maximum(self.thr_fut[refresh] - self.log_evalue_fut[refresh], 0.0)[:, None]
            gap = np.where(up, gap_c, gap_f)
            floor = np.where(up, gap_c / -np.log(p0), gap_f / -np.log1p(-p0))
            kl = bernoulli_kl(p, p0)
            with np.errstate(divide="ignore"):
                cost = np.where(kl > 0, gap / np.where(kl > 0, kl, 1.0), np.inf)
            self._cost_q[refresh] = np.maximum(np.maximum(cost, floor), 1.0)
            self._dirty[refresh] = False
        return self._cost_q[js]

    # -- running ------------------------------------------------------------------------------

    def run(self, budget_evaluations: int | None = None, budget_seconds: float | None = None) -> "TriageReport":
        """Run rounds until every input is final, the budget is spent, or an interrupt; returns the report.

        `budget_evaluations` caps the total evaluations of this Triage (all runs, pilots included) and is
        never exceeded; `budget_seconds` limits this call (a round starts only if the mean round time so
        far predicts it ends in time). Ctrl-C (SIGINT, in the main thread) or a KeyboardInterrupt raised
        by `on_round` stops at the end of the current round and returns the report of that moment.
        """
        if budget_evaluations is not None:
            ok = isinstance(budget_evaluations, (int, np.integer, float)) and not isinstance(budget_evaluations, bool)
            if not (ok and np.isfinite(budget_evaluations) and budget_evaluations == int(budget_evaluations)
                    and budget_evaluations >= 0):
                raise HaltfastError(f"budget_evaluations must be an integer >= 0, got {budget_evaluations!r}")
            self.budget_evaluations = int(budget_evaluations)
        else:
            self.budget_evaluations = None
        if budget_seconds is not None and not (_is_number(budget_seconds) and budget_seconds > 0):
            raise HaltfastError(f"budget_seconds must be a number > 0, got {budget_seconds}")
        self.budget_seconds = budget_seconds
        start = time.perf_counter()
        rounds_here = 0
        self._stop_flag = False
        self.stop_reason = "running"
        previous = self._install_sigint()
        reason = ""
        try:
            while not reason:
                if self._stop_flag:
                    reason = "interrupted"
                    break
                if budget_seconds is not None:
                    elapsed = time.perf_counter() - start
                    if elapsed + (elapsed / rounds_here if rounds_here else 0.0) > budget_seconds:
                        reason = "time budget spent"
                        break
                reason = self._round()
                if reason:
                    break
                rounds_here += 1
                if self._stop_flag:
                    reason = "interrupted"
                    break
                if self.on_round is not None:
                    self.on_round(self)
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            self._restore_sigint(previous)
            self.seconds += time.perf_counter() - start
        self.stop_reason = reason
        return self.report()

    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_flag:            # a second Ctrl-C interrupts at once
                raise KeyboardInterrupt
            self._stop_flag = True

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:
            return None

    @staticmethod
    def _restore_sigint(previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    def _admit(self, js, counts, room: int) -> tuple[np.ndarray, np.ndarray]:
        """Clip a scheduler's proposal to pending inputs, caps, whole pilots and the room of this round."""
        js = np.asarray(js, dtype=np.int64).reshape(-1)
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        if js.shape != counts.shape:
            raise HaltfastError("a scheduler must return as many chunk sizes as inputs")
        if js.size and (js.min() < 0 or js.max() >= self.n):
            raise HaltfastError("a scheduler proposed an input outside 0..n-1")
        take_j, take_c, total, seen = [], [], 0, set()
        for j, c in zip(js.tolist(), counts.tolist()):
            if total >= room:
                break
            if j in seen or self.state[j] != _PENDING:
                continue
            if not self.piloted[j]:
                c = self.n0
                if c > room - total:
                    continue          # a pilot is never split
            else:
                c = min(int(c), int(self.cap[j] - self.tested[j]), room - total)
                if c < 1:
                    continue
            seen.add(j)
            take_j.append(j)
            take_c.append(c)
            total += c
        return np.array(take_j, dtype=np.int64), np.array(take_c, dtype=np.int64)

    def _round(self) -> str:
        """One round: schedule, draw one shared batch, update the tests. Returns a stop reason or ''."""
        if not self.pending.any():
            return "every input decided" if not np.any(self.state == _UNDECIDED) else "every input final"
        left = self.budget_left
        room = self.batch if left is None else min(self.batch, left)
        if room <= 0:
            return "evaluation budget spent"
        js, counts = self._scheduler(self, room)
        js, counts = self._admit(js, counts, room)
        if js.size == 0 and left is not None and left < self.batch:
            # the end of the budget: whatever the scheduler wanted, use what is left on any pending input
            pend = np.nonzero(self.pending)[0]
            js, counts = self._admit(pend, self.default_chunks(pend), room)
        if js.size == 0:
            return "evaluation budget spent" if left is not None and left < self.batch else "scheduler idle"
        # charge first: evaluations requested count even if the round is cut short
        self.evaluations[js] += counts
        self.used += int(counts.sum())
        self.served[js] += 1
        self.rounds += 1
        out, errors = self.streams.draw([self.items[j] for j in js], counts)
        final_before = int(np.count_nonzero(self.state != _PENDING))
        failed = np.array([self.items[j] in errors or out[k] is None for k, j in enumerate(js)], dtype=bool)
        for k in np.nonzero(failed)[0]:
            j = int(js[k])
            self.state[j] = _ERROR
            self.errors[j] = errors.get(self.items[j], "no samples returned")
        ok = ~failed
        pilot = ok & ~self.piloted[js]
        if pilot.any():
            self._finish_pilots(js[pilot], [out[k] for k in np.nonzero(pilot)[0]])
        tested = ok & ~pilot
        if tested.any():
            self._feed(js[tested], [out[k] for k in np.nonzero(tested)[0]], counts[tested])
        self._dirty[js] = True
        if self.progress is not None:
            self.progress(int(np.count_nonzero(self.state != _PENDING)) - final_before, int(counts.sum()))
        return ""

    def _finish_pilots(self, js: np.ndarray, labels: list) -> None:
        """Class selection by majority over the pilot, then the prior and a certification test for these inputs."""
        k = self.streams.num_classes
        for j, lab in zip(js, labels):
            votes = np.bincount(lab, minlength=k)
            self.c_hat[j], self.hits[j] = int(votes.argmax()), int(votes.max())
        if callable(self._prior):
            a, b = self._prior(js.copy(), self.c_hat[js].copy(), self.hits[js].copy())
            a = np.broadcast_to(np.asarray(a, dtype=float), js.shape).copy()
            b = np.broadcast_to(np.asarray(b, dtype=float), js.shape).copy()
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
                raise HaltfastError("the prior callable returned a non-positive or non-finite Beta parameter")
        elif isinstance(self._prior, str) or np.asarray(self._prior).shape == (2,):
            a, b = resolve_prior(self._prior, self.hits[js], self.n0, js.size)
        else:
            a, b = resolve_prior(self._prior, None, self.n0, self.n)
            a, b = a[js], b[js]
        self.a[js], self.b[js] = a, b
        self._cert.set_prior(js, a, b)
        self.piloted[js] = True

    def _feed(self, js: np.ndarray, labels: list, counts: np.ndarray) -> None:
        """Feed tested chunks to each input's own tests and record decisions."""
        for m in np.unique(counts):
            sel = np.nonzero(counts == m)[0]
            g = js[sel]
            x = np.stack([labels[s] for s in sel]) == self.c_hat[g][:, None]
            self.successes[g] += x.sum(axis=1)
            self.tested[g] += int(m)
            self._cert.update(x, g)
            self._fut.update(x, g)
        self.log_evalue[js] = self._cert.log_evalue[js]
        self.log_evalue_fut[js] = self._fut.log_evalue[js]
        test_rej, test_stop = self._cert.rejected[js], self._cert.stopping_time[js]
        fut_rej, fut_stop = self._fut.rejected[js], self._fut.stopping_time[js]
        certified = test_rej & (~fut_rej | (test_stop <= fut_stop))
        refuted = fut_rej & ~certified
        capped = ~certified & ~refuted & (self.tested[js] >= self.cap[js])
        self.state[js[certified]] = _CERTIFIED
        self.stopped_at[js[certified]] = test_stop[certified]
        self.state[js[refuted]] = _REFUTED
        self.stopped_at[js[refuted]] = fut_stop[refuted]
        self.state[js[capped]] = _UNDECIDED
        self.stopped_at[js[capped]] = self.tested[js[capped]]

    # -- reporting ----------------------------------------------------------------------------

    def report(self) -> "TriageReport":
        """The state of every input now: certified / refuted at its radius, pending or undecided with its
        anytime certified radius and E-value, or error. Valid at any moment, mid-run included."""
        live = self.piloted & (self.tested > 0) & (self.state != _CERTIFIED) & (self.state != _ERROR)
        js = np.nonzero(live)[0]
        lower = np.zeros(self.n)
        if js.size:   # at the current counts, so the report does not depend on when it was asked for
            lower[js] = beta_mixture_lower_bound(self.successes[js], self.tested[js], self.alpha[js], self.a[js],
                                                 self.b[js])
        p_lower = np.where(self.state == _CERTIFIED, self.p0, lower)
        cs_radius = np.where(lower > 0.5, radius_from_p(np.maximum(lower, 0.5), self.sigma), 0.0)
        cert_radius = np.where(self.state == _CERTIFIED, self.radius, cs_radius)
        rows = []
        names = [p.name for p in self.policies]
        for j in range(self.n):
            s = int(self.state[j])
            if s == _CERTIFIED:
                why = "e-value reached 1/alpha"
            elif s == _REFUTED:
                why = "upper confidence bound below Phi(r/sigma)"
            elif s == _UNDECIDED:
                why = "max_samples reached"
            elif s == _ERROR:
                why = "model error"
            elif self.stop_reason == "running":          # a report taken mid-run (from on_round)
                why = "running" if self.piloted[j] else "not started"
            elif not self.piloted[j]:
                why = f"not started ({self.stop_reason})"
            else:
                why = f"paused ({self.stop_reason})"
            pred = int(self.c_hat[j])
            label = None if self.labels is None else int(self.labels[j])
            rows.append({
                "index": int(self.indices[j]), "label": label, "class": names[self.cls[j]],
                "radius": float(self.radius[j]), "alpha": float(self.alpha[j]),
                "priority": float(self.priority[j]), "state": str(_STATE_NAMES[s]), "prediction": pred,
                "correct": None if label is None or pred == ABSTAIN else bool(pred == label),
                "evaluations": int(self.evaluations[j]), "tested": int(self.tested[j]),
                "stopped_at": int(self.stopped_at[j]), "log_evalue": float(self.log_evalue[j]),
                "log_evalue_futility": float(self.log_evalue_fut[j]), "p_lower": float(p_lower[j]),
                "certified_radius": float(cert_radius[j]), "stop_reason": why,
                "error": self.errors.get(j),
            })
        return TriageReport(rows, {
            "policy": self.policy_name, "sigma": self.sigma, "n0": self.n0, "batch": self.batch,
            "evaluations": int(self.used), "budget_evaluations": self.budget_evaluations,
            "budget_seconds": self.budget_seconds, "seconds": float(self.seconds), "rounds": int(self.rounds),
            "stop_reason": self.stop_reason,
            "classes": [{"name": p.name, "radius": p.radius, "alpha": p.alpha, "priority": p.priority,
                         "max_samples": p.max_samples} for p in self.policies],
        })


# ---------------------------------------------------------------------------------------------
# Scheduling policies: each proposes (inputs, chunk sizes) in order of preference
# ---------------------------------------------------------------------------------------------


def _schedule_round_robin(tri: Triage, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal chunks to every pending input, least-served first (pilots of n0 first)."""
    js = np.nonzero(tri.pending)[0]
    js = js[np.lexsort((js, tri.served[js]))]
    chunk = max(tri.min_chunk, room // max(js.size, 1))
    counts = np.where(tri.piloted[js], chunk, tri.n0)
    return js, counts


def _schedule_risk(tri: Triage, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Only the highest pending priority is served (smallest alpha, then input order, first within it),
    so a lower priority gets nothing while a higher one has pending inputs; chunks by certify_anytime's rule."""
    js = np.nonzero(tri.pending)[0]
    if js.size:
        js = js[tri.priority[js] == tri.priority[js].max()]
    js = js[np.lexsort((js, tri.alpha[js]))]
    return js, tri.default_chunks(js)


def _decision_rates(tri: Triage, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
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
    if done.size:   # finished inputs tell what a whole input of their class cost
        decided = (tri.state[done] == _CERTIFIED) | (tri.state[done] == _REFUTED)
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
        if unknown.size:      # explore a class by one pilot at a time, not a whole batch of them
            first = np.unique(tri.cls[unknown], return_index=True)[1]
            rate[unknown] = 0.0
            rate[unknown[first]] = np.inf
    if weighted:
        rate = rate * tri.priority
    return rate, expected


def _schedule_max_decisions(tri: Triage, room: int, weighted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Largest expected decisions per evaluation first (ties: smallest expected cost).

    With an evaluation budget, inputs with a positive rate are kept greedily in that order only
    while their expected remaining costs fit in the budget left (the best input always), so the
    end of the budget is not spread over inputs it cannot finish; a round may then be smaller
    than `batch`.
    """
    rate, expected = _decision_rates(tri, weighted)
    js = np.nonzero(tri.pending)[0]
    js = js[np.lexsort((js, expected[js], -rate[js]))]
    left = tri.budget_left
    if left is not None and js.size > 1:
        keep = np.zeros(js.size, dtype=bool)
        keep[0] = True
        room_left, most = float(left), room // tri.min_chunk + 1     # a round cannot take more inputs than that
        for i, (c, r) in enumerate(zip(expected[js].tolist(), rate[js].tolist())):
            if r > 0 and c <= room_left:
                keep[i] = True
                room_left -= c
                most -= 1
                if most <= 0:
                    break
        js = js[keep]
    return js, tri.default_chunks(js)


_SCHEDULERS: dict[str, Callable] = {
    "max-decisions": _schedule_max_decisions,
    "max-weighted": lambda tri, room: _schedule_max_decisions(tri, room, weighted=True),
    "risk": _schedule_risk,
    "round-robin": _schedule_round_robin,
}


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


@dataclass
class TriageReport:
    """Every input's state at one moment, plus the run's bookkeeping (policy, evaluations, budget, stop reason)."""

    _rows: list = field(repr=False)
    meta: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One flat dict per input, in input order (for pandas / CSV)."""
        return [dict(r) for r in self._rows]

    @property
    def stop_reason(self) -> str:
        return self.meta.get("stop_reason", "")

    @property
    def evaluations(self) -> int:
        return int(self.meta.get("evaluations", 0))

    def summary(self) -> dict:
        """Counts per class and state, decided inputs, evaluations used against the budget."""
        states = {s: sum(r["state"] == s for r in self._rows) for s in STATES}
        per_class = {}
        for c in self.meta.get("classes", []):
            mine = [r for r in self._rows if r["class"] == c["name"]]
            entry = {**c, "inputs": len(mine)}
            entry.update({s: sum(r["state"] == s for r in mine) for s in STATES})
            entry["decided"] = entry["certified"] + entry["refuted"]
            entry["evaluations"] = int(sum(r["evaluations"] for r in mine))
            if mine and mine[0]["label"] is not None:
                entry["certified_correct"] = sum(r["state"] == "certified" and bool(r["correct"]) for r in mine)
            per_class[c["name"]] = entry
        keys = ("policy", "sigma", "n0", "evaluations", "budget_evaluations", "budget_seconds", "seconds", "rounds",
                "stop_reason")
        out = {"inputs": len(self._rows), **{k: self.meta.get(k) for k in keys}}
        out["decided"] = states["certified"] + states["refuted"]
        out["states"] = states
        out["classes"] = per_class
        return out

    def write_csv(self, path: str | Path) -> None:
        """Write rows() as CSV through a temporary file (never a half-written file)."""
        import pandas as pd

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        try:
            pd.DataFrame(self.rows()).to_csv(tmp, index=False)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def format_summary(summary: dict) -> str:
    """A human-readable summary: run line, then one line per class with counts per state."""
    if not summary.get("inputs"):
        return "no inputs"
    budget = summary.get("budget_evaluations")
    used = summary.get("evaluations") or 0
    lines = [f"policy {summary['policy']}: {summary['decided']} of {summary['inputs']} inputs decided, "
             f"{used:,} evaluations" + (f" of a budget of {budget:,}" if budget is not None else "")
             + f" in {summary.get('seconds') or 0:.1f} s, {summary.get('rounds')} rounds; stopped: "
             f"{summary.get('stop_reason')}"]
    head = f"{'class':<14}{'radius':>7}{'alpha':>9}{'prio':>6}{'inputs':>8}{'certified':>11}{'refuted':>9}" \
           f"{'pending':>9}{'undecided':>11}{'error':>7}{'evaluations':>14}"
    lines.append(head)
    for name, c in summary["classes"].items():
        lines.append(f"{name[:13]:<14}{c['radius']:>7g}{c['alpha']:>9.0e}{c['priority']:>6g}{c['inputs']:>8}"
                     f"{c['certified']:>11}{c['refuted']:>9}{c['pending']:>9}{c['undecided']:>11}{c['error']:>7}"
                     f"{c['evaluations']:>14,}")
    s = summary["states"]
    lines.append(f"{'all':<14}{'':>7}{'':>9}{'':>6}{summary['inputs']:>8}{s['certified']:>11}{s['refuted']:>9}"
                 f"{s['pending']:>9}{s['undecided']:>11}{s['error']:>7}{used:>14,}")
    return "\n".join(lines)


def triage(streams, items, policies, *, sigma: float, classes=None, budget_evaluations: int | None = None,
           budget_seconds: float | None = None, policy="max-decisions", n0: int = 100, prior="pilot",
           batch: int = 4000, labels=None, indices=None, progress=None, on_round=None, **options) -> TriageReport:
    """Triage a set of inputs under a global budget; returns every input's state when it stops.

    Each certified input is wrong with probability at most its class alpha whatever the policy; the
    evaluations (pilots included) never exceed budget_evaluations; an interrupt (Ctrl-C, or a
    KeyboardInterrupt from on_round) returns the report of that moment. `policies` is a list of
    PolicyClass or the path of a TOML policy file; see Triage for the other arguments.
    """
    tri = Triage(streams, items, policies, sigma=sigma, classes=classes, policy=policy, n0=n0, prior=prior,
                 batch=batch, labels=labels, indices=indices, progress=progress, on_round=on_round, **options)
    return tri.run(budget_evaluations, budget_seconds)
