"""Make the int8 copy of a shipped model that `--precision int8` runs (nucseg/inference/quantise.py):
nucseg/pretrained/<name>/int8/model.xml and model.bin, calibrated on 12 crops of 256 x 256 of each
data set the model was trained on (its config.json's `data`), and the model's SHA256SUMS written
anew with them. Needs NNCF: `.venv/bin/pip install -e '.[quantise]'`.

    .venv/bin/python scripts/quantise_pretrained.py he-nuclei-fast ../shared/data
"""

import json
import sys
import tempfile
from pathlib import Path

import openvino as ov

from nucseg import pretrained
from nucseg.data.dataset import load_dataset
from nucseg.errors import InputError
from nucseg.inference.engines import INT8_FOLDER, openvino_model_file
from nucseg.inference.quantise import calibration_crops, quantised

PER_SET = 12


def main(name: str, data_root: str) -> None:
    folder = pretrained.path(name)
    sets = json.loads((folder / "config.json").read_text())["data"]
    crops = calibration_crops([load_dataset(Path(data_root) / s) for s in sets], PER_SET)
    model = quantised(openvino_model_file(folder / "model.keras"), crops)
    target = folder / INT8_FOLDER
    target.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as staging:  # both files, then renamed into place
        ov.save_model(model, f"{staging}/model.xml", compress_to_fp16=False)
        for file in ("model.xml", "model.bin"):
            Path(staging, file).replace(target / file)
    pretrained.write_checksums(folder)
    sizes = ", ".join(f"{f} {(target / f).stat().st_size / 1e6:.2f} MB" for f in ("model.xml", "model.bin"))
    print(f"{target}: {sizes}; calibrated on {len(crops)} crops of {', '.join(sets)}")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except InputError as err:  # a model or data set that is not there: said, not a traceback
        sys.exit(f"quantise_pretrained.py: {err}")
