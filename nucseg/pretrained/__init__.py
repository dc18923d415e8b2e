"""Pretrained models shipped inside the package: no download, no network.

Each entry is a folder beside this file with `model.keras`, `config.json` (what it was trained
with, its resolution `mpp` among it), `postprocess.json` (the post-processing chosen on its
training tiles), `MODEL_CARD.md` and `SHA256SUMS`; its files are checked against their SHA-256
on every load, so a damaged or altered copy is refused by name.

    from nucseg import pretrained
    model = pretrained.load("he-nuclei")          # a Keras model
    folder = pretrained.path("he-nuclei")         # for nucseg's predict, evaluate, slide

On the command line, `nucseg predict IMAGE --out DIR` uses the default entry; any command that
takes a model also takes `pretrained:NAME`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nucseg.errors import InputError

ROOT = Path(__file__).resolve().parent
DEFAULT = "he-nuclei-fast"
PREFIX = "pretrained:"
CHECKED_FILES = ("model.keras", "config.json", "postprocess.json", "int8/model.xml", "int8/model.bin")


class PretrainedError(InputError):
    """A pretrained model that is not there or not intact."""


def available() -> list[str]:
    """The names of the shipped models (folders with a SHA256SUMS)."""
    return sorted(p.name.replace("_", "-") for p in ROOT.iterdir() if (p / "SHA256SUMS").is_file())


def path(name: str = DEFAULT) -> Path:
    """The folder of a shipped model, its files checked against SHA256SUMS."""
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    folder = ROOT / name.replace("-", "_")
    if not (folder / "SHA256SUMS").is_file():
        raise PretrainedError(
            f"no pretrained model {name!r} in nucseg; the shipped ones are: {', '.join(available()) or 'none'}"
        )
    expected = dict(line.split()[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip())
    for file in CHECKED_FILES:
        if file not in expected:
            continue
        actual = hashlib.sha256((folder / file).read_bytes()).hexdigest() if (folder / file).is_file() else "missing"
        if actual != expected[file]:
            raise PretrainedError(
                f"{folder / file}: its SHA-256 is {actual[:16]}..., not the {expected[file][:16]}... "
                "it shipped with: the installed copy is damaged or altered. Reinstall nucseg."
            )
    return folder


def write_checksums(folder: Path) -> list[str]:
    """SHA256SUMS of a packaged model's CHECKED_FILES that are there (scripts/package_pretrained.py,
    then scripts/quantise_pretrained.py for the int8 copy); the files it covers."""
    files = [f for f in CHECKED_FILES if (folder / f).is_file()]
    sums = [f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}" for f in files]
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return files


def model_file(name: str = DEFAULT) -> Path:
    return path(name) / "model.keras"


def load(name: str = DEFAULT):
    """The shipped model as a Keras model (checked, then loaded in safe mode)."""
    from nucseg.models.loading import load_keras_model

    return load_keras_model(model_file(name))


def resolve(model: str | None) -> str:
    """A model argument as a path: None -> the default pretrained model; `pretrained:NAME` -> its
    model.keras; anything else unchanged."""
    if model is None:
        return str(model_file(DEFAULT))
    if model.startswith(PREFIX):
        return str(model_file(model))
    return model
