"""Where a large image's tiles come from: a NumPy image held in memory, or a region of a slide
read through OpenSlide at the model's resolution. Both give square RGB uint8 tiles at positions in
processing pixels, padded past the region's edge: an image mirrored (as `predict` always padded
it), a slide with white glass (what lies beyond a slide's edge).

Slide reading (opening, resolution, the pyramid level read) lives here too; `large.py` runs a net
over either source, `slide.py` turns a slide's tiles into nuclei files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nucseg.errors import InputError


class SlideError(InputError):
    pass


class ArrayRegion:
    """A NumPy image (H, W, 3) as a tile source."""

    def __init__(self, image: np.ndarray):
        self.image = np.asarray(image)
        self.height, self.width = self.image.shape[:2]

    def read(self, x: int, y: int, side: int) -> np.ndarray:
        window = self.image[y : y + side, x : x + side]
        missing = (side - window.shape[0], side - window.shape[1])
        if not any(missing):
            return window
        # reflect needs two pixels or more along an axis; a one-pixel image is repeated instead
        mode = "reflect" if min(self.height, self.width) > 1 else "edge"
        return np.pad(window, ((0, missing[0]), (0, missing[1]), (0, 0)), mode=mode)


class SlideRegion:
    """A plan's region of an open slide (see `nucseg.inference.tiles.SlidePlan`) as a tile source:
    read at the plan's pyramid level and resized to the processing resolution."""

    def __init__(self, slide, plan):
        self.slide, self.plan = slide, plan
        self.height, self.width = plan.height, plan.width

    def read(self, x: int, y: int, side: int) -> np.ndarray:
        from PIL import Image

        plan = self.plan
        x0, y0 = plan.region[0] + x * plan.to_level0, plan.region[1] + y * plan.to_level0
        downsample = self.slide.level_downsamples[plan.level]
        read_side = max(1, round(side * plan.to_level0 / downsample))
        patch = self.slide.read_region((int(round(x0)), int(round(y0))), plan.level, (read_side, read_side))
        rgba = np.asarray(patch.resize((side, side), Image.BILINEAR) if read_side != side else patch)
        if x + side <= self.width and y + side <= self.height and rgba[..., 3].min() > 0:
            return rgba[..., :3]  # inside the region and the slide (most tiles): nothing to whiten
        rgb = np.where(rgba[..., 3:] > 0, rgba[..., :3], np.uint8(255))  # outside the slide: transparent -> white
        rgb[max(self.height - y, 0) :, :] = 255
        rgb[:, max(self.width - x, 0) :] = 255
        return rgb


def open_slide(path: str | Path):
    try:
        import openslide
    except ImportError as err:  # pragma: no cover - part of the install
        raise SlideError("OpenSlide is missing: pip install openslide-python openslide-bin") from err
    path = Path(path)
    if not path.is_file():
        raise SlideError(f"{path}: no such slide file")
    try:
        return openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, openslide.OpenSlideUnsupportedFormatError) as err:
        raise SlideError(
            f"{path}: OpenSlide cannot read it ({err or type(err).__name__}); formats it reads: "
            ".svs, .ndpi, .mrxs, .scn, .bif, .czi, .dcm and tiled pyramidal TIFF"
        ) from err


def slide_mpp(slide, path, given: float | None = None) -> float:
    """Microns per level-0 pixel: `given`, else the slide's openslide.mpp-x."""
    if given:
        return float(given)
    value = slide.properties.get("openslide.mpp-x")
    if not value:
        raise SlideError(
            f"{path}: the slide does not say its resolution (no openslide.mpp-x); pass --mpp with its "
            "microns per pixel at full resolution (0.25 for a 40x scan, 0.5 for 20x)"
        )
    return float(value)


def choose_level(downsamples, base_mpp: float, target_mpp: float) -> int:
    """The coarsest level not coarser than target_mpp (5 % slack); level 0 where the slide is
    coarser than the target even at full resolution (its tiles are then upsampled)."""
    candidates = [i for i, d in enumerate(downsamples) if base_mpp * d <= target_mpp * 1.05] or [0]
    return max(candidates, key=lambda i: downsamples[i])
