"""`haltfast analyze`: certified accuracy of one or more runs at a list of radii, as tables and curves.

Its options are in parsers/analyze.py.
"""

from __future__ import annotations

import argparse
import sys


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..analyze import analyze_runs
    from ..analyze import markdown_report
    from ..analyze import read_run
    from ..analyze import write_analysis
    from ..errors import UsageError
    from ..files import check_writable_dir

    labels = [label.strip() for label in args.labels.split(",")] if args.labels else [None] * len(args.runs)
    if len(labels) != len(args.runs):
        raise UsageError(f"--labels names {len(labels)} runs, {len(args.runs)} are given")
    if args.out is not None:
        check_writable_dir(args.out, "analysis folder")
    runs = [read_run(path, label) for path, label in zip(args.runs, labels)]
    analysis = analyze_runs(runs, args.radii, args.confidence, args.strict)
    for note in analysis.notes:
        print(f"note: {note}", file=sys.stderr)
    print(markdown_report(analysis), end="")
    if args.out is not None:
        paths = write_analysis(analysis, args.out, args.title)
        print(f"wrote {', '.join(path.name for path in paths)} in {args.out}", file=sys.stderr)
    return 0
