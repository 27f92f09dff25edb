"""Where a committed result came from: the command, the git commit, the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def git_commit(code_paths=("src", "benchmarks")) -> str:
    """Short HEAD commit, with ' (with uncommitted changes)' when the code paths differ from it.

    'unknown' outside git.
    """

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=_REPO)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    dirty = git("status", "--porcelain", "--", *code_paths)  # code only: the reports themselves are rewritten
    return commit + (" (with uncommitted changes)" if dirty else "")


def machine() -> str:
    """Architecture, CPU count, torch threads, Python and torch versions."""
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def provenance(
    command: str, seconds: float | None = None, code_paths=("src", "benchmarks"), commit: str | None = None
) -> str:
    """One sentence for a report's footer: command, commit (and dirty flag), machine, date and run time.

    Pass `commit` (from `git_commit()` taken when the run started) for long runs, so that a commit made
    while they ran is not credited with their results.
    """
    took = f"; {seconds:.0f} s" if seconds is not None else ""
    return (
        f"Produced by `{command}` at commit {commit or git_commit(code_paths)} on {machine()}, "
        f"{datetime.date.today()}{took}."
    )
