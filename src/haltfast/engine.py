"""The certification engine: many inputs' streams sampled in shared model batches, and the rules every method shares.

A method (haltfast.methods) owns its statistic; the engine owns what they have in common:
`Run` (class selection, drawing for many inputs at once, charging every evaluation and second to its
input, finishing certificates), the chunk rules, the stop rules (`decide`, `radius_mode_stop`) and the
tests built from a prior's components. Each input's certificate depends only on its own stream, never
on which inputs share a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .certificate import ABSTAIN
from .certificate import ABSTAINED
from .certificate import CERTIFIED
from .certificate import NOT_CERTIFIED
from .certificate import UNDECIDED
from .certificate import Certificate
from .certificate import StopReason
from .certificate import check_grid
from .certificate import check_radius
from .certificate import failed_certificate
from .certificate import p_for_radius
from .certificate import radius_from_p
from .certificate import validate_alpha
from .certificate import validate_budget
from .certificate import validate_count
from .certificate import validate_seconds
from .errors import HaltfastError
from .predictors import Parts
from .predictors import check_parts
from .statistics import BetaMixtureTest
from .statistics import ConfidenceSequence
from .statistics import UnionConfidenceSequence
from .statistics import UnionTest

MAX_CHUNK = 2**20  # most samples one input draws at once, so budgets of 10^8 and more fit in memory
ROUND_SAMPLES = 2**21  # most samples one round draws; the other inputs wait for the next round
CHUNK_STEP = 2**0.25  # chunk sizes come from a geometric grid so each round has few distinct sizes
SELECTIONS = ("pilot", "clean")
OPEN = ""  # decide(): the input goes on


def chunk_grid(size: np.ndarray, min_chunk: int) -> np.ndarray:
    """Round sizes down onto min_chunk * 2^(k/4), and to at most MAX_CHUNK (one input's chunk stays in memory)."""
    size = np.minimum(np.maximum(size, min_chunk), max(MAX_CHUNK, min_chunk))
    k = np.floor(np.log(size / min_chunk) / np.log(CHUNK_STEP) + 1e-9)
    return np.floor(min_chunk * CHUNK_STEP**k).astype(np.int64)


def decision_chunks(gap_certify, gap_futility, above, p0, tested, min_chunk: int, growth: float) -> np.ndarray:
    """The decision-mode chunk rule: the fewest samples that could still decide, at least growth * t, on the grid.

    A success multiplies the certification E-value by at most 1/p0 and a failure the futility E-value
    by at most 1/(1 - p0), so on the side the estimate lies (`above`: it exceeds p0) at least
    gap / log(1/p0) (or gap / log(1/(1 - p0))) more samples are needed; fewer would be waste.
    """
    base = np.ceil(np.where(above, gap_certify / -np.log(p0), gap_futility / -np.log1p(-p0)))
    return chunk_grid(np.maximum(base, np.ceil(growth * tested)), min_chunk)


def decide(cert_rejected, cert_time, fut_rejected, fut_time, tested, cap) -> np.ndarray:
    """Decision mode's outcome per input: certified unless futility stopped first, else not certified, else
    undecided once the cap is reached, else OPEN."""
    certified = cert_rejected & (~fut_rejected | (cert_time <= fut_time))
    futile = fut_rejected & ~certified
    spent = ~certified & ~futile & (tested >= cap)
    out = np.full(np.shape(tested), OPEN, dtype=object)
    out[certified], out[futile], out[spent] = CERTIFIED, NOT_CERTIFIED, UNDECIDED
    return out


def radius_mode_stop(tested, max_samples: int, half_established, gain, tolerance: float) -> np.ndarray:
    """Radius mode's stop reason per input, OPEN to go on: budget spent, p <= 1/2 shown, or the rest of the
    budget at the current estimate would add less than `tolerance` to the radius."""
    return np.where(
        tested >= max_samples,
        StopReason.MAX_SAMPLES,
        np.where(half_established, StopReason.HALF, np.where(gain < tolerance, StopReason.CONVERGED, OPEN)),
    )


def mixture_test(p0, alpha: float, parts: Parts, n: int, alternative: str = "greater"):
    """The beta-mixture test of a prior's components (checked: check_parts): one BetaMixtureTest, or their
    Bonferroni union, of level alpha."""
    parts = check_parts(parts, n)
    tests = [BetaMixtureTest(p0, alpha * w, a, b, n_streams=n, alternative=alternative) for w, a, b in parts]
    return tests[0] if len(tests) == 1 else UnionTest(tests)


def lower_confidence_sequence(alpha: float, parts: Parts, n: int) -> UnionConfidenceSequence:
    """The anytime lower confidence bound of a prior's components (checked; their intersection, level alpha)."""
    return UnionConfidenceSequence(
        [ConfidenceSequence(alpha * w, a, b, n_streams=n, side="lower") for w, a, b in check_parts(parts, n)]
    )


@dataclass(frozen=True)
class Target:
    """What a run certifies, checked once: the noise level, each certificate's failure probability alpha, the
    required radius (None: estimate each input's radius) and the cap on each input's tested samples."""

    sigma: float
    alpha: float = 0.001
    radius: float | None = None
    max_samples: int = 100_000
    radii: tuple[float, ...] | None = None  # grid mode: certify each input at the largest of these it supports

    def __post_init__(self):
        if not (isinstance(self.sigma, (int, float)) and np.isfinite(self.sigma) and self.sigma > 0):
            raise HaltfastError(f"sigma must be a positive number, got {self.sigma}")
        object.__setattr__(self, "alpha", validate_alpha(self.alpha))
        object.__setattr__(self, "max_samples", validate_count("max_samples", self.max_samples))
        if self.radius is not None and self.radii is not None:
            raise HaltfastError("give a required radius or a grid of radii, not both")
        if self.radius is not None:
            check_radius(self.radius, self.max_samples, self.alpha, self.sigma)
        if self.radii is not None:
            object.__setattr__(self, "radii", check_grid(self.radii, self.max_samples, self.alpha, self.sigma))

    @property
    def mode(self) -> str:
        """'decision' (a required radius), 'grid' (a grid of radii) or 'radius' (estimate each input's radius)."""
        return "decision" if self.radius is not None else "grid" if self.radii is not None else "radius"

    @property
    def z(self) -> float:
        """r / sigma: the threshold's probit, 0 (p0 = 1/2) in radius mode."""
        return 0.0 if self.radius is None else self.radius / self.sigma

    @property
    def p0(self) -> float | None:
        """Phi(r / sigma), the smallest top-class probability that certifies the radius (None in radius mode)."""
        return None if self.radius is None else p_for_radius(self.radius, self.sigma)


class Run:
    """Per-input bookkeeping of one certification run: certificates, time and every evaluation charged to each input.

    `streams` is a stream source (haltfast.streams); items are its inputs. `progress(inputs, evaluations)`
    is called with the evaluations as they are drawn and with each input as it finishes; `on_result(cert)`
    as each input finishes.
    """

    def __init__(
        self,
        streams,
        items: Sequence[int],
        labels=None,
        indices=None,
        progress=None,
        on_result: Callable[[Certificate], None] | None = None,
        *,
        budget: int | None = None,
        seconds: float | None = None,
    ):
        self.streams, self.items = streams, list(items)
        self.n = len(self.items)
        self.labels, self.indices, self.progress, self.on_result = labels, indices, progress, on_result
        self.certs: list[Certificate | None] = [None] * self.n
        self.finished = 0  # inputs with a certificate
        self.spent = np.zeros(self.n)
        self.extra_evals = np.zeros(self.n, dtype=np.int64)
        self.budget = validate_budget(budget)
        self.seconds = None if seconds is None else validate_seconds(seconds)
        self.started = time.monotonic()
        if self.seconds is not None:
            streams.stop = self.late  # a draw ends within one model batch of the deadline

    def elapsed(self) -> float:
        """Seconds since the run started (its deadline counts from here, class selection included)."""
        return time.monotonic() - self.started

    def late(self) -> bool:
        """Whether the run's deadline (`seconds`) has passed."""
        return self.seconds is not None and self.elapsed() >= self.seconds

    def budget_left(self) -> int | None:
        """Evaluations the run may still spend (None: no budget)."""
        return None if self.budget is None else max(self.budget - self.evaluations(), 0)

    def out_of_budget(self) -> str | None:
        """Why the run must stop drawing now (its budget is spent or its deadline passed), else None."""
        if self.budget is not None and self.evaluations() >= self.budget:
            return StopReason.BUDGET
        if self.late():
            return StopReason.DEADLINE
        return None

    def evaluations(self) -> int:
        """Every model evaluation spent on this run's inputs so far, selection included."""
        return int(self.streams.positions[self.items].sum() + self.extra_evals.sum())

    def results(self) -> list[Certificate]:
        """Every input's certificate (call when none is open)."""
        assert all(c is not None for c in self.certs)
        return list(self.certs)  # type: ignore[arg-type]

    def open(self, js: np.ndarray) -> np.ndarray:
        return np.array([self.certs[j] is None for j in js], dtype=bool)

    def finish(self, j: int, cert: Certificate) -> None:
        """Record input j's certificate with its evaluations, time, index and label."""
        cert.evaluations = int(self.streams.positions[self.items[j]] + self.extra_evals[j])
        cert.seconds = float(self.spent[j])
        cert.index = int(self.indices[j]) if self.indices is not None else int(self.items[j])
        cert.label = None if self.labels is None else int(self.labels[j])
        self.finished += self.certs[j] is None
        self.certs[j] = cert
        if hasattr(self.streams, "forget"):  # live streams hold a finished input's noise until told
            self.streams.forget([self.items[j]])
        if self.on_result is not None:
            self.on_result(cert)
        if self.progress is not None:
            self.progress(1, 0)  # its evaluations were reported as they were drawn

    def _report(self, evaluations: int) -> None:
        if self.progress is not None and evaluations:
            self.progress(0, evaluations)

    def fail(self, j: int, message: str) -> None:
        self.finish(j, failed_certificate(message))

    def charge(self, js: np.ndarray, seconds: float, drawn: np.ndarray) -> None:
        """Split a draw's wall time among inputs js: by each one's share of the model batches it took part in,
        where the label source measures it (Streams.last_cost), else by the samples each drew."""
        cost = getattr(self.streams, "last_cost", None)
        weights = cost if cost is not None and len(cost) == len(js) and cost.sum() > 0 else np.asarray(drawn, float)
        self.spent[js] += seconds * weights / max(float(np.sum(weights)), 1e-300)

    def draw(self, js: np.ndarray, counts) -> list:
        """Draw for inputs js in shared model batches, charging each its own share of the time (`charge`)."""
        start = time.perf_counter()
        out, errors = self.streams.draw([self.items[j] for j in js], counts)
        self.charge(js, time.perf_counter() - start, np.array([0 if o is None else len(o) for o in out]))
        self._report(sum(len(o) for o in out if o is not None))
        for j in js:
            if self.items[j] in errors:
                self.fail(j, errors[self.items[j]])
        return out

    def admit(self, pending: list, active: np.ndarray, max_active: int) -> np.ndarray:
        """The active inputs topped up to max_active from the end of `pending` (which it pops)."""
        if pending and active.size < max_active:
            admit = [pending.pop() for _ in range(min(max_active - active.size, len(pending)))]
            active = np.concatenate([active, np.array(admit, dtype=np.int64)])
        return active

    def pending(self) -> list:
        """The open inputs in the order `admit` takes them."""
        return [j for j in range(self.n) if self.certs[j] is None][::-1]

    def draw_flat(
        self, js: np.ndarray, size: np.ndarray, c_hat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw size[i] samples for input js[i] in shared batches: (inputs drawn, their counts, hits back to back).

        Inputs whose draw failed are finished as errors and left out; a draw the deadline cut short gives each
        input the prefix it got (possibly nothing).
        """
        start = time.perf_counter()
        labels, drawn, errors = self.streams.draw_flat([self.items[j] for j in js], size)
        self.charge(js, time.perf_counter() - start, drawn)
        self._report(int(drawn.sum()))
        failed = np.array([self.items[j] in errors for j in js], dtype=bool)
        for k in np.nonzero(failed)[0]:
            self.fail(int(js[k]), errors[self.items[js[k]]])
        ok = ~failed & (drawn > 0)
        hits = labels == np.repeat(c_hat[js], drawn)
        return js[ok], drawn[ok], hits

    def draw_hits(self, js: np.ndarray, size: np.ndarray, c_hat: np.ndarray) -> tuple[np.ndarray, list]:
        """Draw size[i] samples for input js[i] in shared batches: (open mask, [(inputs, hits (k, m) bool)]).

        One group per chunk size, for the inputs whose draw did not fail.
        """
        out = self.draw(js, size)
        alive = self.open(js)
        groups = []
        for m in np.unique(size[alive]):
            rows = np.nonzero(alive & (size == m))[0]
            groups.append((js[rows], np.stack([out[r] for r in rows]) == c_hat[js[rows]][:, None]))
        return alive, groups

    def select(
        self, selection: str, n0: int, window: int, with_logits: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Class selection on samples that are never tested: a pilot of n0 noisy samples, or the clean prediction.

        Returns (class, pilot hits, clean logits or None). with_logits: also the clean logits (a
        predictor's features), one evaluation that the clean selection shares. Selection is paid from the
        run's budget and stops at its deadline: inputs it does not reach keep the class ABSTAIN and are open.
        """
        if selection not in SELECTIONS:
            raise HaltfastError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
        c_hat = np.full(self.n, ABSTAIN, dtype=np.int64)
        hits = np.zeros(self.n, dtype=np.int64)
        logits = np.zeros((self.n, self.streams.num_classes)) if with_logits else None
        cost = (n0 if selection == "pilot" else 0) + (1 if selection == "clean" or with_logits else 0)
        for lo in range(0, self.n, window):
            js = np.arange(lo, min(lo + window, self.n))
            left = self.budget_left()
            if left is not None:  # selection is paid from the run's budget, in input order
                js = js[: left // cost]
            if not js.size or self.late():
                break  # the inputs left unselected (class ABSTAIN) are given up by the method
            if selection == "pilot":
                for j, labels in zip(js, self.draw(js, np.full(len(js), n0))):
                    if labels is not None and len(labels) == n0:  # a pilot the deadline cut short selects nothing
                        counts = np.bincount(labels, minlength=self.streams.num_classes)
                        c_hat[j], hits[j] = counts.argmax(), counts.max()
            if selection == "clean" or with_logits:
                self._clean(js, selection == "clean", c_hat, logits)
        return c_hat, hits, logits

    def _clean(self, js: np.ndarray, choose: bool, c_hat: np.ndarray, logits: np.ndarray | None) -> None:
        """One clean evaluation per input (charged to it): its prediction chooses the class, its logits are kept."""
        start = time.perf_counter()
        items = [self.items[j] for j in js]
        out, errors = self.streams.clean_logits(items) if logits is not None else self.streams.clean(items)
        self.spent[js] += (time.perf_counter() - start) / len(js)
        self.extra_evals[js] += 1
        self._report(len(js))
        for k, j in enumerate(js):
            if self.items[j] in errors:
                if self.certs[j] is None:
                    self.fail(j, errors[self.items[j]])
                continue
            if logits is not None:
                logits[j] = out[k]
            if choose:
                c_hat[j] = out[k].argmax() if logits is not None else out[k]


def run_open_inputs(
    run: Run,
    max_active: int,
    step: Callable[[np.ndarray], np.ndarray],
    room: Callable[[int, int], int] | None = None,
) -> list[Certificate]:
    """The loop of the streaming methods: admit open inputs up to max_active, let `step` sample and finish
    some of them (it returns the active inputs in the order the next round should prefer), repeat until
    every input is finished. `room(admitted, finished)`, when given, is how many more inputs may be admitted
    now (waves: an online learner lets inputs start as it learns from the inputs finished)."""
    pending, active = run.pending(), np.zeros(0, dtype=np.int64)
    open_at_start = len(pending)
    while pending or active.size:
        limit = max_active
        if room is not None:
            limit = min(max_active, active.size + max(room(open_at_start - len(pending), run.finished), 0))
            if not active.size:
                limit = max(limit, 1)  # never stall: with no input active, one more may start
        active = run.admit(pending, active, limit)
        active = step(active)
        active = active[run.open(active)]
    return run.results()


def segment_sums(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sum of each segment of a flat array (segments back to back, each at least one long)."""
    return np.add.reduceat(flat.astype(np.int64), np.cumsum(lengths) - lengths)


def round_cut(size: np.ndarray) -> np.ndarray:
    """Which of a round's chunks are drawn now: at most ROUND_SAMPLES in all (always the first chunk)."""
    return np.cumsum(size) <= max(ROUND_SAMPLES, int(size[0]))


def growth_chunks(tested: np.ndarray, min_chunk: int, growth: float) -> np.ndarray:
    """Radius mode's chunk rule: growth * t samples (a geometric schedule), on the grid."""
    return chunk_grid(np.maximum(np.zeros(tested.size), np.ceil(growth * tested)), min_chunk)


def radius_certificate(lower: float, c_hat: int, sigma: float, why: str, tested: int) -> Certificate:
    """Radius mode's certificate from the running lower bound on p: certified above 1/2, else abstain."""
    r = float(radius_from_p(lower, sigma)) if lower > 0.5 else 0.0
    return Certificate(
        c_hat if r > 0 else ABSTAIN,
        r,
        CERTIFIED if r > 0 else ABSTAINED,
        0,
        p_lower=lower,
        stop_reason=why,
        extra={"tested": tested, "stopped_at": tested, "selected": c_hat},
    )
