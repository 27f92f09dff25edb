"""Files the program writes: whole or not at all, and refused up front where they cannot be written."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError

PACKAGE_DIR = Path(__file__).resolve().parent  # shipped models and meta-learners: read-only to the program


def atomic_write(path: str | Path, write: Callable[[Path], object], suffix: str = "") -> Path:
    """Write through a temporary file beside `path`, then rename it into place: no reader ever sees half a file.

    `write(tmp)` writes the temporary file; `suffix` keeps an extension a writer insists on (np.savez adds .npz).
    """
    path = Path(path)
    if path.resolve().is_relative_to(PACKAGE_DIR):
        raise OutputError(
            f"{path} lies inside the installed haltfast package, whose shipped files are never "
            f"overwritten; choose a path of your own"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial" + suffix)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write `text`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data) -> Path:
    """Write `data` as indented JSON, atomically."""
    return write_text(path, json.dumps(data, indent=2) + "\n")


def check_writable(path: str | Path | None, what: str = "output file") -> Path | None:
    """Refuse, before any work, an output file that cannot be written: a directory, a read-only file, or one in
    a folder that cannot be made or written. Tried for real (an append, or a scratch file beside it), so it also
    holds for root and for read-only file systems; creates missing parent folders."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file name")
    if path.resolve().is_relative_to(PACKAGE_DIR):
        raise OutputError(
            f"{what} {path} lies inside the installed haltfast package, whose shipped files are never "
            f"overwritten; choose a path of your own"
        )
    try:
        if path.exists():
            with open(path, "ab"):
                pass
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            probe = path.with_name(path.name + ".partial")
            with open(probe, "xb"):
                pass
            probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}; choose another path") from None
    return path


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse, before any work, a folder that cannot be made or written (or is a file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a folder")
    check_writable(path / ".haltfast-write-test", what)
    return path


def data_home() -> Path:
    """haltfast's folder for what it makes on the user's behalf (calibration data, meta-learners of shipped
    models): $HALTFAST_HOME, else $XDG_DATA_HOME/haltfast, else ~/.local/share/haltfast."""
    if os.environ.get("HALTFAST_HOME"):
        return Path(os.environ["HALTFAST_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "haltfast"
