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

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np
from scipy import special as sc

from .certificate import ABSTAIN
from .certificate import CERTIFIED
from .certificate import FAILED
from .certificate import NOT_CERTIFIED
from .certificate import PENDING
from .certificate import UNDECIDED
from .certificate import StopReason
from .certificate import is_number
from .certificate import p_for_radius
from .certificate import radius_from_p
from .certificate import validate_count
from .engine import decide
from .engine import decision_chunks
from .errors import HaltfastError
from .files import atomic_write
from .policies import assign_classes
from .policies import load_policies
from .policies import validate_policies
from .priors import check_prior
from .priors import resolve_prior
from .statistics import BetaMixtureTest
from .statistics import bernoulli_kl
from .statistics import beta_mixture_lower_bound
from .streams import RecordedStreams

__all__ = ["POLICIES", "STATES", "Triage", "TriageReport", "format_triage_summary", "triage"]

POLICIES = ("max-decisions", "max-weighted", "risk", "round-robin")
STATES = (CERTIFIED, NOT_CERTIFIED, PENDING, UNDECIDED, FAILED)
_PENDING, _CERTIFIED, _NOT_CERTIFIED, _UNDECIDED, _ERROR = range(5)
_STATE_NAMES = np.array([PENDING, CERTIFIED, NOT_CERTIFIED, UNDECIDED, FAILED])
_STATE_CODES = {CERTIFIED: _CERTIFIED, NOT_CERTIFIED: _NOT_CERTIFIED, UNDECIDED: _UNDECIDED}
_QUADRATURE = 12  # posterior quantiles used to estimate an input's remaining cost


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

    def __init__(
        self,
        streams,
        items,
        policies,
        *,
        sigma: float,
        classes=None,
        policy="max-decisions",
        n0: int = 100,
        prior="pilot",
        batch: int = 4000,
        min_chunk: int = 16,
        growth: float = 1 / 16,
        labels=None,
        indices=None,
        progress: Callable[[int, int], None] | None = None,
        on_round: Callable[[Triage], None] | None = None,
    ):
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
        if classes.dtype.kind in "USO":  # class names
            number = {p.name: k for k, p in enumerate(self.policies)}
            unknown = sorted({str(c) for c in classes.tolist()} - set(number))
            if unknown:
                raise HaltfastError(
                    f"unknown class name(s) {', '.join(map(repr, unknown))}; the policies define {', '.join(number)}"
                )
            classes = np.array([number[str(c)] for c in classes.tolist()], dtype=np.int64)
        self.cls = np.asarray(classes, dtype=np.int64)
        if self.cls.shape != (n,) or (n and (self.cls.min() < 0 or self.cls.max() >= len(self.policies))):
            raise HaltfastError(f"classes must hold one class number in [0, {len(self.policies)}) per input")
        if callable(prior):
            self._prior = prior
        else:
            check_prior(prior, with_pilot=True, n_items=None if isinstance(prior, str) else n)
            self._prior = prior
        self.progress, self.on_round = progress, on_round

        P = self.policies
        self.radius = np.array([P[k].radius for k in self.cls], dtype=float)
        self.alpha = np.array([P[k].alpha for k in self.cls], dtype=float)
        self.alpha_fut = np.array([P[k].futility_alpha or P[k].alpha for k in self.cls], dtype=float)
        self.priority = np.array([P[k].priority for k in self.cls], dtype=float)
        self.cap = np.array([P[k].max_samples for k in self.cls], dtype=np.int64)
        self.p0 = np.array([p_for_radius(P[k].radius, self.sigma) for k in self.cls], dtype=float)
        if isinstance(streams, RecordedStreams):  # a recording: refuse caps it cannot serve, up front
            recorded = streams.streams
            for j, item in enumerate(self.items):
                have = len(recorded[item]) - int(streams.positions[item])
                if have < self.n0 + self.cap[j]:
                    pc = P[self.cls[j]]
                    raise HaltfastError(
                        f"the recorded stream of input {int(self.indices[j])} has {have:,} labels "
                        f"left; class {pc.name!r} needs n0 + max_samples = "
                        f"{self.n0 + pc.max_samples:,}: set max_samples <= "
                        f"{max(have - self.n0, 0):,} for that class or record longer streams"
                    )
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
        self._fut = BetaMixtureTest(self.p0, self.alpha_fut, 0.5, 0.5, n_streams=n, alternative="less") if n else None
        self._dirty = np.ones(n, dtype=bool)  # scheduler caches to refresh
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
        """certify_anytime's chunk rule (engine.decision_chunks); inputs not yet piloted get n0.

        The estimate of p uses the pilot too (scheduling may use any past data).
        """
        js = np.asarray(js, dtype=np.int64)
        t = self.tested[js]
        phat = (self.hits[js] + self.successes[js] + 0.5) / (self.n0 + t + 1.0)
        p0 = self.p0[js]
        gap_cert, gap_fut = self.thr[js] - self.log_evalue[js], self.thr_fut[js] - self.log_evalue_fut[js]
        size = decision_chunks(gap_cert, gap_fut, phat > p0, p0, t, self.min_chunk, self.growth)
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

    def run(self, budget_evaluations: int | None = None, budget_seconds: float | None = None) -> TriageReport:
        """Run rounds until every input is final, the budget is spent, or an interrupt; returns the report.

        `budget_evaluations` caps the total evaluations of this Triage (all runs, pilots included) and is
        never exceeded; `budget_seconds` limits this call (a round starts only if the mean round time so
        far predicts it ends in time). Ctrl-C (SIGINT, in the main thread) or a KeyboardInterrupt raised
        by `on_round` stops at the end of the current round and returns the report of that moment.
        """
        if budget_evaluations is not None:
            ok = isinstance(budget_evaluations, (int, np.integer, float)) and not isinstance(budget_evaluations, bool)
            if not (
                ok
                and np.isfinite(budget_evaluations)
                and budget_evaluations == int(budget_evaluations)
                and budget_evaluations >= 0
            ):
                raise HaltfastError(f"budget_evaluations must be an integer >= 0, got {budget_evaluations!r}")
            self.budget_evaluations = int(budget_evaluations)
        else:
            self.budget_evaluations = None
        if budget_seconds is not None and not (is_number(budget_seconds) and budget_seconds > 0):
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
            if self._stop_flag:  # a second Ctrl-C interrupts at once
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
                    continue  # a pilot is never split
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
        outcome = decide(
            self._cert.rejected[js],
            self._cert.stopping_time[js],
            self._fut.rejected[js],
            self._fut.stopping_time[js],
            self.tested[js],
            self.cap[js],
        )
        for name, code in _STATE_CODES.items():
            hit = js[outcome == name]
            self.state[hit] = code
        self.stopped_at[js[outcome == CERTIFIED]] = self._cert.stopping_time[js[outcome == CERTIFIED]]
        self.stopped_at[js[outcome == NOT_CERTIFIED]] = self._fut.stopping_time[js[outcome == NOT_CERTIFIED]]
        self.stopped_at[js[outcome == UNDECIDED]] = self.tested[js[outcome == UNDECIDED]]

    # -- reporting ----------------------------------------------------------------------------

    def report(self) -> TriageReport:
        """The state of every input now: certified / not certified at its radius, pending or undecided with its
        anytime certified radius and E-value, or error. Valid at any moment, mid-run included."""
        live = self.piloted & (self.tested > 0) & (self.state != _CERTIFIED) & (self.state != _ERROR)
        js = np.nonzero(live)[0]
        lower = np.zeros(self.n)
        if js.size:  # at the current counts, so the report does not depend on when it was asked for
            lower[js] = beta_mixture_lower_bound(
                self.successes[js], self.tested[js], self.alpha[js], self.a[js], self.b[js]
            )
        p_lower = np.where(self.state == _CERTIFIED, self.p0, lower)
        cs_radius = np.where(lower > 0.5, radius_from_p(np.maximum(lower, 0.5), self.sigma), 0.0)
        cert_radius = np.where(self.state == _CERTIFIED, self.radius, cs_radius)
        rows = []
        names = [p.name for p in self.policies]
        for j in range(self.n):
            s = int(self.state[j])
            if s == _CERTIFIED:
                why = StopReason.EVALUE
            elif s == _NOT_CERTIFIED:
                why = StopReason.UPPER_BELOW
            elif s == _UNDECIDED:
                why = StopReason.MAX_SAMPLES
            elif s == _ERROR:
                why = StopReason.MODEL_ERROR
            elif self.stop_reason == "running":  # a report taken mid-run (from on_round)
                why = "running" if self.piloted[j] else "not started"
            elif not self.piloted[j]:
                why = f"not started ({self.stop_reason})"
            else:
                why = f"paused ({self.stop_reason})"
            pred = int(self.c_hat[j])
            label = None if self.labels is None else int(self.labels[j])
            rows.append(
                {
                    "index": int(self.indices[j]),
                    "label": label,
                    "class": names[self.cls[j]],
                    "radius": float(self.radius[j]),
                    "alpha": float(self.alpha[j]),
                    "priority": float(self.priority[j]),
                    "state": str(_STATE_NAMES[s]),
                    "prediction": pred,
                    "correct": None if label is None or pred == ABSTAIN else bool(pred == label),
                    "evaluations": int(self.evaluations[j]),
                    "tested": int(self.tested[j]),
                    "stopped_at": int(self.stopped_at[j]),
                    "log_evalue": float(self.log_evalue[j]),
                    "log_evalue_futility": float(self.log_evalue_fut[j]),
                    "p_lower": float(p_lower[j]),
                    "certified_radius": float(cert_radius[j]),
                    "stop_reason": why,
                    "error": self.errors.get(j),
                }
            )
        return TriageReport(
            rows,
            {
                "policy": self.policy_name,
                "sigma": self.sigma,
                "n0": self.n0,
                "batch": self.batch,
                "evaluations": int(self.used),
                "budget_evaluations": self.budget_evaluations,
                "budget_seconds": self.budget_seconds,
                "seconds": float(self.seconds),
                "rounds": int(self.rounds),
                "stop_reason": self.stop_reason,
                "classes": [
                    {
                        "name": p.name,
                        "radius": p.radius,
                        "alpha": p.alpha,
                        "priority": p.priority,
                        "max_samples": p.max_samples,
                    }
                    for p in self.policies
                ],
            },
        )


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
    if done.size:  # finished inputs tell what a whole input of their class cost
        decided = (tri.state[done] == _CERTIFIED) | (tri.state[done] == _NOT_CERTIFIED)
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
        if unknown.size:  # explore a class by one pilot at a time, not a whole batch of them
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
        room_left, most = float(left), room // tri.min_chunk + 1  # a round cannot take more inputs than that
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
            entry["decided"] = entry[CERTIFIED] + entry[NOT_CERTIFIED]
            entry["evaluations"] = int(sum(r["evaluations"] for r in mine))
            if mine and mine[0]["label"] is not None:
                entry["certified_correct"] = sum(r["state"] == "certified" and bool(r["correct"]) for r in mine)
            per_class[c["name"]] = entry
        keys = (
            "policy",
            "sigma",
            "n0",
            "evaluations",
            "budget_evaluations",
            "budget_seconds",
            "seconds",
            "rounds",
            "stop_reason",
        )
        out = {"inputs": len(self._rows), **{k: self.meta.get(k) for k in keys}}
        out["decided"] = states[CERTIFIED] + states[NOT_CERTIFIED]
        out["states"] = states
        out["classes"] = per_class
        return out

    def write_csv(self, path: str | Path) -> None:
        """Write rows() as CSV through a temporary file (never a half-written file)."""
        import pandas as pd

        atomic_write(path, lambda tmp: pd.DataFrame(self.rows()).to_csv(tmp, index=False))


def format_triage_summary(summary: dict) -> str:
    """A human-readable summary: run line, then one line per class with counts per state."""
    if not summary.get("inputs"):
        return "no inputs"
    budget = summary.get("budget_evaluations")
    used = summary.get("evaluations") or 0
    lines = [
        f"policy {summary['policy']}: {summary['decided']} of {summary['inputs']} inputs decided, "
        f"{used:,} evaluations"
        + (f" of a budget of {budget:,}" if budget is not None else "")
        + f" in {summary.get('seconds') or 0:.1f} s, {summary.get('rounds')} rounds; stopped: "
        f"{summary.get('stop_reason')}"
    ]
    head = (
        f"{'class':<14}{'radius':>7}{'alpha':>9}{'prio':>6}{'inputs':>8}{'certified':>11}{'not cert.':>11}"
        f"{'pending':>9}{'undecided':>11}{'error':>7}{'evaluations':>14}"
    )
    lines.append(head)
    for name, c in summary["classes"].items():
        lines.append(
            f"{name[:13]:<14}{c['radius']:>7g}{c['alpha']:>9.0e}{c['priority']:>6g}{c['inputs']:>8}"
            f"{c[CERTIFIED]:>11}{c[NOT_CERTIFIED]:>11}{c['pending']:>9}{c['undecided']:>11}{c['error']:>7}"
            f"{c['evaluations']:>14,}"
        )
    s = summary["states"]
    lines.append(
        f"{'all':<14}{'':>7}{'':>9}{'':>6}{summary['inputs']:>8}{s[CERTIFIED]:>11}{s[NOT_CERTIFIED]:>11}"
        f"{s['pending']:>9}{s['undecided']:>11}{s['error']:>7}{used:>14,}"
    )
    return "\n".join(lines)


def triage(
    streams,
    items,
    policies,
    *,
    sigma: float,
    classes=None,
    budget_evaluations: int | None = None,
    budget_seconds: float | None = None,
    policy="max-decisions",
    n0: int = 100,
    prior="pilot",
    batch: int = 4000,
    labels=None,
    indices=None,
    progress=None,
    on_round=None,
    **options,
) -> TriageReport:
    """Triage a set of inputs under a global budget; returns every input's state when it stops.

    Each certified input is wrong with probability at most its class alpha whatever the policy; the
    evaluations (pilots included) never exceed budget_evaluations; an interrupt (Ctrl-C, or a
    KeyboardInterrupt from on_round) returns the report of that moment. `policies` is a list of
    PolicyClass or the path of a TOML policy file; see Triage for the other arguments.
    """
    tri = Triage(
        streams,
        items,
        policies,
        sigma=sigma,
        classes=classes,
        policy=policy,
        n0=n0,
        prior=prior,
        batch=batch,
        labels=labels,
        indices=indices,
        progress=progress,
        on_round=on_round,
        **options,
    )
    return tri.run(budget_evaluations, budget_seconds)
