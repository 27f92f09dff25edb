"""Loading any PyTorch model: TorchScript, factory + weights (state dict, checkpoint, safetensors), normalization,
model cards and their verification, devices and precision; and every bad input as one clear error.

The models are a 2-layer CNN (a convolution with batch norm, then a linear layer) defined in a .py file that
each test writes on the fly.
"""

import argparse
import json
import pickle
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch import nn

from haltfast.errors import HaltfastError
from haltfast.models import NORMALIZE_PRESETS
from haltfast.models import Normalization
from haltfast.models import NormalizeLayer
from haltfast.models import StrideCNN
from haltfast.models import build_from_factory
from haltfast.models import infer_num_classes
from haltfast.models import load_base_model
from haltfast.models import load_model
from haltfast.models import make_card
from haltfast.models import parse_factory_spec
from haltfast.models import parse_normalize
from haltfast.models import prepare_model
from haltfast.models import resolve_device
from haltfast.models import resolve_dtype
from haltfast.models import save_model
from haltfast.models import shipped_model_path
from haltfast.models import user_card_path
from haltfast.models import weights_hash
from haltfast.models.weight_files import state_dict_sha256

SHAPE = (3, 8, 8)
FACTORY_SOURCE = """
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, channels=3, num_classes=5):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def make():
    return TinyNet()


def make_wide():
    return TinyNet(num_classes=7)


def broken():
    raise ValueError("no such depth: 999")


def not_a_model():
    return {"fc": 1}


def needs_args(depth):
    return TinyNet()


def feature_map():
    return nn.Conv2d(3, 2, 3)


def one_logit():
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 1))
"""


@pytest.fixture
def nets(tmp_path):
    """The factory file, and a TinyNet whose weights and batch-norm statistics differ from a fresh one's."""
    path = tmp_path / "tinynet.py"
    path.write_text(FACTORY_SOURCE)
    torch.manual_seed(1234)
    model = build_from_factory(parse_factory_spec(f"{path}:make"))
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return path, model.eval()


def _inputs(seed=0, n=6):
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


def _logits(model, x):
    with torch.inference_mode():
        return model(x)


def _save_torchscript(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), path)
    return path


def _save_weights(model, path, how):
    state = model.state_dict()
    if how == "state_dict":
        torch.save(state, path)
    elif how == "cohen-checkpoint":  # DataParallel prefixes, optimizer state and epoch beside the weights
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(_inputs()).sum().backward()
        optimizer.step()
        torch.save(
            {
                "epoch": 90,
                "arch": "tinynet",
                "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": optimizer.state_dict(),
            },
            path,
        )
    elif how == "cohen-normalized":  # Cohen et al.'s Sequential(NormalizeLayer, DataParallel(model))
        torch.save({"arch": "tinynet", "state_dict": {f"1.module.{k}": v for k, v in state.items()}}, path)
    elif how == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


# ---------------------------------------------------------------- formats that load, logits identical


def test_torchscript_round_trip_gives_identical_logits(nets, tmp_path):
    _, original = nets
    ts = _save_torchscript(original, tmp_path / "tiny.pt")
    make_card(ts, input_shape=SHAPE, sigma=0.25, data="toy")
    model, card = load_base_model(ts)
    x = _inputs()
    assert torch.equal(_logits(model, x), _logits(original, x))
    assert card["format"] == "torchscript" and card["verified"] and card["num_classes"] == 5
    assert card["weights_sha256"] == weights_hash(ts) and card["sigma"] == 0.25


@pytest.mark.parametrize(
    "how, name",
    [
        ("state_dict", "w.pt"),
        ("cohen-checkpoint", "ckpt.pth.tar"),
        ("cohen-normalized", "ckpt.pth"),
        ("safetensors", "w.safetensors"),
    ],
)
def test_factory_with_weights_gives_identical_logits(nets, tmp_path, how, name):
    path, original = nets
    weights = _save_weights(original, tmp_path / name, how)
    spec = f"{path}:make"
    make_card(spec, weights, input_shape=SHAPE)
    model, card = load_base_model(spec, weights)
    x = _inputs()
    expected = _logits(original, x)
    assert torch.equal(_logits(model, x), expected)
    assert not torch.equal(_logits(build_from_factory(parse_factory_spec(spec)), x), expected)  # weights matter
    assert card["format"] == "factory" and card["verified"] and card["weights_sha256"] == weights_hash(weights)
    assert card["card_file"] == str(tmp_path / f"{name}.card.json")


def test_module_factory_and_safetensors_detected_by_content(nets, tmp_path, monkeypatch):
    _path, original = nets
    monkeypatch.chdir(tmp_path)  # package.module:factory resolves from the working directory
    weights = _save_weights(original, tmp_path / "weights.bin", "safetensors")
    model, card = load_base_model("tinynet:make", weights, allow_unverified=True)
    assert torch.equal(_logits(model, _inputs()), _logits(original, _inputs()))
    assert not card["verified"] and card["card_file"] is None


def test_shipped_and_haltfast_models_load_as_before():
    model, card = load_base_model("fashion-mnist-sigma0.25")
    reference, _ = load_model(shipped_model_path(0.25))
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(_logits(model, x), _logits(reference, x))
    assert card["format"] == "haltfast" and card["verified"] and card["input_shape"] == [1, 28, 28]
    _, by_sigma = load_base_model(None, sigma=0.5)
    assert by_sigma["sigma"] == 0.5 and by_sigma["weights_sha256"] == weights_hash(shipped_model_path(0.5))


# ---------------------------------------------------------------- normalization


def test_normalize_layer_equals_manual_normalization(nets):
    _, original = nets
    norm = NORMALIZE_PRESETS["cifar10"]
    x = _inputs()
    mean, std = torch.tensor(norm.mean).view(3, 1, 1), torch.tensor(norm.std).view(3, 1, 1)
    wrapped = nn.Sequential(NormalizeLayer(norm.mean, norm.std), original)
    assert torch.allclose(_logits(wrapped, x), _logits(original, (x - mean) / std), atol=0, rtol=0)
    assert NormalizeLayer(norm.mean, norm.std).state_dict() == {}  # Cohen et al.'s layer has no state either
    with pytest.raises(ValueError, match="3 channels"):
        NormalizeLayer(norm.mean, norm.std)(torch.rand(2, 1, 8, 8))


def test_normalize_syntax():
    assert parse_normalize("CIFAR10") == NORMALIZE_PRESETS["cifar10"]
    assert parse_normalize("imagenet").std == (0.229, 0.224, 0.225)
    given = parse_normalize("0.4914,0.4822,0.4465/0.2470,0.2435,0.2616")
    assert given == parse_normalize("0.4914,0.4822,0.4465:0.2470,0.2435,0.2616")
    assert given == Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    assert parse_normalize("0.5/0.25") == Normalization(0.5, 0.25)
    for bad in ("0.5", "1,2/3", "a/b", "0.5/0", "0.5/-1", "1/2/3", "nan/1", "cifar"):
        with pytest.raises(HaltfastError, match="normaliz"):
            parse_normalize(bad)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(1e-3, 10)), min_size=1, max_size=4))
def test_normalize_text_round_trip(pairs):
    norm = Normalization(tuple(m for m, _ in pairs), tuple(s for _, s in pairs))
    text = ",".join(map(repr, norm.mean)) + "/" + ",".join(map(repr, norm.std))
    assert parse_normalize(text) == norm


def test_card_records_normalize_and_loading_applies_it(nets, tmp_path):
    path, original = nets
    weights = _save_weights(original, tmp_path / "w.pt", "state_dict")
    spec = f"{path}:make"
    _, card = make_card(spec, weights, input_shape=SHAPE, normalize="cifar10")
    assert card["normalize"] == NORMALIZE_PRESETS["cifar10"].to_json()
    model, loaded = load_base_model(spec, weights)  # no normalize given: the card's applies
    reference = nn.Sequential(NormalizeLayer(*_pair(NORMALIZE_PRESETS["cifar10"])), original)
    assert torch.equal(_logits(model, _inputs()), _logits(reference, _inputs()))
    assert loaded["normalize"] == card["normalize"]
    with pytest.raises(HaltfastError, match="differs from .* recorded in w.pt.card.json"):
        load_base_model(spec, weights, normalize="imagenet")
    make_card(spec, weights, input_shape=SHAPE, overwrite=True)  # a card for the model without normalization
    assert load_base_model(spec, weights)[1]["normalize"] is None
    with pytest.raises(HaltfastError, match="differs from none recorded in w.pt.card.json"):
        load_base_model(spec, weights, normalize="cifar10")


def _pair(norm):
    return norm.mean, norm.std


# ---------------------------------------------------------------- cards and verification (issue 16)


def test_weights_without_a_card_load_only_with_the_explicit_flag(nets, tmp_path):
    path, original = nets
    weights = _save_weights(original, tmp_path / "w.pt", "state_dict")
    spec = f"{path}:make"
    with pytest.raises(
        HaltfastError,
        match=rf"no model card .*haltfast card --model {spec} --weights .*"
        rf"--sigma S.*--allow-unverified",
    ):
        load_base_model(spec, weights)
    _model, card = load_base_model(spec, weights, allow_unverified=True)
    assert not card["verified"] and card["weights_sha256"] == weights_hash(weights)
    ts = _save_torchscript(original, tmp_path / "tiny.ts")
    with pytest.raises(HaltfastError, match=r"no model card .*haltfast card --model .*tiny.ts --sigma S"):
        load_base_model(ts)
    with pytest.raises(HaltfastError, match="needs its weights.*--allow-unverified"):
        load_base_model(spec)
    fresh, card = load_base_model(spec, allow_unverified=True)  # the factory's own weights, hashed
    assert card["weights_sha256"] == state_dict_sha256(fresh) and card["weights_path"] is None


def test_a_card_that_does_not_match_its_weights_is_always_refused(nets, tmp_path):
    path, original = nets
    weights = _save_weights(original, tmp_path / "w.pt", "state_dict")
    spec = f"{path}:make"
    card_file, card = make_card(spec, weights, input_shape=SHAPE, sigma=0.5, data="toy", command="haltfast card")
    assert card_file == user_card_path(weights) == tmp_path / "w.pt.card.json"
    stored = json.loads(card_file.read_text())
    assert stored == card and stored["num_classes"] == 5 and stored["input_shape"] == list(SHAPE)
    assert stored["model_spec"] == spec and stored["data"] == {"name": "toy"} and stored["sigma"] == 0.5
    with pytest.raises(HaltfastError, match="already exists"):
        make_card(spec, weights, input_shape=SHAPE)
    torch.save({k: v + 1 for k, v in original.state_dict().items()}, weights)  # replaced weights
    for allow in (False, True):
        with pytest.raises(HaltfastError, match="does not match its model card w.pt.card.json"):
            load_base_model(spec, weights, allow_unverified=allow)
    make_card(spec, weights, input_shape=SHAPE, overwrite=True)
    assert load_base_model(spec, weights)[1]["verified"]


def test_haltfast_card_without_hash_needs_the_flag(tmp_path):
    path = tmp_path / "own.pt"
    card = save_model(StrideCNN(1, 8, 10), path, {"sigma": 0.25})
    assert load_base_model(path)[1]["verified"]
    card.pop("weights_sha256")
    path.with_suffix(".json").write_text(json.dumps(card))
    for load in (load_model, load_base_model):
        with pytest.raises(HaltfastError, match="records no weights_sha256.*--allow-unverified"):
            load(path)
    assert not load_base_model(path, allow_unverified=True)[1]["verified"]
    assert not load_model(path, allow_unverified=True)[1]["verified"]


# ---------------------------------------------------------------- bad inputs: one clear error each


def test_weights_that_do_not_fit_name_missing_and_unexpected_keys(nets, tmp_path):
    path, original = nets
    renamed = {k.replace("fc.", "head.").replace("bn.", "norm."): v for k, v in original.state_dict().items()}
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(HaltfastError) as info:
        load_base_model(f"{path}:make", tmp_path / "renamed.pt", allow_unverified=True)
    message = str(info.value)
    # batch norm fills in a missing num_batches_tracked itself: 6 of the model's 7 keys are reported missing
    assert (
        "6 keys missing from the weights (bn.weight, bn.bias, bn.running_mean, bn.running_var, fc.weight, ... "
        "(6 in all)); 7 keys unexpected in the weights (norm.weight, norm.bias" in message
    )
    wide = build_from_factory(parse_factory_spec(f"{path}:make_wide"))
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(HaltfastError, match=r"does not fit the model of .*make: size mismatch for fc.weight"):
        load_base_model(f"{path}:make", tmp_path / "wide.pt", allow_unverified=True)


@pytest.mark.parametrize(
    "attribute, match",
    [
        ("broken", r"the model factory .*:broken raised ValueError: no such depth: 999$"),
        ("not_a_model", r"returned a dict, not a torch.nn.Module"),
        ("needs_args", r"requires arguments \(depth\); a factory is called with none"),
        ("nope", r"has no attribute 'nope' \(it defines: .*make"),
        ("TinyNet", None),  # a class works as its own factory
    ],
)
def test_factory_errors_are_one_message(nets, tmp_path, attribute, match):
    path, original = nets
    weights = _save_weights(original, tmp_path / "w.pt", "state_dict")
    if match is None:
        assert torch.equal(
            _logits(load_base_model(f"{path}:{attribute}", weights, allow_unverified=True)[0], _inputs()),
            _logits(original, _inputs()),
        )
        return
    with pytest.raises(HaltfastError, match=match) as info:
        load_base_model(f"{path}:{attribute}", weights, allow_unverified=True)
    error = info.value  # one message: no chained traceback
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_factory_spec_errors(nets, tmp_path):
    path, original = nets
    weights = _save_weights(original, tmp_path / "w.pt", "state_dict")
    (tmp_path / "bad_import.py").write_text("import no_such_dependency_xyz\n")
    for spec, match in [
        (f"{tmp_path}/missing.py:make", "model factory file .*missing.py not found"),
        ("no_such_package_xyz.nets:make", "module 'no_such_package_xyz.nets' is not importable"),
        (
            f"{tmp_path}/bad_import.py:make",
            (
                "importing the model factory file .* failed: ModuleNotFoundError: No module "
                "named 'no_such_dependency_xyz'"
            ),
        ),
    ]:
        with pytest.raises(HaltfastError, match=match):
            load_base_model(spec, weights, allow_unverified=True)
    with pytest.raises(HaltfastError, match="--weights needs the architecture"):
        load_base_model(weights, weights)
    with pytest.raises(HaltfastError, match="holds weights but not the architecture: pass --model file.py:factory"):
        load_base_model(weights)
    for spec in (str(path), f"{path}:make()"):
        with pytest.raises(HaltfastError, match="name the model factory as path/to/file.py:function"):
            load_base_model(spec)
    assert parse_factory_spec("C:/models/x.pt") is None and parse_factory_spec("runs:2/model.pt") is None
    assert str(parse_factory_spec("pkg.mod:Net.create")) == "pkg.mod:Net.create"


class _CreatesAFile:
    """Unpickling this calls open(marker, 'w'): a file appears if the loader runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_that_would_run_code_are_refused_before_anything_runs(nets, tmp_path):
    path, original = nets
    spec = f"{path}:make"
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"fc.weight": _CreatesAFile(marker)}, evil)
    with pytest.raises(
        HaltfastError,
        match=r"refusing to load .*\((io|builtins).open\) in entry 'fc.weight', which "
        r"could run code.*nothing was run[^;]*$",
    ):
        load_base_model(spec, evil, allow_unverified=True)
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps({"x": _CreatesAFile(marker)}, protocol=2))
    with pytest.raises(HaltfastError, match="refusing to load .*could run code.*nothing was run"):
        load_base_model(spec, tmp_path / "legacy.pt", allow_unverified=True)
    assert not marker.exists()

    whole = tmp_path / "whole.pt"
    torch.save(original, whole)
    expected = (
        r"pickled model object \(haltfast_factory_\w+\.TinyNet\), which could run code.*nothing was run. "
        r"Save model.state_dict\(\) and pass --model file.py:factory --weights"
    )
    for args in ((whole,), (spec, whole)):
        with pytest.raises(HaltfastError, match=expected):
            load_base_model(*args, allow_unverified=True)

    checkpoint = tmp_path / "ckpt.pth"
    torch.save({"arch": "tinynet", "args": argparse.Namespace(lr=0.1), "state_dict": original.state_dict()}, checkpoint)
    with pytest.raises(
        HaltfastError,
        match=r"\(argparse.Namespace\) in entry 'args'.*torch.save\(checkpoint\["
        r"'state_dict'\]",
    ):
        load_base_model(spec, checkpoint, allow_unverified=True)
    with pytest.raises(HaltfastError, match="pickled model object .* in entry 'model'"):
        torch.save({"epoch": 1, "model": original}, checkpoint)
        load_base_model(spec, checkpoint, allow_unverified=True)


def test_corrupt_and_truncated_files(nets, tmp_path):
    path, original = nets
    spec = f"{path}:make"
    good = {
        "w.pt": _save_weights(original, tmp_path / "w.pt", "state_dict"),
        "w.safetensors": _save_weights(original, tmp_path / "w.safetensors", "safetensors"),
    }
    for name, file in good.items():
        for cut in (200, len(file.read_bytes()) - 50):
            bad = tmp_path / f"cut-{cut}-{name}"
            bad.write_bytes(file.read_bytes()[:cut])
            with pytest.raises(HaltfastError, match="corrupt or truncated"):
                load_base_model(spec, bad, allow_unverified=True)
    ts = _save_torchscript(original, tmp_path / "tiny.pt")
    (tmp_path / "cut.pt").write_bytes(ts.read_bytes()[:-100])
    with pytest.raises(HaltfastError, match="corrupt or truncated"):
        load_base_model(tmp_path / "cut.pt", allow_unverified=True)
    with pytest.raises(HaltfastError, match="is a TorchScript file: pass it alone"):
        load_base_model(spec, ts, allow_unverified=True)
    torch.save({"epoch": 3, "best": 0.9}, tmp_path / "nostate.pt")
    with pytest.raises(HaltfastError, match="entries 'epoch', 'best': neither a state dict"):
        load_base_model(spec, tmp_path / "nostate.pt", allow_unverified=True)
    with pytest.raises(HaltfastError, match="weights file .*absent.pt not found"):
        load_base_model(spec, tmp_path / "absent.pt")


# ---------------------------------------------------------------- classes, devices, precision


def test_infer_num_classes(nets, tmp_path):
    path, original = nets
    assert infer_num_classes(original, SHAPE) == 5
    with pytest.raises(HaltfastError, match=r"fails on a zero batch of shape \(2, 1, 8, 8\): RuntimeError"):
        infer_num_classes(original, (1, 8, 8))
    for attribute, match in (
        ("feature_map", r"tensor of shape \(2, 2, 6, 6\).*\(N, num_classes\)"),
        ("one_logit", "1 logit"),
    ):
        with pytest.raises(HaltfastError, match=match):
            infer_num_classes(build_from_factory(parse_factory_spec(f"{path}:{attribute}")), SHAPE)
    with pytest.raises(HaltfastError, match="input shape"):
        infer_num_classes(original, (3, 0, 8))


def test_prepare_model_keeps_float32_logits_and_casts_precision(nets, tmp_path):
    _, original = nets
    x = _inputs(n=32)
    expected = _logits(original, x)
    same = prepare_model(original, "cpu", "float32")
    assert torch.equal(_logits(same, x), expected)
    ts = load_base_model(_save_torchscript(original, tmp_path / "t.pt"), allow_unverified=True)[0]
    for model in (original, ts):
        for dtype in ("bfloat16", "fp16"):
            reduced = prepare_model(model, "cpu", dtype)
            out = _logits(reduced, x)  # float32 inputs are cast inside
            assert out.dtype == torch.float32 and out.shape == expected.shape
            assert torch.allclose(out, expected, atol=0.1) and not torch.equal(out, expected)


def test_devices_and_dtypes():
    if not torch.cuda.is_available():
        with pytest.raises(HaltfastError, match="no CUDA GPU is available"):
            resolve_device("cuda")
        with pytest.raises(HaltfastError, match="no CUDA GPU"):
            prepare_model(nn.Linear(2, 2), "cuda:0")
        assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(HaltfastError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype(torch.float16) is torch.float16
    for bad in ("int8", torch.float64):
        with pytest.raises(HaltfastError, match="unsupported dtype"):
            resolve_dtype(bad)
