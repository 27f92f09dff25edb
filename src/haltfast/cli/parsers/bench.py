"""`haltfast bench`'s options; commands.cmd_bench runs it."""

from __future__ import annotations

from pathlib import Path

from ..commands import cmd_bench
from ..options import add_command
from ..options import positive_int
from ..options import probability


def add_parser(sub) -> None:
    p = add_command(sub, "bench")
    p.add_argument("--streams", type=Path, nargs="+", required=True, help="recording directories, one per sigma")
    p.add_argument("--max", type=positive_int, default=None, help="use only the first N images of each recording")
    p.add_argument("--alpha", type=probability, default=0.001, help="failure probability of each certificate")
    p.add_argument("--out", type=Path, default=None, help="Markdown report (default: print it)")
    p.add_argument("--plots", type=Path, default=None, help="directory for the PNG plots")
    p.add_argument("--live", type=int, default=0, help="images per sigma for the live wall-clock run (0: none)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.set_defaults(func=cmd_bench)
