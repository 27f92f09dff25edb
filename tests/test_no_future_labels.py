"""No prediction, prior, belief or spending rule reads a label before it is drawn.

The check: run a method, then replace every label that the run never drew (each stream beyond its
final position) and run again. If anything read an undrawn label, of its own input or of another,
some certificate changes. The online learner reads other inputs' labels as it sets each input's prior: only
those drawn before. The oracle prior, which reads the whole stream on purpose, is the positive control: the
same check must catch it.
"""

import numpy as np
import pytest
from validity import forced_meta

from haltfast.methods import run_method
from haltfast.predictors import FEATURES
from haltfast.predictors import OnlineLearner
from haltfast.predictors import oracle_prior
from haltfast.streams import RecordedStreams

SIGMA, CAP, N = 1.0, 3000, 200


def _recording(seed: int) -> RecordedStreams:
    """Inputs spread around the threshold Phi(0.5) = 0.69, with clean logits that vary per input."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.55, 0.97, N)
    labels = (rng.random((N, CAP + 1)) < p[:, None]).astype(np.uint8)
    margin = np.abs(np.log(p / (1 - p)) + rng.normal(0, 0.5, N)) + 0.05
    logits = np.column_stack([-margin / 2, margin / 2])
    return RecordedStreams(labels, 2, clean=np.ones(N, dtype=np.int64), logits=logits)


def _varying_meta():
    """A meta-learner whose prediction, logit(p) = the clean logit gap, differs per input."""
    learner = forced_meta(0.5, 64.0, sigma=SIGMA)
    gap = np.zeros((len(FEATURES), 1))
    gap[FEATURES.index("logit_gap")] = 1.0
    learner.weights = [gap, np.array([[1.0]])]
    return learner


def _undrawn_replaced(rec: RecordedStreams, seed: int) -> RecordedStreams:
    rng = np.random.default_rng(seed)
    labels = np.stack(rec.streams).copy()
    undrawn = np.arange(labels.shape[1])[None, :] >= rec.positions[:, None]
    labels[undrawn] = rng.integers(0, 2, int(undrawn.sum()), dtype=np.uint8)
    return RecordedStreams(labels, 2, rec.clean_predictions, rec.logits)


def _run(rec, prior, options):
    return run_method(
        "anytime", rec, range(N), sigma=SIGMA, n0=0, n=0, alpha=0.01, max_samples=CAP, prior=prior, **options
    )


def _outcomes(certs):
    return [(c.decision, c.evaluations, c.radius) for c in certs]


@pytest.mark.parametrize(
    "options",
    [
        {"radius": 0.5},
        {"radius": 0.5, "worth": 20_000.0},
        {"radius": 0.5, "budget": 60_000},
        {"radius": 0.5, "max_loss": 0.02},
        {"radii": (0.0, 0.25, 0.5, 0.75)},
    ],
)
@pytest.mark.parametrize("prior", ["meta", "online", "online+meta", "oracle"])
def test_certificates_do_not_depend_on_labels_never_drawn(options, prior):
    rec = _recording(seed=4)
    choose = {
        "meta": lambda r: _varying_meta(),
        "online": lambda r: OnlineLearner(first_wave=16),
        "online+meta": lambda r: OnlineLearner(_varying_meta(), first_wave=16),
        "oracle": oracle_prior,
    }[prior]
    first = _run(rec, choose(rec), options)
    assert len({(c.decision, round(c.radius, 2)) for c in first}) >= 2 and len({c.evaluations for c in first}) > 10
    changed = _undrawn_replaced(rec, seed=5)
    again = _run(changed, choose(changed), options)
    if prior != "oracle":
        assert _outcomes(again) == _outcomes(first)
    else:  # the control: a prior read off the whole stream must be caught
        assert _outcomes(again) != _outcomes(first)
