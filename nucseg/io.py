"""Atomic writes: a temporary file beside the target, then a rename, so nothing half-written
is ever read, whenever a run is killed."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def _temporary_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside path, hidden, ending in suffix (savers may check the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp.", suffix=suffix)
    os.close(handle)
    return Path(name)


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    temporary = _temporary_beside(path)
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def write_json_atomic(path: str | Path, value) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_png_atomic(path: str | Path, array: np.ndarray) -> Path:
    path = Path(path)
    temporary = _temporary_beside(path, ".png")
    Image.fromarray(array).save(temporary, format="PNG")
    os.replace(temporary, path)
    return path


def save_with(path: str | Path, save, suffix: str = ".tmp") -> Path:
    """Atomic write through a saver that takes a path (`save(temporary_path)`)."""
    path = Path(path)
    temporary = _temporary_beside(path, suffix)
    try:
        save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def replace_dir_atomic(path: str | Path, write_into) -> Path:
    """Write a folder with `write_into(temporary_folder)`, then swap it in for `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        write_into(staging / "out")
        old = path.parent / f".{path.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        (staging / "out").rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
