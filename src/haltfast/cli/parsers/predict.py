"""`haltfast predict`'s options; predict.cmd_predict runs it."""

from __future__ import annotations

from ..options import add_command
from ..options import add_data_options
from ..options import add_model_options
from ..options import add_output_options
from ..options import add_replay_option
from ..options import add_sampling_options
from ..options import add_scale_out_options
from ..options import fraction
from ..options import positive_float
from ..options import positive_int
from ..options import probability
from ..predict import cmd_predict

TEST_HELP = (
    "anytime: runner-up (an E-process per other class c tests that the selected class beats c; predict once all "
    "have crossed) or half (one E-process tests P(selected class) > 1/2)"
)

BUDGET_HELP = (
    "anytime: model evaluations for the whole run (selection included, never exceeded, also across resumes and "
    "Ray workers); inputs still open when it is spent abstain"
)
SECONDS_HELP = (
    "anytime: a deadline for the run, counted from its start (selection included) and kept within about one "
    "model batch; inputs still open then abstain"
)


def add_parser(sub) -> None:
    p = add_command(sub, "predict")
    add_data_options(p)
    add_model_options(p)
    g = p.add_argument_group("prediction")
    g.add_argument(
        "--method",
        default="anytime",
        choices=["anytime", "cohen"],
        help="anytime: stop each input as soon as its class is established; cohen: Cohen et al.'s PREDICT (n "
        "samples each)",
    )
    g.add_argument("--alpha", type=probability, default=0.001, help="probability of returning a wrong class")
    g.add_argument(
        "--n", type=positive_int, default=100_000, help="samples of Cohen's PREDICT; the anytime method's cap"
    )
    g.add_argument("--test", default="runner-up", choices=["runner-up", "half"], help=TEST_HELP)
    g.add_argument(
        "--selection",
        default="clean",
        choices=["clean", "pilot"],
        help="anytime: choose the class by the clean prediction (1 evaluation) or by n0 noisy pilot samples",
    )
    g.add_argument("--n0", type=positive_int, default=100, help="pilot samples of --selection pilot")
    g.add_argument("--budget", type=positive_int, default=None, help=BUDGET_HELP)
    g.add_argument("--seconds", type=positive_float, default=None, help=SECONDS_HELP)
    g.add_argument(
        "--switch",
        type=fraction,
        default=0.1,
        help="runner-up test: share of alpha kept for the class shown to beat the selected one, tested next on "
        "later samples (0: abstain instead)",
    )
    add_replay_option(g)
    add_sampling_options(p)
    add_scale_out_options(p)
    add_output_options(
        p,
        "predictions file, one row per input (see --format); every finished input (and, for the anytime method, "
        "every label drawn) is also appended to OUT.journal at once, so rerunning the same command resumes (and "
        "with a larger --n, --budget or --seconds extends) the run without evaluating any sample twice",
    )
    p.add_argument(
        "--format",
        default="csv",
        choices=["csv", "cohen"],
        help="csv (haltfast's columns, evaluations per input) or cohen (Cohen et al.'s predict.py TSV: idx label "
        "predict correct time)",
    )
    p.set_defaults(func=cmd_predict)
