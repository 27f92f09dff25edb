"""`haltfast triage`'s options; commands.cmd_triage runs it."""

from __future__ import annotations

from pathlib import Path

from ..commands import cmd_triage
from ..options import add_command
from ..options import add_data_options
from ..options import add_model_options
from ..options import add_output_options
from ..options import add_sampling_options
from ..options import add_scale_out_options
from ..options import positive_float
from ..options import positive_int


def add_parser(sub) -> None:
    from ...triage import POLICIES

    p = add_command(sub, "triage")
    add_data_options(p)
    add_model_options(p)
    p.add_argument("--policies", type=Path, required=True, help="TOML policy file (see docs/triage-example.toml)")
    p.add_argument("--budget", type=positive_int, default=None, help="total model evaluations (never exceeded)")
    p.add_argument("--seconds", type=positive_float, default=None, help="wall-clock budget (approximate)")
    p.add_argument("--policy", default="max-decisions", choices=list(POLICIES), help="scheduling policy")
    p.add_argument("--n0", type=positive_int, default=100, help="selection pilot samples per input")
    p.add_argument(
        "--selection",
        default=None,
        choices=["pilot", "clean"],
        help="class selection: a pilot of n0 noisy samples, or the clean prediction (one evaluation; the default "
        "with --prior meta)",
    )
    p.add_argument(
        "--prior",
        default="pilot",
        choices=["pilot", "jeffreys", "uniform", "meta"],
        help="prior of each input's tests: the Jeffreys posterior after its pilot, a fixed one, or 'meta': the "
        "model's meta-learner steers the schedule by its belief about each input (clean selection, Jeffreys tests)",
    )
    p.add_argument("--meta", type=Path, default=None, help="meta-learner file for --prior meta")
    add_sampling_options(p)
    add_scale_out_options(p)
    p.add_argument("--streams", type=Path, default=None, help="replay a recording instead of running the model")
    add_output_options(
        p,
        "CSV: every input's state; every label drawn is also appended to OUT.journal, so rerunning the same "
        "command (with a larger --budget or --seconds to extend it) continues the run without evaluating any "
        "sample twice",
    )
    p.set_defaults(func=cmd_triage)
