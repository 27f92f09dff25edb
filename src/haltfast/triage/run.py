"""The triage run: a scheduler spends one budget over many inputs, each with its own tests and risk class.

Each input's E-processes are fed only its own stream, so each certificate holds at its class's alpha
whatever the schedule (see the package docstring and docs/triage.md).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import special as sc

from ..certificate import ABSTAIN
from ..certificate import CERTIFIED
from ..certificate import FAILED
from ..certificate import NOT_CERTIFIED
from ..certificate import PENDING
from ..certificate import UNDECIDED
from ..certificate import StopReason
from ..certificate import is_number
from ..certificate import p_for_radius
from ..certificate import radius_from_p
from ..certificate import validate_count
from ..engine import decide
from ..engine import decision_chunks
from ..errors import HaltfastError
from ..predictors import Predictor
from ..predictors import check_prior
from ..predictors import jeffreys
from ..predictors import resolve_prior
from ..statistics import BetaMixtureTest
from ..statistics import bernoulli_kl
from ..statistics import beta_mixture_lower_bound
from ..streams import RecordedStreams
from .policies import assign_classes
from .policies import load_policies
from .policies import validate_policies
from .report import TriageReport
from .schedulers import POLICIES
from .schedulers import SCHEDULERS
from .schedulers import Scheduler

_PENDING, _CERTIFIED, _NOT_CERTIFIED, _UNDECIDED, _ERROR = range(5)
_STATE_NAMES = np.array([PENDING, CERTIFIED, NOT_CERTIFIED, UNDECIDED, FAILED])
_STATE_CODES = {CERTIFIED: _CERTIFIED, NOT_CERTIFIED: _NOT_CERTIFIED, UNDECIDED: _UNDECIDED}
_QUADRATURE = 12  # posterior quantiles used to estimate an input's remaining cost


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
    ('pilot', 'jeffreys', 'uniform', (a, b), an (n, 2) array), a Predictor (the model's MetaLearner),
    or a callable `prior(js, c_hat, hits) -> (a, b)` called when the pilots of inputs js finish; each
    input's prior is fixed before its tested stream starts.

    `selection` is how each input's class is chosen: 'pilot' (majority of n0 noisy samples, never
    tested again) or 'clean' (the clean prediction: one evaluation, and the logits a Predictor needs;
    the default with a Predictor). With a Predictor (a meta-learner) the scheduler starts from its belief
    about each input's p and the tests from Jeffreys' prior; without one, both from the pilot's counts.
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
        selection: str | None = None,
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
        self.n = len(self.items)
        self.selection = selection or ("clean" if isinstance(prior, Predictor) else "pilot")
        if self.selection not in ("pilot", "clean"):
            raise HaltfastError(f"selection must be 'pilot' or 'clean', got {selection!r}")
        if isinstance(prior, Predictor) and self.selection != "clean":
            raise HaltfastError("a meta-learner predicts from the clean logits: use selection='clean'")
        if self.selection == "clean" and isinstance(prior, str) and prior == "pilot":
            prior = "jeffreys"  # no pilot samples to form a posterior from
        self.n0 = 1 if self.selection == "clean" else validate_count("n0", n0)  # the clean evaluation
        self.batch = validate_count("batch", batch)
        if self.batch < self.n0:
            raise HaltfastError(f"batch ({self.batch}) must be at least n0 ({self.n0}): a pilot is never split")
        self.min_chunk = validate_count("min_chunk", min_chunk)
        self.growth = float(growth)
        if not (callable(policy) or policy in POLICIES):
            raise HaltfastError(f"unknown scheduling policy {policy!r}; choose one of {', '.join(POLICIES)}")
        self.policy = policy
        self.policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", "custom")
        self._scheduler: Scheduler = policy if callable(policy) else SCHEDULERS[policy]
        self.indices = self._per_input("indices", indices if indices is not None else self.items)
        self.labels = None if labels is None else self._per_input("labels", labels)
        self.cls = self._class_numbers(classes)
        if not callable(prior) and not isinstance(prior, Predictor):
            check_prior(prior, with_pilot=True, n_items=None if isinstance(prior, str) else self.n)
        self._prior = prior
        self.progress, self.on_round = progress, on_round
        self._class_settings()
        self._check_recording()
        self._init_state()

    def _per_input(self, name: str, values) -> np.ndarray:
        array = np.asarray(values, dtype=np.int64)
        if array.shape != (self.n,):
            raise HaltfastError(f"{name} has {array.size} entries for {self.n} inputs")
        return array

    def _class_numbers(self, classes) -> np.ndarray:
        """Each input's class number: given (numbers or names), or dealt by the policies' selection rules."""
        if classes is None:
            classes = assign_classes(self.policies, self.n, self.indices)
        classes = np.asarray(classes)
        if classes.dtype.kind in "USO":  # class names
            number = {p.name: k for k, p in enumerate(self.policies)}
            unknown = sorted({str(c) for c in classes.tolist()} - set(number))
            if unknown:
                raise HaltfastError(
                    f"unknown class name(s) {', '.join(map(repr, unknown))}; the policies define {', '.join(number)}"
                )
            classes = np.array([number[str(c)] for c in classes.tolist()], dtype=np.int64)
        cls = np.asarray(classes, dtype=np.int64)
        if cls.shape != (self.n,) or (self.n and (cls.min() < 0 or cls.max() >= len(self.policies))):
            raise HaltfastError(f"classes must hold one class number in [0, {len(self.policies)}) per input")
        return cls

    def _class_settings(self) -> None:
        """Each input's radius, alphas, priority, cap, p0 and thresholds, from its class."""
        P = [self.policies[k] for k in self.cls]
        self.radius = np.array([p.radius for p in P], dtype=float)
        self.alpha = np.array([p.alpha for p in P], dtype=float)
        self.alpha_fut = np.array([p.futility_alpha or p.alpha for p in P], dtype=float)
        self.priority = np.array([p.priority for p in P], dtype=float)
        self.cap = np.array([p.max_samples for p in P], dtype=np.int64)
        self.p0 = np.array([p_for_radius(p.radius, self.sigma) for p in P], dtype=float)
        self.thr = -np.log(self.alpha)
        self.thr_fut = -np.log(self.alpha_fut)

    def _check_recording(self) -> None:
        """A recording: refuse caps it cannot serve, up front."""
        streams = self.streams
        if not isinstance(streams, RecordedStreams):
            return
        pilot = self.n0 if self.selection == "pilot" else 0  # a clean selection takes no recorded label
        for j, item in enumerate(self.items):
            have = len(streams.streams[item]) - int(streams.positions[item])
            if have < pilot + self.cap[j]:
                pc = self.policies[self.cls[j]]
                raise HaltfastError(
                    f"the recorded stream of input {int(self.indices[j])} has {have:,} labels left; class "
                    f"{pc.name!r} needs {'n0 + ' if pilot else ''}max_samples = {pilot + pc.max_samples:,}: set "
                    f"max_samples <= {max(have - pilot, 0):,} for that class or record longer streams"
                )

    def _init_state(self) -> None:
        n = self.n
        self.state = np.full(n, _PENDING, dtype=np.int64)
        self.piloted = np.zeros(n, dtype=bool)
        self.c_hat = np.full(n, ABSTAIN, dtype=np.int64)
        self.hits = np.zeros(n, dtype=np.int64)
        self.a = np.full(n, np.nan)
        self.b = np.full(n, np.nan)
        self.belief_a = np.full(n, 0.5)  # the scheduler's Beta belief about p before tested samples
        self.belief_b = np.full(n, 0.5)
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
    def decided(self) -> np.ndarray:
        """Boolean mask of inputs certified or not certified."""
        return (self.state == _CERTIFIED) | (self.state == _NOT_CERTIFIED)

    @property
    def budget_left(self) -> int | None:
        return None if self.budget_evaluations is None else self.budget_evaluations - self.used

    def default_chunks(self, js: np.ndarray) -> np.ndarray:
        """certify_anytime's chunk rule (engine.decision_chunks); inputs not yet piloted get n0.

        The estimate of p uses the pilot too (scheduling may use any past data).
        """
        js = np.asarray(js, dtype=np.int64)
        t = self.tested[js]
        a, b = self.belief_a[js] + self.successes[js], self.belief_b[js] + t - self.successes[js]
        phat = a / (a + b)
        p0 = self.p0[js]
        gap_cert, gap_fut = self.thr[js] - self.log_evalue[js], self.thr_fut[js] - self.log_evalue_fut[js]
        size = decision_chunks(gap_cert, gap_fut, phat > p0, p0, t, self.min_chunk, self.growth)
        size = np.minimum(size, self.cap[js] - t)
        return np.where(self.piloted[js], size, self.n0).astype(np.int64)

    def remaining_cost_quantiles(self, js: np.ndarray) -> np.ndarray:
        """(len(js), 12) estimates of the tested samples each input still needs for a decision.

        One per posterior quantile of p (the belief before testing, updated with the tested counts):
        the E-process gap to its threshold divided by KL(p || p0) (Wald), on the side p falls,
        never below the fewest samples that could close the gap; inf at p = p0.
        """
        js = np.asarray(js, dtype=np.int64)
        refresh = js[self._dirty[js]]
        if refresh.size:
            A = self.belief_a[refresh] + self.successes[refresh]
            B = self.belief_b[refresh] + (self.tested[refresh] - self.successes[refresh])
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
                    elapsed = self.elapsed(start)
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

    def elapsed(self, start: float) -> float:
        """Seconds of this call of `run` so far (its time budget)."""
        return time.perf_counter() - start

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
        clean = ~self.piloted[js] if self.selection == "clean" else np.zeros(js.size, dtype=bool)
        out, errors = self._draw(js, counts, clean)
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

    def _draw(self, js: np.ndarray, counts: np.ndarray, clean: np.ndarray) -> tuple[list, dict]:
        """Noisy labels for each input, or its clean logits where `clean` (a clean selection's one evaluation)."""
        items = [self.items[j] for j in js]
        out: list = [None] * js.size
        errors: dict = {}
        noisy = np.nonzero(~clean)[0]
        if noisy.size:
            labels, errors = self.streams.draw([items[k] for k in noisy], counts[noisy])
            for k, lab in zip(noisy, labels):
                out[k] = lab
        if clean.any():
            first = np.nonzero(clean)[0]
            logits, clean_errors = self.streams.clean_logits([items[k] for k in first])
            errors.update(clean_errors)
            for k, row in zip(first, logits):
                out[k] = row
        return out, errors

    def _finish_pilots(self, js: np.ndarray, pilots: list) -> None:
        """Class selection (pilot majority, or clean prediction), then each input's prior and belief about p."""
        if self.selection == "clean":
            logits = np.stack(pilots)
            self.c_hat[js] = logits.argmax(axis=1)
            a, b = self._predicted_priors(js, logits)
        else:
            k = self.streams.num_classes
            for j, lab in zip(js, pilots):
                votes = np.bincount(lab, minlength=k)
                self.c_hat[j], self.hits[j] = int(votes.argmax()), int(votes.max())
            self.belief_a[js], self.belief_b[js] = 0.5 + self.hits[js], 0.5 + (self.n0 - self.hits[js])
            a, b = self._given_priors(js)
        self.a[js], self.b[js] = a, b
        assert self._cert is not None  # the tests exist whenever there are inputs
        self._cert.set_prior(js, a, b)
        self.piloted[js] = True

    def _predicted_priors(self, js: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """With a Predictor: Jeffreys' prior for the tests and the predictor's belief for the schedule (its learned
        prior, which triage would run unhedged, decided fewer inputs: docs/triage.md); else the given prior."""
        if not isinstance(self._prior, Predictor):
            return self._given_priors(js)
        if hasattr(self._prior, "belief"):
            self.belief_a[js], self.belief_b[js] = self._prior.belief(logits)
        return jeffreys(js.size)

    def _given_priors(self, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prior given by name, numbers or callable, for inputs js whose selection just ended."""
        if callable(self._prior):
            a, b = self._prior(js.copy(), self.c_hat[js].copy(), self.hits[js].copy())
            a = np.broadcast_to(np.asarray(a, dtype=float), js.shape).copy()
            b = np.broadcast_to(np.asarray(b, dtype=float), js.shape).copy()
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
                raise HaltfastError("the prior callable returned a non-positive or non-finite Beta parameter")
            return a, b
        if isinstance(self._prior, str) or np.asarray(self._prior).shape == (2,):
            return resolve_prior(self._prior, self.hits[js], self.n0, js.size)
        a, b = resolve_prior(self._prior, None, self.n0, self.n)
        return a[js], b[js]

    def _feed(self, js: np.ndarray, labels: list, counts: np.ndarray) -> None:
        """Feed tested chunks to each input's own tests and record decisions."""
        assert self._cert is not None and self._fut is not None  # the tests exist whenever there are inputs
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
        won, lost = js[outcome == CERTIFIED], js[outcome == NOT_CERTIFIED]
        self.stopped_at[won] = self._cert.stopping_time[won]
        self.stopped_at[lost] = self._fut.stopping_time[lost]
        self.stopped_at[js[outcome == UNDECIDED]] = self.tested[js[outcome == UNDECIDED]]
        # both E-values at the deciding sample: the other test may have read labels of the chunk after it
        self.log_evalue[lost] = self._cert.log_evalue_of(lost, self._fut.successes[lost], self.stopped_at[lost])
        self.log_evalue_fut[won] = self._fut.log_evalue_of(won, self._cert.successes[won], self.stopped_at[won])

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
        rows = [self._row(j, float(p_lower[j]), float(cert_radius[j])) for j in range(self.n)]
        classes = [
            {"name": p.name, "radius": p.radius, "alpha": p.alpha, "priority": p.priority, "max_samples": p.max_samples}
            for p in self.policies
        ]
        meta = {
            "policy": self.policy_name,
            "sigma": self.sigma,
            "n0": self.n0,
            "selection": self.selection,
            "batch": self.batch,
            "evaluations": int(self.used),
            "budget_evaluations": self.budget_evaluations,
            "budget_seconds": self.budget_seconds,
            "seconds": float(self.seconds),
            "rounds": int(self.rounds),
            "stop_reason": self.stop_reason,
            "classes": classes,
        }
        return TriageReport(rows, meta)

    def _row(self, j: int, p_lower: float, certified_radius: float) -> dict:
        """Input j's row of the report."""
        pred = int(self.c_hat[j])
        label = None if self.labels is None else int(self.labels[j])
        return {
            "index": int(self.indices[j]),
            "label": label,
            "class": self.policies[self.cls[j]].name,
            "radius": float(self.radius[j]),
            "alpha": float(self.alpha[j]),
            "priority": float(self.priority[j]),
            "state": str(_STATE_NAMES[self.state[j]]),
            "prediction": pred,
            "correct": None if label is None or pred == ABSTAIN else bool(pred == label),
            "evaluations": int(self.evaluations[j]),
            "tested": int(self.tested[j]),
            "stopped_at": int(self.stopped_at[j]),
            "log_evalue": float(self.log_evalue[j]),
            "log_evalue_futility": float(self.log_evalue_fut[j]),
            "p_lower": p_lower,
            "certified_radius": certified_radius,
            "stop_reason": self._why(j),
            "error": self.errors.get(j),
        }

    def _why(self, j: int) -> str:
        """Why input j stopped, or that it has not (yet)."""
        reasons = {
            _CERTIFIED: StopReason.EVALUE,
            _NOT_CERTIFIED: StopReason.UPPER_BELOW,
            _UNDECIDED: StopReason.MAX_SAMPLES,
            _ERROR: StopReason.MODEL_ERROR,
        }
        state = int(self.state[j])
        if state in reasons:
            return reasons[state]
        if self.stop_reason == "running":  # a report taken mid-run (from on_round)
            return "running" if self.piloted[j] else "not started"
        return f"not started ({self.stop_reason})" if not self.piloted[j] else f"paused ({self.stop_reason})"
