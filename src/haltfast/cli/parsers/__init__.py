"""The command line's parsers, one module per command, apart from the code that runs each command.

Each module's `add_parser(sub)` adds its command's subparser with its options and the function that runs it
(cmd_<command> in cli/<command>.py, or in cli/commands.py for record, calibrate, triage, bench and card).
Building the parsers loads no model, data or torch; the shared option groups and argument types are in
cli/options.py.
"""

from __future__ import annotations

from . import analyze
from . import bench
from . import calibrate
from . import card
from . import certify
from . import predict
from . import record
from . import train
from . import triage


def add_parsers(sub) -> None:
    """Every command's subparser, in the order `haltfast --help` lists them."""
    for command in (train, certify, predict, analyze, record, calibrate, triage, bench, card):
        command.add_parser(sub)
