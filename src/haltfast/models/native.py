"""haltfast's own model files: a StrideCNN state dict `<name>.pt` with its JSON card `<name>.json`; shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from ..files import atomic_write
from ..files import write_json
from .cards import check_weights_match_card
from .cards import read_model_card
from .cards import unverified_error
from .stride_cnn import build_model
from .weight_files import extract_state_dict
from .weight_files import load_tensor_file
from .weight_files import read_file_bytes
from .weight_files import sha256_bytes
from .weight_files import weights_hash

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED_SIGMAS = (0.12, 0.25, 0.5, 1.0)
DEFAULT_SIGMA = 0.25


def card_path(weights_path: str | Path) -> Path:
    """The card of a haltfast .pt file: `<stem>.json` beside it."""
    return Path(weights_path).with_suffix(".json")


def is_haltfast_model_file(path: str | Path) -> bool:
    """True when path has a haltfast card beside it (`<stem>.json` describing a haltfast architecture)."""
    cpath = card_path(path)
    if Path(path).suffix != ".pt" or not cpath.is_file():
        return False
    try:
        card = json.loads(cpath.read_text())
    except (ValueError, OSError):
        return True  # a haltfast card that is broken: load_model says so
    return isinstance(card, dict) and isinstance(card.get("model"), dict) and "arch" in card["model"]


def save_model(model: nn.Module, path: str | Path, card: dict) -> dict:
    """Write the state dict (tensors only) and a JSON model card beside it; returns the card with its hash."""
    path = atomic_write(path, lambda tmp: torch.save(model.state_dict(), tmp))
    card = {**card, "model": model.config, "weights_file": path.name, "weights_sha256": weights_hash(path)}
    write_json(card_path(path), card)
    return card


def load_model(path: str | Path, *, allow_unverified: bool = False) -> tuple[nn.Module, dict]:
    """Load a haltfast .pt and its card; weights load with torch.load(weights_only=True), never running code.

    Refused: weights that differ from the card's SHA-256, and (unless allow_unverified) a card without one.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"model file {path} not found; check the path, or name a shipped model such as fashion-mnist-sigma0.25"
        )
    cpath = card_path(path)
    if not cpath.is_file():
        raise ModelError(
            f"model card {cpath} not found: a haltfast .pt needs the JSON card `haltfast train` wrote beside it; "
            f"for other weights use --model file.py:factory --weights FILE"
        )
    card = read_model_card(cpath)
    data = read_file_bytes(path, "model file")
    digest = sha256_bytes(data)
    check_weights_match_card(digest, card, path, cpath)
    state = extract_state_dict(load_tensor_file(data, path), path)
    if card.get("weights_sha256") is None and not allow_unverified:
        raise unverified_error(
            path,
            f"its model card {cpath.name} records no weights_sha256",
            "Re-create the model with `haltfast train` (its card records the hash)",
        )
    model = build_model(card.get("model", {}))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path} does not fit the architecture in its card: {exc}") from None
    model.eval()
    card["verified"] = card.get("weights_sha256") is not None
    card["weights_sha256"] = digest
    return model, card


def shipped_model_path(sigma: float = DEFAULT_SIGMA) -> Path:
    """Path of the shipped noise-trained Fashion-MNIST model for a sigma in SHIPPED_SIGMAS."""
    if float(sigma) not in SHIPPED_SIGMAS:
        raise ModelError(f"no shipped model for sigma={sigma}; shipped: {', '.join(map(str, SHIPPED_SIGMAS))}")
    return WEIGHTS_DIR / f"fashion-mnist-sigma{float(sigma)!r}.pt"


def is_shipped_model_spec(spec: str | Path | None) -> bool:
    """True for specs naming a shipped model: None, 'shipped', or a name like 'fashion-mnist-sigma0.25'."""
    if spec is None or spec == "shipped":
        return True
    return "/" not in str(spec) and (WEIGHTS_DIR / f"{spec}.pt").is_file()


def resolve_model_path(spec: str | None, sigma: float | None = None) -> Path:
    """A model given as a file path, or as 'shipped' / 'fashion-mnist-sigma0.25' (a shipped one)."""
    if spec is None or spec == "shipped":
        return shipped_model_path(DEFAULT_SIGMA if sigma is None else sigma)
    if is_shipped_model_spec(spec):
        return WEIGHTS_DIR / f"{spec}.pt"
    return Path(spec)
