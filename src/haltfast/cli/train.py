"""`haltfast train`: noise-augmented training of the built-in StrideCNN or any model factory on any data set.

Its options are in parsers/train.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..errors import UsageError
from .inputs import data_split


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..data import open_dataset
    from ..files import check_writable
    from ..models import card_path
    from ..models import resolve_device
    from ..models import user_card_path
    from ..models.training import checkpoint_path

    if args.model is None and args.normalize is not None:
        raise UsageError("--normalize needs --model: the built-in StrideCNN trains on [0, 1] pixels as they are")
    check_writable(args.out, "weights file")
    check_writable(user_card_path(args.out) if args.model else card_path(args.out), "model card")
    check_writable(checkpoint_path(args.out), "training checkpoint")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    recipe = training_recipe(args)
    split = data_split(args)
    source = open_dataset(
        args.data, split, args.data_dir, resize=args.resize, center_crop=args.center_crop, layout=args.layout
    )
    model, inner, spec = build_model(args, source)
    identity = {"model": spec, "data": str(args.data), "split": source.split, "data_sha256": source.fingerprint()}
    if args.model is not None:
        identity["normalize"] = args.normalize
    log = lambda line: print(line, file=sys.stderr, flush=True)
    log(
        f"training {spec} on {len(source):,} {args.data} images ({source.split}), sigma={args.sigma:g}, "
        f"{recipe.optimizer} lr {recipe.lr:g} {recipe.schedule}, {recipe.epochs} epochs of batch "
        f"{recipe.batch_size}, {recipe.holdout:g} held out, on {device}"
    )
    from ..models.training import train_classifier

    start, cpu_start = time.perf_counter(), time.process_time()
    result = train_classifier(
        model,
        source,
        args.sigma,
        recipe,
        seed=args.seed,
        device=device,
        checkpoint=checkpoint_path(args.out),
        identity=identity,
        progress=not args.quiet,
        log=log,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.to("cpu").to(memory_format=torch.contiguous_format)
    card = training_card(args, source, model, result, recipe, seconds)
    card["train_cpu_seconds"] = round(cpu_seconds, 1)  # all threads of this process: wall time if it had the cores
    if args.model is None:
        from ..models import save_model

        card = save_model(inner, args.out, card)
        card_file = card_path(args.out)
    else:
        card_file = save_factory_model(args, inner, card, source)
    checkpoint_path(args.out).unlink(missing_ok=True)
    accuracy = ", ".join(
        f"{what} {card[key]:.4f}"
        for what, key in (("clean test accuracy", "clean_test_accuracy"), ("noisy", "noisy_test_accuracy"))
        if card.get(key) is not None
    )
    print(
        f"saved {args.out} and its card {card_file}: {accuracy or 'no test split'}, "
        f"{card['samples_per_second']:,} samples/s; {seconds / 60:.1f} min"
    )
    return 0


def training_recipe(args: argparse.Namespace):
    """The recipe of the model's kind, with the options given."""
    from ..models.training import COHEN_RECIPE
    from ..models.training import STRIDE_CNN_RECIPE
    from ..models.training import with_recipe

    return with_recipe(
        STRIDE_CNN_RECIPE if args.model is None else COHEN_RECIPE,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        epochs=args.epochs,
        batch_size=args.batch,
        holdout=args.holdout,
        channels_last=args.channels_last,
    )


def build_model(args: argparse.Namespace, source):
    """(the module to train, the module whose weights are saved, its spec): the StrideCNN or the user's factory,
    initialized from the seed, behind the normalization layer if one is asked for; checked on the data's shape."""
    import torch

    from ..models import StrideCNN
    from ..models import build_from_factory
    from ..models import infer_num_classes
    from ..models import parse_factory_spec
    from ..models.normalize import as_normalization
    from ..models.normalize import with_normalization

    channels, height, width = source.shape
    torch.manual_seed(args.seed)
    if args.model is None:
        if height != width:
            raise DataError(f"the built-in StrideCNN takes square images; {args.data} has {height}x{width}")
        cnn = StrideCNN(channels, height, source.num_classes, args.width)
        return cnn, cnn, "stride-cnn"
    factory = parse_factory_spec(args.model)
    if factory is None:
        raise UsageError(
            f"--model {args.model}: name the architecture as path/to/file.py:factory or package.module:factory "
            f"(a function that builds the untrained nn.Module)"
        )
    inner = build_from_factory(factory)
    model = with_normalization(inner, as_normalization(args.normalize))
    classes = infer_num_classes(model, source.shape)
    if classes < source.num_classes:
        raise DataError(
            f"the model {args.model} returns {classes} logits but the data's labels go up to "
            f"{source.num_classes - 1}: build it with num_classes={source.num_classes}"
        )
    return model, inner, str(args.model)


def training_card(args, source, model, result, recipe, seconds: float) -> dict:
    """What the card records about the training: data, recipe, history, accuracies and throughput."""
    import torch

    from ..cli.commands import command_line
    from ..data import dataset_splits
    from ..models import measure_throughput
    from ..models import noisy_accuracy

    last = result.history[-1]
    card: dict = {
        "data": {
            "name": str(args.data),
            "train_split": f"{source.split} ({len(source) - len(result.heldout):,} images)",
            "heldout": f"{len(result.heldout):,} images of the {source.split} split (seed {args.seed})",
        },
        "sigma": args.sigma,
        "epochs": recipe.epochs,
        "seed": args.seed,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "recipe": {k: getattr(recipe, k) for k in recipe.__dataclass_fields__},
        "train_seconds": round(seconds, 1),
        "heldout_clean_accuracy": last.heldout_clean_accuracy,
        "heldout_noisy_accuracy": last.heldout_noisy_accuracy,
        "history": [
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in vars(record).items()}
            for record in result.history
        ],
    }
    if str(args.data) in ("fashion-mnist", "digits") and source.split == "train":
        card["data"]["calibration_split"] = "calibration split (held out)"
    if "test" in dataset_splits(args.data) and source.split != "test":
        from ..data import open_dataset

        test_source = open_dataset(args.data, "test", args.data_dir, resize=args.resize, center_crop=args.center_crop)
        images, labels = test_source.load(np.arange(len(test_source))), np.asarray(test_source.labels)
        card["data"]["test_split"] = f"test ({len(labels):,} images)"
        card["clean_test_accuracy"] = noisy_accuracy(model, images, labels, 0.0)
        card["noisy_test_accuracy"] = noisy_accuracy(model, images, labels, args.sigma, seed=1)
    card["samples_per_second"] = round(measure_throughput(model.eval(), source.shape))
    card["throughput_setting"] = f"batch 2000, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU"
    card["command"] = command_line(args)
    return card


def save_factory_model(args, inner, card: dict, source) -> Path:
    """Write the factory model's state dict to --out and the card that vouches for it beside (OUT.card.json)."""
    import torch

    from ..files import atomic_write
    from ..models import infer_num_classes
    from ..models import user_card_path
    from ..models import weights_hash
    from ..models import write_model_card
    from ..models.cards import CARD_VERSION
    from ..models.normalize import as_normalization

    state = {name: value.detach().cpu().contiguous() for name, value in inner.state_dict().items()}
    num_classes = infer_num_classes(inner, source.shape)
    atomic_write(args.out, lambda tmp: torch.save(state, tmp))
    normalization = as_normalization(args.normalize)
    user_card = {
        "haltfast_card": CARD_VERSION,
        "format": "factory",
        "model_spec": str(args.model),
        "weights_file": Path(args.out).name,
        "weights_sha256": weights_hash(args.out),
        "normalize": normalization.to_json() if normalization else None,
        **card,
        "num_classes": num_classes,
        # the model's class i is the training data's label i: named classes (image folders) name its outputs
        "classes": list(source.classes) if source.classes and len(source.classes) == num_classes else None,
        "input_shape": [int(s) for s in source.shape],
        "torch": torch.__version__,
    }
    return write_model_card(user_card_path(args.out), user_card)
