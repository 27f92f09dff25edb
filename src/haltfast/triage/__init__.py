"""Risk-based compute triage: many inputs, each with its own risk policy, one global budget.

Every input has its own anytime-valid E-processes (certification and futility, as in
`certify_anytime`'s decision mode) on its own canonical noise stream. A scheduler decides, round
by round, which inputs get the next model batch and how many samples each; inputs are paused and
resumed freely. The schedule is a function of past data only, and each E-process is fed only its
own input's samples, so Ville's inequality holds for each input whatever the schedule: the
probability that an input is ever certified at its radius r_i although p <= Phi(r_i / sigma) is
at most its alpha_i, at whatever moment the run stops (budget, time, interruption).

See docs/triage.md for the configuration format, the scheduling policies and the benchmark.
"""

from __future__ import annotations

from .policies import PolicyClass
from .policies import assign_classes
from .policies import load_policies
from .policies import parse_policies
from .policies import validate_policies
from .report import STATES
from .report import TriageReport
from .report import format_triage_summary
from .run import Triage
from .schedulers import POLICIES

__all__ = [
    "POLICIES",
    "STATES",
    "PolicyClass",
    "Triage",
    "TriageReport",
    "assign_classes",
    "format_triage_summary",
    "load_policies",
    "parse_policies",
    "triage",
    "validate_policies",
]


def triage(
    streams,
    items,
    policies,
    *,
    budget_evaluations: int | None = None,
    budget_seconds: float | None = None,
    **options,
) -> TriageReport:
    """Triage a set of inputs under a global budget; returns every input's state when it stops.

    Each certified input is wrong with probability at most its class alpha whatever the policy; the
    evaluations (pilots included) never exceed budget_evaluations; an interrupt (Ctrl-C, or a
    KeyboardInterrupt from on_round) returns the report of that moment. `policies` is a list of
    PolicyClass or the path of a TOML policy file; `options` are Triage's (sigma, classes, policy, n0,
    prior, batch, labels, indices, progress, on_round, ...).
    """
    return Triage(streams, items, policies, **options).run(budget_evaluations, budget_seconds)
