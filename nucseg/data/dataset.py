"""Finding, reading and checking annotated H&E datasets.

Two layouts are read:
- TNBC (Zenodo record 1175282): `Slide_NN/<name>.png` with `GT_NN/<name>.png`; patient = NN.
- generic: `<patient>/<id>.png` with `<patient>/<id>_label.png` (or `_label.tif`), optionally
  listed in a `manifest.csv` with columns patient, image, label (paths relative to the root).

Images: RGB; RGBA loses its alpha; grayscale (and palette) images are repeated to three channels.
Labels: any integer type, single-channel or 3-channel. 0 is background, each other value (or
colour) one nucleus. A label with a single non-zero value is a binary mask: its connected
components become the nuclei.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.measure import label as connected_components

from nucseg.errors import InputError

LABEL_SUFFIXES = ("_label.png", "_label.tif", "_label.tiff")
TNBC_SLIDE = re.compile(r"^Slide_(\d+)$")
LAYOUT_HELP = (
    "nucseg reads the TNBC layout (Slide_NN/*.png with GT_NN/*.png) or the generic layout "
    "(<patient>/<id>.png with <patient>/<id>_label.png, optionally listed in manifest.csv)"
)


class DatasetError(InputError):
    """A dataset that cannot be used; `problems` names each file and what to do."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclasses.dataclass(frozen=True)
class TileRef:
    """Where one annotated tile lives."""

    patient: str
    tile_id: str
    image_path: Path
    label_path: Path


@dataclasses.dataclass(frozen=True)
class Tile:
    """One annotated tile in memory: uint8 RGB image and int32 instance labels."""

    patient: str
    tile_id: str
    image: np.ndarray
    label: np.ndarray

    @property
    def n_nuclei(self) -> int:
        return int(len(np.unique(self.label)) - (self.label.min() == 0))


# ---------------------------------------------------------------- finding tiles


def find_tiles(root: str | Path) -> tuple[list[TileRef], list[str]]:
    """All tiles under root in either layout, and the problems met on the way."""
    root = Path(root)
    if root.is_file():
        return [], [f"{root}: is a file, not a dataset folder. Pass the folder that holds the patients' "
                    f"folders (or Slide_NN/ and GT_NN/). {LAYOUT_HELP}."]
    if not root.is_dir():
        return [], [
            f"{root}: dataset folder does not exist. Download TNBC with `nucseg data download tnbc`, "
            f"or point --data (or $NUCSEG_DATA) at a dataset. {LAYOUT_HELP}."
        ]
    if (root / "manifest.csv").is_file():
        refs, problems = _find_manifest_tiles(root)
    elif any(TNBC_SLIDE.match(p.name) for p in root.iterdir() if p.is_dir()):
        refs, problems = _find_tnbc_tiles(root)
    else:
        refs, problems = _find_generic_tiles(root)
    if not refs and not problems:
        problems.append(f"{root}: empty dataset, no tiles found. {LAYOUT_HELP}.")
    return refs, problems


def _find_tnbc_tiles(root: Path) -> tuple[list[TileRef], list[str]]:
    refs, problems = [], []
    for slide_dir in sorted(p for p in root.iterdir() if TNBC_SLIDE.match(p.name)):
        patient = TNBC_SLIDE.match(slide_dir.name).group(1)
        gt_dir = root / f"GT_{patient}"
        images = sorted(slide_dir.glob("*.png"))
        if not images:
            problems.append(f"{slide_dir}: patient {patient} has no tiles (no .png). Remove the folder or add its tiles.")
        if not gt_dir.is_dir():
            problems.append(f"{slide_dir}: no ground-truth folder {gt_dir}. Add GT_{patient}/ with one label per image.")
            continue
        for image in images:
            label = gt_dir / image.name
            if label.is_file():
                refs.append(TileRef(patient, image.stem, image, label))
            else:
                problems.append(f"{image}: image without label; expected {label}. Add the label or remove the image.")
        image_names = {p.name for p in images}
        for label in sorted(gt_dir.glob("*.png")):
            if label.name not in image_names:
                problems.append(f"{label}: label without image; expected {slide_dir / label.name}. Add the image or remove the label.")
    for gt_dir in sorted(root.glob("GT_*")):
        if not (root / gt_dir.name.replace("GT_", "Slide_", 1)).is_dir():
            problems.append(f"{gt_dir}: labels without a Slide_ folder of images. Add {gt_dir.name.replace('GT_', 'Slide_', 1)}/.")
    return refs, problems


def _find_generic_tiles(root: Path) -> tuple[list[TileRef], list[str]]:
    refs, problems = [], []
    for patient_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = {p.name: p for p in patient_dir.iterdir() if p.is_file()}
        labels = {name: path for name, path in files.items() if name.endswith(LABEL_SUFFIXES)}
        images = {name: path for name, path in files.items() if name.endswith(".png") and name not in labels}
        if not images and not labels:
            problems.append(f"{patient_dir}: patient {patient_dir.name} has no tiles. Add <id>.png + <id>_label.png, or remove the folder.")
        for name, image in sorted(images.items()):
            label = next((files[image.stem + s] for s in LABEL_SUFFIXES if image.stem + s in files), None)
            if label is None:
                problems.append(f"{image}: image without label; expected {patient_dir / (image.stem + '_label.png')}. Add the label or remove the image.")
            else:
                refs.append(TileRef(patient_dir.name, image.stem, image, label))
        paired = {r.label_path.name for r in refs if r.patient == patient_dir.name}
        for name, label in sorted(labels.items()):
            if name not in paired:
                stem = re.sub(r"_label\.(png|tiff?)$", "", name)
                problems.append(f"{label}: label without image; expected {patient_dir / (stem + '.png')}. Add the image or remove the label.")
    return refs, problems


def _find_manifest_tiles(root: Path) -> tuple[list[TileRef], list[str]]:
    manifest = root / "manifest.csv"
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    missing = {"patient", "image", "label"} - set(reader.fieldnames or [])
    if missing:
        return [], [f"{manifest}: needs columns patient, image, label; missing {sorted(missing)}."]
    refs, problems, seen = [], [], {}
    for line, row in enumerate(rows, start=2):
        if any(not row.get(column) for column in ("patient", "image", "label")):
            problems.append(f"{manifest}:{line}: the row has no patient, image or label value (too few fields?). "
                            "Give each row patient,image,label or remove it.")
            continue
        image, label = root / row["image"], root / row["label"]
        key = image.resolve()
        if key in seen:
            first_line, first_patient = seen[key]
            problems.append(
                f"{manifest}:{line}: image {row['image']} is listed again (first on line {first_line}"
                + (f", under patient {first_patient}, here under {row['patient']}" if first_patient != row["patient"] else "")
                + "): a tile would be in both a training and a held-out set. List each image once.")
            continue
        seen[key] = (line, row["patient"])
        if not image.is_file():
            problems.append(f"{manifest}:{line}: image {image} does not exist. Fix the path or remove the row.")
        elif not label.is_file():
            problems.append(f"{image}: image without label; {manifest}:{line} names {label}, which does not exist.")
        else:
            refs.append(TileRef(row["patient"], Path(row["image"]).stem, image, label))
    return refs, problems


# ---------------------------------------------------------------- reading files


def read_image(path: str | Path) -> np.ndarray:
    """An H&E tile as uint8 RGB (H, W, 3)."""
    with _open(path) as img:
        if img.mode in ("RGB", "RGBA", "L", "LA", "P"):
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
        raise DatasetError([f"{path}: image mode {img.mode} is not 8-bit RGB or grayscale. Save it as an 8-bit RGB PNG."])


def read_label(path: str | Path) -> np.ndarray:
    """Instance labels as int32 (H, W): 0 background, 1..N nuclei."""
    with _open(path) as img:
        raw = np.asarray(img.convert("RGB") if img.mode in ("P", "RGBA", "LA") else img)
    if raw.ndim == 3:
        raw = _colours_to_ids(raw, path)
    if not np.issubdtype(raw.dtype, np.integer) and raw.dtype != bool:
        raise DatasetError([
            f"{path}: labels are {raw.dtype}; nucseg needs integer instance ids (0 background, 1..N one per "
            "nucleus). Save the label as a uint16 PNG."
        ])
    if raw.size and raw.min() < 0:
        raise DatasetError([f"{path}: labels have negative values (min {raw.min()}); use 0 for background and 1..N for nuclei."])
    return _as_instances(raw.astype(np.int64), path)


def _open(path: str | Path) -> Image.Image:
    if Path(path).is_dir():
        raise DatasetError([f"{path}: is a folder, not an image file. Pass image files (e.g. {path}/*.png)."])
    if not Path(path).is_file():
        raise DatasetError([f"{path}: no such file. Check the path."])
    try:
        img = Image.open(path)
        img.load()
        return img
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError([f"{path}: unreadable or truncated image ({err}). Re-export or re-download the file."]) from err


def _colours_to_ids(rgb: np.ndarray, path) -> np.ndarray:
    if rgb.shape[2] != 3:
        raise DatasetError([f"{path}: label has {rgb.shape[2]} channels; use one channel (ids) or three (one colour per nucleus)."])
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _as_instances(raw: np.ndarray, path) -> np.ndarray:
    values = np.unique(raw)
    nonzero = values[values > 0]
    if len(nonzero) == 1:  # a binary mask: split it into connected components
        return connected_components(raw > 0, connectivity=1).astype(np.int32)
    ids = np.searchsorted(values, raw)  # renumber 0, 1..N keeping order
    if values[0] != 0:
        ids = ids + 1
    _check_instances(ids, len(nonzero), path)
    return ids.astype(np.int32)


# An instance label gives each nucleus one value over one compact region. On the annotated sets
# of ../shared/data each value forms at most 1.1 pieces on average and 3 % of values cover
# under 5 pixels. Anti-aliased, blurred or JPEG-compressed masks put a value on a thin ring around
# every nucleus (150 to 1000 pieces per value); a continuous image gives nearly every pixel its own.
MAX_PIECES_PER_NUCLEUS = 2.0
MAX_TINY_FRACTION = 0.5  # of values covering fewer than TINY_AREA pixels
TINY_AREA = 5


def _check_instances(ids: np.ndarray, n_ids: int, path) -> None:
    if n_ids == 0:
        return
    areas = np.bincount(ids.ravel())[1:]
    tiny = float(np.mean(areas[areas > 0] < TINY_AREA))
    pieces = connected_components(ids, background=0, connectivity=2).max() / n_ids
    if pieces > MAX_PIECES_PER_NUCLEUS or tiny > MAX_TINY_FRACTION:
        raise DatasetError([
            f"{path}: does not look like an instance label: its {n_ids} values form {pieces:.1f} separate pieces each "
            f"on average and {tiny:.0%} of them cover under {TINY_AREA} pixels (an instance label gives each nucleus one "
            "value over one region). Anti-aliased, blurred or JPEG-compressed masks do this. Save the label losslessly "
            "(PNG or TIFF) with nearest-neighbour resizing: one integer per nucleus, or a binary 0/255 mask."
        ])


def read_tile(ref: TileRef) -> Tile:
    image, label = read_image(ref.image_path), read_label(ref.label_path)
    if image.shape[:2] != label.shape:
        raise DatasetError([
            f"{ref.label_path}: size {label.shape[1]}x{label.shape[0]} differs from its image {ref.image_path} "
            f"({image.shape[1]}x{image.shape[0]}). Label and image must have the same width and height."
        ])
    return Tile(ref.patient, ref.tile_id, image, label)


# ---------------------------------------------------------------- whole datasets


def load_dataset(root: str | Path) -> list[Tile]:
    """Every tile of the dataset in memory; DatasetError lists every problem found."""
    refs, problems = find_tiles(root)
    tiles = []
    for ref in refs:
        try:
            tiles.append(read_tile(ref))
        except DatasetError as err:
            problems.extend(err.problems)
    if problems:
        raise DatasetError(problems)
    return tiles


def patients_of(tiles: list[Tile]) -> list[str]:
    return sorted({t.patient for t in tiles})


def summarize(tiles: list[Tile]) -> list[dict]:
    """One row per patient: tiles, nuclei, sizes, nucleus area statistics."""
    rows = []
    for patient in patients_of(tiles):
        own = [t for t in tiles if t.patient == patient]
        areas = np.concatenate([np.bincount(t.label.ravel())[1:] for t in own])
        areas = areas[areas > 0]
        rows.append({
            "patient": patient,
            "tiles": len(own),
            "nuclei": int(sum(t.n_nuclei for t in own)),
            "sizes": ", ".join(sorted({f"{t.image.shape[1]}x{t.image.shape[0]}" for t in own})),
            "nucleus_fraction": round(float(np.mean([(t.label > 0).mean() for t in own])), 4),
            "area_median": float(np.median(areas)),
            "area_mean": round(float(np.mean(areas)), 1),
            "area_p5": float(np.percentile(areas, 5)),
            "area_p95": float(np.percentile(areas, 95)),
        })
    return rows
