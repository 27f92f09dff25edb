"""Load any PyTorch base classifier: shipped or haltfast models, TorchScript files, or a factory plus weights.

Nothing in a weights file runs code: state dicts and checkpoints load with torch.load(weights_only=True) or
from safetensors, TorchScript with torch.jit.load, and a whole pickled model object is refused. The only code
that runs is the factory the user names. Every model is bound to a SHA-256 that its model card vouches for.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from ..errors import OutputError
from ..errors import UsageError
from .cards import CARD_VERSION
from .cards import check_class_names
from .cards import check_weights_match_card
from .cards import read_model_card
from .cards import unverified_error
from .cards import user_card_path
from .cards import write_model_card
from .factory import FactorySpec
from .factory import build_from_factory
from .factory import parse_factory_spec
from .native import card_path
from .native import is_haltfast_model_file
from .native import is_shipped_model_spec
from .native import load_model
from .native import resolve_model_path
from .normalize import Normalization
from .normalize import as_normalization
from .normalize import with_normalization
from .weight_files import extract_state_dict
from .weight_files import fit_state_dict
from .weight_files import is_torchscript_archive
from .weight_files import load_tensor_file
from .weight_files import load_torchscript
from .weight_files import read_file_bytes
from .weight_files import sha256_bytes
from .weight_files import state_dict_sha256


@dataclass
class _Source:
    """A model spec resolved to what must be read: a factory (with optional weights) or one model file."""

    spec: str
    factory: FactorySpec | None
    file: Path | None  # the factory's weights, or the model file itself
    data: bytes | None = None
    digest: str | None = None

    @property
    def format(self) -> str:
        return "factory" if self.factory is not None else "torchscript"


def load_base_model(
    spec: str | Path | None = None,
    weights: str | Path | None = None,
    *,
    sigma: float | None = None,
    normalize=None,
    allow_unverified: bool = False,
    map_location: str | torch.device = "cpu",
    data: str | None = None,
) -> tuple[nn.Module, dict]:
    """Load a base classifier and its card, every bad input one HaltfastError before the model is used.

    spec: None or 'shipped' (the shipped model for sigma), a shipped name ('fashion-mnist-sigma0.25'), a
    haltfast .pt with its `<stem>.json` card, a TorchScript file, or 'file.py:factory' / 'pkg.module:factory'
    with `weights` (state dict, {'state_dict': ...} checkpoint, or .safetensors). normalize: None (the card's),
    a preset name, 'M1,M2,M3/S1,S2,S3', or (means, stds); the model then standardizes [0, 1] inputs itself.
    The card returned always has format, model_spec, weights_path, weights_sha256 (of the bytes loaded),
    verified, card_file, normalize, sigma, data, num_classes, input_shape and classes (the last five may be None).
    Weights whose card records another SHA-256 are refused; weights with no recorded SHA-256 are refused
    unless allow_unverified, with the `haltfast card` command that makes the card (`data`: the data set the
    caller will use, which gives the card its input shape).
    """
    normalization = as_normalization(normalize)
    if _is_haltfast_spec(spec):
        if weights is not None:
            raise UsageError(
                f"--weights goes with --model file.py:factory; {spec or 'the shipped model'} carries its own weights"
            )
        haltfast_model, haltfast_card = _load_haltfast(spec, sigma, allow_unverified, normalization)
        return with_normalization(haltfast_model, normalization), haltfast_card
    source = _resolve_source(spec, weights, allow_unverified)
    card_file = user_card_path(source.file) if source.file is not None else None
    card: dict | None = None
    if card_file is not None and card_file.is_file():
        assert source.file is not None and source.digest is not None  # a card file belongs to a file read and hashed
        card = read_model_card(card_file)
        check_weights_match_card(source.digest, card, source.file, card_file)
        normalization = _card_normalization(normalization, card, card_file)
    content = _read_content(source, map_location)
    if (card is None or card.get("weights_sha256") is None) and not allow_unverified:
        raise _unverified(source, card_file, card is not None, sigma, data)
    model = _assemble(source, content)
    return with_normalization(model, normalization), _loaded_card(source, card, card_file, normalization)


def make_card(
    spec: str | Path,
    weights: str | Path | None = None,
    *,
    input_shape: Sequence[int],
    sigma: float | None = None,
    data: str | None = None,
    normalize=None,
    command: str | None = None,
    overwrite: bool = False,
    map_location: str | torch.device = "cpu",
    classes: list[str] | None = None,
) -> tuple[Path, dict]:
    """Write the card that vouches for a user's weights (or TorchScript file); returns its path and content.

    The model is loaded and run once on a zero batch of input_shape, so a card is only written for weights
    that load, fit the factory's model and return (N, K) logits; K is recorded as num_classes. `classes`: the
    model's class names in index order (K of them), which image folders' class folders are matched to.
    """
    if _is_haltfast_spec(spec):
        raise UsageError(f"{spec} is a haltfast model: its card (<stem>.json) comes from `haltfast train`")
    source = _resolve_source(spec, weights, allow_unverified=False)
    assert source.file is not None  # without allow_unverified a source always names a file
    card_file = user_card_path(source.file)
    if card_file.exists() and not overwrite:
        raise OutputError(
            f"{card_file} already exists (it vouches for sha256 "
            f"{str(read_model_card(card_file).get('weights_sha256'))[:12]}...): delete it to make a "
            f"new card for {source.file}"
        )
    if sigma is not None and not (float(sigma) > 0 and float(sigma) < float("inf")):
        raise UsageError(f"sigma must be a positive number, got {sigma}")
    normalization = as_normalization(normalize)
    model = with_normalization(_assemble(source, _read_content(source, map_location)), normalization)
    num_classes = infer_num_classes(model, input_shape)
    names = check_class_names(classes, num_classes, "--classes")
    card = {
        "haltfast_card": CARD_VERSION,
        "format": source.format,
        "model_spec": source.spec,
        "weights_file": source.file.name,
        "weights_sha256": source.digest,
        "normalize": normalization.to_json() if normalization else None,
        "sigma": None if sigma is None else float(sigma),
        "data": {"name": data} if data else None,
        "num_classes": num_classes,
        "input_shape": [int(s) for s in input_shape],
        "classes": names,
        "command": command,
        "torch": torch.__version__,
    }
    return write_model_card(card_file, card), card


def infer_num_classes(model: nn.Module, input_shape: Sequence[int]) -> int:
    """The number of classes K, from the model's output on one zero batch of 2 inputs: it must be (2, K) logits."""
    shape = _checked_input_shape(input_shape)
    reference = next((t for t in (*model.parameters(), *model.buffers())), None)
    device = reference.device if reference is not None else torch.device("cpu")
    model.eval()
    try:
        with torch.inference_mode():
            out = model(torch.zeros((2, *shape), device=device))
    except Exception as exc:
        raise ModelError(
            f"the model fails on a zero batch of shape {(2, *shape)}: {type(exc).__name__}: "
            f"{str(exc).strip()[:300]} (does the input shape {shape} match what it expects?)"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2 or not out.is_floating_point():
        got = (
            f"a tensor of shape {tuple(out.shape)} ({out.dtype})"
            if isinstance(out, torch.Tensor)
            else f"a {type(out).__name__}"
        )
        raise ModelError(
            f"the model returns {got} for a batch of 2 inputs; a base classifier must return "
            f"float logits of shape (N, num_classes)"
        )
    if out.shape[1] < 2:
        raise ModelError(f"the model returns {out.shape[1]} logit(s) per input; a classifier needs at least 2")
    return int(out.shape[1])


def _checked_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise UsageError(f"input shape must be a sequence of positive integers, got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise UsageError(f"input shape must be a sequence of positive integers, got {input_shape!r}")
    return shape


def _is_haltfast_spec(spec) -> bool:
    """A shipped model, or a haltfast .pt with its <stem>.json card: loaded by load_model."""
    return is_shipped_model_spec(spec) or (parse_factory_spec(spec) is None and is_haltfast_model_file(spec))


def _load_haltfast(spec, sigma, allow_unverified: bool, normalization: Normalization | None) -> tuple[nn.Module, dict]:
    path = resolve_model_path(None if spec is None else str(spec), sigma)
    model, card = load_model(path, allow_unverified=allow_unverified)
    architecture = card["model"]
    return model, {
        **card,
        "format": "haltfast",
        "model_spec": str(spec or "shipped"),
        "weights_path": str(path),
        "card_file": str(card_path(path)),
        "normalize": normalization.to_json() if normalization else None,
        "num_classes": architecture["num_classes"],
        "input_shape": [architecture["in_channels"], architecture["image_size"], architecture["image_size"]],
        "classes": card.get("classes"),
    }


def _resolve_source(spec, weights, allow_unverified: bool) -> _Source:
    """The factory or file a spec names, its bytes read once and hashed; refuses specs that cannot work."""
    if spec is None:
        raise UsageError(
            "no model given: pass --model (a shipped name, a .pt with its card, a TorchScript file or file.py:factory)"
        )
    factory = parse_factory_spec(spec)
    if factory is None:
        if weights is not None:
            raise UsageError(
                f"--weights needs the architecture as --model file.py:factory or "
                f"package.module:factory; {spec} is not such a spec"
            )
        path = Path(spec)
        if Path(str(spec).split(":")[0]).suffix == ".py":
            raise UsageError(
                f"{spec}: name the model factory as path/to/file.py:function (a function or class "
                f"that builds the model with no arguments)"
            )
        data = read_file_bytes(path, "model file")
        if not is_torchscript_archive(data):
            _refuse_non_torchscript(data, path)
        return _Source(str(spec), None, path, data, sha256_bytes(data))
    if factory.is_file and not Path(factory.target).is_file():
        raise ModelError(f"model factory file {factory.target} not found; check the path in --model")
    if weights is None:
        if not allow_unverified:
            raise UsageError(
                f"the model factory {factory} needs its weights: pass --weights FILE (state dict, "
                f"checkpoint or .safetensors), or --allow-unverified to use the weights the factory "
                f"sets itself"
            )
        return _Source(str(spec), factory, None)
    path = Path(weights)
    data = read_file_bytes(path, "weights file")
    if is_torchscript_archive(data):
        raise UsageError(f"{path} is a TorchScript file: pass it alone as --model {path} (without a factory)")
    return _Source(str(spec), factory, path, data, sha256_bytes(data))


def _refuse_non_torchscript(data: bytes, path: Path) -> None:
    """A model file that is not TorchScript: a pickled model is refused, weights alone need their factory."""
    load_tensor_file(data, path)  # refuses pickled objects (a whole model included) and corrupt files
    raise ModelError(
        f"{path} holds weights but not the architecture: pass --model file.py:factory --weights "
        f"{path} (a haltfast .pt needs its <stem>.json card beside it)"
    )


def _read_content(source: _Source, map_location):
    """A TorchScript module, a state dict, or None (a factory without weights); nothing here runs code."""
    if source.file is None:
        return None
    assert source.data is not None  # a source that names a file holds its bytes
    if source.factory is None:
        return load_torchscript(source.data, source.file, map_location)
    return extract_state_dict(load_tensor_file(source.data, source.file, map_location), source.file)


def _assemble(source: _Source, content) -> nn.Module:
    """The eval-mode model: the TorchScript module, or the factory's model with the state dict fitted."""
    if source.factory is None:
        return content.eval()
    model = build_from_factory(source.factory)
    if content is None:
        source.digest = state_dict_sha256(model)
    else:
        fit_state_dict(model, content, f"weights {source.file}", str(source.factory))
    return model.eval()


def _card_normalization(normalization: Normalization | None, card: dict, card_file: Path) -> Normalization | None:
    """The card's normalization when none is given; a different one given is refused (the card describes the
    function its weights compute, normalization included; a card without the field leaves it to the caller)."""
    recorded = as_normalization(card.get("normalize"))
    if normalization is not None and "normalize" in card and normalization != recorded:
        shown = recorded.to_json() if recorded is not None else "none"
        raise UsageError(
            f"normalize {normalization.to_json()} differs from {shown} recorded in {card_file.name}: "
            f"omit --normalize to use the card's, or make a new card"
        )
    return normalization if normalization is not None else recorded


def _unverified(
    source: _Source, card_file: Path | None, card_exists: bool, sigma: float | None, data: str | None
) -> ModelError:
    # only a source that names a file is refused as unverified: a factory without weights needs allow_unverified
    assert source.file is not None and card_file is not None
    weights = f" --weights {shlex.quote(str(source.file))}" if source.factory is not None else ""
    shape = f"--data {shlex.quote(data)}" if data else "--input-shape C,H,W"
    noise = f"{sigma:g}" if sigma is not None else "SIGMA"
    command = f"`haltfast card --model {shlex.quote(source.spec)}{weights} --sigma {noise} {shape}`"
    if card_exists:
        command += " (with --overwrite)"
    why = (
        f"its model card {card_file.name} records no weights_sha256"
        if card_exists
        else f"it has no model card ({card_file.name} beside it)"
    )
    return unverified_error(source.file, why, f"Create one with {command} (it records the SHA-256)")


def _loaded_card(
    source: _Source, card: dict | None, card_file: Path | None, normalization: Normalization | None
) -> dict:
    card = dict(card or {})
    return {
        **card,
        "format": source.format,
        "model_spec": source.spec,
        "weights_path": str(source.file) if source.file is not None else None,
        "weights_sha256": source.digest,
        "verified": card.get("weights_sha256") is not None,
        "card_file": str(card_file) if card_file is not None and card else None,
        "normalize": normalization.to_json() if normalization else None,
        **{key: card.get(key) for key in ("sigma", "data", "num_classes", "input_shape", "classes")},
    }
