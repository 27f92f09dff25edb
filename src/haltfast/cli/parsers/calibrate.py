"""`haltfast calibrate`'s options; commands.cmd_calibrate runs it."""

from __future__ import annotations

from pathlib import Path

from ..commands import cmd_calibrate
from ..options import add_command
from ..options import add_data_options
from ..options import add_model_options
from ..options import add_sampling_options
from ..options import positive_int
from ..options import probability


def add_parser(sub) -> None:
    p = add_command(sub, "calibrate")
    add_data_options(p, split="calibration", skip=None)
    add_model_options(p)
    p.add_argument(
        "--images",
        type=positive_int,
        default=None,
        help="calibration images, evenly spaced (unless --skip is given); refused if the split holds fewer (default: "
        "1,000, or all of them if fewer)",
    )
    p.add_argument(
        "--samples", type=positive_int, default=999, help="noisy evaluations per image (with the clean one: 1,000)"
    )
    p.add_argument("--alpha", type=probability, default=0.001, help="alpha the prior strengths are tuned for")
    p.add_argument("--tune-max-samples", type=positive_int, default=20_000, help="cap of the tuning simulations")
    p.add_argument("--tune-paths", type=positive_int, default=4000, help="simulated streams the strength tuning runs")
    add_sampling_options(p, seed=1)
    p.add_argument("--data-out", type=Path, help="calibration data file (default: in the user's haltfast folder)")
    p.add_argument("--resample", action="store_true", help="draw the calibration data again even if it exists")
    p.add_argument("--out", type=Path, help="meta-learner file (default: in the user's haltfast folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate, streams=None)
