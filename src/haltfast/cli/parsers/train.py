"""`haltfast train`'s options; train.cmd_train runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_command
from ..options import add_data_options
from ..options import fraction
from ..options import positive_float
from ..options import positive_int
from ..train import cmd_train

RECIPE_HELP = "(default: Cohen et al.'s recipe for --model, the shipped recipe for the built-in StrideCNN)"


def add_parser(sub) -> None:
    p = add_command(sub, "train")
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=None,
        help="file.py:factory or package.module:factory building the nn.Module to train (default: the built-in "
        "StrideCNN)",
    )
    g.add_argument("--width", type=positive_int, default=16, help="channels of the StrideCNN's first convolution")
    g.add_argument(
        "--normalize",
        default=None,
        help="standardize inside the model (cifar10, imagenet, or M1,M2,M3/S1,S2,S3); noise stays in [0, 1] "
        "pixel space and the card records it (--model only)",
    )
    add_data_options(p, split="train", subset=False)
    g = p.add_argument_group("training")
    g.add_argument("--sigma", type=positive_float, required=True, help="noise level of the augmentation")
    g.add_argument("--epochs", type=positive_int, default=30, help="training epochs")
    g.add_argument("--batch", type=positive_int, default=128, help="training batch size")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help=f"optimizer {RECIPE_HELP}")
    g.add_argument("--lr", type=positive_float, default=None, help=f"peak learning rate {RECIPE_HELP}")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: 0.9)")
    g.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: 1e-4)")
    g.add_argument(
        "--schedule",
        choices=["cosine", "one-cycle"],
        default=None,
        help=f"learning-rate schedule over all steps {RECIPE_HELP}",
    )
    g.add_argument(
        "--holdout",
        type=fraction,
        default=None,
        help="fraction of the images held out of training and scored after every epoch (default: 0.1 for "
        "--model, 0 for the built-in StrideCNN)",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format (faster convolutions on the CPU; default: on for --model)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of initialization, held-out split, order and noise")
    g.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"], help="where to train")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    g = p.add_argument_group("output")
    g.add_argument(
        "--out",
        type=Path,
        required=True,
        help="weights file; the model card is written beside it (OUT.card.json for --model, else <stem>.json); "
        "OUT.ckpt holds the state after every epoch, so rerunning the same command resumes",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
