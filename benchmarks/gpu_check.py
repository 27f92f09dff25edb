"""One GPU throughput check (issue 20): a ResNet-110-size model on 32 x 32 inputs, raw rate against end to end.

    python benchmarks/gpu_check.py --device cuda --out gpu-check.md          # about 3-5 minutes on one GPU
    python benchmarks/gpu_check.py --device cpu --inputs 4 --raw-batches 2 --batch 256   # a smoke test anywhere

The model is Cohen et al.'s CIFAR-10 ResNet-110 shape (3 stages of 18 basic blocks, 16/32/64 channels, 1.7M
parameters), random weights with the classifier's bias zeroed, on synthetic colour images; what is measured is
speed, not accuracy. Raw rate: full batches of noisy copies of an input, noise from one torch.randn call, forward
and argmax. End to end: the anytime certifier (decision mode at r = 0.5 and grid mode 0.25/0.5/0.75, --inputs
inputs, cap --max-samples) with its labels from the model in this process and, with --ray, from a Ray pool of one
worker per GPU (the engine in this process, as `haltfast certify --workers` runs it). Every end-to-end run is
paired with a raw measurement just before it; the ratio is end-to-end evaluations/s over the raw rate.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from haltfast.distributed import RayPool
from haltfast.distributed import WorkerRecipe
from haltfast.distributed import given
from haltfast.methods import run_method
from haltfast.sampling import BaseClassifier
from haltfast.sampling import ModelLabels
from haltfast.sampling import NoiseSampler
from haltfast.streams import Streams

SIGMA = 0.25


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


def resnet110(num_classes: int = 10) -> nn.Module:
    """The CIFAR ResNet-110 shape: 3 stages x 18 blocks, 16/32/64 channels."""
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for k in range(18):
            layers.append(Block(cin, cout, stride if k == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    torch.manual_seed(0)
    model = nn.Sequential(*layers).eval()
    with torch.no_grad():
        model[-1].bias.zero_()
    return model


def images(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:32, 0:32]
    out = []
    for _ in range(n):
        ramp = cols[None] * rng.uniform(-0.02, 0.02, (3, 1, 1)) + rows[None] * rng.uniform(-0.02, 0.02, (3, 1, 1))
        out.append(np.clip(rng.uniform(0, 1, (3, 1, 1)) + ramp + rng.normal(0, 0.05, (3, 32, 32)), 0, 1))
    return np.stack(out).astype(np.float32)


def raw_rate(model: nn.Module, x: np.ndarray, batch: int, batches: int, device: str) -> float:
    xb = torch.as_tensor(x[0], device=device).expand(batch, -1, -1, -1)
    with torch.inference_mode():
        model(xb + SIGMA * torch.randn_like(xb)).argmax(1)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            model(xb + SIGMA * torch.randn_like(xb)).argmax(1).cpu()
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * batches / (time.perf_counter() - start)


def end_to_end(source, n: int, options: dict) -> tuple[float, int]:
    start = time.perf_counter()
    certs = run_method(
        "anytime", Streams(source, n), range(n), sigma=SIGMA, n0=100, n=0, alpha=0.001, prior="jeffreys", **options
    )
    return sum(c.evaluations for c in certs) / (time.perf_counter() - start), sum(c.evaluations for c in certs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--raw-batches", type=int, default=20)
    p.add_argument("--inputs", type=int, default=64)
    p.add_argument("--max-samples", type=int, default=20_000)
    p.add_argument("--ray", action="store_true", help="also through a Ray pool of one worker per GPU")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    model = resnet110().to(args.device)
    x = images(args.inputs)
    keys = np.arange(args.inputs)
    local = ModelLabels(
        NoiseSampler(BaseClassifier(model, 10), SIGMA, 0, args.batch, args.device), torch.as_tensor(x), keys
    )
    sources = {"this process": local}
    if args.ray:
        gpus = max(1, torch.cuda.device_count()) if args.device == "cuda" else 1
        recipe = WorkerRecipe(given(model.cpu()), given(x), keys, 10, SIGMA, 0, args.batch, args.device)
        model.to(args.device)
        sources[f"Ray pool, {gpus} worker(s)"] = RayPool(recipe, workers=gpus)
    modes = {"decision r=0.5": {"radius": 0.5}, "grid 0.25/0.5/0.75": {"radii": (0.25, 0.5, 0.75)}}
    rows = []
    for where, source in sources.items():
        for mode, options in modes.items():
            raw = raw_rate(model, x, args.batch, args.raw_batches, args.device)
            rate, evaluations = end_to_end(source, args.inputs, {**options, "max_samples": args.max_samples})
            rows.append(f"| {where} | {mode} | {raw:,.0f} | {rate:,.0f} | {rate / raw:.2f} | {evaluations:,} |")
            print(rows[-1], file=sys.stderr, flush=True)
    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    text = "\n".join(
        [
            f"# GPU check: ResNet-110 shape, 32 x 32 inputs, {name}",
            "",
            "| labels from | mode | raw evaluations/s | end-to-end evaluations/s | ratio | evaluations |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Command: `python {shlex.join(sys.argv)}`; batch {args.batch}, torch {torch.__version__}.",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for source in sources.values():
        if hasattr(source, "close"):
            source.close()


if __name__ == "__main__":
    main()
