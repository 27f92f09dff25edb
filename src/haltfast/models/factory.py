"""Model factories: `path/to/file.py:factory` or `package.module:factory`, a callable that builds an nn.Module.

The factory is the user's own code and runs as such (it is imported and called with no arguments); the
weights it is given never run code (see weight_files).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import ModelError

_IDENTIFIER = r"[A-Za-z_]\w*"
_ATTRIBUTE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")


@dataclass(frozen=True)
class FactorySpec:
    """A factory named as `<target>:<attribute>`, target being a .py file or a dotted module name."""

    target: str
    attribute: str

    @property
    def is_file(self) -> bool:
        return self.target.endswith(".py")

    def __str__(self) -> str:
        return f"{self.target}:{self.attribute}"


def parse_factory_spec(spec: str | Path | None) -> FactorySpec | None:
    """The factory a spec names (`file.py:make`, `pkg.mod:make`, `pkg.mod:Class`), or None for anything else."""
    if spec is None or ":" not in str(spec):
        return None
    target, attribute = str(spec).rsplit(":", 1)
    if not target or not _ATTRIBUTE.fullmatch(attribute):
        return None
    if target.endswith(".py") or _ATTRIBUTE.fullmatch(target):
        return FactorySpec(target, attribute)
    return None


def build_from_factory(factory: FactorySpec) -> nn.Module:
    """Import the factory and call it with no arguments; every failure is one HaltfastError, never a traceback."""
    search_dir = str(Path(factory.target).resolve().parent) if factory.is_file else os.getcwd()
    with _on_sys_path(search_dir):
        module = _import_file(factory.target) if factory.is_file else _import_module(factory.target)
        make = _get_attribute(module, factory)
        _check_no_required_arguments(make, factory)
        try:
            model = make()
        except (Exception, SystemExit) as exc:
            raise ModelError(f"the model factory {factory} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"the model factory {factory} returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


@contextlib.contextmanager
def _on_sys_path(directory: str):
    """The factory's directory (or, for a module, the working directory) importable while it is built."""
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def _import_file(target: str):
    path = Path(target)
    if not path.is_file():
        raise ModelError(f"model factory file {path} not found; check the path in --model")
    name = "haltfast_factory_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a factory file is a .py file: Python has its loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined in the file can then be found by name (pickle, dataclasses)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise ModelError(f"importing the model factory file {path} failed: {type(exc).__name__}: {exc}") from None
    return module


def _import_module(target: str):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise ModelError(
                f"module {target!r} is not importable ({exc}): install it or put it on PYTHONPATH; "
                f"for a file, write path/to/file.py:factory"
            ) from None
        raise ModelError(f"importing module {target!r} failed: {type(exc).__name__}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise ModelError(f"importing module {target!r} failed: {type(exc).__name__}: {exc}") from None


def _get_attribute(module, factory: FactorySpec):
    obj = module
    for part in factory.attribute.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") or "no public callables"
            raise ModelError(f"{factory.target} has no attribute {factory.attribute!r} (it defines: {listed})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"{factory} is a {type(obj).__name__}, not a callable that builds a model")
    return obj


def _check_no_required_arguments(make, factory: FactorySpec) -> None:
    try:
        parameters = inspect.signature(make).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    required = [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ModelError(
            f"the model factory {factory} requires arguments ({', '.join(required)}); a factory is "
            f"called with none: write a function that builds the model, e.g. "
            f"def make(): return {factory.attribute.split('.')[-1]}(...)"
        )
