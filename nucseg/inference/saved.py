"""What is saved beside an exported model (nucseg.training.export): the configuration it was
trained with (config.json), the post-processing chosen for it (postprocess.json), the patients it
was trained on (scores.json); read back by predict, evaluate and slide."""

from __future__ import annotations

from pathlib import Path


def model_config(model_path: str | Path, output_kind: str):
    """The Config a model's predictions are post-processed with: its saved one (`saved_config`),
    else the defaults of a net of its output kind ("probability": U-Net's, "distance": DIST's).
    A saved configuration that names a net of another output kind is refused."""
    from nucseg.config import Config
    from nucseg.errors import InputError
    from nucseg.postprocess.kinds import kind_named

    config = saved_config(model_path)
    if config is None:
        return None, Config(arch=kind_named(output_kind).default_arch)
    if config.output_kind != output_kind:
        raise InputError(
            f"{model_path}: its config.json says arch={config.arch} ({config.output_kind} output), but the "
            f"model outputs a {output_kind} map; the model and its config.json do not belong together."
        )
    return config, config


def saved_config(model_path: str | Path):
    """The Config a model was trained with: config.json of its fold folder (beside model.keras and
    saved_model/), with the post-processing chosen for that fold (postprocess.json), or None
    where there is none."""

    from nucseg.config import Config
    from nucseg.postprocess.tuning import with_saved_postprocess

    model_path = Path(model_path)
    for folder in (model_path.parent, model_path):
        path = folder / "config.json"
        if path.is_file():
            return with_saved_postprocess(Config.read_json(path), folder)
    return None


def training_patients(model_path: str | Path) -> set[tuple[str, str]]:
    """(data set folder name, patient) of every patient a fold's model was trained on, from its
    folder's config.json and scores.json; empty where they are not beside the model."""
    import json

    from nucseg.data.dataset import DATASET_SEPARATOR

    model_path = Path(model_path)
    folder = model_path.parent if model_path.name in ("model.keras", "saved_model") else model_path
    config, scores = folder / "config.json", folder / "scores.json"
    if not (config.is_file() and scores.is_file()):
        return set()
    try:
        done = json.loads(scores.read_text())
    except (OSError, ValueError):
        return set()
    data_paths = saved_config(folder).data_paths if saved_config(folder) else []
    names = [Path(p).name for p in data_paths]
    patients = done.get("train_patients")
    if patients is None:  # folds written before train_patients was recorded: the data set but the held-out one
        from nucseg.data.dataset import find_tiles

        if len(data_paths) != 1 or not Path(data_paths[0]).is_dir():
            return set()
        refs, _ = find_tiles(data_paths[0])
        patients = sorted({r.patient for r in refs} - {done.get("val_patient")})
    pairs = set()
    for patient in patients:
        if len(names) > 1 and DATASET_SEPARATOR in patient:
            dataset, _, own = patient.partition(DATASET_SEPARATOR)
            pairs.add((dataset, own))
        elif names:
            pairs.add((names[0], patient))
    return pairs
