"""Export of a trained model: `model.keras` and a TensorFlow SavedModel, both written atomically.

Both take RGB tiles with values 0..255 (float32) and carry their own normalisation. The
SavedModel needs only TensorFlow (`tf.saved_model.load(path).serve(images)`); the `.keras` file
of DeconvNet names nucseg's unpooling layer, so it loads where nucseg is installed.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import keras

from nucseg.io import replace_dir_atomic, save_with
from nucseg.models import SIZE_MULTIPLE

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"


@contextlib.contextmanager
def quiet_tensorflow_log():
    """TensorFlow logs each SavedModel's temporary asset folder at INFO: noise in notebooks."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _backend_export_options() -> dict:
    """Under JAX, jax2tf must know that the sides are multiples of 32 to prove that skip
    connections meet feature maps of the same size."""
    if keras.backend.backend() != "jax":
        return {}
    return {"jax2tf_kwargs": {"polymorphic_shapes": [f"(b, {SIZE_MULTIPLE}*h, {SIZE_MULTIPLE}*w, 3)"]}}


def export_model(model: keras.Model, out_dir: str | Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    keras_file = save_with(out_dir / KERAS_FILE, model.save, suffix=".keras")
    with quiet_tensorflow_log():
        saved_model = replace_dir_atomic(
            out_dir / SAVED_MODEL_DIR,
            lambda p: model.export(str(p), format="tf_saved_model", verbose=False, **_backend_export_options()),
        )
    return {"keras": keras_file, "saved_model": saved_model}
