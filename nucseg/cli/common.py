"""What the commands share: the model and its post-processing, the checks on --out, the
stain reference, and the process set-up (TensorFlow's start-up lines, logging)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nucseg.config import resolve_data_path
from nucseg.errors import InputError


def model_and_config(
    model_path: str, overrides: dict | None = None, precision: str = "float32", engine: str = "tensorflow"
):
    """(predictor, Config of its post-processing): nucseg.inference.predict.usable_model, with what
    it runs in and a missing config.json said on stderr."""
    from nucseg.inference.predict import usable_model

    model = usable_model(model_path, overrides, precision, engine)
    print(f"{model_path}: {model.runs_as}", file=sys.stderr)
    if not model.has_saved_config:
        print(
            f"note: no config.json beside {model_path}; default post-processing of a {model.config.output_kind} map",
            file=sys.stderr,
        )
    return model.predictor, model.config


def stain_normaliser(reference: str | None):
    """image -> image: Macenko-normalised to the stains of `reference` (a data set folder or an
    image, e.g. the model's training data), or unchanged without one."""
    if reference is None:
        return lambda image: image
    from nucseg.data.dataset import load_dataset, read_image
    from nucseg.data.stain import fit_reference, normalise

    path = Path(reference)
    if not path.exists():
        raise InputError(
            f"--stain-reference {reference}: no such file or folder; give the model's training data "
            "set (a folder) or an image in the stains it was trained on"
        )
    images = [t.image for t in load_dataset(path)] if path.is_dir() else [read_image(path)]
    try:
        target = fit_reference(images)
    except ValueError as err:
        raise InputError(f"--stain-reference {reference}: {err}") from err
    return lambda image: normalise(image, target)


def warn_in_sample(model_path: str, data: str, tiles) -> None:
    """A warning naming the scored patients the model was trained on (from its fold's saved
    configuration and scores.json): their scores are in-sample, not held out."""
    from nucseg.inference.saved import training_patients

    trained = training_patients(model_path)
    name = Path(data).resolve().name
    if not trained:
        from nucseg.inference.saved import saved_config

        config = saved_config(model_path)
        sets = [Path(p).name for p in config.data_paths] if config is not None else []
        if name in sets:  # a model trained on whole data sets (the pretrained one): no fold, no held-out patient
            print(
                f"WARNING: {model_path} was trained on the data set {name} (all of its patients): these scores are "
                "in-sample, not held out. Use `nucseg lodo` for scores on a data set a model never saw.",
                file=sys.stderr,
            )
        return
    seen = sorted({t.patient for t in tiles if (name, t.patient) in trained})
    if seen:
        print(
            f"WARNING: {model_path} was trained on {len(seen)} of the scored patients ({', '.join(seen)} of {data}): "
            "their scores are in-sample, not held out. Score a fold's model on its held-out patient only "
            "(--patients).",
            file=sys.stderr,
        )


def only_patients(tiles, patients, data) -> list:
    """The tiles of `patients` (all where None); an unknown patient is refused by name."""
    from nucseg.data.dataset import patients_of

    if not patients:
        return tiles
    known = patients_of(tiles)
    unknown = [p for p in patients if p not in known]
    if unknown:
        raise InputError(f"{data}: no patient {', '.join(unknown)}; its patients are {', '.join(known)}")
    return [t for t in tiles if t.patient in patients]


IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".svs",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
    ".czi",
)


def looks_like_model(value: str) -> bool:
    """The first argument of predict and slide is the model unless it is an image or a slide
    (a model path that is not one is then refused by name when it is loaded)."""
    return value.startswith("pretrained:") or Path(value).suffix.lower() not in IMAGE_SUFFIXES


def split_model_and_inputs(args) -> None:
    """`predict|slide [MODEL] INPUT...` and `evaluate [MODEL] DATA`: the model is the first
    argument where it is one (a .keras file, a SavedModel folder, pretrained:NAME), else the
    shipped pretrained model; `args.model` becomes a path."""
    from nucseg import pretrained

    if getattr(args, "inputs", None) is not None:
        inputs = list(args.inputs)
        if args.command == "evaluate":
            model = inputs.pop(0) if len(inputs) > 1 else None
        else:
            model = inputs.pop(0) if len(inputs) > 1 and looks_like_model(inputs[0]) else None
        if args.command == "evaluate":
            if len(inputs) != 1:
                raise InputError(f"evaluate takes [MODEL] DATA: one data set folder after the model, not {inputs}")
            args.data = inputs[0]
        else:
            setattr(args, "images" if args.command == "predict" else "slides", inputs)
        if model is None:
            print(
                f"using the pretrained model {pretrained.DEFAULT} (pass a model first to use your own)", file=sys.stderr
            )
        args.model = model
    if hasattr(args, "model"):
        args.model = pretrained.resolve(args.model)


def checked_out(args) -> str | None:
    """The command's --out, checked against its inputs (nucseg.outputs), or None where it writes
    no folder of its own."""
    from nucseg.outputs import check_out_folder

    out = getattr(args, "out", None)
    if out is None:
        return None
    images = [*(getattr(args, "images", None) or []), *(getattr(args, "slides", None) or [])]
    data = getattr(args, "data", None)
    data = data if isinstance(data, list) else [data] if data else []
    if not data and args.command in ("train", "lopo"):
        data = [resolve_data_path()]
    check_out_folder(out, images, [d for d in data if Path(d).is_dir()])
    return out


def import_tensorflow_once() -> None:
    """TensorFlow 2.21 writes its start-up lines (the oneDNN notice, absl's warning) from two of
    its libraries, before its log level applies: import it with the stderr file descriptor
    captured, then show each distinct line once (errors included)."""
    import re
    import tempfile

    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines()
    shown = set()
    for line in lines:
        message = re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ", "", line)  # without time and thread
        if message not in shown:
            shown.add(message)
            print(line, file=sys.stderr)
