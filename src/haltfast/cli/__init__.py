"""Command-line interface: `haltfast train | certify | predict | analyze | record | calibrate | triage | bench | card`;
each has --help."""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import HaltfastError
from .options import HelpFormatter
from .parsers import add_parsers


def build_parser() -> argparse.ArgumentParser:
    """The haltfast command line: one subparser per command, built from the shared option groups."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="haltfast",
        formatter_class=HelpFormatter,
        description="Certify image classifiers by randomized smoothing with anytime-valid early stopping. "
        "Run `haltfast COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"haltfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    return parser


def attach_negative_values(argv: list[str]) -> list[str]:
    """`--radii -0.25,0.5` as `--radii=-0.25,0.5`: argparse reads a value that starts with '-' and is no plain
    number as an option and answers "expected one argument"; attached, the value reaches its own check, whose
    message says what is wrong with it."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.fullmatch(r"-[\d.][\d.,eE+-]*", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user mistake is one line on stderr and exit status 2, Ctrl-C exit status 130."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(attach_negative_values(argv))
    except SystemExit as exc:  # --help, --version, or a malformed option (argparse printed why)
        return int(exc.code or 0)
    args.argv = argv
    try:
        return args.func(args)
    except HaltfastError as exc:
        print(f"haltfast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("haltfast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
