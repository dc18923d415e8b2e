"""Inference engines: what runs an exported net over batches of tiles.

- "tensorflow": the `.keras` model (Keras's compiled predict step) or the SavedModel, as trained.
- "openvino": the SavedModel (or the `.keras` file, exported on the fly) converted by OpenVINO
  (`openvino` from the package registry) and compiled for the CPU. The same outputs to about
  1e-3 in float32 (tested); 1.5 times as fast as TensorFlow on an AMX Xeon, 2.2 times on an
  AVX2-only AMD EPYC, in float32 (docs/speed.md).

`--engine auto` takes TensorFlow where it sees a GPU, else OpenVINO where it is installed, else
TensorFlow. `--precision auto` is bfloat16 with OpenVINO on a CPU with native bfloat16 (AMX or
AVX512_BF16), float32 everywhere else. OpenVINO's bfloat16 rounds DIST's distances to steps that
moved the nuclei the dynamic watershed finds (TNBC: AJI 0.619 -> 0.603), so the net's last 1x1
convolution is kept in float32 (`float32_linear_head`): the same scores as float32 on both CPU
kinds, the net 2.3 times as fast as float32 on an AMX Xeon (the whole net in bfloat16: 2.8 times)
and 1.8 times on an AMD EPYC with AVX512_BF16 (Zen 4; the whole net: 2.0 times). Without native
bfloat16 (AVX2 only) it is slower: TensorFlow emulates it; OpenVINO's CPU plugin compiles
float32 instead, so that is what is run and said, and asking for it there is warned about
(docs/speed.md).

In float32, OpenVINO's graph has each skip concatenation of a U-Net or DIST and the convolution
after it rewritten as two convolutions added (`convolutions_without_concatenation`): the same
outputs to 1e-6, the net 1.08-1.12 times as fast on an AMX Xeon (1.02-1.09 with AVX2 kernels);
level in bfloat16 and slower in the int8 copy, which keep their concatenations.

`--precision int8` runs the int8 copy shipped beside the default pretrained model
(`int8/model.xml`, made by scripts/quantise_pretrained.py with NNCF: nucseg.inference.quantise;
its standardisation, first block and head in float32). On an AVX2-only AMD EPYC its net runs 1.4
times as fast as in float32, with AJI no lower on any of the four data sets
(results/measured/engines/int8_amd.txt), so `auto` takes it there, for a model that has one. On
a CPU with AVX512 its transposed convolutions are rewritten so that OpenVINO runs them in int8
(`transposed_convolutions_without_output_shape`: its net 1.22-1.25 times as fast on an AMX Xeon);
even so a slide there is level with bfloat16's (4.51 against 4.50 megapixels/s), so `auto` keeps
bfloat16 there.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from nucseg.errors import InputError
from nucseg.hardware import avx2_without_avx512, cpu_name, has_avx512, native_bfloat16
from nucseg.hardware import tensorflow_sees_gpu as gpu_visible  # the TensorFlow engine's GPU
from nucseg.inference.openvino_graph import (
    convolutions_without_concatenation,
    float32_linear_head,
    transposed_convolutions_without_output_shape,
)

LOG = logging.getLogger(__name__)
ENGINES = ("auto", "tensorflow", "openvino")
PRECISION_CHOICES = ("auto", "float32", "bfloat16", "int8")


def openvino_installed() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def choose_engine(requested: str = "auto") -> str:
    if requested not in ENGINES:
        raise InputError(f"--engine {requested}: choose one of {', '.join(ENGINES)}")
    if requested == "openvino" and not openvino_installed():
        raise InputError(
            "--engine openvino: OpenVINO is not installed; `pip install openvino` (or use --engine tensorflow)"
        )
    if requested != "auto":
        return requested
    if gpu_visible() or not openvino_installed():
        return "tensorflow"
    return "openvino"


def choose_precision(requested: str, engine: str, int8_copy: bool = False) -> str:
    """What runs: `requested` (--precision), checked, or for auto the fastest precision measured to
    find nuclei as good as float32's on this kind of CPU. `int8_copy`: the model has one beside it
    (has_int8_copy)."""
    if requested not in PRECISION_CHOICES:
        raise InputError(f"--precision {requested}: choose one of {', '.join(PRECISION_CHOICES)}")
    if requested == "int8" and engine != "openvino":
        raise InputError("--precision int8 runs in OpenVINO only: use --engine openvino (or auto on a CPU)")
    if requested == "bfloat16" and not native_bfloat16():
        if engine == "openvino":
            # OpenVINO's CPU plugin ignores a bfloat16 hint where the CPU has none: it compiles
            # float32 (its INFERENCE_PRECISION_HINT reads f32; the same speed, measured on an
            # AVX2-only AMD EPYC). Said as what runs, not as what was asked for.
            LOG.warning(f"--precision bfloat16: {cpu_name()} has no AVX512_BF16 or AMX; OpenVINO runs float32 here")
            return "float32"
        LOG.warning(
            f"--precision bfloat16 on a CPU without native bfloat16 ({cpu_name()}: no AVX512_BF16 or AMX): "
            "TensorFlow emulates it, slower than float32 here"
        )
    if requested != "auto":
        return requested
    if engine != "openvino":
        return "float32"  # TensorFlow's bfloat16 rounds the output; its int8 is not wired
    if native_bfloat16():
        # OpenVINO's bfloat16 (with the last layer in float32) ran the shipped DIST 2.3 times as fast
        # as its float32 on an AMX Xeon and 1.8 times on an AMD EPYC with AVX512_BF16 but no AMX
        # (Zen 4), with TNBC's nuclei as good on both (results/measured/engines/bfloat16_head*.txt).
        # On an AMX Xeon the int8 copy is no faster: a 20,000 x 20,000 slide at 4.51 megapixels/s
        # against bfloat16's 4.50 (its upsampling in int8; 0.93 of int8's time before:
        # results/measured/slide/bench_20000_xeon_*int8*.txt). int8 on Zen 4 was not measured.
        return "bfloat16"
    if int8_copy and avx2_without_avx512():
        # The default model's int8 copy ran its net 1.4 times as fast as float32 on an AVX2-only AMD
        # EPYC, with AJI no lower on any of the four data sets (results/measured/engines/int8_amd.txt).
        # Measured on that kind of CPU only: one with AVX512 but no native bfloat16 keeps float32.
        return "int8"
    return "float32"


def describe(engine: str, precision: str) -> str:
    bf16 = "native bfloat16" if native_bfloat16() else "no native bfloat16"
    return f"engine {engine}, {precision} ({cpu_name()}, {bf16})"


class OpenVINOPredictor:
    """A predictor (N, H, W, 3) float32 0..255 -> (N, H, W, C), compiled by OpenVINO for the CPU,
    with dynamic batch and sides (one compilation serves every tile size)."""

    def __init__(
        self,
        model_file: str | Path,
        precision: str = "float32",
        threads: int | None = None,
        float32_head=None,
        split_concatenations=None,
        int8_copy: bool = False,
    ):
        """`model_file`: an OpenVINO model (model.xml) or a SavedModel folder. `float32_head`: the
        last 1x1 convolution kept in float32 (default: in bfloat16 only; see float32_linear_head).
        `split_concatenations`: the skip concatenations rewritten away (default: in float32, for a
        model that is not an int8 copy; see convolutions_without_concatenation). `int8_copy`: the
        model is an int8 copy: its concatenations are kept (next to their inputs' quantisation;
        split, it ran 0.93-0.97 as fast on AMX), and its transposed convolutions are rewritten on a
        CPU with AVX512 so that OpenVINO runs them in int8 (see
        transposed_convolutions_without_output_shape)."""
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            model = (
                core.read_model(str(model_file))
                if str(model_file).endswith(".xml")
                else ov.convert_model(str(model_file))
            )
            float32_head = precision == "bfloat16" if float32_head is None else float32_head
            self.head_in_float32 = float32_head and float32_linear_head(model)
            split = precision == "float32" and not int8_copy
            split = split if split_concatenations is None else split_concatenations
            self.concatenations_split = convolutions_without_concatenation(model) if split else 0
            # In float32 and bfloat16 the rewrite ran level (0.96-1.10), so only the int8 copy gets it,
            # and only on CPUs with AVX512: without it, OpenVINO's plugin keeps these layers in float32
            # at a slide's sizes whatever the graph, so that CPU runs the graph it was measured with.
            rewrite = int8_copy and has_avx512()
            self.transposed_rewritten = transposed_convolutions_without_output_shape(model) if rewrite else 0
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as err:  # OpenVINO raises its own RuntimeError subclasses, with C++ traces
            raise InputError(
                f"{model_file}: OpenVINO cannot load this model ({str(err).splitlines()[0][:200]}); "
                "use --engine tensorflow"
            ) from err
        self.precision = precision

    def __call__(self, batch) -> np.ndarray:
        return np.asarray(self.compiled(np.ascontiguousarray(batch, dtype=np.float32))[0])


def openvino_predictor(model_path: str | Path, precision: str = "float32") -> OpenVINOPredictor:
    """OpenVINO from a SavedModel folder or a `.keras` file (openvino_model_file); for int8, the
    int8 model shipped beside it (int8_model_file)."""
    if precision == "int8":
        return OpenVINOPredictor(int8_model_file(model_path), "float32", int8_copy=True)
    return OpenVINOPredictor(openvino_model_file(model_path), precision)


def openvino_model_file(model_path: str | Path) -> Path:
    """The OpenVINO model (model.xml) of a SavedModel folder or a `.keras` file. The conversion (a
    `.keras` file is first exported to a SavedModel, as OpenVINO reads those) takes seconds; its
    result is kept in a cache (`$NUCSEG_CACHE`, else ~/.cache/nucseg) under the SHA-256 of the
    model's files, so a model is converted once per machine. Nothing is written beside the model."""
    model_path = Path(model_path)
    cached = _cache_folder() / _model_digest(model_path) / "model.xml"
    if not cached.is_file():  # a cached model, keyed by its files' digest, was checked when converted
        if model_path.is_dir():
            from nucseg.models.loading import load_saved_model

            load_saved_model(model_path)  # its checks and messages: variables/ there, a `serve` endpoint
        _convert_into_cache(model_path, cached)
    return cached


INT8_FOLDER = "int8"  # beside a model file: its int8 OpenVINO model (model.xml, model.bin)


def _int8_xml(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return (model_path if model_path.is_dir() else model_path.parent) / INT8_FOLDER / "model.xml"


def has_int8_copy(model_path: str | Path) -> bool:
    return _int8_xml(model_path).is_file()


def int8_model_file(model_path: str | Path) -> Path:
    """The int8 model shipped beside a model (`int8/model.xml` in its folder: the default pretrained
    model has one, made by scripts/quantise_pretrained.py and checked with its other files).
    Quantising needs calibration images and NNCF, so a model without one is refused."""
    xml = _int8_xml(model_path)
    if not xml.is_file():
        raise InputError(
            f"--precision int8: {model_path} has no int8 model beside it ({xml} is missing). The default "
            "pretrained model has one (pretrained:he-nuclei-fast); int8 copies are made for shipped models only "
            "(scripts/quantise_pretrained.py). Use --precision float32 for this model"
        )
    return xml


def _cache_folder() -> Path:
    import os

    return Path(os.environ.get("NUCSEG_CACHE") or Path.home() / ".cache" / "nucseg") / "openvino"


def _model_digest(model_path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    files = sorted(p for p in model_path.rglob("*") if p.is_file()) if model_path.is_dir() else [model_path]
    for file in files:
        digest.update(str(file.relative_to(model_path) if model_path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def _convert_into_cache(model_path: Path, cached: Path) -> None:
    """The OpenVINO model (model.xml and .bin) written to a temporary folder beside the cache
    entry, then renamed into place: a killed conversion leaves no half entry."""
    import openvino as ov

    from nucseg.models.loading import load_keras_model
    from nucseg.training.export import quiet_tensorflow_log

    cached.parent.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent.parent, prefix=".converting-") as folder:
        saved_model = model_path
        if not model_path.is_dir():
            saved_model = Path(folder) / "saved_model"
            with quiet_tensorflow_log():
                load_keras_model(model_path).export(str(saved_model), format="tf_saved_model", verbose=False)
        try:
            converted = ov.convert_model(str(saved_model))
        except Exception as err:  # OpenVINO raises its own RuntimeError subclasses, with C++ traces
            raise InputError(
                f"{model_path}: OpenVINO cannot convert this model ({str(err).splitlines()[0][:200]}); "
                "use --engine tensorflow"
            ) from err
        staging = Path(folder) / "entry"
        staging.mkdir()
        ov.save_model(converted, str(staging / "model.xml"), compress_to_fp16=False)
        try:
            staging.rename(cached.parent)
        except OSError:
            pass  # another process put the same entry there first: theirs is as good
