"""`haltfast card`'s options; commands.cmd_card runs it."""

from __future__ import annotations

from pathlib import Path

from ..commands import cmd_card
from ..options import add_command
from ..options import image_size
from ..options import positive_float


def add_parser(sub) -> None:
    p = add_command(sub, "card")
    p.add_argument("--model", required=True, help="TorchScript file, or file.py:factory / package.module:factory")
    p.add_argument("--weights", type=Path, default=None, help="weights of a factory model")
    p.add_argument("--sigma", type=positive_float, default=None, help="noise level the model was trained for")
    p.add_argument("--normalize", default=None, help="cifar10, imagenet, or M1,M2,M3/S1,S2,S3 (see certify --help)")
    p.add_argument(
        "--input-shape", default=None, help="C,H,W of the model's inputs (default: the shape of --data's images)"
    )
    p.add_argument("--data", default=None, help="the data set the model is for (its images give the input shape)")
    p.add_argument("--resize", type=image_size, default=None, help="as for certify")
    p.add_argument("--center-crop", type=image_size, default=None, help="as for certify")
    p.add_argument(
        "--classes",
        default=None,
        metavar="FILE|NAMES|sorted",
        help="the model's class names in class index order: a file (one per line), NAME,NAME,..., or 'sorted' (the "
        "sorted class folders of --data, which must be all of them); certify and the other commands match an image "
        "folder's class folders to these names",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing card")
    p.set_defaults(func=cmd_card)
