"""Compare certification runs: certified accuracy at radii with Clopper-Pearson intervals, tables and curves.

Reads haltfast's results CSV (`haltfast certify --out x.csv`), its journal (`x.csv.journal`), and Cohen et
al.'s certify TSV (`idx label predict radius correct time`, from their certify.py or `haltfast certify
--format cohen`). An image counts as certified-correct at radius r when it has a certificate for its true
label at radius >= r (their analyze.py's `correct & radius >= r`); one without a certificate (Cohen's
`predict -1`, haltfast's 'abstain', 'not certified', 'undecided', 'error') is an abstention here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta

from .certificate import CERTIFIED
from .errors import DataError
from .errors import UsageError

RUN_COLUMNS = ("index", "label", "prediction", "certified", "correct", "radius", "evaluations", "seconds")
RADIUS_STEP = 0.25
COHEN_CERTIFY_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
COHEN_PREDICT_COLUMNS = ("idx", "label", "predict", "correct", "time")


@dataclass
class RunResults:
    """One run's images: RUN_COLUMNS (evaluations NaN where the format has none), and where it came from."""

    name: str
    path: Path
    format: str  # 'haltfast csv', 'haltfast journal' or 'cohen tsv'
    table: pd.DataFrame
    config: dict = field(default_factory=dict)

    def certified_correct(self, radius: float) -> np.ndarray:
        """Per image: certified for its true label at a radius >= `radius`."""
        return (self.table["certified"] & self.table["correct"] & (self.table["radius"] >= radius)).to_numpy()


def read_run(path: str | Path, name: str | None = None) -> RunResults:
    """One run's results from a haltfast CSV, a haltfast journal or a Cohen et al. certify TSV (told by content)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} {'is not a file' if path.exists() else 'not found'}: give a results file")
    with open(path, "rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip()
    name = name or path.name
    if first.startswith("{") and "haltfast_journal" in first:
        from .journal import read_journal

        config, certs = read_journal(path)
        if config.get("command") == "predict":
            raise DataError(f"{path} is a haltfast predict journal: it holds no radii; analyze reads certify results")
        return RunResults(name, path, "haltfast journal", _from_certificates(certs), config)
    if "\t" in first:
        columns = tuple(first.split("\t"))
        if columns == COHEN_PREDICT_COLUMNS:
            raise DataError(
                f"{path} is a PREDICT output (predict.py's idx label predict correct time): it holds no radii; "
                f"analyze reads certification results (certify.py's TSV, haltfast certify's CSV or journal)"
            )
        if columns != COHEN_CERTIFY_COLUMNS:
            raise DataError(
                f"{path}: a TSV must have Cohen et al.'s certify.py columns {' '.join(COHEN_CERTIFY_COLUMNS)}"
            )
        return RunResults(name, path, "cohen tsv", _from_cohen_tsv(path))
    columns = tuple(first.split(","))
    if {"index", "decision", "radius", "prediction"} <= set(columns):
        return RunResults(name, path, "haltfast csv", _from_haltfast_csv(path))
    raise DataError(
        f"{path} is neither a haltfast results CSV or journal nor a Cohen et al. certify TSV "
        f"(its first line: {first[:80]!r})"
    )


def _from_certificates(certs) -> pd.DataFrame:
    rows = [
        {
            "index": c.index,
            "label": c.label,
            "prediction": c.prediction,
            "certified": c.decision == CERTIFIED,
            "correct": c.label is not None and c.prediction == c.label,
            "radius": c.radius,
            "evaluations": c.evaluations,
            "seconds": c.seconds,
        }
        for c in certs
    ]
    return _checked(pd.DataFrame(rows, columns=list(RUN_COLUMNS)), "journal")


def _from_haltfast_csv(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    if (raw["decision"] == "predicted").any():
        raise DataError(f"{path} is a haltfast predict output: it holds no radii; analyze reads certify results")
    table = pd.DataFrame(
        {
            "index": raw["index"],
            "label": raw["label"],
            "prediction": raw["prediction"],
            "certified": raw["decision"] == CERTIFIED,
            "correct": raw["prediction"] == raw["label"],
            "radius": raw["radius"].astype(float),
            "evaluations": raw["evaluations"].astype(float),
            "seconds": raw["seconds"].astype(float) if "seconds" in raw else np.nan,
        }
    )
    return _checked(table, str(path))


def _from_cohen_tsv(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, sep="\t")
    try:
        seconds = pd.to_timedelta(raw["time"].astype(str)).dt.total_seconds()
    except ValueError:
        seconds = pd.Series(np.nan, index=raw.index)
    table = pd.DataFrame(
        {
            "index": raw["idx"],
            "label": raw["label"],
            "prediction": raw["predict"],
            "certified": raw["predict"] != -1,
            "correct": raw["correct"].astype(int) == 1,
            "radius": raw["radius"].astype(float),
            "evaluations": np.nan,
            "seconds": seconds,
        }
    )
    return _checked(table, str(path))


def _checked(table: pd.DataFrame, origin: str) -> pd.DataFrame:
    if table.empty:
        raise DataError(f"{origin} holds no results")
    if table["index"].duplicated().any():
        index = int(table.loc[table["index"].duplicated(), "index"].iloc[0])
        raise DataError(f"{origin} lists image {index} twice: one row per image")
    return table.sort_values("index").reset_index(drop=True)


def match_images(runs: list[RunResults], strict: bool = False) -> tuple[list[RunResults], list[str]]:
    """The runs restricted to the images they all hold (a note per run that loses some); strict: refuse instead.

    Runs that give the same image different labels are refused: they are not on the same data.
    """
    common = set(runs[0].table["index"])
    for run in runs[1:]:
        common &= set(run.table["index"])
    notes = []
    if not common:
        raise DataError("the runs share no image index: they are on different images, nothing to compare")
    differ = [run for run in runs if len(run.table) != len(common)]
    if differ and strict:
        sizes = ", ".join(f"{run.name}: {len(run.table)}" for run in runs)
        raise DataError(f"the runs are on different images ({sizes} images, {len(common)} in common)")
    matched = []
    for run in runs:
        table = run.table[run.table["index"].isin(common)].reset_index(drop=True)
        if len(table) < len(run.table):
            notes.append(
                f"{run.name}: {len(table)} of its {len(run.table)} images are in every run; only those are compared"
            )
        matched.append(RunResults(run.name, run.path, run.format, table, run.config))
    labels = [run.table.set_index("index")["label"] for run in matched]
    for run, other in zip(matched[1:], labels[1:]):
        known = labels[0].notna() & other.notna()
        if (labels[0][known] != other[known]).any():
            index = int(labels[0][known][labels[0][known] != other[known]].index[0])
            raise DataError(f"{matched[0].name} and {run.name} give image {index} different labels: other data?")
    return matched, notes


def default_radii(runs: list[RunResults], step: float = RADIUS_STEP) -> list[float]:
    """0, step, 2 step, ... up to the largest radius any run certifies correctly."""
    largest = max(float(run.table["radius"].where(run.certified_correct(0.0), 0.0).max()) for run in runs)
    return [round(k * step, 10) for k in range(math.floor(largest / step + 1e-9) + 1)]


def clopper_pearson(k, n, confidence: float):
    """The two-sided Clopper-Pearson interval (low, high) of the proportion k / n at this confidence (arrays too):
    the (1 - confidence)/2 quantile of Beta(k, n - k + 1) and the (1 + confidence)/2 quantile of Beta(k + 1, n - k)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    tail = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, beta.ppf(tail, np.maximum(k, 1), n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - tail, k + 1, np.maximum(n - k, 1)), 1.0)
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


@dataclass
class Analysis:
    """Certified accuracy of every run at every radius with its interval, and each run's summary figures."""

    runs: list[RunResults]
    radii: list[float]
    confidence: float
    accuracy: pd.DataFrame  # long: run, radius, certified, images, certified_accuracy, ci_low, ci_high
    summary: pd.DataFrame  # one row per run
    notes: list[str]


def analyze_runs(runs: list[RunResults], radii=None, confidence: float = 0.95, strict: bool = False) -> Analysis:
    """Certified accuracy at each radius (fraction of the common images certified for their label at radius >= r)
    with a two-sided Clopper-Pearson interval over the test images; abstain rate, ACR, evaluations and time."""
    if not runs:
        raise UsageError("give at least one run to analyze")
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise UsageError(f"two runs are named alike ({', '.join(names)}): give --labels")
    runs, notes = match_images(runs, strict)
    radii = default_radii(runs) if radii is None else sorted(float(r) for r in radii)
    if not radii or min(radii) < 0:
        raise UsageError(f"radii must be numbers >= 0, got {radii}")
    rows, summaries = [], []
    for run in runs:
        n = len(run.table)
        for r in radii:
            k = int(run.certified_correct(r).sum())
            low, high = clopper_pearson(k, n, confidence)
            rows.append(
                {"run": run.name, "radius": r, "certified": k, "images": n, "certified_accuracy": k / n}
                | {"ci_low": low, "ci_high": high}
            )
        t = run.table
        evals, seconds = t["evaluations"], t["seconds"]
        summaries.append(
            {
                "run": run.name,
                "file": str(run.path),
                "format": run.format,
                "images": n,
                "acr": float(t["radius"].where(run.certified_correct(0.0), 0.0).mean()),
                "abstain_rate": float((~t["certified"]).mean()),
                "mean_evaluations": float(evals.mean()) if evals.notna().all() else None,
                "median_evaluations": float(evals.median()) if evals.notna().all() else None,
                "seconds": float(seconds.sum()) if seconds.notna().all() else None,
                "seconds_per_image": float(seconds.mean()) if seconds.notna().all() else None,
            }
        )
    return Analysis(runs, radii, confidence, pd.DataFrame(rows), pd.DataFrame(summaries), notes)


def _cell(row) -> str:
    return f"{row.certified_accuracy:.3f} ({row.ci_low:.3f}-{row.ci_high:.3f})"


def _number(value, digits: int = 0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def markdown_report(analysis: Analysis) -> str:
    """Two Markdown tables: certified accuracy with its interval per run and radius, and each run's summary."""
    level = f"{analysis.confidence:.0%}"
    lines = [
        f"Certified accuracy at radius r (fraction of the {len(analysis.runs[0].table)} images certified for their "
        f"label at radius >= r), with its {level} Clopper-Pearson interval over the test images.",
        "",
        "| run | " + " | ".join(f"r = {r:g}" for r in analysis.radii) + " |",
        "|---|" + "---|" * len(analysis.radii),
    ]
    for name, group in analysis.accuracy.groupby("run", sort=False):
        lines.append(f"| {name} | " + " | ".join(_cell(row) for row in group.itertuples()) + " |")
    lines += [
        "",
        "| run | images | ACR | abstain | mean evals | median evals | time (s) | s per image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in analysis.summary.itertuples():
        lines.append(
            f"| {row.run} | {row.images} | {row.acr:.3f} | {row.abstain_rate:.3f} | {_number(row.mean_evaluations)} "
            f"| {_number(row.median_evaluations)} | {_number(row.seconds, 1)} | {_number(row.seconds_per_image, 3)} |"
        )
    if analysis.notes:
        lines += ["", *[f"Note: {note}." for note in analysis.notes]]
    return "\n".join(lines) + "\n"


def _latex(text: object) -> str:
    return "".join("\\" + c if c in "&%$#_{}" else c for c in str(text))


def latex_report(analysis: Analysis) -> str:
    """A booktabs LaTeX table of certified accuracy (best run per radius in bold, interval below) and the summary."""
    radii = analysis.radii
    best = analysis.accuracy.groupby("radius")["certified_accuracy"].transform("max")
    lines = [
        "\\begin{tabular}{l" + "c" * len(radii) + "}",
        "\\toprule",
        " & " + " & ".join(f"$r = {r:g}$" for r in radii) + " \\\\",
        "\\midrule",
    ]
    accuracy = analysis.accuracy.assign(best=analysis.accuracy["certified_accuracy"] == best)
    for name, group in accuracy.groupby("run", sort=False):
        values = [f"\\textbf{{{row.certified_accuracy:.3f}}}" if row.best else f"{row.certified_accuracy:.3f}"
                  for row in group.itertuples()]  # fmt: skip
        intervals = [f"\\scriptsize[{row.ci_low:.3f}, {row.ci_high:.3f}]" for row in group.itertuples()]
        lines.append(_latex(name) + " & " + " & ".join(values) + " \\\\")
        lines.append(" & " + " & ".join(intervals) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    lines += [
        "\\begin{tabular}{lrrrrrr}",
        "\\toprule",
        "run & images & ACR & abstain & mean evals & median evals & time (s) \\\\",
        "\\midrule",
    ]
    for row in analysis.summary.itertuples():
        lines.append(
            f"{_latex(row.run)} & {row.images} & {row.acr:.3f} & {row.abstain_rate:.3f} & "
            f"{_number(row.mean_evaluations)} & {_number(row.median_evaluations)} & {_number(row.seconds, 1)} \\\\"
        )
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def plot_curves(analysis: Analysis, path: str | Path, title: str | None = None) -> Path:
    """A PNG of certified accuracy against radius: one labelled step curve per run, its interval shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_write

    top = max(analysis.radii[-1], max(float(run.table["radius"].max()) for run in analysis.runs))
    grid = np.linspace(0.0, top * 1.02 + 1e-9, 400)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in analysis.runs:
        n = len(run.table)
        counts = np.array([int(run.certified_correct(r).sum()) for r in grid])
        low, high = clopper_pearson(counts, n, analysis.confidence)
        (line,) = ax.plot(grid, counts / n, drawstyle="steps-post", label=f"{run.name} ({n} images)")
        ax.fill_between(grid, low, high, step="post", alpha=0.15, color=line.get_color())
    ax.set_xlabel("radius (L2, pixels in [0, 1])")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, grid[-1])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    ax.set_title(title or f"Certified accuracy ({analysis.confidence:.0%} Clopper-Pearson bands)")
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, format="png"), suffix=".png")
    plt.close(fig)
    return out


def write_analysis(analysis: Analysis, directory: str | Path, title: str | None = None) -> list[Path]:
    """Write certified_accuracy.{md,tex,csv,png} and summary.json (which pandas reads) into `directory`."""
    import json

    from .files import atomic_write
    from .files import write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    summary = {
        "confidence": analysis.confidence,
        "radii": analysis.radii,
        "notes": analysis.notes,
        "runs": analysis.summary.to_dict(orient="records"),
        "certified_accuracy": analysis.accuracy.to_dict(orient="records"),
    }
    return [
        write_text(directory / "certified_accuracy.md", markdown_report(analysis)),
        write_text(directory / "certified_accuracy.tex", latex_report(analysis)),
        atomic_write(directory / "certified_accuracy.csv", lambda tmp: analysis.accuracy.to_csv(tmp, index=False)),
        write_text(directory / "summary.json", json.dumps(summary, indent=2) + "\n"),
        plot_curves(analysis, directory / "certified_accuracy.png", title),
    ]
