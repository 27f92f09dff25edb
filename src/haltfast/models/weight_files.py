"""Reading weight files without running code: torch.load(weights_only=True), safetensors and TorchScript archives.

Readers take the file's bytes, read once, so that the SHA-256 a model card checks is the hash of exactly the
bytes that are loaded.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any
from typing import TypeGuard

import torch
from torch import nn

from ..errors import ModelError

# a checkpoint dict may keep the weights under one of these entries (Cohen et al. save {'arch', 'state_dict', ...})
STATE_DICT_ENTRIES = ("state_dict", "model_state_dict", "model")
SAFETENSORS_SUFFIX = ".safetensors"


def weights_hash(path: str | Path) -> str:
    """SHA-256 of a weights file: the identity a meta-learner and recorded streams are tied to."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 (hex) of bytes already read: the same digest weights_hash gives for the file they came from."""
    return hashlib.sha256(data).hexdigest()


def state_dict_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes): an identity for weights without a file."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        if isinstance(value, torch.Tensor):
            digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
            flat = value.detach().cpu().contiguous().reshape(-1)  # 1-D: a 0-d tensor cannot be viewed as bytes
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_file_bytes(path: str | Path, what: str = "weights file") -> bytes:
    """The bytes of a file, or one clear error when it is missing or not a regular file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {path} {'not found' if not path.exists() else 'is not a file'}; check the path")
    return path.read_bytes()


def is_torchscript_archive(data: bytes) -> bool:
    """True for a torch.jit.save archive (a zip with code/ or constants.pkl), told apart from torch.save zips."""
    if not data.startswith(b"PK"):
        return False
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return False
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


def is_safetensors(data: bytes) -> bool:
    """True when the bytes begin like a safetensors file: an 8-byte header length, then a JSON header."""
    if len(data) < 10:
        return False
    header = int.from_bytes(data[:8], "little")
    return data[8:9] == b"{" and 8 + header <= len(data)


def load_torchscript(data: bytes, path: Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """A TorchScript module from its archive's bytes (torch.jit.load: TorchScript code, no Python pickles)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit; it still loads
            return torch.jit.load(io.BytesIO(data), map_location=map_location)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"cannot read TorchScript file {path}: corrupt or truncated ({type(exc).__name__}: {first_line})"
        ) from None


def load_tensor_file(data: bytes, path: Path, map_location: str | torch.device = "cpu") -> object:
    """What a weights file holds, read without running code: safetensors, or torch.load(weights_only=True).

    A pickle naming any class or function outside torch's weights-only allowlist is refused before it is built.
    """
    if path.suffix == SAFETENSORS_SUFFIX or is_safetensors(data):
        return _load_safetensors(data, path, map_location)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise refused_pickle_error(data, path, exc) from None
    except Exception as exc:
        raise ModelError(
            f"cannot read model file {path}: corrupt or truncated ({type(exc).__name__}: {str(exc).strip()[:200]})"
        ) from None


def _load_safetensors(data: bytes, path: Path, map_location: str | torch.device) -> dict:
    from safetensors.torch import load as load_safetensors

    try:
        tensors = load_safetensors(data)
    except Exception as exc:
        raise ModelError(
            f"cannot read safetensors file {path}: corrupt or truncated ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    return tensors if str(map_location) == "cpu" else {k: v.to(map_location) for k, v in tensors.items()}


def extract_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a loaded file: the file itself, or its 'state_dict' (or similar) entry; others ignored."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for entry in STATE_DICT_ENTRIES:
            if _is_state_dict(obj.get(entry)):
                return dict(obj[entry])
        entries = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
        raise ModelError(
            f"{path} holds a dict with entries {entries}: neither a state dict of tensors nor a "
            f"checkpoint with a {STATE_DICT_ENTRIES[0]!r} entry"
        )
    raise ModelError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")


def _is_state_dict(obj: object) -> TypeGuard[dict[str, Any]]:  # values: tensors, or any "*_extra_state"
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) or k.endswith("_extra_state") for k, v in obj.items())
    )


# ---------------------------------------------------------------- refused pickles, described without running them


def refused_pickle_error(data: bytes, path: Path, exc: Exception) -> ModelError:
    """The error for a pickle torch's weights-only unpickler refused: what it holds and where, nothing run."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if not found:
        return ModelError(
            f"refusing to load {path}: it is corrupt or truncated, or holds pickled objects other "
            f"than tensors (which could run code); nothing was run"
        )
    name = found.group(1)
    where, culprit, top_keys = _locate_in_pickle(data, name) or ((), None, ())
    entry = f" in entry {' -> '.join(repr(k) for k in where)}" if where else ""
    if culprit is not None and _is_module_object(culprit):
        return ModelError(
            f"refusing to load {path}: it holds a pickled model object ({culprit.qualname}){entry}, "
            f"which could run code when unpickled; nothing was run. Save model.state_dict() and "
            f"pass --model file.py:factory --weights FILE, or a TorchScript file"
        )
    weights_entry = next((k for k in STATE_DICT_ENTRIES if k in top_keys), None)
    hint = (
        f"; or keep only the weights entry: torch.save(checkpoint[{weights_entry!r}], ...), in a Python you trust "
        f"this file in"
        if weights_entry is not None and where[:1] != (weights_entry,)
        else ""
    )
    return ModelError(
        f"refusing to load {path}: it holds an object other than tensors ({name}){entry}, which "
        f"could run code when unpickled; nothing was run. Save weights with "
        f"torch.save(model.state_dict(), ...) (haltfast train does){hint}"
    )


class _StandIn:
    """Built in place of every class or function a pickle names, so that inspecting the pickle runs none of them."""

    qualname = "?"
    args: tuple
    state: object
    items: dict

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.state, obj.items = args, None, {}
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _InspectingUnpickler(pickle.Unpickler):
    """Every global resolves to a fresh _StandIn subclass and every persistent id to None: nothing is imported."""

    def find_class(self, module, name):
        return type("StandIn", (_StandIn,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid):
        return None


def _is_module_object(obj: object) -> bool:
    return isinstance(obj, _StandIn) and (
        obj.qualname.startswith("torch.nn.modules.") or (isinstance(obj.state, dict) and "_modules" in obj.state)
    )


def _locate_in_pickle(data: bytes, qualname: str) -> tuple[tuple, _StandIn, tuple] | None:
    """Entry path to the first pickled model object or object named qualname, and the pickle's top-level keys;
    None when the pickle defeats the inspection."""
    try:
        for obj in _pickled_objects(data):
            found = _search(obj, qualname, (), 0, set())
            if found is not None:
                top = obj.items if isinstance(obj, _StandIn) else obj
                return (*found, tuple(top) if isinstance(top, dict) else ())
    except Exception:
        return None
    return None


def _pickled_objects(data: bytes):
    if data.startswith(b"PK"):  # torch.save's zip format: the object is in <archive>/data.pkl
        archive = zipfile.ZipFile(io.BytesIO(data))
        for name in sorted((n for n in archive.namelist() if n.endswith("data.pkl")), key=len)[:1]:
            yield _InspectingUnpickler(io.BytesIO(archive.read(name))).load()
        return
    stream = io.BytesIO(data)  # legacy format: magic number, protocol, system info, then the object
    for _ in range(5):
        yield _InspectingUnpickler(stream).load()


def _search(obj, qualname: str, path: tuple, depth: int, seen: set):
    if depth > 16 or id(obj) in seen:
        return None
    seen.add(id(obj))
    if isinstance(obj, _StandIn):
        if _is_module_object(obj) or obj.qualname == qualname:
            return path, obj
        children = [*obj.items.items(), *((None, a) for a in (obj.state, *obj.args))]
    elif isinstance(obj, dict):
        children = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        children = [(None, v) for v in obj]
    else:
        return None
    for key, child in children:
        found = _search(child, qualname, path if key is None else (*path, key), depth + 1, seen)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- fitting a state dict to a model


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, target: str) -> None:
    """Load state into model, all keys and shapes matching; else one error naming missing and unexpected keys.

    A prefix common to every key ('module.' from DataParallel, '1.' from Cohen et al.'s
    Sequential(NormalizeLayer, model)) is removed when that makes the keys fit better.
    """
    expected = set(model.state_dict())
    change, best = min(_key_variants(state), key=lambda variant: len(expected.symmetric_difference(variant[1])))
    try:
        result = model.load_state_dict(best, strict=False)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        shown = "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")
        raise ModelError(f"{source} does not fit the model of {target}: {shown or str(exc)[:300]}") from None
    problems = []
    for keys, what in (
        (result.missing_keys, "missing from the weights"),
        (result.unexpected_keys, "unexpected in the weights"),
    ):
        if keys:
            more = f", ... ({len(keys)} in all)" if len(keys) > 5 else ""
            problems.append(f"{len(keys)} keys {what} ({', '.join(keys[:5])}{more})")
    if problems:
        after = f" (after removing {change})" if change else ""
        raise ModelError(f"{source} does not fit the model of {target}{after}: {'; '.join(problems)}")


def _key_variants(state: dict) -> list[tuple[str, dict]]:
    variants = [("", state)]
    unwrapped = {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in state.items()}
    if unwrapped.keys() != state.keys() and len(unwrapped) == len(state):
        variants.append(("the 'module.' prefixes", unwrapped))
    for change, keys in list(variants):
        parts = next(iter(keys)).split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i]) + "."
            if not all(k.startswith(prefix) for k in keys):
                break
            removed = f"{change} and the prefix {prefix!r}" if change else f"the prefix {prefix!r}"
            variants.append((removed, {k[len(prefix) :]: v for k, v in keys.items()}))
    return variants
