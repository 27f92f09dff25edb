"""What a command runs on: the selected inputs (live images, read lazily, or a recording), the base model and
sigma, and the identity of each for results journals and meta-learners. One function builds it for certify,
record, calibrate and triage."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..errors import RecordingError
from ..errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from ..data import ImageSource
    from ..streams import RecordedStreams


@dataclass
class Inputs:
    """The inputs of one run and everything a certificate of theirs depends on besides the method."""

    labels: np.ndarray
    indices: np.ndarray
    sigma: float
    num_classes: int
    model_name: str
    weights_sha256: str
    identity: dict  # model and data (or recording) identity, for the results journal
    source: ImageSource | None = None  # live: the lazy image source of the selected inputs
    model: nn.Module | None = None  # live: the model, on its device and at its precision
    card: dict = field(default_factory=dict)
    recording: RecordedStreams | None = None  # replay: RecordedStreams of the selected inputs
    recording_meta: dict | None = None
    weights_path: Path | None = None  # where a meta-learner beside the weights would be
    data_recipe: dict | None = None  # live: how a Ray worker opens the same selected inputs (open_selection)
    model_recipe: dict | None = None  # live: how a Ray worker loads the same model (load_prepared_model)

    @property
    def live(self) -> bool:
        return self.recording is None

    def describe(self) -> str:
        if not self.live:
            assert self.recording_meta is not None  # a replay has its recording's metadata
            return f"replaying {len(self.indices)} recorded streams ({self.recording_meta.get('model')})"
        return (
            f"{len(self.indices)} {self.identity['data']}/{self.identity['split']} images (skip "
            f"{self.identity['skip']}) with {self.model_name}"
        )

    def smooth(self, args: argparse.Namespace):
        """The smoothed classifier of a live run (its noise stream keyed by seed and data set index)."""
        from ..smooth import Smooth

        assert self.model is not None  # a live run has its model
        return Smooth(
            self.model,
            self.num_classes,
            self.sigma,
            seed=args.seed,
            batch_size=batch_size(args, self),
            device=self.identity["device"],
            weights_sha256=self.weights_sha256,
        )

    def streams(self, args: argparse.Namespace):
        """Each input's stream: drawn live (images read as the inputs are reached) or replayed."""
        if not self.live:
            return self.recording
        return self.smooth(args).streams(self.source, self.indices)

    def label_source(self, args: argparse.Namespace, todo: np.ndarray):
        """Where the labels of inputs todo (as items 0, 1, ...) come from in a live run: the model in this process,
        or a pool of Ray workers (--workers, --ray-address) that load the model and images themselves. A pool
        must be closed (it has `close`)."""
        from ..sampling import BaseClassifier
        from ..sampling import ModelLabels
        from ..sampling import NoiseSampler

        assert self.model is not None and self.source is not None  # a live run
        keys = self.indices[todo]
        if getattr(args, "workers", None) is None and getattr(args, "ray_address", None) is None:
            sampler = NoiseSampler(
                BaseClassifier(self.model, self.num_classes),
                self.sigma,
                args.seed,
                batch_size(args, self),
                self.identity["device"],
            )
            return ModelLabels(sampler, Selection(self.source, todo), keys)
        from functools import partial

        from ..distributed import RayPool
        from ..distributed import WorkerRecipe

        assert self.data_recipe is not None and self.model_recipe is not None
        recipe = WorkerRecipe(
            partial(load_prepared_model, **self.model_recipe),
            partial(open_selection, **self.data_recipe, positions=todo),
            keys,
            self.num_classes,
            self.sigma,
            args.seed,
            batch_size(args, self),
            self.identity["device"],
            cwd=os.getcwd(),
        )
        pool = RayPool(recipe, args.workers, args.ray_address)
        print(f"{pool.workers} Ray workers", file=sys.stderr)
        return pool


class Selection:
    """Some positions of a lazy image source, itself lazy: `load(ps)` reads source positions positions[ps]."""

    def __init__(self, source, positions: np.ndarray):
        self.source, self.positions = source, np.asarray(positions, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def load(self, positions) -> np.ndarray:
        return self.source.load(self.positions[np.asarray(positions, dtype=np.int64)])


def open_selection(data, split, data_dir, resize, center_crop, layout, skip, max_items, positions) -> Selection:
    """The inputs a command selected, opened anew (in a Ray worker): every skip-th item of the data set, at most
    max_items, then these positions among them."""
    from ..data import open_dataset

    source = open_dataset(data, split, data_dir, resize=resize, center_crop=center_crop, layout=layout)
    return Selection(source.subset(skip, max_items), positions)


def load_prepared_model(spec, weights, sigma, normalize, allow_unverified, device, dtype, weights_sha256=None):
    """The base model on its device and at its precision, loaded as the command line loads it; refuses weights
    other than `weights_sha256` (a Ray worker must certify the driver's model)."""
    from ..errors import ModelError
    from ..models import load_base_model
    from ..models import prepare_model

    model, card = load_base_model(spec, weights, sigma=sigma, normalize=normalize, allow_unverified=allow_unverified)
    if weights_sha256 is not None and card["weights_sha256"] != weights_sha256:
        raise ModelError(
            f"this process loaded weights with SHA-256 {card['weights_sha256'][:16]}..., the run certifies "
            f"{weights_sha256[:16]}...: every Ray worker must see the same model files at the same paths"
        )
    return prepare_model(model, device, dtype)


def load_inputs(args: argparse.Namespace) -> Inputs:
    """The inputs named by the command line: a recording (--streams), or --data with --model; every mistake is
    one HaltfastError before any model evaluation on them."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "streams", None):
        return recording_inputs(args)
    return live_inputs(args)


def live_inputs(args: argparse.Namespace) -> Inputs:
    from ..data import open_dataset
    from ..models import infer_num_classes
    from ..models import load_base_model
    from ..models import prepare_model

    data_args = {
        "data": args.data,
        "split": data_split(args),
        "data_dir": args.data_dir,
        "resize": args.resize,
        "center_crop": args.center_crop,
        "layout": args.layout,
    }
    source = open_dataset(
        data_args["data"],
        data_args["split"],
        data_args["data_dir"],
        resize=args.resize,
        center_crop=args.center_crop,
        layout=args.layout,
    )
    model, card = load_base_model(
        args.model,
        args.weights,
        sigma=args.sigma,
        normalize=args.normalize,
        allow_unverified=args.allow_unverified,
        data=str(args.data),
    )
    name = Path(card.get("weights_path") or card.get("model_spec") or "model").name
    expected = card.get("input_shape")
    if expected and tuple(expected) != tuple(source.shape):
        raise DataError(
            f"model {name} expects images of shape {tuple(expected)}, data set {args.data} has "
            f"{tuple(source.shape)} (--resize / --center-crop change the size)"
        )
    if args.normalize is not None:
        check_normalize_channels(args.normalize, source.shape[0])
    sigma = args.sigma if args.sigma is not None else card.get("sigma")
    if sigma is None:
        raise UsageError(f"--sigma is required: the model card of {name} records none")
    if card.get("sigma") not in (None, sigma):
        print(f"note: model {name} was trained at sigma={card['sigma']}, certifying at sigma={sigma}", file=sys.stderr)
    known = card.get("num_classes")
    if known is not None:  # the labels are checked before the model evaluates anything
        source = model_labels(args, source, card, int(known), name)
    prepared = prepare_model(model, args.device, args.dtype)
    num_classes = infer_num_classes(prepared, source.shape)
    if known is None:
        source = model_labels(args, source, card, num_classes, name)
    elif num_classes != known:
        raise DataError(f"{name} predicts {num_classes} classes, its model card says {known}: make a new card")
    full_fingerprint = source.fingerprint()
    skip, max_items = args.skip, args.max
    if skip is None:  # calibrate: --images evenly spaced over the split
        wanted = calibration_images(args, len(source))
        skip = max(1, len(source) // wanted)
        max_items = min(wanted, max_items or wanted)
    selected = source.subset(skip, max_items)
    identity = {
        "model_sha256": card["weights_sha256"],
        "model": str(card.get("model_spec")),
        "normalize": card.get("normalize"),
        "dtype": args.dtype,
        "device": str(prepared.device.type),
        "data": str(args.data),
        "split": source.split,
        "data_sha256": full_fingerprint,
        "skip": skip,
    }
    weights_path = Path(card["weights_path"]) if card.get("weights_path") else None
    model_recipe = {
        "spec": args.model,
        "weights": args.weights,
        "sigma": args.sigma,
        "normalize": args.normalize,
        "allow_unverified": args.allow_unverified,
        "device": args.device,
        "dtype": args.dtype,
        "weights_sha256": card["weights_sha256"],
    }
    return Inputs(
        np.asarray(selected.labels),
        np.asarray(selected.indices),
        float(sigma),
        num_classes,
        name,
        card["weights_sha256"],
        identity,
        source=selected,
        model=prepared,
        card=card,
        weights_path=weights_path,
        data_recipe={**data_args, "skip": skip, "max_items": max_items},
        model_recipe=model_recipe,
    )


def check_normalize_channels(text: str, channels: int) -> None:
    """--normalize gives one mean and one standard deviation per channel of the images (a preset, three)."""
    from ..models.normalize import parse_normalize

    normalization = parse_normalize(text)
    if len(normalization.mean) != channels:
        raise UsageError(
            f"--normalize {text}: {len(normalization.mean)} mean(s) and std(s) for images of {channels} channels; "
            f"give one per channel ({','.join(['M'] * channels)}/{','.join(['S'] * channels)})"
        )


def calibration_images(args: argparse.Namespace, available: int) -> int:
    """calibrate's number of images: --images (refused if the data hold fewer), else 1,000 or all of them if
    fewer (said on stderr)."""
    from ..predictors import CALIBRATION_IMAGES

    if args.images is not None:
        if args.images > available:
            raise UsageError(
                f"--images {args.images:,}, but {args.data} holds {available:,} images in this split: pass --images "
                f"{available} or fewer (at least 25), or more data"
            )
        return int(args.images)
    if available < CALIBRATION_IMAGES:
        print(
            f"note: calibrating on all {available:,} images of {args.data} (fewer than the default "
            f"{CALIBRATION_IMAGES:,})",
            file=sys.stderr,
        )
        return available
    return CALIBRATION_IMAGES


def model_labels(args: argparse.Namespace, source, card: dict, num_classes: int, name: str):
    """The source with labels that mean the model's classes (ImageSource.with_classes): an image folder's class
    folders matched by --classes or the card's class names; other labels checked against num_classes."""
    from .options import read_class_names

    given = getattr(args, "classes", None)
    if given is not None and source.format != "imagefolder":
        raise UsageError(
            f"--classes names the class folders of an image folder; {args.data} is {source.format}, whose labels "
            "are class indices already"
        )
    classes = read_class_names(given) if given is not None else card.get("classes")
    if source.format != "imagefolder" and source.num_classes > num_classes:
        raise DataError(
            f"the data's labels go up to {source.num_classes - 1} but {name} predicts {num_classes} "
            f"classes: another model or data set?"
        )
    return source.with_classes(classes, num_classes)


def data_split(args: argparse.Namespace) -> str | None:
    """--split, else the command's default split where the data have splits (calibrate: calibration); folders and
    arrays have none, so a command's default does not apply to them."""
    from ..data import dataset_splits

    if args.split is not None or getattr(args, "default_split", None) is None:
        return args.split
    return args.default_split if dataset_splits(args.data) else None


def recording_inputs(args: argparse.Namespace) -> Inputs:
    from ..recording import load_recording
    from ..recording import recording_model_path

    streams, meta = load_recording(args.streams, args.max)
    try:
        weights_path = recording_model_path(meta)
    except RecordingError:  # not a shipped model: no meta-learner beside it
        weights_path = None
    identity = {
        "model_sha256": meta["weights_sha256"],
        "recording": str(args.streams),
        "data": meta.get("data"),
        "split": meta.get("split"),
        "device": "recording",
    }
    return Inputs(
        np.asarray(meta["labels"]),
        np.asarray(meta["indices"]),
        float(meta["sigma"]),
        streams.num_classes,
        meta["model"],
        meta["weights_sha256"],
        identity,
        recording=streams,
        recording_meta=meta,
        weights_path=weights_path,
    )


def batch_size(args: argparse.Namespace, inputs: Inputs) -> int:
    """--batch, else 2000 on the CPU, or what a quarter of a GPU's free memory holds (images and activations)."""
    if args.batch:
        return int(args.batch)
    if inputs.identity.get("device") != "cuda":
        return 2000
    import torch

    free, _ = torch.cuda.mem_get_info()
    assert inputs.source is not None  # a live run (the device is not 'recording') reads its images
    per_sample = 4 * int(np.prod(inputs.source.shape)) * 64  # the image and a generous allowance for activations
    return int(min(65536, max(1024, free // 4 // per_sample)))


def resolve_prior(args: argparse.Namespace, inputs: Inputs, fallback: str = "jeffreys", online: bool = False):
    """The prior the user asked for and its identity for the journal: a name, or a meta-learner. 'oracle' is
    resolved per input when the run starts.

    online (certify): 'meta' is the online meta-learner (predictors.OnlineLearner), for any model that returns
    logits, starting from the model's calibrated learner where one exists (--meta, beside the weights, or the
    user's haltfast folder); 'online' is the same without a calibrated learner; 'calibrated' is the calibrated
    learner alone. 'meta' is the default (`fallback` for a recording whose model is not a shipped one: its clean
    logits cannot be recomputed). Without online (triage), 'meta' is the calibrated learner, the default where
    one exists."""
    from ..models import weights_hash
    from ..predictors import MetaLearner
    from ..predictors import OnlineLearner
    from ..predictors import find_meta_learner

    path = args.meta or find_meta_learner(inputs.weights_path, inputs.weights_sha256)
    if args.prior is None:
        logits = inputs.live or inputs.weights_path is not None or getattr(inputs.recording, "logits", None) is not None
        args.prior = "meta" if (online and logits) or path is not None else fallback
    if args.prior == "meta" and not online:
        args.prior = "calibrated"
    if args.prior in ("meta", "online", "calibrated"):
        learner = MetaLearner.load(path, inputs.weights_sha256) if path is not None and args.prior != "online" else None
        if args.prior == "calibrated" and learner is None:
            raise UsageError(
                f"no meta-learner for {inputs.model_name}: run `haltfast calibrate` with the same --model (and "
                f"--weights), pass --meta FILE, or choose --prior "
                + ("meta (the online learner: no calibration)" if online else fallback)
            )
        if not inputs.live:
            inputs.recording = with_clean_logits(inputs)
        calibrated = None if learner is None or path is None else f"calibrated:{weights_hash(path)[:16]}"
        if args.prior == "calibrated":
            return learner, calibrated
        return OnlineLearner(learner), ONLINE_ID + ("" if calibrated is None else f"+{calibrated}")
    if args.prior == "oracle" and inputs.live:
        raise UsageError("--prior oracle is for benchmarks on recorded streams only (it needs --streams)")
    return args.prior, args.prior


ONLINE_ID = "online-v1"  # the online learner's identity in a journal: a run is resumed with the same learner


def with_clean_logits(inputs: Inputs):
    """The recording with its model's clean logits (a meta-learner's features), recomputed as a live run would."""
    from ..recording import recording_logits
    from ..streams import RecordedStreams

    rec = inputs.recording
    if rec is not None and rec.logits is not None:  # recorded with the streams
        return rec
    if inputs.weights_path is None:
        raise UsageError(
            f"the meta-learner needs the clean logits of the recording's model {inputs.model_name}, "
            f"which is not a shipped model; choose --prior jeffreys"
        )
    assert rec is not None and inputs.recording_meta is not None  # a replay: the recording and its metadata
    return RecordedStreams(
        rec.streams,
        rec.num_classes,
        rec.clean_predictions,
        recording_logits(inputs.recording_meta, inputs.weights_path),
    )
