"""`haltfast train`'s options; commands.cmd_train runs it."""

from __future__ import annotations

from pathlib import Path

from ..commands import cmd_train
from ..options import add_command
from ..options import positive_float
from ..options import positive_int


def add_parser(sub) -> None:
    p = add_command(sub, "train")
    p.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "digits"], help="data set")
    p.add_argument("--data-dir", default=None, help="directory of MNIST-format idx files")
    p.add_argument("--sigma", type=positive_float, required=True, help="noise level of the augmentation")
    p.add_argument("--epochs", type=positive_int, default=30, help="training epochs")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization, order and noise")
    p.add_argument("--batch", type=positive_int, default=128, help="training batch size")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate (one-cycle)")
    p.add_argument("--width", type=positive_int, default=16, help="channels of the first convolution")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="weights file (.pt); the card is written beside it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
