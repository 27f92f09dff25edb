"""Issue 13's end-to-end target: a user's own torchvision-style ResNet (a .py file and a Cohen-style checkpoint)
and a folder of colour images, through `haltfast card`, `certify` (decision and grid mode, Cohen's TSV) and
`calibrate`, and through the Python API; the command line and Python give identical certificates.

The "Certify your own model" section of README.md shows these very commands and snippet:
test_readme_section_is_what_these_tests_run checks that, up to the sizes of the budgets, and runs the snippet.
"""

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from haltfast import Smooth
from haltfast.cli import main
from haltfast.data import open_dataset
from haltfast.models import build_from_factory
from haltfast.models import load_base_model
from haltfast.models import parse_factory_spec
from haltfast.models import weights_hash
from haltfast.predictors import MetaLearner
from haltfast.predictors import OnlineLearner
from haltfast.predictors import user_meta_learner_path

REPO = Path(__file__).resolve().parents[1]

RESNET_SOURCE = '''
"""A torchvision-style ResNet (BasicBlock stages) for 3 x 32 x 32 images, small enough for a test."""

from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=10, width=8):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.avgpool(x).flatten(1))


def resnet():
    return ResNet(BasicBlock, [1, 1], num_classes=10)
'''

MODEL = ["--model", "resnet.py:resnet", "--weights", "checkpoint.pth.tar"]
CARD = ["card", *MODEL, "--sigma", "0.25", "--data", "photos", "--classes", "classes.txt"]
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CERTIFY = ["certify", *MODEL, "--data", "photos", "--skip", "1", "--radius", "0.25", "--out", "results.csv"]
GRID = ["certify", *MODEL, "--data", "photos", "--skip", "1", "--radii", "0,0.25,0.5", "--out", "grid.csv"]
COHEN_TSV = [*CERTIFY[:-2], "--format", "cohen", "--out", "results.tsv"]
CALIBRATE = ["calibrate", *MODEL, "--data", "photos-heldout"]
COMMANDS = (CARD, CERTIFY, GRID, COHEN_TSV, CALIBRATE)

# the budgets of these tests (the section shows the defaults); a tiny model on few images runs in seconds
MAX_SAMPLES = 500
SIZES = {
    "certify": ["--max-samples", str(MAX_SAMPLES), "--quiet"],
    "calibrate": ["--samples", "50", "--tune-max-samples", "1000", "--tune-paths", "200", "--quiet"],
    "card": [],
}
SIZE_OPTIONS = {"--max-samples": 1, "--samples": 1, "--tune-max-samples": 1, "--tune-paths": 1, "--quiet": 0}


def run(command: list[str]) -> None:
    """Run one haltfast command line (in this process) with this file's budgets; it must succeed."""
    assert main([*command, *SIZES[command[0]]]) == 0, command


def write_images(root: Path, per_class: int, seed: int) -> None:
    """Colour 32 x 32 PNGs in three class folders: a random colour, a random gradient and a little noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:32, 0:32]
    for name in ("cat", "dog", "ship"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ramp = cols[..., None] * rng.uniform(-4, 4, 3) + rows[..., None] * rng.uniform(-4, 4, 3)
            pixels = rng.integers(0, 256, 3) + ramp + rng.normal(0, 10, (32, 32, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's folder: resnet.py, its weights (a state dict, and a Cohen-style checkpoint with `module.`
    prefixes), 12 images in photos/ and 60 held-out ones, and the checkpoint's card made by `haltfast card`."""
    root = tmp_path_factory.mktemp("user")
    (root / "resnet.py").write_text(RESNET_SOURCE)
    torch.manual_seed(0)
    model = build_from_factory(parse_factory_spec(f"{root / 'resnet.py'}:resnet"))
    with torch.no_grad():  # stands in for training: a fresh ResNet's output bias outweighs what the image adds
        model.fc.bias.zero_()
    state = model.state_dict()
    torch.save(state, root / "resnet.pt")
    torch.save(
        {"epoch": 90, "arch": "resnet", "state_dict": {f"module.{k}": v for k, v in state.items()}},
        root / "checkpoint.pth.tar",
    )
    write_images(root / "photos", per_class=4, seed=1)
    write_images(root / "photos-heldout", per_class=20, seed=2)
    (root / "classes.txt").write_text("\n".join(CIFAR10) + "\n")  # the model's classes, in index order
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        run(CARD)
    return root


@pytest.fixture
def user(project, tmp_path, monkeypatch):
    """A fresh working folder holding (links to) the project's files, and a fresh haltfast home folder."""
    for entry in project.iterdir():
        (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HALTFAST_HOME", str(tmp_path / "haltfast-home"))
    return tmp_path


def python_certificates(radius=0.25, prior="online", **options) -> list:
    """The Python path: load_base_model, open_dataset, Smooth, certify_many keyed by data set index (with the
    command line's default prior for a model without a calibrated learner: the online meta-learner)."""
    model, card = load_base_model("resnet.py:resnet", "checkpoint.pth.tar")
    source = open_dataset("photos", classes=card["classes"])  # each class folder is its class in the model
    smooth = Smooth(
        model, card["num_classes"], card["sigma"], seed=0, batch_size=2000, weights_sha256=card["weights_sha256"]
    )
    return smooth.certify_many(
        source,
        source.labels,
        method="anytime",
        radius=radius,
        max_samples=MAX_SAMPLES,
        keys=source.indices,
        prior=prior,
        **options,
    )


def assert_same_certificates(table: pd.DataFrame, certs: list) -> None:
    assert table["index"].tolist() == [c.index for c in certs]
    assert table["decision"].tolist() == [c.decision for c in certs]
    assert table["prediction"].tolist() == [c.prediction for c in certs]
    assert table["evaluations"].tolist() == [c.evaluations for c in certs]
    np.testing.assert_array_equal(table["radius"].to_numpy(), [c.radius for c in certs])


def test_card_binds_the_checkpoint(user):
    card = load_base_model("resnet.py:resnet", "checkpoint.pth.tar")[1]
    assert card["verified"] and card["weights_sha256"] == weights_hash(user / "checkpoint.pth.tar")
    assert (card["sigma"], card["num_classes"], tuple(card["input_shape"])) == (0.25, 10, (3, 32, 32))
    # the plain state dict holds the same weights but has no card: refused until one vouches for it
    plain = [*CERTIFY[:3], "--weights", "resnet.pt", *CERTIFY[5:-2], "--sigma", "0.25", "--out", "plain.csv"]
    assert main([*plain, *SIZES["certify"]]) == 2
    run([*plain, "--allow-unverified", "--classes", "classes.txt"])  # no card: the class names come with the run
    run(CERTIFY)
    pd.testing.assert_frame_equal(
        pd.read_csv("plain.csv").drop(columns="seconds"), pd.read_csv("results.csv").drop(columns="seconds")
    )


def test_the_card_command_a_refusal_suggests_runs(user, capsys):
    """Issue 21: the error for weights without a card suggested `haltfast card ... --sigma S`, which then failed
    for want of --input-shape or --data. The suggested command now runs as shown."""
    plain = [*CERTIFY[:3], "--weights", "resnet.pt", *CERTIFY[5:-2], "--sigma", "0.25", "--out", "plain.csv"]
    assert main([*plain, *SIZES["certify"]]) == 2
    suggested = re.search(r"`haltfast (card [^`]*)`", capsys.readouterr().err).group(1)
    assert "--data photos" in suggested and "--sigma 0.25" in suggested
    assert main(shlex.split(suggested)) == 0
    assert Path("resnet.pt.card.json").is_file()


def test_command_line_and_python_give_identical_certificates(user):
    run(CERTIFY)
    certs = python_certificates()
    assert_same_certificates(pd.read_csv("results.csv"), certs)
    assert [c.label for c in certs] == [3] * 4 + [5] * 4 + [8] * 4  # cat, dog, ship: the model's classes
    decisions = {c.decision for c in certs}
    assert "certified" in decisions and decisions - {"certified"}, "the data should give both kinds of rows"


@pytest.mark.slow
def test_grid_mode_on_the_command_line_equals_python(user):
    """Issue 21: one default per mode. Grid mode in Python selected by the clean prediction, on the command line
    by a 100-sample pilot; both now select by the pilot, with its posterior as the prior."""
    run(GRID)
    certs = python_certificates(radius=None, radii=(0.0, 0.25, 0.5), prior=None)  # grid mode's default
    table = pd.read_csv("grid.csv")
    assert_same_certificates(table, certs)
    certified = table[table["decision"] == "certified"]
    assert len(certified) and set(certified["radius"]) <= {0.0, 0.25, 0.5}


def test_cohen_format_is_their_tsv(user):
    run(COHEN_TSV)
    certs = python_certificates()
    assert Path("results.tsv").read_text().splitlines()[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    table = pd.read_csv("results.tsv", sep="\t")
    certified = np.array([c.decision == "certified" for c in certs])
    assert table["idx"].tolist() == [c.index for c in certs]
    assert table["label"].tolist() == [c.label for c in certs]
    assert table["predict"].tolist() == [c.prediction if ok else -1 for c, ok in zip(certs, certified)]
    np.testing.assert_allclose(table["radius"], [c.radius if ok else 0.0 for c, ok in zip(certs, certified)], 5e-3)
    assert table["correct"].tolist() == [int(ok and c.prediction == c.label) for c, ok in zip(certs, certified)]
    assert pd.to_timedelta(table["time"]).notna().all()
    assert certified.any() and not certified.all()


@pytest.mark.slow
def test_calibrate_then_certify_starts_the_online_learner_from_the_calibrated_one(user, capsys):
    run(CERTIFY)  # no calibrated learner yet: the online meta-learner alone
    run(CALIBRATE)
    sha256 = weights_hash("checkpoint.pth.tar")
    learner = MetaLearner.load(user_meta_learner_path(sha256), sha256)
    assert main([*CERTIFY, *SIZES["certify"]]) == 2  # its journal holds the online learner's results alone
    assert "prior: 'online-v1' -> 'online-v1+calibrated:" in capsys.readouterr().err
    run([*CERTIFY[:-1], "meta.csv"])
    header = Path("meta.csv.journal").read_text().splitlines()[0]
    assert '"prior": "online-v1+calibrated:' in header
    assert_same_certificates(pd.read_csv("meta.csv"), python_certificates(prior=OnlineLearner(learner)))


def test_calibrate_refuses_too_few_images_before_drawing_any(user, capsys):
    assert main([*CALIBRATE[:-1], "photos", *SIZES["calibrate"]]) == 2  # 12 images
    assert "at least 25 calibration images, got 12" in capsys.readouterr().err
    assert not Path("haltfast-home").exists()


def readme_section() -> str:
    """The README's own-model section."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^### Certify your own model\n.*?(?=^##+ |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '### Certify your own model' section"
    return match.group(0)


def without_sizes(argv: list[str]) -> list[str]:
    kept, skip = [], 0
    for token in argv:
        if skip:
            skip -= 1
        elif token in SIZE_OPTIONS:
            skip = SIZE_OPTIONS[token]
        else:
            kept.append(token)
    return kept


def test_readme_section_is_what_these_tests_run(user, capsys):
    section = readme_section()
    blocks = re.findall(r"```(bash|python)\n(.*?)```", section, re.DOTALL)
    shown = [
        shlex.split(line, comments=True)[1:]
        for kind, text in blocks
        if kind == "bash"
        for line in text.splitlines()
        if line.startswith("haltfast ")
    ]
    assert sorted(map(without_sizes, shown)) == sorted(map(without_sizes, COMMANDS))
    snippets = [text for kind, text in blocks if kind == "python" and "certify_many" in text]
    assert len(snippets) == 1
    run(CERTIFY)
    namespace: dict = {}
    exec(snippets[0].replace("max_samples=100_000", f"max_samples={MAX_SAMPLES}"), namespace)
    assert_same_certificates(pd.read_csv("results.csv"), namespace["certs"])
    assert f"{namespace['certs'][0].index} {namespace['certs'][0].decision}" in capsys.readouterr().out
