"""Anytime PREDICT against Cohen et al.'s PREDICT on recorded streams: the PREDICT section of the bench report.

The same function `haltfast bench` calls (haltfast.bench.predict.predict_section), on its own, for one or
more recordings made by `haltfast record`:

    python benchmarks/bench_predict.py --streams runs/streams/fashion-mnist-sigma0.25-seed0 --out runs/predict.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from haltfast.bench.predict import predict_section
from haltfast.bench.run import load_contexts
from haltfast.files import write_text
from haltfast.provenance import git_commit
from haltfast.provenance import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", nargs="+", required=True, help="recording directories")
    parser.add_argument("--max", type=int, default=None, help="first N images of each recording")
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--out", default=None, help="Markdown file (default: print)")
    args = parser.parse_args()
    commit, start = git_commit(), time.perf_counter()
    contexts = load_contexts(args.streams, args.max, args.alpha, log=lambda line: print(line, file=sys.stderr))
    section = predict_section(contexts, log=lambda line: print(line, file=sys.stderr, flush=True))
    command = "python benchmarks/bench_predict.py " + shlex.join(sys.argv[1:])
    text = section + "\n\n" + provenance(command, time.perf_counter() - start, commit=commit) + "\n"
    if args.out:
        write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
