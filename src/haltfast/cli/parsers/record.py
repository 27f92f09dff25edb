"""`haltfast record`'s options; commands.cmd_record runs it."""

from __future__ import annotations

from pathlib import Path

from ..commands import cmd_record
from ..options import add_command
from ..options import add_data_options
from ..options import add_model_options
from ..options import add_sampling_options
from ..options import positive_int


def add_parser(sub) -> None:
    p = add_command(sub, "record")
    add_data_options(p)
    add_model_options(p)
    p.add_argument("--n0", type=positive_int, default=100, help="selection samples recorded first")
    p.add_argument("--n", type=positive_int, default=100_000, help="further samples recorded per input")
    add_sampling_options(p)
    p.add_argument("--out", type=Path, required=True, help="recording directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_record, streams=None)
