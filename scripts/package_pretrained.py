"""Package a trained model folder as a pretrained model shipped in nucseg/pretrained/<name>/:
model.keras without its optimiser state (half the size), config.json with the data sets named
by folder name (no paths of the machine it was trained on), postprocess.json, and SHA256SUMS.

    python scripts/package_pretrained.py RUN_FOLDER he-nuclei
"""

import json
import shutil
import sys
from pathlib import Path


from nucseg.config import Config
from nucseg.models.loading import load_keras_model
from nucseg.pretrained import ROOT, write_checksums


def main(run: str, name: str) -> None:
    run, folder = Path(run), ROOT / name.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    model = load_keras_model(run / "model.keras")
    model.save(folder / "model.keras")  # loaded uncompiled: no optimiser state
    config = Config.read_json(run / "config.json")
    values = config.to_dict()
    values["data"] = [Path(p).name for p in config.data_paths]
    (folder / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    shutil.copy(run / "postprocess.json", folder / "postprocess.json")
    shutil.rmtree(folder / "int8", ignore_errors=True)  # an int8 copy of older weights; make it anew after:
    files = write_checksums(folder)  # scripts/quantise_pretrained.py
    print(f"{folder}: {', '.join(f'{f} {(folder / f).stat().st_size / 1e6:.1f} MB' for f in files)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
