"""Where and at what precision the base classifier runs: CPU, CUDA or MPS; float32, bfloat16 or float16.

Certificates stay valid at any precision and on any device. Randomized smoothing certifies the smoothed
version of whatever base classifier f it samples, and the guarantee (Cohen et al. 2019, Theorem 1) holds for
every classifier f: the base classifier IS the function the prepared model computes, rounding included. A
bfloat16 model is a different f than its float32 original (its accuracy, and so its radii, may differ), but
its certificates are exactly as valid. The weights' SHA-256 alone then no longer names f: a results journal
must record the dtype beside it.

Strictly, the argument needs f to be a fixed function of its input. Some kernels (notably on GPUs) pick
their algorithm, and so their rounding, by batch size; an input's label can then depend on the batch it
shares wherever its top two logits tie within rounding error, which at reduced precision is not negligible.
Calling the model at one fixed batch size (padding the last batch) with torch.use_deterministic_algorithms
keeps f fixed. haltfast's tests check batch-size independence for float32 on CPU only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError
from ..errors import UsageError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' (CUDA if available, else MPS if available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps', checked."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}: choose auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU found"
            raise UsageError(
                f"--device {device}: no CUDA GPU is available (torch {torch.__version__}, {build}); "
                f"use --device cpu or --device auto"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {device}: Apple's MPS backend is not available here; use --device cpu")
    elif resolved.type != "cpu":
        raise UsageError(f"unsupported device {device!r}: choose auto, cpu, cuda, cuda:N or mps")
    return resolved


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """float32, bfloat16 or float16, from a torch.dtype or a name (aliases fp32, bf16, fp16, half)."""
    if isinstance(dtype, torch.dtype):
        if dtype in DTYPES.values():
            return dtype
        raise UsageError(f"unsupported dtype {dtype}: choose {', '.join(DTYPES)}")
    name = str(dtype).lower()
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise UsageError(f"unsupported dtype {dtype!r}: choose {', '.join(DTYPES)}")
    return DTYPES[name]


class PreparedModel(nn.Module):
    """A model on a device at a precision: inputs are moved and cast to it, logits come back as float32."""

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.device = device
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x.to(device=self.device, dtype=self.dtype))
        return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out


def prepare_model(
    model: nn.Module, device: str | torch.device = "auto", dtype: str | torch.dtype = "float32"
) -> PreparedModel:
    """The model moved to device and cast to dtype, in eval mode; see the module docstring for why certificates
    computed with it are valid at any precision. Logits come back float32, on the model's device."""
    resolved_device, resolved_dtype = resolve_device(device), resolve_dtype(dtype)
    if not isinstance(model, nn.Module):
        raise ModelError(f"prepare_model needs a torch.nn.Module, got {type(model).__name__}")
    try:
        model = model.to(device=resolved_device, dtype=resolved_dtype)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"cannot move the model to {resolved_device} as {resolved_dtype}: {exc}") from None
    return PreparedModel(model, resolved_device, resolved_dtype).eval()
