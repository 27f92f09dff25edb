"""Model cards: JSON files that bind a model's description (spec, normalization, sigma, data) to its weights' SHA-256.

haltfast's own .pt files keep their card at `<stem>.json` (written by `haltfast train`); any other model's
card lives beside its weights file (or TorchScript file) as `<file name>.card.json`, e.g. `ckpt.pth.card.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import ModelError
from ..files import write_json

USER_CARD_SUFFIX = ".card.json"
CARD_VERSION = 1
USER_CARD_FIELDS = (
    "haltfast_card",
    "format",
    "model_spec",
    "weights_file",
    "weights_sha256",
    "normalize",
    "sigma",
    "data",
    "num_classes",
    "input_shape",
    "classes",
)


def user_card_path(weights_file: str | Path) -> Path:
    """Where the card of a user's weights (or TorchScript) file lives: `<file name>.card.json` beside it."""
    weights_file = Path(weights_file)
    return weights_file.with_name(weights_file.name + USER_CARD_SUFFIX)


def read_model_card(path: str | Path) -> dict:
    """A model card's JSON object, or one clear error when it is not valid JSON or not an object."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"model card {path} is not valid JSON: {exc}; fix it, or delete it and rerun `haltfast card`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model card {path}: {exc}; check its permissions") from None
    if not isinstance(card, dict):
        raise ModelError(
            f"model card {path} holds a JSON {type(card).__name__}, not an object; delete it and rerun `haltfast card`"
        )
    return card


def write_model_card(path: str | Path, card: dict) -> Path:
    """Write a user model card atomically after checking it has every field of USER_CARD_FIELDS and a valid hash."""
    path = Path(path)
    missing = [field for field in USER_CARD_FIELDS if field not in card]
    if missing:
        raise ModelError(f"model card for {path} lacks {', '.join(missing)}")
    if not re.fullmatch(r"[0-9a-f]{64}", str(card["weights_sha256"])):
        raise ModelError(f"model card for {path}: weights_sha256 must be 64 hex digits, got {card['weights_sha256']!r}")
    return write_json(path, card)


def check_class_names(classes, num_classes: int, where: str = "the model card") -> list[str] | None:
    """The model's class names in index order (None: unnamed), checked: num_classes distinct, non-empty names."""
    if classes is None:
        return None
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise ModelError(f"{where}: classes must be a list of class names, got {classes!r}")
    names = [c.strip() for c in classes]
    if len(names) != num_classes:
        raise ModelError(f"{where} names {len(names)} classes, but the model predicts {num_classes}")
    if len(set(names)) != len(names):
        twice = next(c for c in names if names.count(c) > 1)
        raise ModelError(f"{where} names the class {twice!r} twice")
    return names


def check_weights_match_card(digest: str, card: dict, weights_file: Path, card_file: Path) -> None:
    """Refuse weights whose SHA-256 differs from the one their card records (corrupt or replaced weights)."""
    recorded = card.get("weights_sha256")
    if recorded is not None and recorded != digest:
        raise ModelError(
            f"{weights_file} does not match its model card {card_file.name} (sha256 {digest[:12]}..., "
            f"card says {str(recorded)[:12]}...): corrupt or replaced weights"
        )


def unverified_error(weights_file: Path, why: str, fix: str) -> ModelError:
    """The refusal of weights whose SHA-256 no card vouches for; `fix` says how to make one."""
    return ModelError(
        f"{weights_file}: {why}, so nothing shows these are the weights you meant. {fix}, or pass "
        f"--allow-unverified (allow_unverified=True) to use them anyway"
    )
