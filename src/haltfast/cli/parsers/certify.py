"""`haltfast certify`'s options; certify.cmd_certify runs it."""

from __future__ import annotations

from pathlib import Path

from ..certify import cmd_certify
from ..options import add_command
from ..options import add_data_options
from ..options import add_model_options
from ..options import add_output_options
from ..options import add_replay_option
from ..options import add_sampling_options
from ..options import add_scale_out_options
from ..options import loss_fraction
from ..options import positive_float
from ..options import positive_int
from ..options import probability
from ..options import radii_list

PRIORS = ("meta", "online", "calibrated", "jeffreys", "uniform", "pilot", "oracle")
RADII_HELP = "grid mode: certify each input at the largest of these radii it supports, e.g. 0,0.25,0.5,0.75"
WORTH_HELP = (
    "anytime decision and grid mode: a certificate is worth this many evaluations; inputs whose chance of "
    "one per expected evaluation falls below 1/WORTH are given up (default: 1,000,000 in grid mode, off in "
    "decision mode; 0: off)"
)
BUDGET_HELP = (
    "anytime: model evaluations for the whole run (selection included, never exceeded, also across resumes "
    "and Ray workers), spent first where a certificate is cheapest; inputs left when it is spent end "
    "undecided (radius mode: with the radius they have)"
)
SECONDS_HELP = (
    "anytime: a deadline for the run, counted from its start (selection included) and kept within about one "
    "model batch; inputs still open then end undecided (radius mode: with the radius they have)"
)
MAX_LOSS_HELP = (
    "anytime decision and grid mode: give inputs up (undecided), the worst chance of a certificate per expected "
    "evaluation first, while the certificates given up stay below this fraction of the inputs as predicted "
    "(0.01: about one point of certified accuracy); without --worth the run sets the price from its inputs' "
    "predictions"
)
RADIUS_HELP = "decide at this required radius (decision mode); omit to estimate each input's radius (radius mode)"
METHOD_HELP = (
    "anytime: early-stopping E-process / confidence sequence; cohen: Cohen et al.'s fixed-n CERTIFY; "
    "baselines: horvath (Horvath et al. 2022 adaptive sampling, needs --radius), union-bound and betting "
    "(Voracek 2024 confidence sequences)"
)


def add_parser(sub) -> None:
    from ...methods import METHODS
    from ...results import FORMATS

    p = add_command(sub, "certify")
    add_data_options(p)
    add_model_options(p)
    g = p.add_argument_group("certification")
    g.add_argument("--method", default="anytime", choices=list(METHODS), help=METHOD_HELP)
    g.add_argument("--alpha", type=probability, default=0.001, help="failure probability of each certificate")
    g.add_argument("--radius", type=float, default=None, help=RADIUS_HELP)
    g.add_argument("--radii", type=radii_list, default=None, help=RADII_HELP)
    g.add_argument("--worth", type=float, default=None, help=WORTH_HELP)
    g.add_argument("--max-loss", type=loss_fraction, default=None, metavar="FRACTION", help=MAX_LOSS_HELP)
    g.add_argument("--budget", type=positive_int, default=None, help=BUDGET_HELP)
    g.add_argument("--seconds", type=positive_float, default=None, help=SECONDS_HELP)
    g.add_argument(
        "--n0", type=positive_int, default=100, help="selection (pilot) samples of cohen and --selection pilot"
    )
    g.add_argument("--n", type=positive_int, default=100_000, help="estimation samples of cohen")
    g.add_argument("--max-samples", type=positive_int, default=100_000, help="most tested samples per input")
    g.add_argument(
        "--prior",
        default=None,
        choices=PRIORS,
        help="anytime: meta (the default: the online meta-learner learns each input's prior during the run "
        "from the inputs started before it, for any model, no calibration; it starts from the model's "
        "calibrated learner where one exists), online (the same, ignoring any calibrated learner), calibrated "
        "(the calibrated learner alone, `haltfast calibrate`), jeffreys, uniform, pilot (the Jeffreys posterior "
        "after the selection pilot; needs --selection pilot), or oracle (replays only: the posterior of the "
        "whole recorded stream, a yardstick, not a valid prior)",
    )
    g.add_argument(
        "--meta",
        type=Path,
        default=None,
        help="calibrated meta-learner file for --prior meta or calibrated (default: beside the weights, else "
        "the user's haltfast folder)",
    )
    g.add_argument(
        "--selection",
        default=None,
        choices=["clean", "pilot"],
        help="anytime: choose the class by the clean prediction (1 evaluation; the default) or by n0 noisy pilot "
        "samples (Cohen's selection; the default in grid mode)",
    )
    g.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="radius mode: stop when the rest of the budget would add less than this radius",
    )
    g.add_argument(
        "--futility-alpha",
        type=probability,
        default=None,
        help="anytime decision mode: level of the 'not certified' test (default: --alpha)",
    )
    add_replay_option(g)
    add_sampling_options(p)
    add_scale_out_options(p)
    add_output_options(
        p,
        "results file, one row per input in input order; every label drawn and every finished input is "
        "also appended to OUT.journal at once, so rerunning the same command resumes (and with a larger "
        "--max-samples, --budget or --seconds extends) the run without evaluating any sample twice; a "
        "journal of another configuration is refused",
    )
    p.add_argument(
        "--format",
        default="csv",
        choices=list(FORMATS),
        help="csv (haltfast's columns) or cohen (Cohen et al.'s TSV: idx label predict radius correct time)",
    )
    p.set_defaults(func=cmd_certify)
