"""Progress bars: a tqdm bar per input with the evaluations spent so far, or the caller's callback, or nothing."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # (inputs finished, evaluations spent) since the last call


class progress_bar:
    """Context manager yielding a progress callback: `progress` itself if callable, a tqdm bar if true, else None.

    The bar counts inputs (with rate and ETA) and shows the evaluations of the finished inputs, updated
    before the bar redraws so the figure never lags.
    """

    def __init__(self, progress: bool | Progress | None, total: int, desc: str | None = None, unit: str = "input"):
        self.progress, self.total, self.desc, self.unit, self.bar = progress, total, desc, unit, None
        self.evaluations = 0

    def __enter__(self) -> Progress | None:
        if callable(self.progress):
            return self.progress
        if not self.progress:
            return None
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, unit=self.unit, desc=self.desc, dynamic_ncols=True)
        return self.tick

    def tick(self, inputs: int, evaluations: int) -> None:
        self.evaluations += evaluations
        assert self.bar is not None
        self.bar.set_postfix(evals=f"{self.evaluations:,}", refresh=False)
        self.bar.update(inputs)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.refresh()
            self.bar.close()
