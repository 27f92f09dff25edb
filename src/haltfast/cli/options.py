"""Option groups shared by the subcommands, and the argument types that check values as they are parsed."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

SHOW_DEFAULT = "(default: %(default)s)"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter that ends each option's help with its default, where it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        return f"{text} {SHOW_DEFAULT}" if text else SHOW_DEFAULT


COMMANDS = {
    "train": (
        "train a noise-augmented base classifier",
        "Train the built-in StrideCNN or your own model (--model file.py:factory) on any data set with "
        "Gaussian noise augmentation at --sigma, and write the weights and the model card that certify, "
        "predict and record accept. Rerunning the same command resumes from the last epoch's checkpoint.",
    ),
    "record": (
        "record each input's stream of noisy predictions for replay",
        "Record n0 + n predicted labels under noise per input (and the clean prediction), "
        "so every method can be compared on identical noise draws. Resumable: rerun the "
        "same command to finish an interrupted recording.",
    ),
    "calibrate": (
        "fit the meta-learner that predicts each input's prior",
        "Run the base model on calibration images (held out of training and evaluation): "
        "one clean evaluation per image for the features and --samples noisy ones for "
        "the target p; fit the meta-learner, tied to the weights' SHA-256. The "
        "calibration data is kept and reused; --resample draws it again.",
    ),
    "triage": (
        "spend one budget across many inputs by their risk policies",
        "Certify many inputs, each with its own required radius and alpha (a TOML policy "
        "file, see docs/triage.md), under one global budget; a scheduler decides which "
        "inputs get the next model batch. Ctrl-C or an exhausted budget still reports "
        "every input's state (certified / not certified / pending / undecided).",
    ),
    "bench": (
        "reproduce the results report: every method on recorded streams, plots, live",
        "Replay every method (Cohen, Horvath et al., Voracek's union-bound and betting "
        "confidence sequences, haltfast, the oracle prior, Wald's limit) on recorded "
        "streams (one recording per sigma, made by `haltfast record`), time them live on "
        "a few images, and write the Markdown report and PNG plots (docs/results.md).",
    ),
    "card": (
        "write the model card that vouches for your weights",
        "Load a model (TorchScript file, or file.py:factory with --weights), run it once, "
        "and write <weights>.card.json beside the weights: their SHA-256, sigma, "
        "normalization, number of classes and input shape. Certify, record, calibrate "
        "and the results journal then bind to exactly these weights.",
    ),
    "predict": (
        "predict the classes of a data set with the smoothed classifier (or abstain)",
        "Run PREDICT on every --skip-th image of a data set (or replay a recording): each input gets the smoothed "
        "classifier's class, established with probability at least 1 - alpha, or abstains. The anytime method stops "
        "each input as soon as its class is established; --method cohen is Cohen et al.'s PREDICT. Writes one row "
        "per input (--format cohen: Cohen et al.'s predict.py TSV) and prints accuracy, abstain rate and evaluations.",
    ),
    "analyze": (
        "compare runs: certified accuracy at radii, tables and curves",
        "Read certify results (haltfast CSVs or journals, Cohen et al.'s certify TSVs) and report each run's "
        "certified accuracy at a list of radii with a Clopper-Pearson interval over the test images, its abstain "
        "rate, evaluations and time, as Markdown and LaTeX tables, CSV/JSON and a PNG of the curves. Runs on "
        "different images are compared on the images they share (with a note), or refused with --strict.",
    ),
    "certify": (
        "certify inputs of a data set with a smoothed classifier",
        "Certify every --skip-th image of a data set (or replay a recording); write one "
        "row per input and print certified accuracy, abstain rate and evaluations.",
    ),
}  # (help, description) of each subcommand


def add_command(sub, name: str) -> argparse.ArgumentParser:
    """A subcommand's parser, with its help and description, and help that shows defaults."""
    help_text, description = COMMANDS[name]
    return sub.add_parser(name, help=help_text, description=description, formatter_class=HelpFormatter)


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), e.g. 0.1, got {text}")
    return value


def loss_fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction of the inputs in [0, 1), e.g. 0.01, got {text}")
    return value


def image_size(text: str) -> int | tuple[int, int]:
    """N (a square, or the shorter side for --resize) or HxW."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def radii_list(text: str) -> list[float]:
    """Comma-separated radii, checked for order and duplicates later with the sample budget at hand."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated radii such as 0.25,0.5,0.75, got {text!r}"
        ) from None


def add_data_options(
    p: argparse.ArgumentParser, split: str | None = None, skip: int | None = 20, subset: bool = True
) -> None:
    """--data and how it is read; subset: also --skip and --max (which of its images a command runs on)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        default="fashion-mnist",
        help="fashion-mnist, digits, idx (with --data-dir), or a path: a folder of class folders of "
        "images, an .npz with x and y, a folder with x.npy and y.npy, or cifar-10-batches-bin "
        "(see docs/data.md)",
    )
    g.add_argument(
        "--data-dir",
        default=None,
        help="directory of MNIST-format idx files (default: $HALTFAST_DATA_DIR or /usr/share/datasets/fashion-mnist)",
    )
    g.add_argument(
        "--split",
        default=None,
        choices=["train", "calibration", "test"],
        help=f"split of a data set that has splits (default: {split or 'test'}; folders and arrays have none)",
    )
    p.set_defaults(default_split=split)  # applied only to data that have splits (see inputs.data_split)
    if subset:
        g.add_argument("--skip", type=positive_int, default=skip, help="use every skip-th image")
        g.add_argument("--max", type=positive_int, default=None, help="use at most this many images")
    g.add_argument("--resize", type=image_size, default=None, help="resize images: N (shorter side) or HxW")
    g.add_argument("--center-crop", type=image_size, default=None, help="crop the centre: N or HxW")
    g.add_argument(
        "--layout",
        choices=["NCHW", "NHWC"],
        default=None,
        help="channel layout of an .npz/.npy array, where its shape leaves it ambiguous",
    )
    g.add_argument("--classes", default=None, metavar="FILE|sorted", help=CLASSES_HELP)


CLASSES_HELP = (
    "image folders: what the class folders mean. A file of the model's class names, one per line in class index "
    "order (each folder must be one of them), or 'sorted': the folders are exactly the model's classes in sorted "
    "order (default: the names in the model card, `haltfast card --classes`; folders named 0, 1, ... are class "
    "indices and need none)"
)


def read_class_names(text: str) -> list[str] | str:
    """--classes: 'sorted', a file of class names (one per line, blank lines skipped), or NAME,NAME,... ; one
    UsageError otherwise."""
    from ..errors import UsageError

    if text == "sorted":
        return text
    path = Path(text)
    if path.is_file():
        try:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--classes: cannot read {path}: {exc}") from None
        if not names:
            raise UsageError(f"--classes: {path} holds no class names (one per line, in class index order)")
        return names
    if "," in text:
        return [name.strip() for name in text.split(",")]
    raise UsageError(
        f"--classes {text!r}: no such file; give a file of class names (one per line), NAME,NAME,..., or 'sorted'"
    )


def add_replay_option(g) -> None:
    g.add_argument(
        "--streams",
        type=Path,
        default=None,
        help="replay a recording made by `haltfast record` instead of running the model",
    )


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=None,
        help="a shipped name (fashion-mnist-sigma0.25), a haltfast .pt with its card, a TorchScript "
        "file, or file.py:factory / package.module:factory with --weights (see "
        "docs/models-own.md); default: the shipped Fashion-MNIST model for --sigma (0.25)",
    )
    g.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="weights of a factory model: a state dict, a {'state_dict': ...} checkpoint, or .safetensors",
    )
    g.add_argument(
        "--normalize",
        default=None,
        help="standardize inside the model, so noise is added in [0, 1] pixel space: cifar10, "
        "imagenet, or M1,M2,M3/S1,S2,S3",
    )
    g.add_argument("--sigma", type=positive_float, default=None, help="noise level (default: the model card's)")
    g.add_argument(
        "--allow-unverified",
        action="store_true",
        help="load weights whose SHA-256 no model card records (make one with `haltfast card`)",
    )
    g.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda", "mps", "auto"],
        help="where the model runs and the noise is drawn",
    )
    g.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="precision of the model's forward pass (the certified classifier is whatever function "
        "the model computes at it)",
    )


def add_sampling_options(p: argparse.ArgumentParser, seed: int = 0) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="model batch size (default: 2000 on the CPU, sized to the free memory on a GPU)",
    )
    g.add_argument("--seed", type=int, default=seed, help="noise seed; the same seed gives bit-identical results")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")


def add_output_options(p: argparse.ArgumentParser, out_help: str, summary: bool = True, required: bool = False) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, required=required, help=out_help)
    if summary:
        g.add_argument("--summary-json", type=Path, default=None, help="also write the summary as JSON here")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def add_scale_out_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out")
    g.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="evaluate the model on a local Ray cluster of this many worker processes (one thread, or one GPU "
        "with --device cuda, each; pip install 'haltfast[ray]'); the run itself, its budget and journal stay "
        "here, so results equal a single process's",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        help="evaluate on an existing Ray cluster (e.g. auto); one worker per CPU unless --workers; every node "
        "must see the model and data files at the same paths",
    )
