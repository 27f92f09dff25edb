"""What predicts an input's p before its tested stream starts: the tests' priors, the meta-learner, and value.

What it guarantees: a prior from here is fixed before its input's tested stream starts (a named prior, the
pilot's posterior, a meta-learner's prediction from the clean logits), so each keeps every certificate valid
and a good one only makes the test stop sooner; the value rule's predictions can only turn a decision into
"undecided", never create a certificate. The one exception is `oracle_prior`, a benchmark yardstick that reads
the very samples it tests and is no valid prior. No torch: numpy and scipy, and scikit-learn to fit a
meta-learner.

Inside, imports point one way: `priors` (the Predictor interface, named priors, test components) and
`features` (the clean-logit features) <- `learner` (MetaLearner, its file and where it lives) <- `fit`
(calibration data, the MLP, the strengths tuned by simulated stopping time); `value` (what continuing an
input is worth) stands on the statistics alone.
"""

from .features import FEATURES
from .features import features
from .fit import CALIBRATION_IMAGES
from .fit import MIN_CALIBRATION_IMAGES
from .fit import STRENGTHS
from .fit import Z_GRID
from .fit import CalibrationData
from .fit import calibrate
from .fit import check_calibration_size
from .fit import fit_meta_learner
from .fit import simulated_stopping_times
from .learner import FORMAT_VERSION
from .learner import GAP_EDGES
from .learner import HEDGE
from .learner import MetaLearner
from .learner import beta_prior
from .learner import find_meta_learner
from .learner import format_strengths
from .learner import meta_learner_path
from .learner import user_meta_learner_path
from .online import OnlineLearner
from .online import OnlineSession
from .priors import NAMED_PRIORS
from .priors import Parts
from .priors import Predictor
from .priors import check_parts
from .priors import check_prior
from .priors import jeffreys
from .priors import oracle_prior
from .priors import parts_rows
from .priors import prior_parts
from .priors import resolve_prior
from .value import certification_value
from .value import first_passage
from .value import price_for_loss
from .value import worst_first

__all__ = [
    "CALIBRATION_IMAGES",
    "FEATURES",
    "FORMAT_VERSION",
    "GAP_EDGES",
    "HEDGE",
    "MIN_CALIBRATION_IMAGES",
    "NAMED_PRIORS",
    "STRENGTHS",
    "Z_GRID",
    "CalibrationData",
    "MetaLearner",
    "OnlineLearner",
    "OnlineSession",
    "Parts",
    "Predictor",
    "beta_prior",
    "calibrate",
    "certification_value",
    "check_calibration_size",
    "check_parts",
    "check_prior",
    "features",
    "find_meta_learner",
    "first_passage",
    "fit_meta_learner",
    "format_strengths",
    "jeffreys",
    "meta_learner_path",
    "oracle_prior",
    "parts_rows",
    "price_for_loss",
    "prior_parts",
    "resolve_prior",
    "simulated_stopping_times",
    "user_meta_learner_path",
    "worst_first",
]
