"""Every example in README.md runs as written: its shell commands and its Python blocks.

Shell commands run in README order in one scratch folder (so relative outputs such as runs/demo.csv or
docs/results.md land there, never in the repository), through `haltfast.cli.main`, made small by the
SMALLER table: fewer images, samples and epochs, never another command. A command the harness cannot run
is listed in SKIPPED with the reason; any other README command that cannot be run fails the test.
The Python blocks run in order in one namespace that predefines nothing: the README must define every
name it uses. To try a draft: HALTFAST_README=FILE reads FILE instead of README.md, HALTFAST_README_PYTHON=FILE
takes the Python blocks from FILE.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from haltfast.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = Path(os.environ.get("HALTFAST_README", ROOT / "README.md")).resolve()
PYTHON_SOURCE = Path(os.environ.get("HALTFAST_README_PYTHON", README)).resolve()

# Options capped per command (a value above the cap, or a missing option, becomes the cap). The results
# are checked elsewhere; here every command must run as the README spells it, in seconds.
SMALLER = {
    "certify": {"--max": 3, "--max-samples": 6000, "--n": 500, "--workers": 2},  # grid radius 0.75 needs 5,114
    "record": {"--max": 4, "--n": 2000},
    "calibrate": {"--max": 100, "--samples": 100, "--tune-paths": 200, "--tune-max-samples": 1000},
    "triage": {"--max": 4, "--budget": 20_000},
    # live timing re-runs Cohen at n = 100,000 per image, which needs 100,100-label recordings (minutes)
    "bench": {"--live": 0},
    "train": {"--epochs": 1},
    "predict": {"--max": 3, "--n": 2000},
}
CAPPED_ONLY_IF_GIVEN = {"--workers", "--live"}  # absent, these options' defaults are already small
# Training on Fashion-MNIST takes minutes even for one epoch's check; models made here learn scikit-learn's digits,
# and commands that use them (--model FILE made here) certify digits.
TRAIN_DATA = "digits"

OWN_MODEL = "the own-model section: tests/test_own_model.py builds its ResNet, checkpoint and photos and runs it"
# README commands not run, by their start (after comments are stripped), with the reason.
SKIPPED = {
    "make test": "runs this test suite: it would recurse",
    "pip install": "installs packages; the test environment has them",
    "haltfast certify --skip 1 --ray-address auto": "needs an existing Ray cluster (the --workers line starts one)",
    "haltfast card --model resnet.py:resnet": OWN_MODEL,
    "haltfast certify --model resnet.py:resnet": OWN_MODEL,
    "haltfast calibrate --model resnet.py:resnet": OWN_MODEL,
}
# Python blocks not run here, by a line they contain, with the reason.
PYTHON_SKIPPED = {'load_base_model("resnet.py:resnet"': OWN_MODEL}
# `make demo` installs, then runs the Makefile's demo recipe: that recipe's haltfast command is run instead.
MAKEFILE = ROOT / "Makefile"
# Files the README's commands read from the repository; copied into the scratch folder.
INPUTS = ("docs/triage-example.toml", "examples/resnet20.py")


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the ```language fenced blocks of a Markdown text, in order."""
    return re.findall(rf"^```{language}[ \t]*\n(.*?)^```", text, flags=re.M | re.S)


def expand_braces(word: str) -> list[str]:
    """Bash brace expansion of one word with one {a,b,...} group: x{1,2}y -> x1y x2y."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    head, tail = word[: match.start()], word[match.end() :]
    return [w for part in match.group(1).split(",") for w in expand_braces(head + part + tail)]


def shell_commands(text: str) -> list[list[str]]:
    """Each command line of the ```bash blocks as words: comments dropped, braces expanded."""
    lines = []
    for block in code_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = [w for word in shlex.split(line, comments=True) for w in expand_braces(word)]
            if words:
                lines.append(words)
    return lines


def makefile_recipe(target: str) -> list[str]:
    """The haltfast command of a Makefile target's recipe, as words."""
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", MAKEFILE.read_text(), flags=re.M).group(1)
    (line,) = [ln for ln in recipe.splitlines() if "/haltfast " in ln]
    words = shlex.split(line)
    return ["haltfast", *words[1:]]


def skip_reason(words: list[str]) -> str | None:
    line = " ".join(words)
    return next((why for start, why in SKIPPED.items() if line.startswith(start)), None)


def set_option(words: list[str], name: str, value) -> list[str]:
    if name in words:
        at = words.index(name) + 1
        return [*words[:at], str(value), *words[at + 1 :]]
    return [*words, name, str(value)]


def option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def smaller(words: list[str], made_here: set[str]) -> list[str]:
    """The README command with the SMALLER caps applied (and digits for models trained here)."""
    command, args = words[1], words[2:]
    for name, cap in SMALLER.get(command, {}).items():
        given = option(args, name)
        if (given is None and name not in CAPPED_ONLY_IF_GIVEN) or (given is not None and float(given) > cap):
            args = set_option(args, name, cap)
    made = option(args, "--model") in made_here or option(args, "--weights") in made_here
    trained_here = made and option(args, "--data") is None
    if command == "train" or trained_here:
        args = set_option(args, "--data", TRAIN_DATA)
    return [command, *args]


def outputs(args: list[str]) -> list[str]:
    return [v for name in ("--out", "--summary-json", "--plots") if (v := option(args, name)) is not None]


def readme_commands() -> list:
    commands = []
    for words in shell_commands(README.read_text()):
        shown = " ".join(words)
        if words[:2] == ["make", "demo"]:
            words = makefile_recipe("demo")
            shown = f"make demo: {' '.join(words)}"
        reason = skip_reason(words)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        commands.append(pytest.param(words, id=shown, marks=marks))
    return commands


def save_elsewhere_trained_resnet(path: Path) -> None:
    """The README's weights "trained elsewhere": a state dict of examples/resnet20.py's model, as torch.save
    writes one (untrained: the card only needs weights that fit)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("readme_resnet20", ROOT / "examples" / "resnet20.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    torch.save(module.resnet20().state_dict(), path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits_model):
    """A scratch folder holding what the README assumes a user has: their own model at path/to/model.pt, weights
    of the example ResNet-20 trained elsewhere, the recordings of the other sigmas ("once per sigma"), and the
    repository files the commands read."""
    root = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HALTFAST_HOME", str(root / "haltfast-home"))  # calibrate's default output, not the user's
        own = root / "path" / "to"
        own.mkdir(parents=True)
        shutil.copy(digits_model, own / "model.pt")
        shutil.copy(digits_model.with_suffix(".json"), own / "model.json")
        for name in INPUTS:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, root / name)
        save_elsewhere_trained_resnet(root / "resnet20-trained-elsewhere.pt")
        for sigma in ("0.5", "1.0"):
            record = ["haltfast", "record", "--sigma", sigma, "--skip", "20", "--quiet"]
            out = f"runs/streams/fashion-mnist-sigma{sigma}-seed0"
            assert main(smaller([*record, "--out", out], set())) == 0
        yield root


@pytest.mark.slow
@pytest.mark.parametrize("words", readme_commands())
def test_readme_command_runs(words, workspace, capsys):
    """Each README command (made small) exits 0 and writes the outputs it names; run in README order, since
    later commands use what earlier ones made (as they do for a user)."""
    trained = {option(w, "--out") for w in shell_commands(README.read_text()) if w[:2] == ["haltfast", "train"]}
    args = smaller(words, {"path/to/model.pt", *trained})
    status = main(args)
    captured = capsys.readouterr()
    assert status == 0, f"haltfast {shlex.join(args)} exited {status}:\n{captured.err[-2000:]}"
    for path in outputs(args):
        assert Path(path).exists(), f"haltfast {shlex.join(args)} did not write {path}"


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    """Every README shell command is a haltfast command (run above) or in SKIPPED; SKIPPED names only real ones."""
    commands = [p.values[0] for p in readme_commands()]
    assert commands, "README.md has no ```bash command"
    for words in commands:
        assert words[0] == "haltfast" or skip_reason(words), f"{shlex.join(words)!r} is neither run nor in SKIPPED"
    lines = [" ".join(w) for w in shell_commands(README.read_text())]
    for start in SKIPPED:
        assert any(line.startswith(start) for line in lines), f"SKIPPED lists {start!r}, which the README lacks"


def test_shell_commands_are_read_as_bash_would_split_them():
    """Comments dropped, continuation lines joined, {a,b} expanded, other blocks ignored."""
    text = (
        "```bash\nhaltfast bench --streams s{0.25,0.5}-x --out 'a b.md'   # once\n"
        "haltfast certify \\\n  --max 3\n# only a comment\n```\n"
        "```python\nhaltfast = 1\n```\n"
    )
    assert shell_commands(text) == [
        ["haltfast", "bench", "--streams", "s0.25-x", "s0.5-x", "--out", "a b.md"],
        ["haltfast", "certify", "--max", "3"],
    ]
    small = ["certify", "--max", "3", "--workers", "2", "--max-samples", "6000", "--n", "500"]
    assert smaller(["haltfast", "certify", "--max", "100", "--workers", "8"], set()) == small
    assert smaller(["haltfast", "train", "--out", "m.pt"], set()) == [
        "train",
        "--out",
        "m.pt",
        "--epochs",
        "1",
        "--data",
        "digits",
    ]


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(workspace):
    """The README's Python blocks run in order in one namespace: no name they use is left undefined."""
    blocks = code_blocks(PYTHON_SOURCE.read_text(), "python")
    assert blocks, f"{PYTHON_SOURCE} has no ```python block"
    namespace: dict = {"__name__": "readme"}
    for number, block in enumerate(blocks, 1):
        if any(line in block for line in PYTHON_SKIPPED):
            continue
        exec(compile(block, f"{PYTHON_SOURCE.name}, python block {number}", "exec"), namespace)
