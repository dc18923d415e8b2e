"""Where a run may write: never over its inputs, never inside a data set, one run at a time.

`check_out_folder` refuses an --out that is a file, that is an input image's own folder, or
that is inside (or holds) a data set folder: predictions written there would replace or pass
for ground truth (`<id>_label.png`). A data set folder is one given as data, or the one an
input image belongs to (the nearest folder above it with a manifest.csv or dataset.yaml, or the
folder above a patient folder where the image has its `_label` file)."""

from __future__ import annotations

from pathlib import Path

from nucseg.errors import InputError

DATA_SET_MARKERS = ("manifest.csv", "dataset.yaml")
LABEL_SUFFIXES = ("_label.png", "_label.tif", "_label.tiff")


def data_set_of(image: Path) -> Path | None:
    """The data set folder an input image belongs to, or None for an image on its own."""
    folder = image.resolve().parent
    for ancestor in [folder, *folder.parents][:3]:
        if any((ancestor / marker).is_file() for marker in DATA_SET_MARKERS):
            return ancestor
    if any((folder / (image.stem + suffix)).is_file() for suffix in LABEL_SUFFIXES):
        return folder.parent
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_folder(out: str | Path, images=(), data_folders=()) -> None:
    """InputError naming --out and the input it would write over or into."""
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder (it is created if missing).")
    target = out_path.resolve()
    for image in map(Path, images):
        if image.is_dir():  # not an image: the command refuses it by name
            continue
        if target == image.resolve().parent:
            raise InputError(
                f"--out {out} is the folder of the input {image}: outputs would be written beside it "
                "(and over its label, if it has one). Choose an --out folder of its own."
            )
        root = data_set_of(image)
        if root is not None:
            data_folders = [*data_folders, root]
    for folder in map(Path, data_folders):
        resolved = folder.resolve()
        if _inside(target, resolved):
            raise InputError(
                f"--out {out} is inside the data set {folder}: predictions there could replace or pass "
                "for its ground truth. Choose an --out folder outside it."
            )
        if _inside(resolved, target):
            raise InputError(f"--out {out} holds the data set {folder}: choose an --out folder that holds no input.")
