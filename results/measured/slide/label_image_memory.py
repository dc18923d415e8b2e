"""Memory and time of a slide's label image (`nucseg slide --label-image`) for a 20,000 x 20,000
region: the outlines of the shared glioma tiles' annotated nuclei, repeated block by block over the
region in tile order, written by nucseg's band-by-band writer. Below 8192 a side, the image is also
read back whole and checked: every nucleus there with its own pixel count.

    .venv/bin/python results/measured/slide/label_image_memory.py ../shared/data/tcga_glioma [SIDE]
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from nucseg.data.dataset import load_dataset
from nucseg.inference.label_image import write_label_tiff
from nucseg.inference.objects import nucleus_outlines


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(data: str, side: int = 20000, block: int = 512) -> None:
    tiles = [t for t in load_dataset(data) if t.label.shape[0] >= block and t.label.shape[1] >= block]
    blocks = []  # outlines of one block's nuclei (holes filled, pieces connected by their sides)
    for tile in tiles[:8]:
        labels = ndimage.label(ndimage.binary_fill_holes(tile.label[:block, :block] > 0))[0]
        blocks.append(list(nucleus_outlines(labels).values()))
    per_side = -(-side // block)

    def outlines():  # tile order: rows of blocks, top to bottom
        index = 0
        for by in range(per_side):
            for bx in range(per_side):
                for ring in blocks[(by * per_side + bx) % len(blocks)]:
                    shifted = [[x + bx * block, y + by * block] for x, y in ring]
                    if max(x for x, _ in shifted) <= side and max(y for _, y in shifted) <= side:
                        index += 1
                        yield index, shifted

    count = [0]

    def counted():
        for index, ring in outlines():
            count[0] = index
            yield index, ring

    before = peak_mb()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = write_label_tiff(Path(folder) / "labels.tif", counted(), side, side, 0.25, block)
        seconds = time.perf_counter() - start
        written = peak_mb()
        size_mb = path.stat().st_size / 2**20
        checked = "not read back (above 8192 a side)"
        if side <= 8192:
            import tifffile

            present = np.bincount(tifffile.imread(path).ravel(), minlength=count[0] + 1)[1:] > 0
            checked = f"read back: {int(present.sum())} of {count[0]} nuclei present"
    print(f"label image {side} x {side} (uint32: {side * side * 4 / 2**30:.2f} GiB if held whole), {count[0]} nuclei")
    print(f"written in {seconds:.1f} s, file {size_mb:.0f} MB (zlib); {checked}")
    print(f"peak memory of this process: {before:.0f} MB before writing, {written:.0f} MB after")


if __name__ == "__main__":
    from nucseg.errors import InputError

    try:
        main(sys.argv[1], *(int(v) for v in sys.argv[2:3]))
    except (InputError, IndexError, ValueError) as err:
        sys.exit(f"label_image_memory.py: {err or 'give the annotated data set'}; usage: {__doc__.strip().splitlines()[-1].strip()}")
