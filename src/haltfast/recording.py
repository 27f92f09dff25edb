"""Recorded label streams: each input's predicted labels under noise, stored once and replayed by every method.

A recording is a directory: `meta.json` (model hash, sigma, seed, data slice,
stream length) and shards `shard-NNNNN.npz` (compressed uint8 labels, one row per
input, plus the clean predictions and, for a model that returns them, the clean
logits: the meta-learners' features, so a replay of any model has them). Shards are written atomically as they
finish, so an interrupted `haltfast record` resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelError
from .errors import RecordingError
from .files import atomic_write
from .files import write_json
from .streams import RecordedStreams

if TYPE_CHECKING:
    from .sampling import LiveStreams

SHARD = 10


def _shard_path(directory: Path, k: int) -> Path:
    return directory / f"shard-{k:05d}.npz"


def record_streams(
    streams: LiveStreams,
    directory: str | Path,
    meta: dict,
    length: int,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Record `length` labels of every input's stream (plus its clean prediction), resuming existing shards.

    Refuses to add to a directory whose meta.json describes a different configuration.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "length": int(length), "shard_size": SHARD, "inputs": len(streams.keys)}
    meta_path = directory / "meta.json"
    if meta_path.exists():
        old = _read_meta(meta_path)
        if old != meta:
            changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise RecordingError(
                f"{directory} holds a recording with a different configuration "
                f"({', '.join(changed)} differ); choose another --out directory"
            )
    else:
        write_json(meta_path, meta)
    n = len(streams.keys)
    for k, lo in enumerate(range(0, n, SHARD)):
        items = list(range(lo, min(lo + SHARD, n)))
        path = _shard_path(directory, k)
        if path.exists():
            if progress:
                progress(len(items), 0)
            continue
        scores, errors = streams.clean_logits(items)  # the clean evaluation, kept whole for the learners' features
        logits: np.ndarray | None = scores
        if errors:  # a model that returns labels only: its predictions
            logits = None
            clean, errors = streams.clean(items)
        else:
            clean = scores.argmax(axis=1)
        out: list[np.ndarray] = []
        for item in items:  # one input at a time, so progress moves per input
            drawn, draw_errors = streams.draw([item], [length])
            errors.update(draw_errors)
            if errors:
                raise ModelError(f"the base classifier failed while recording: {next(iter(errors.values()))}")
            assert drawn[0] is not None  # only an input with an error draws None, refused above
            out.append(drawn[0])
            if progress:
                progress(1, length + 1)
        if hasattr(streams, "forget"):
            streams.forget(items)
        arrays: dict[str, np.ndarray] = {"labels": np.stack(out).astype(np.uint8), "clean": clean.astype(np.uint8)}
        if logits is not None:
            narrow = logits.astype(np.float32)
            arrays["logits"] = narrow if np.array_equal(narrow.astype(np.float64), logits) else logits
        atomic_write(path, functools.partial(np.savez_compressed, **arrays), suffix=".npz")  # type: ignore[arg-type]
    return directory


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise RecordingError(
            f"{path} is unreadable or corrupt ({exc}); delete the recording directory and record again"
        ) from None
    if not isinstance(meta, dict) or "inputs" not in meta:
        raise RecordingError(
            f"{path} is not a haltfast recording's meta data; give a directory `haltfast record` wrote"
        )
    return meta


def recording_model_path(meta: dict, model_path: str | Path | None = None) -> Path:
    """The weights a recording was made with (a shipped model by name, or model_path), hash-checked."""
    from .models import WEIGHTS_DIR
    from .models import weights_hash

    path = Path(model_path) if model_path is not None else WEIGHTS_DIR / meta["model"]
    if not path.is_file():
        raise RecordingError(f"the recording's model {meta['model']} is not a shipped model: pass its weights file")
    if weights_hash(path) != meta["weights_sha256"]:
        raise RecordingError(f"{path} is not the model this recording was made with (sha256 differs)")
    return path


def recording_logits(
    meta: dict, model_path: str | Path | None = None, data_dir: str | Path | None = None
) -> np.ndarray:
    """The recording model's clean logits on the recorded images (one evaluation each, as in a live run)."""
    import torch

    from .data import load_dataset
    from .models import load_model
    from .sampling import BaseClassifier

    model, _ = load_model(recording_model_path(meta, model_path))
    dataset = load_dataset(meta["data"], meta["split"], data_dir)
    position = {int(i): k for k, i in enumerate(dataset.indices)}
    images = torch.as_tensor(dataset.images[[position[int(i)] for i in meta["indices"]]], dtype=torch.float32)
    with torch.inference_mode():
        return BaseClassifier(model, meta["num_classes"]).logits(images)


def load_recording(
    directory: str | Path, max_items: int | None = None, with_logits: bool = False
) -> tuple[RecordedStreams, dict]:
    """The recorded streams (optionally the first max_items inputs) and the recording's meta data.

    The clean logits come with it where the recording holds them; with_logits: recomputed with the recording's
    hash-checked model where it does not (recordings made before they were kept).
    """
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise RecordingError(f"{directory} is not a recording (no meta.json); make one with `haltfast record`")
    meta = _read_meta(meta_path)
    n = meta["inputs"] if max_items is None else min(meta["inputs"], max_items)
    labels, clean, stored = [], [], []  # stored: each shard's clean logits, or None
    for k in range((n + SHARD - 1) // SHARD):
        path = _shard_path(directory, k)
        if not path.is_file():
            raise RecordingError(
                f"recording {directory} is incomplete ({path.name} missing): rerun the same "
                f"`haltfast record` command to finish it"
            )
        try:
            with np.load(path) as shard:
                labels.extend(shard["labels"])
                clean.extend(shard["clean"])
                stored.append(shard["logits"].astype(np.float64) if "logits" in shard.files else None)
        except Exception as exc:
            raise RecordingError(f"{path} is corrupt ({exc}); delete it and rerun `haltfast record`") from exc
    meta = {**meta, "indices": meta["indices"][:n], "labels": meta["labels"][:n]}
    kept = [x for x in stored if x is not None]
    logits: np.ndarray | None = np.concatenate(kept)[:n] if kept and len(kept) == len(stored) else None
    if with_logits and logits is None:
        logits = recording_logits(meta)
    return RecordedStreams(labels[:n], meta["num_classes"], clean[:n], logits), meta
