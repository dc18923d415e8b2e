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
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.measure import label as connected_components

from nucseg.errors import InputError

LOG = logging.getLogger(__name__)
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
    dataset: str = ""  # the data set's folder name where several are loaded together

    @property
    def n_nuclei(self) -> int:
        return int(len(np.unique(self.label)) - (self.label.min() == 0))


# ---------------------------------------------------------------- finding tiles


def find_tiles(root: str | Path) -> tuple[list[TileRef], list[str]]:
    """All tiles under root in either layout, and the problems met on the way."""
    root = Path(root)
    if root.is_file():
        return [], [
            f"{root}: is a file, not a dataset folder. Pass the folder that holds the patients' "
            f"folders (or Slide_NN/ and GT_NN/). {LAYOUT_HELP}."
        ]
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
            problems.append(
                f"{slide_dir}: patient {patient} has no tiles (no .png). Remove the folder or add its tiles."
            )
        if not gt_dir.is_dir():
            problems.append(
                f"{slide_dir}: no ground-truth folder {gt_dir}. Add GT_{patient}/ with one label per image."
            )
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
                problems.append(
                    f"{label}: label without image; expected {slide_dir / label.name}. "
                    "Add the image or remove the label."
                )
    for gt_dir in sorted(root.glob("GT_*")):
        if not (root / gt_dir.name.replace("GT_", "Slide_", 1)).is_dir():
            problems.append(
                f"{gt_dir}: labels without a Slide_ folder of images. Add {gt_dir.name.replace('GT_', 'Slide_', 1)}/."
            )
    return refs, problems


def _find_generic_tiles(root: Path) -> tuple[list[TileRef], list[str]]:
    refs, problems = [], []
    for patient_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        bad_name = patient_name_problem(patient_dir.name)
        if bad_name:
            problems.append(
                f"{patient_dir}: the folder's name cannot be a patient's name: {bad_name}. Rename it with "
                "letters, digits, '-' and '_' only."
            )
            continue
        files = {p.name: p for p in patient_dir.iterdir() if p.is_file()}
        labels = {name: path for name, path in files.items() if name.endswith(LABEL_SUFFIXES)}
        images = {name: path for name, path in files.items() if name.endswith(".png") and name not in labels}
        if not images and not labels:
            problems.append(
                f"{patient_dir}: patient {patient_dir.name} has no tiles. "
                "Add <id>.png + <id>_label.png, or remove the folder."
            )
        for name, image in sorted(images.items()):
            label = next((files[image.stem + s] for s in LABEL_SUFFIXES if image.stem + s in files), None)
            if label is None:
                problems.append(
                    f"{image}: image without label; expected {patient_dir / (image.stem + '_label.png')}. "
                    "Add the label or remove the image."
                )
            else:
                refs.append(TileRef(patient_dir.name, image.stem, image, label))
        paired = {r.label_path.name for r in refs if r.patient == patient_dir.name}
        for name, label in sorted(labels.items()):
            if name not in paired:
                stem = re.sub(r"_label\.(png|tiff?)$", "", name)
                problems.append(
                    f"{label}: label without image; expected {patient_dir / (stem + '.png')}. "
                    "Add the image or remove the label."
                )
    return refs, problems


def patient_name_problem(name: str) -> str | None:
    """Why `name` cannot be a patient's name, or None. A patient's name becomes a folder name
    (`<out>/<arch>/<patient>/`), so it must stay one path component inside --out."""
    if not name or not name.strip():
        return "it is empty"
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if name in (".", "..") or name.startswith("."):
        return "it starts with a dot (as '.', '..' and hidden folders do)"
    if any(ord(c) < 32 for c in name) or ":" in name:
        return "it holds a control character or ':'"
    return None


def manifest_path_problem(value: str) -> str | None:
    """Why a manifest's image or label path cannot be used, or None: paths are relative to the
    data set and stay inside it (checked on the path as written, so a data set may be a symlink)."""
    import os.path

    if Path(value).is_absolute() or re.match(r"^[A-Za-z]:[\\/]", value):
        return "it is absolute"
    if os.path.normpath(value).split(os.sep)[0] == "..":
        return "it climbs out of the data set with '..'"
    return None


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
            problems.append(
                f"{manifest}:{line}: the row has no patient, image or label value (too few fields?). "
                "Give each row patient,image,label or remove it."
            )
            continue
        bad_name = patient_name_problem(row["patient"])
        if bad_name:
            problems.append(
                f"{manifest}:{line}: patient {row['patient']!r} cannot be used: {bad_name}. Name patients "
                "with letters, digits, '-' and '_' only (a patient's name becomes a folder name)."
            )
            continue
        bad_paths = [
            (column, problem) for column in ("image", "label") if (problem := manifest_path_problem(row[column]))
        ]
        if bad_paths:
            problems += [
                f"{manifest}:{line}: {column} path {row[column]!r} cannot be used: {problem}. Give paths "
                "relative to the data set folder, inside it."
                for column, problem in bad_paths
            ]
            continue
        image, label = root / row["image"], root / row["label"]
        key = image.resolve()
        if key in seen:
            first_line, first_patient = seen[key]
            problems.append(
                f"{manifest}:{line}: image {row['image']} is listed again (first on line {first_line}"
                + (
                    f", under patient {first_patient}, here under {row['patient']}"
                    if first_patient != row["patient"]
                    else ""
                )
                + "): a tile would be in both a training and a held-out set. List each image once."
            )
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
    """An H&E tile as uint8 RGB (H, W, 3).

    8-bit images as they are (RGBA loses its alpha, grayscale is repeated to three channels).
    16-bit PNG and TIFF images are scaled to 0..255 by their true range: the significant bits a
    PNG declares (sBIT), else the smallest of 8, 10, 12, 14 and 16 bits that holds the image's
    largest value (with a warning naming the scaling). Float images are refused."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _as_rgb8(_read_tiff(path), path, None)
    if suffix == ".png" and _png_bit_depth(path) == 16:
        import png

        try:
            width, height, rows, info = png.Reader(filename=str(path)).asDirect()
            array = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, info["planes"])
        except (png.Error, OSError, ValueError) as err:
            raise DatasetError([f"{path}: unreadable or truncated 16-bit PNG ({err}). Re-export the file."]) from err
        significant = info["bitdepth"] if info["bitdepth"] < 16 else None  # asDirect has applied sBIT
        return _as_rgb8(array, path, significant)
    with _open(path) as img:
        if img.mode in ("RGB", "RGBA", "L", "LA", "P"):
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
        if img.mode in ("F", "I") or img.mode.startswith("I;"):
            return _as_rgb8(np.asarray(img), path, None)
        raise DatasetError(
            [f"{path}: image mode {img.mode} is not 8-bit RGB or grayscale. Save it as an 8-bit RGB PNG."]
        )


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DatasetError([f"{path}: is a folder, not an image file. Pass image files (e.g. {path}/*.png)."])
    if not path.is_file():
        raise DatasetError([f"{path}: no such file. Check the path."])


def _png_bit_depth(path: Path) -> int:
    """The bit depth of a PNG's IHDR chunk (byte 24), 8 where the header cannot be read."""
    with open(path, "rb") as handle:
        header = handle.read(25)
    return header[24] if len(header) == 25 and header[12:16] == b"IHDR" else 8


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path, key=0)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as err:
        raise DatasetError(
            [f"{path}: unreadable or truncated TIFF ({err}). Re-export or re-download the file."]
        ) from err


def _as_rgb8(array: np.ndarray, path: Path, significant_bits: int | None) -> np.ndarray:
    """An image array of any integer type and 1 to 4 channels as uint8 RGB."""
    if np.issubdtype(array.dtype, np.floating):
        raise DatasetError([f"{path}: float images are not supported: save as 8-bit RGB (PNG or TIFF)."])
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar TIFF
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise DatasetError(
            [f"{path}: an image of shape {array.shape} is not RGB or grayscale. Save it as an 8-bit RGB PNG."]
        )
    array = array[..., :1] if array.shape[2] == 2 else array[..., :3]  # without alpha
    array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise DatasetError([f"{path}: {array.dtype} pixel values are not supported: save as 8-bit RGB."])
    if significant_bits is None:
        largest = int(array.max())
        significant_bits = next((b for b in (8, 10, 12, 14, 16) if largest < 2**b), None)
        if significant_bits is None:
            raise DatasetError([f"{path}: pixel values up to {largest} do not fit 16 bits; save as 8-bit RGB."])
        LOG.warning(
            f"{path}: a {array.dtype} image with values up to {largest}, read as {significant_bits}-bit data "
            f"(0..{2**significant_bits - 1} -> 0..255); save it as 8-bit RGB to choose the scaling yourself"
        )
    scaled = np.round(array.astype(np.float64) * (255.0 / (2**significant_bits - 1)))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def read_label(path: str | Path) -> np.ndarray:
    """Instance labels as int32 (H, W): 0 background, 1..N nuclei."""
    with _open(path) as img:
        raw = np.asarray(img.convert("RGB") if img.mode in ("P", "RGBA", "LA") else img)
    if raw.ndim == 3:
        raw = _colours_to_ids(raw, path)
    if not np.issubdtype(raw.dtype, np.integer) and raw.dtype != bool:
        raise DatasetError(
            [
                f"{path}: labels are {raw.dtype}; nucseg needs integer instance ids (0 background, 1..N one per "
                "nucleus). Save the label as a uint16 PNG."
            ]
        )
    if raw.size and raw.min() < 0:
        raise DatasetError(
            [f"{path}: labels have negative values (min {raw.min()}); use 0 for background and 1..N for nuclei."]
        )
    return _as_instances(raw.astype(np.int64), path)


def _open(path: str | Path) -> Image.Image:
    _check_file(Path(path))
    try:
        img = Image.open(path)
        img.load()
        return img
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(
            [f"{path}: unreadable or truncated image ({err}). Re-export or re-download the file."]
        ) from err


def _colours_to_ids(rgb: np.ndarray, path) -> np.ndarray:
    if rgb.shape[2] != 3:
        raise DatasetError(
            [f"{path}: label has {rgb.shape[2]} channels; use one channel (ids) or three (one colour per nucleus)."]
        )
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
        raise DatasetError(
            [
                f"{path}: does not look like an instance label: its {n_ids} values form {pieces:.1f} separate "
                f"pieces each on average and {tiny:.0%} of them cover under {TINY_AREA} pixels (an instance label "
                "gives each nucleus one value over one region). Anti-aliased, blurred or JPEG-compressed masks do "
                "this. Save the label losslessly (PNG or TIFF) with nearest-neighbour resizing: one integer per "
                "nucleus, or a binary 0/255 mask."
            ]
        )


def read_tile(ref: TileRef) -> Tile:
    image, label = read_image(ref.image_path), read_label(ref.label_path)
    if image.shape[:2] != label.shape:
        raise DatasetError(
            [
                f"{ref.label_path}: size {label.shape[1]}x{label.shape[0]} differs from its image {ref.image_path} "
                f"({image.shape[1]}x{image.shape[0]}). Label and image must have the same width and height."
            ]
        )
    return Tile(ref.patient, ref.tile_id, image, label)


# ---------------------------------------------------------------- whole datasets


def load_dataset(root, mpp: float | None = None, source_mpp: float | None = None) -> list[Tile]:
    """Every tile of the data set in memory; DatasetError lists every problem found.

    `root`: one data set folder, or a list of them. With several, each tile's patient is
    prefixed with its data set's folder name (`tnbc__patient_01`), so that patients stay distinct
    per data set, and `Tile.dataset` names it. `mpp`: the microns per pixel the tiles are wanted
    at; a data set that declares another resolution in its `dataset.yaml` (or is said to have
    `source_mpp`, which wins) is resampled to it."""
    roots = [Path(r) for r in ([root] if isinstance(root, (str, Path)) else root)]
    if not roots:
        raise DatasetError(["no data set given: pass at least one data set folder (--data A [B ...])"])
    names = [r.resolve().name for r in roots]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(
            [
                f"two data sets are both named {n!r} ({', '.join(str(r) for r in roots if r.resolve().name == n)}): "
                "patients are told apart by their data set's folder name; rename one folder"
                for n in repeated
            ]
        )
    tiles, problems = [], []
    for path, name in zip(roots, names):
        try:
            own = _load_one_dataset(path, mpp, source_mpp)
        except DatasetError as err:
            problems.extend(err.problems)
            continue
        if len(roots) > 1:
            own = [dataclasses.replace(t, patient=f"{name}{DATASET_SEPARATOR}{t.patient}", dataset=name) for t in own]
        tiles += own
    if problems:
        raise DatasetError(problems)
    return tiles


DATASET_SEPARATOR = "__"  # between a data set's name and its patient's, where several are loaded


def dataset_mpp(root: str | Path) -> float | None:
    """The microns per pixel a data set declares in `dataset.yaml` beside its tiles (`mpp: 0.25`),
    or None where it declares none."""
    path = Path(root) / "dataset.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        values = yaml.safe_load(path.read_text()) or {}
        mpp = float(values["mpp"]) if "mpp" in values else None
    except (yaml.YAMLError, TypeError, ValueError, AttributeError) as err:
        raise DatasetError([f"{path}: cannot read it ({err}); write e.g. 'mpp: 0.25' (microns per pixel)"]) from err
    if mpp is not None and not 0 < mpp < 100:
        raise DatasetError([f"{path}: mpp {mpp} is not a pixel size in microns (40x scans: about 0.25)"])
    return mpp


def _load_one_dataset(root: Path, mpp: float | None, source_mpp: float | None = None) -> list[Tile]:
    refs, problems = find_tiles(root)
    tiles = []
    for ref in refs:
        try:
            tiles.append(read_tile(ref))
        except DatasetError as err:
            problems.extend(err.problems)
    if problems:
        raise DatasetError(problems)
    declared = source_mpp or (dataset_mpp(root) if root.is_dir() else None)
    if mpp is None or declared is None or abs(declared / mpp - 1) < 0.02:
        return tiles
    return [rescale_tile(t, declared / mpp) for t in tiles]


def rescale_tile(tile: Tile, factor: float) -> Tile:
    """The tile resampled by `factor` (2: twice as many pixels a side): image bilinear, labels
    nearest, so that every nucleus keeps its id."""
    from skimage.transform import resize

    height, width = (max(1, round(s * factor)) for s in tile.label.shape)
    image = resize(tile.image, (height, width), order=1, preserve_range=True, anti_aliasing=factor < 1)
    label = resize(tile.label, (height, width), order=0, preserve_range=True, anti_aliasing=False)
    return dataclasses.replace(
        tile, image=np.clip(image.round(), 0, 255).astype(np.uint8), label=label.astype(np.int32)
    )


def patients_of(tiles: list[Tile]) -> list[str]:
    return sorted({t.patient for t in tiles})


def summarize(tiles: list[Tile]) -> list[dict]:
    """One row per patient: tiles, nuclei, sizes, nucleus area statistics."""
    rows = []
    for patient in patients_of(tiles):
        own = [t for t in tiles if t.patient == patient]
        areas = np.concatenate([np.bincount(t.label.ravel())[1:] for t in own])
        areas = areas[areas > 0]
        stats = (
            {
                "area_median": float(np.median(areas)),
                "area_mean": round(float(np.mean(areas)), 1),
                "area_p5": float(np.percentile(areas, 5)),
                "area_p95": float(np.percentile(areas, 95)),
            }
            if len(areas)
            else dict.fromkeys(("area_median", "area_mean", "area_p5", "area_p95"), float("nan"))
        )
        rows.append(
            {
                "patient": patient,
                "tiles": len(own),
                "nuclei": int(sum(t.n_nuclei for t in own)),
                "sizes": ", ".join(sorted({f"{t.image.shape[1]}x{t.image.shape[0]}" for t in own})),
                "nucleus_fraction": round(float(np.mean([(t.label > 0).mean() for t in own])), 4),
                **stats,
            }
        )
    return rows
