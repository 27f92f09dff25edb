"""The online meta-learner: each input's prior learned during the run from the inputs sampled before it.

No calibration: every run produces the learner's data. When an input's tested stream starts, the learner is
fitted on the inputs started before it: each one's score from its clean logits and its hits and tested samples
so far (finished or not). The prior it gives is fixed before the input's first tested label, and it depends
only on that input's clean logits and on other inputs' labels, which are independent of its stream; so each
certificate stays valid at alpha whatever the learner predicts (DESIGN.md §9). The engine starts inputs in
waves (`FIRST_WAVE`, then at most `WAVE_RATIO` x the inputs finished) so that most inputs start after the
learner has seen some; a refit is a deterministic function of the labels the engine has read, so a resumed or
distributed run gets the same priors.

The model is empirical Bayes on one score, the clean logit gap (top logit minus the next; any model that
returns logits has it): the inputs are binned by the score, and in each bin the distribution of p is
estimated from the members' binomial counts (a nonparametric maximum-likelihood mixture on a grid of
logit(p), fitted by EM with a smoothing step; counts of inputs still running are likelihoods like any other,
so the hard inputs, which finish last, are not left out). Each bin's priors are then the candidate Betas
(Jeffreys, centred on the bin's distribution, or just above the threshold, at a few strengths) with the
least expected stopping time over that distribution, chosen apart for the certification and the futility
test: StoppingTimes bounds E[min(tau, horizon)] by the time S_t spends between the hedged test's exact
rejection boundaries (the learned prior at `hedge` x alpha beside Jeffreys' at the rest). The bin's
distribution, moment-matched to a Beta, is also the belief the value rule and budgets spend by.

A calibrated MetaLearner, when given, is the starting point: the first wave gets its priors and beliefs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special as sc
from scipy.special import expit
from scipy.stats import norm

from ..batches import least_integer
from ..errors import HaltfastError
from ..statistics import log_betaincc
from .features import FEATURES
from .features import features
from .learner import EDGE_OFFSET
from .learner import MetaLearner
from .priors import Parts
from .priors import jeffreys

# the learned prior's share of alpha; Jeffreys' test keeps the rest. Lower than the calibrated learner's 0.9: a
# misled online learner is bounded by Jeffreys at 0.2 alpha (log(1/(0.2 alpha)) / log(1/alpha) = 1.23 at
# alpha = 0.001, against 1.33), and on the report's 11 decision cells 0.8 saved as much as 0.9 (0.7 less)
ONLINE_HEDGE = 0.8
FIRST_WAVE = 32  # inputs started before the learner has seen any
WAVE_RATIO = 2.0  # after the first wave, inputs started <= WAVE_RATIO x inputs finished
REFIT_GROWTH = 1.25  # refit when the inputs finished grew by this factor since the last fit
PER_BIN = 32  # started inputs per bin of the score
MAX_BINS = 32
SCORE = "logit_gap"
GRID = np.arange(-6.0, 16.0 + 1e-9, 0.25)  # logit(p) support of each bin's distribution of p
EM_STEPS = 200
SMOOTH = 0.5  # bandwidth in logit(p) of the smoothing step of EM (EMS): p's density is smooth, rare p's matter
SUPPORT = 1e-3  # a side of the threshold with less mass than this gets no candidate centred on it
CENTRED = (4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)  # strengths of priors centred on a bin
EDGE = (256.0, 1024.0, 4096.0, 16384.0)  # strengths of priors centred just above the threshold
TIME_POINTS = 64  # geometric grid of sample counts on which the stopping times are integrated
START_STRENGTH = 256.0  # the first wave's prior without a base learner: this strength just above the threshold
WORTH_SHARE = 20.0  # with a worth W, the priors are fitted to the inputs Jeffreys' test decides within W / this
CENTRE_STEP = 0.125  # centres are rounded to this logit step (the stopping times are cached per centre)


@dataclass(frozen=True)
class OnlineLearner:
    """The online meta-learner (a Predictor): give it as the prior and the run learns each input's prior.

    `base`: a calibrated MetaLearner of the same model, the first wave's prior and belief (None: a prior just
    above the threshold, START_STRENGTH, and Jeffreys' belief).
    It holds no state: each run gets its own `session`, so two runs never share what they learned.
    """

    base: MetaLearner | None = None
    hedge: float = ONLINE_HEDGE
    first_wave: int = FIRST_WAVE
    wave_ratio: float = WAVE_RATIO

    needs_logits = True
    online = True  # the engine calls `session` and starts inputs in waves

    def __post_init__(self):
        if not 0 < self.hedge < 1:
            raise HaltfastError(f"hedge must lie in (0, 1), got {self.hedge}")
        if self.first_wave < 1 or self.wave_ratio <= 1:
            raise HaltfastError("first_wave must be >= 1 and wave_ratio > 1")

    @property
    def weights_sha256(self) -> str | None:
        """The weights the base learner belongs to (None: no base learner, any model)."""
        return None if self.base is None else self.base.weights_sha256

    @property
    def calibration_evaluations(self) -> int:
        """Model evaluations spent before the run: the base learner's calibration, else none."""
        return 0 if self.base is None else self.base.calibration_evaluations

    def check_model(self, weights_sha256: str, what: str = "this base model") -> None:
        """Refuse a base model other than the base learner's (any model, without a base learner)."""
        if self.base is not None:
            self.base.check_model(weights_sha256, what)

    def parts(self, z, logits: np.ndarray | None, n: int) -> Parts:
        """The components before any input started: the learned prior (the base learner's, else a prior just
        above the threshold) at `hedge` x alpha beside Jeffreys' at the rest; radius mode (z None) keeps
        Jeffreys. The session replaces the learned prior of each input as it starts."""
        if z is None:
            return [(1.0, *jeffreys(n))]
        if logits is None:
            raise HaltfastError("the online meta-learner learns from the clean logits; none were computed")
        return [(self.hedge, *self._base_prior(float(z), logits)), (1.0 - self.hedge, *jeffreys(n))]

    def _base_prior(self, z: float, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first wave's learned component: the base learner's prior, else the constant START_STRENGTH prior
        centred just above the threshold."""
        if self.base is None:
            p0 = float(norm.cdf(z))
            return edge_prior(p0, START_STRENGTH, len(logits))
        parts = self.base.parts(z, logits, len(logits))
        return parts[0][1], parts[0][2]

    def belief(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The belief about each p before the learner has seen any input: the base learner's, else Jeffreys'."""
        return jeffreys(len(logits)) if self.base is None else self.base.belief(logits)

    def session(
        self, zs, logits: np.ndarray, alpha: float, futility_alpha: float, horizon: int, worth: float | None = None
    ) -> OnlineSession:
        """A fresh learner for one run over inputs with these clean logits, tests at z = r / sigma in `zs`, each
        input capped at `horizon` tested samples; `worth`: the value rule's (None: off)."""
        return OnlineSession(self, [float(z) for z in zs], logits, alpha, futility_alpha, horizon, worth)


class OnlineSession:
    """One run's online learner: refitted on the inputs started so far, it gives the next inputs their priors."""

    def __init__(
        self, learner: OnlineLearner, zs: list[float], logits: np.ndarray, alpha, futility_alpha, horizon, worth=None
    ):
        self.learner, self.zs = learner, zs
        self.p0s = norm.cdf(zs)
        self.logits = logits
        self.score = features(logits)[:, FEATURES.index(SCORE)]
        self.alpha, self.futility_alpha, self.horizon = alpha, futility_alpha, int(horizon)
        self.fitted_at = 0  # inputs finished at the last fit (0: not fitted yet)
        self.fits = 0
        self.edges = np.zeros(0)
        self.bin_priors: list = []  # per z: ((a, b) per bin of the certification test, (a, b) of the futility test)
        self.bin_beliefs = (np.zeros(0), np.zeros(0))
        self.times = StoppingTimes(self.p0s, alpha, futility_alpha, learner.hedge, self.horizon)
        # with the value rule, inputs that cost more than this are given up whatever their prior
        self.times.pursued = self.horizon if worth is None else min(self.horizon, worth / WORTH_SHARE)

    def room(self, started: int, finished: int) -> int:
        """How many more inputs may start now: the first wave, then up to wave_ratio x the inputs finished."""
        allowed = max(self.learner.first_wave, int(np.ceil(self.learner.wave_ratio * finished)))
        return max(allowed - started, 0)

    def priors(self, rows: np.ndarray, succ, tested, started: np.ndarray, finished: int) -> list:
        """The learned components of inputs `rows` about to start, per z: ((a, b) of the certification test,
        (a, b) of the futility test). Refits first when the inputs finished grew by REFIT_GROWTH since the last
        fit, on the inputs `started` (their counts succ/tested so far)."""
        due = finished >= max(1, self.learner.first_wave // 2) and finished >= REFIT_GROWTH * self.fitted_at
        if due and np.count_nonzero(started) >= 2:
            self.fit(np.nonzero(started)[0], succ, tested)
            self.fitted_at = finished
        if not self.fits:
            return [(prior, prior) for prior in (self.learner._base_prior(z, self.logits[rows]) for z in self.zs)]
        k = np.digitize(self.score[rows], self.edges)
        return [((ca[k], cb[k]), (fa[k], fb[k])) for (ca, cb), (fa, fb) in self.bin_priors]

    def beliefs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Beta belief about p of inputs about to start: their bin's distribution, moment-matched."""
        if not self.fits:
            return self.learner.belief(self.logits[rows])
        k = np.digitize(self.score[rows], self.edges)
        return self.bin_beliefs[0][k], self.bin_beliefs[1][k]

    def fit(self, rows: np.ndarray, succ, tested) -> None:
        """Bins of the score over these inputs, each bin's distribution of p, and its best prior per z."""
        score = self.score[rows]
        bins = int(np.clip(rows.size // PER_BIN, 1, MAX_BINS))
        self.edges = np.unique(np.quantile(score, np.arange(1, bins) / bins)) if bins > 1 else np.zeros(0)
        member = np.digitize(score, self.edges)
        hits, trials = np.asarray(succ, float)[rows], np.asarray(tested, float)[rows]
        weights = np.array([mixture_of_p(hits[member == k], trials[member == k]) for k in range(self.edges.size + 1)])
        self.bin_beliefs = moment_beta(weights)
        self.bin_priors = [self.times.best_priors(weights, j) for j in range(len(self.zs))]
        self.fits += 1


def edge_prior(p0: float, strength: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Beta of this strength centred just above the threshold p0 (learner.EDGE_OFFSET), for n inputs."""
    centre = p0 + min(EDGE_OFFSET, (1.0 - p0) / 2)
    return np.full(n, centre * strength), np.full(n, (1.0 - centre) * strength)


def mixture_of_p(hits: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """The nonparametric maximum-likelihood distribution of p on GRID (weights) for inputs with these
    binomial counts: EM from the uniform weights, a fixed number of steps (deterministic)."""
    p = expit(GRID)
    weights = np.full(GRID.size, 1.0 / GRID.size)
    if hits.size == 0:
        return weights
    loglik = hits[:, None] * np.log(p) + (trials - hits)[:, None] * np.log1p(-p)
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    kernel = np.exp(-0.5 * ((GRID[:, None] - GRID[None, :]) / SMOOTH) ** 2) if SMOOTH > 0 else np.eye(GRID.size)
    kernel /= kernel.sum(axis=0, keepdims=True)
    for _ in range(EM_STEPS):
        post = lik * weights
        post /= post.sum(axis=1, keepdims=True)
        weights = kernel @ post.mean(axis=0)
    return weights


def moment_beta(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beta(a, b) per row of weights over GRID with the same mean and variance of p (size in [1, 1e6])."""
    p = expit(GRID)
    mean = weights @ p
    var = np.maximum(weights @ p**2 - mean**2, 1e-12)
    size = np.clip(mean * (1 - mean) / var - 1.0, 1.0, 1e6)
    return mean * size, (1 - mean) * size


class StoppingTimes:
    """Expected stopping times of the hedged decision test at each threshold for p on GRID, per candidate prior.

    A test with prior Beta(a, b) rejects p <= p0 exactly when S_t reaches a boundary c(t) (the least count whose
    E-value crosses), and the futility test when S_t falls to f(t); the union with Jeffreys' component takes the
    nearer boundary of the two. E[min(tau, horizon)] is the integral over t of P(tau > t) <= P(f(t) < S_t <
    c(t)), with S_t ~ Binomial(t, p) exactly: an upper bound that gives the inputs near the threshold, which
    cross by luck or not at all, their due weight. It splits into a certification part (the time S_t spends
    below c) minus a futility part (the time it spends at or below f), so each test's prior is chosen on its own.
    Boundaries do not depend on p and the parts of a candidate are cached: candidates recur from fit to fit.
    """

    def __init__(self, p0s: np.ndarray, alpha: float, futility_alpha: float, hedge: float, horizon: int):
        self.p0s, self.alpha, self.futility_alpha, self.hedge = p0s, alpha, futility_alpha, hedge
        self.t = np.unique(np.round(np.geomspace(1.0, horizon, TIME_POINTS))).astype(np.int64)
        widths = np.diff(np.concatenate([[0], self.t])).astype(float)
        self.p = expit(GRID)
        self.cache: list[dict] = [{} for _ in p0s]
        self.jeffreys = [tuple(x[0] for x in self._boundaries(j, 0.5, 0.5, 1.0 - hedge)) for j in range(len(p0s))]
        self.widths = widths
        self.pursued = float(horizon)  # inputs whose expected stopping time exceeds this are left out of the fits

    def best_priors(self, weights: np.ndarray, j: int) -> tuple:
        """Per bin (a row of weights): ((a, b) of the certification test, (a, b) of the futility test), each the
        candidate with the least expected stopping time over the bin's distribution of p at threshold j."""
        p0 = float(self.p0s[j])
        bins = len(weights)
        cands = [self.candidates(w, p0) for w in weights]
        if self.pursued < self.t[-1]:  # the value rule gives the costly inputs up: fit the priors to the others
            self.prepare(j, [(("J",), 0.5, 0.0)])
            weights = weights * (self.cache[j][("J",)].sum(axis=1) <= self.pursued)
        self.prepare(j, [c for per_bin in cands for c in per_bin])
        cert_a, cert_b, fut_a, fut_b = (np.full(bins, 0.5) for _ in range(4))
        for k, w in enumerate(weights):
            parts = np.array([w @ self.cache[j][key] for key, _, _ in cands[k]])  # (candidates, 2)
            for side, out_a, out_b in ((0, cert_a, cert_b), (1, fut_a, fut_b)):
                _, centre, s = cands[k][int(np.argmin(parts[:, side]))]
                if s > 0:
                    out_a[k], out_b[k] = centre * s, (1 - centre) * s
        return (cert_a, cert_b), (fut_a, fut_b)

    @staticmethod
    def candidates(weights: np.ndarray, p0: float) -> list:
        """(cache key, centre, strength): Jeffreys; centred on the bin's mean logit(p), on its mean above the
        threshold and on its mean below; centred just above the threshold."""
        cands: list = [(("J",), 0.5, 0.0)]
        above = expit(GRID) > p0
        centres = [float(weights @ GRID)]
        for side in (above, ~above):
            if weights[side].sum() > SUPPORT:
                centres.append(float(weights[side] @ GRID[side] / weights[side].sum()))
        for c in dict.fromkeys(round(c / CENTRE_STEP) for c in centres):
            centre = float(expit(c * CENTRE_STEP))
            cands += [(("c", c, s), centre, s) for s in CENTRED]
        edge = float(edge_prior(p0, 1.0, 1)[0][0])
        cands += [(("edge", s), edge, s) for s in EDGE]
        return cands

    def prepare(self, j: int, cands: list) -> None:
        """Cache the parts of E[min(tau, horizon)] of these candidates at threshold j (all missing ones at once):
        per p on GRID, the certification part (the integral of P(S_t < c(t))) and minus the futility part (of
        P(S_t <= f(t))); a certification prior's first part plus a futility prior's second is the expected
        stopping time of the test that uses both."""
        cache = self.cache[j]
        todo = {key: (centre, s) for key, centre, s in cands if key not in cache}
        if not todo:
            return
        a = np.array([0.5 if s == 0 else c * s for c, s in todo.values()])
        b = np.array([0.5 if s == 0 else (1 - c) * s for c, s in todo.values()])
        upper, lower = self._boundaries(j, a, b, self.hedge)
        upper = np.minimum(upper, self.jeffreys[j][0])
        lower = np.maximum(lower, self.jeffreys[j][1])
        t, p = self.t[None, None, :], self.p[None, :, None]
        below_upper = sc.bdtr(upper[:, None, :] - 1, t, p)  # P(S_t < c(t)): 0 where c(t) = 0
        at_lower = np.where(lower[:, None, :] >= 0, sc.bdtr(np.maximum(lower, 0)[:, None, :], t, p), 0.0)
        for k, key in enumerate(todo):
            cache[key] = np.column_stack([integral(below_upper[k], self.widths), -integral(at_lower[k], self.widths)])

    def _boundaries(self, j: int, a, b, share: float) -> tuple[np.ndarray, np.ndarray]:
        """Per prior Beta(a[i], b[i]), on the time grid: the count c(t) at or above which the certification test
        (share x alpha) rejects, and f(t) at or below which the futility test (share x futility alpha) does
        (t + 1 and -1: never). Shape (priors, times)."""
        p0 = float(self.p0s[j])
        a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
        t = np.broadcast_to(self.t, (a.size, self.t.size))
        A, B = np.broadcast_to(a[:, None], t.shape), np.broadcast_to(b[:, None], t.shape)
        upper = mixture_boundary(t, p0, share * self.alpha, A, B)
        lower = t - mixture_boundary(t, 1.0 - p0, share * self.futility_alpha, B, A)
        return upper, lower


def mixture_boundary(t: np.ndarray, p0: float, alpha: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """validation.beta_mixture_boundary (the least count at which the truncated Beta(a, b) mixture rejects p <= p0
    after t trials; t + 1: none), fast: the untruncated E-value bounds the truncated one from above, so its own
    boundary (cheap: no incomplete beta function) is a lower bracket, and the exact boundary is found from it
    by doubling steps and bisection, a few exact evaluations per entry."""
    shape = np.shape(t)
    t, a, b = (np.asarray(v).reshape(-1) for v in (t, a, b))
    thr = -np.log(alpha)
    lp0, l1p0 = np.log(p0), np.log1p(-p0)
    lnorm = sc.betaln(a, b) + log_betaincc(a, b, np.full(a.shape, p0))

    def untruncated(k, sel):
        return sc.betaln(a[sel] + k, b[sel] + t[sel] - k) - lnorm[sel] - k * lp0 - (t[sel] - k) * l1p0 >= thr

    def exact(k, sel):
        return untruncated(k, sel) & (
            sc.betaln(a[sel] + k, b[sel] + t[sel] - k)
            - lnorm[sel]
            - k * lp0
            - (t[sel] - k) * l1p0
            + log_betaincc(a[sel] + k, b[sel] + t[sel] - k, np.full(k.shape, p0))
            >= thr
        )

    low = least_integer(untruncated, t)  # exact(k) implies untruncated(k): the boundary is at least this
    lo, hi = low - 1, np.full(t.shape, -1)  # exact false at lo; hi: exact true (-1: not found yet)
    step = np.ones(t.shape, dtype=np.int64)
    open_ = low <= t
    while open_.any():
        k = np.minimum(lo + step, t)
        holds = np.zeros(t.shape, dtype=bool)
        holds[open_] = exact(k[open_], open_)
        hi = np.where(open_ & holds, k, hi)
        lo = np.where(open_ & ~holds, k, lo)
        open_ &= ~holds & (k < t)
        step *= 2
    found = hi >= 0
    out = np.where(found, hi, t + 1)
    gap = np.flatnonzero(found & (hi - lo > 1))
    if gap.size:  # bisection between the last miss and the first hit

        def between(k, sel):
            return exact(lo[gap][sel] + 1 + k, gap[sel])

        out[gap] = lo[gap] + 1 + least_integer(between, hi[gap] - lo[gap] - 1)
    return out.reshape(shape)


def integral(prob: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Trapezoid integral over t (from 0, where every probability is 1) of each row of probabilities on the grid."""
    before = np.concatenate([np.ones((prob.shape[0], 1)), prob[:, :-1]], axis=1)
    return ((before + prob) / 2) @ widths
