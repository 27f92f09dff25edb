"""The bench's replays: every method on the same recorded noise draws, and the yardsticks.

The evaluation protocol (docs/results.md): per sigma, one recording of each evaluation image's stream
of noisy predictions (`haltfast record`), replayed by every method, so that all methods see identical
noise; the replay results are deterministic (no timings).

A method is one `Entry` of ENTRIES: a label, a `run_method` name and its options (which may depend
on the recording, as the oracle prior does). Adding a row is one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

import numpy as np

from ..certificate import CERTIFIED
from ..certificate import Certificate
from ..certificate import p_for_radius
from ..errors import HaltfastError
from ..methods import run_method
from ..recording import load_recording
from ..statistics import wald_expected_samples
from ..streams import RecordedStreams

if TYPE_CHECKING:
    from ..predictors import MetaLearner

N0, N = 100, 100_000  # Cohen's selection and estimation samples
DECISION_RADII = (0.25, 0.5, 0.75, 1.0)
RADIUS_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
CAPS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)  # budget frontier: per-input caps / Cohen's n
COHEN = "Cohen et al. 2019 (n0 = 100, n = 100,000)"


def cohen_label(cap: int) -> str:
    """Cohen's row, named by the n its recording allows (the protocol's 100,000 unless recorded shorter)."""
    return f"Cohen et al. 2019 (n0 = 100, n = {cap:,})"


OURS = "haltfast (Jeffreys prior, no meta-learner)"


@dataclass
class Context:
    """One recording and what the methods may derive from it."""

    streams: RecordedStreams
    meta: dict
    alpha: float
    p_hat: np.ndarray = field(init=False)  # each image's p for its clean-predicted class, from its whole stream
    learner: MetaLearner | None = None  # the model's MetaLearner, when it has one

    def __post_init__(self):
        clean = self.streams.clean_predictions
        assert clean is not None  # the bench's recordings hold each image's clean prediction
        self.p_hat = np.array([np.mean(s == c) for s, c in zip(self.streams.streams, clean)])

    @property
    def sigma(self) -> float:
        return float(self.meta["sigma"])

    @property
    def size(self) -> int:
        return len(self.meta["indices"])


def oracle_options(ctx: Context) -> dict:
    """Beta(hits + 1/2, misses + 1/2) of each image's whole recorded stream (predictors.oracle_prior).

    An oracle, not a method: the prior is read off the very stream that is then tested, so its
    certificates carry no guarantee. It shows what a perfect meta-learner could reach.
    """
    from ..predictors import oracle_prior

    return {"prior": oracle_prior(ctx.streams)}


def meta_prior(ctx: Context) -> dict:
    """The online meta-learner starting from the recording model's calibrated one, as `haltfast certify` runs by
    default for a model that has one."""
    from ..predictors import OnlineLearner

    return {"prior": OnlineLearner(ctx.learner)}


def online_prior(ctx: Context) -> dict:
    """The online meta-learner alone: no calibration, as `haltfast certify --prior online` (and, for a model
    without a calibrated learner, the default)."""
    from ..predictors import OnlineLearner

    return {"prior": OnlineLearner()}


def calibrated_prior(ctx: Context) -> dict:
    """The recording model's calibrated meta-learner alone (hash-checked): `--prior calibrated`."""
    return {"prior": ctx.learner}


def pilot_only(ctx: Context) -> dict:
    """Cohen's 100-sample pilot for class selection, its Jeffreys posterior as the prior (no meta-learner)."""
    return {"prior": "pilot", "selection": "pilot"}


@dataclass(frozen=True)
class Entry:
    label: str
    method: str
    options: Callable[[Context], dict] = lambda ctx: {}
    radius_mode: bool = True
    oracle: bool = False  # reads the tested stream: a yardstick, not a method (never run live)
    frontier: bool = True  # run radius mode at every cap of the budget frontier
    meta: bool = False  # needs the model's calibrated meta-learner
    logits: bool = False  # needs the clean logits (a meta-learner's features)


CALIBRATED = "haltfast, calibrated meta-learner alone (1,000,000 calibration evaluations)"
ONLINE = "haltfast, online meta-learner (no calibration)"
META = "haltfast, online meta-learner from the calibrated one (the default)"
ENTRIES = (
    Entry("Horvath et al. 2022 adaptive sampling", "horvath", radius_mode=False),
    Entry("Voracek 2024 union-bound CS", "union-bound"),
    Entry("Voracek 2024 betting CS", "betting"),
    Entry("haltfast, Cohen's 100-sample pilot (selection + pilot prior)", "anytime", pilot_only, frontier=False),
    Entry(OURS, "anytime"),
    # the learners keep Jeffreys in radius mode: one radius-mode row (the default's) stands for them
    Entry(CALIBRATED, "anytime", calibrated_prior, radius_mode=False, meta=True, logits=True),
    Entry(ONLINE, "anytime", online_prior, frontier=False, logits=True),
    Entry(META, "anytime", meta_prior, frontier=False, meta=True, logits=True),
    Entry("haltfast + oracle prior (not a method: a bound)", "anytime", oracle_options, oracle=True),
)


def replay(ctx: Context, entry: Entry, radius: float | None, max_samples: int = N) -> list[Certificate]:
    """One method on a fresh copy of the recording (clean-prediction class selection, counted)."""
    return on_recording(ctx, entry.method, radius=radius, max_samples=max_samples, **entry.options(ctx))


def cohen(ctx: Context, n: int = N) -> list[Certificate]:
    """Cohen's CERTIFY with n0 = 100 and n tested samples on a fresh copy of the recording."""
    return on_recording(ctx, "cohen", n=n)


def on_recording(ctx: Context, method: str, n: int = N, **options) -> list[Certificate]:
    """A method on a fresh copy of the recording, every image with its label and index."""
    meta = ctx.meta
    return run_method(
        method,
        ctx.streams.rewound(),
        range(ctx.size),
        sigma=ctx.sigma,
        n0=N0,
        n=n,
        alpha=ctx.alpha,
        labels=meta["labels"],
        indices=meta["indices"],
        **options,
    )


def wald_limit(ctx: Context, radius: float, cap: int = N) -> np.ndarray:
    """Per image: Wald's lower bound on E[samples] at its p (miss rate alpha), capped, +1 for class selection."""
    p0 = p_for_radius(radius, ctx.sigma)
    return np.minimum(wald_expected_samples(ctx.p_hat, p0, ctx.alpha, ctx.alpha), cap) + 1


def evaluations(certs: list[Certificate]) -> np.ndarray:
    return np.array([c.evaluations for c in certs], dtype=float)


def certified_at(certs: list[Certificate], radii) -> np.ndarray:
    """Fraction of images certified, correct, at radius >= r, for each r."""
    radius = np.array([c.radius if c.decision == CERTIFIED and c.correct else -1.0 for c in certs])
    return np.array([np.mean(radius >= r) for r in np.atleast_1d(radii)])


def acr(certs: list[Certificate]) -> float:
    return float(np.mean([c.radius if c.decision == CERTIFIED and c.correct else 0.0 for c in certs]))


def load_contexts(recordings, max_images: int | None, alpha: float, log=print) -> list[Context]:
    """One Context per recording, with the recording model's calibrated meta-learner where it has one, and the
    clean logits where the recording holds them or its model is a shipped one."""
    from ..predictors import MetaLearner
    from ..predictors import find_meta_learner
    from ..recording import recording_logits
    from ..recording import recording_model_path

    contexts = []
    for path in recordings:
        streams, meta = load_recording(path, max_images)
        learner = None
        try:
            weights = recording_model_path(meta)
            learner_path = find_meta_learner(weights, meta["weights_sha256"])
            learner = MetaLearner.load(learner_path, meta["weights_sha256"]) if learner_path else None
            if streams.logits is None:
                streams = RecordedStreams(
                    streams.streams, streams.num_classes, streams.clean_predictions, recording_logits(meta)
                )
        except HaltfastError:
            pass
        if learner is None:
            log(f"{path}: the model {meta['model']} has no calibrated meta-learner (haltfast calibrate makes one)")
        ctx = Context(streams, {**meta, "recording": str(path)}, alpha)
        ctx.learner = learner
        contexts.append(ctx)
    return contexts
