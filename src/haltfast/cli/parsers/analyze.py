"""`haltfast analyze`'s options; analyze.cmd_analyze runs it."""

from __future__ import annotations

from pathlib import Path

from ..analyze import cmd_analyze
from ..options import add_command
from ..options import probability
from ..options import radii_list


def add_parser(sub) -> None:
    p = add_command(sub, "analyze")
    p.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="results of certify runs: haltfast CSVs (--out), their journals (OUT.journal), or Cohen et al.'s "
        "certify TSVs (theirs, or haltfast certify --format cohen)",
    )
    p.add_argument(
        "--radii",
        type=radii_list,
        default=None,
        help="radii of the table, e.g. 0,0.25,0.5,0.75 (default: every 0.25 up to the largest certified radius)",
    )
    p.add_argument("--labels", default=None, help="comma-separated names of the runs (default: their file names)")
    p.add_argument(
        "--confidence", type=probability, default=0.95, help="level of the Clopper-Pearson intervals over the images"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse runs on different images (default: compare the images every run holds, with a note)",
    )
    p.add_argument("--title", default=None, help="title of the plot")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for certified_accuracy.md, .tex, .csv, .png and summary.json (default: print the tables)",
    )
    p.set_defaults(func=cmd_analyze)
