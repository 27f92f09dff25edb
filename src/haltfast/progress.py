"""Progress bars: inputs finished, model evaluations spent and their rate; or the caller's callback; or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[int, int], None]  # (inputs finished, evaluations spent) since the last call


class progress_bar:
    """Context manager yielding a progress callback: `progress` itself if callable, a tqdm bar if true, else None.

    The bar counts inputs and the evaluations spent so far, with evaluations per second. An input's cost is not
    known in advance (an easy one stops after a few hundred evaluations, a hard one runs to its cap), so a time
    left is shown only where it can be backed: `evaluations`, the run's total where it is known (a recording, a
    calibration, Cohen's fixed n), or with `at_most` an upper bound on it (a run budget): then the time left is
    what those evaluations take at the rate so far ("at most" with a bound).
    """

    def __init__(
        self,
        progress: bool | Progress | None,
        total: int,
        desc: str | None = None,
        unit: str = "input",
        evaluations: int | None = None,
        at_most: bool = False,
    ):
        self.progress, self.total, self.desc, self.unit, self.bar = progress, total, desc, unit, None
        self.expected, self.at_most = evaluations, at_most
        self.evaluations = 0
        self.started = time.monotonic()

    def __enter__(self) -> Progress | None:
        if callable(self.progress):
            return self.progress
        if not self.progress:
            return None
        from tqdm import tqdm

        self.started = time.monotonic()
        bar_format = "{desc}: {n_fmt}/{total_fmt} " + self.unit + "s [{elapsed}{postfix}]"
        self.bar = tqdm(total=self.total, unit=self.unit, desc=self.desc, dynamic_ncols=True, bar_format=bar_format)
        return self.tick

    def tick(self, inputs: int, evaluations: int) -> None:
        self.evaluations += evaluations
        assert self.bar is not None
        self.bar.set_postfix_str(self.status(time.monotonic() - self.started), refresh=False)
        self.bar.update(inputs)

    def status(self, elapsed: float) -> str:
        """The bar's right-hand text: evaluations, their rate, and the time left where it can be backed."""
        rate = self.evaluations / elapsed if elapsed > 0 else 0.0
        text = f"{self.evaluations:,} evals, {rate:,.0f} evals/s"
        if self.expected is not None and rate > 0:
            left = max(self.expected - self.evaluations, 0) / rate
            text += f", {'at most ' if self.at_most else ''}{format_seconds(left)} left"
        return text

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.status(time.monotonic() - self.started), refresh=False)
            self.bar.refresh()
            self.bar.close()


def format_seconds(seconds: float) -> str:
    """H:MM:SS (or M:SS under an hour)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
