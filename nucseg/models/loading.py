"""Loading a saved net, with a message naming the file and the fix where Keras or TensorFlow
would raise a traceback (a truncated file, a missing `variables/`, a layer that safe mode
refuses).

Security: `.keras` files are loaded in Keras's safe mode (no Lambda layers, no code in the file);
a SavedModel is a TensorFlow graph and can run any of its operations: load one only from a
source you trust."""

from __future__ import annotations

import zipfile
from pathlib import Path

from nucseg.errors import InputError, ModelLoadError  # noqa: F401  (ModelLoadError: re-exported)


def load_keras_model(path: str | Path, compile: bool = False):
    """A `.keras` file, with nucseg's own layers, in safe mode."""
    import keras

    from nucseg.models import custom_objects

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"{path}: no such file. Pass a trained model's .keras file (<run>/<arch>/<patient>/model.keras)."
        )
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path}: not a complete .keras file (a .keras file is a zip archive; this one is truncated "
            "or another kind of file). Copy or export the model again."
        )
    try:
        return keras.models.load_model(path, compile=compile, custom_objects=custom_objects(), safe_mode=True)
    except ValueError as err:
        if "safe_mode" in str(err) or "Lambda" in str(err):
            raise ModelLoadError(
                f"{path}: the model holds a Lambda layer (Python code), which nucseg does not load "
                "(Keras safe mode). Use a model without Lambda layers, e.g. one trained by nucseg."
            ) from err
        raise ModelLoadError(
            f"{path}: cannot load this .keras file ({str(err).splitlines()[0][:200]}). Copy or export the model again."
        ) from err
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as err:
        raise ModelLoadError(
            f"{path}: cannot load this .keras file ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''}). Copy or export the model again."
        ) from err


def load_saved_model(path: str | Path):
    """A SavedModel folder (`model.export`), checked for its variables first."""
    import tensorflow as tf

    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ModelLoadError(
            f"{path}: no saved_model.pb in this folder; pass a SavedModel folder (<fold>/saved_model)."
        )
    variables = path / "variables"
    if not variables.is_dir() or not any(variables.glob("variables.index")):
        raise ModelLoadError(
            f"{path}: the SavedModel has no variables/ (variables.index and its data files): it was "
            "copied in part. Copy the whole saved_model folder again."
        )
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise ModelLoadError(
            f"{path}: cannot load this SavedModel ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Copy or export it again."
        ) from err
    if not hasattr(loaded, "serve"):
        raise ModelLoadError(
            f"{path}: this SavedModel has no `serve` endpoint; nucseg reads models exported by "
            "`keras.Model.export` (as nucseg's own exports are)."
        )
    return loaded
