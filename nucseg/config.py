"""The one configuration of a nucseg run, shared by the CLI and the notebooks.

A `Config` is a flat, frozen dataclass: data, augmentation, weights, network, optimiser,
post-processing. `Config.from_profile("quick")` starts from a named profile; `Config.load(path)`
reads YAML or JSON; `config.replace(lr=...)` changes fields. Its resolved value is written as
`config.json` beside every model and result table it produced, and `config_hash` names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import yaml

from nucseg.errors import InputError

ARCHITECTURES = ("pangnet", "fcn8", "deconvnet", "unet", "dist")
DISTANCE_ARCHS = ("dist",)  # nets that regress each nucleus's distance map instead of class probabilities
# The smallest standard deviation, in grey levels (0..255), that per-image standardisation
# divides by. An H&E tile with tissue varies by tens of grey levels in each channel (the least
# varied channel of a TNBC tile: 11 grey levels; of a CoNSeP crop: 2.2, 99 % above 6.7); glass, white fill and JPEG
# noise on them vary by a few. Dividing those by their own tiny deviation blows noise up to the
# contrast of nuclei (an all-white tile became one giant nucleus); dividing by this floor keeps
# them flat.
MIN_STD_GREY_LEVELS = 4.0
SIZE_MULTIPLE = 32  # the nets' input sides are multiples of 2**5: five poolings (nucseg.models.nets)
PRECISIONS = ("float32", "bfloat16")  # what an exported model can be run in (nucseg.inference.predict.load_predictor)
INPUT_NORMS = ("unit", "per_image")
DATA_ENV_VAR = "NUCSEG_DATA"
# Fields added after results were published: left out of config_hash while unset, so that the
# hashes (and folds.csv) of earlier runs stay what they were.
HASHED_ONLY_WHEN_SET = {
    "dataset_weights": None,
    "init": None,
    "grid": 1,
    "separable": False,
    "grid_skip": False,
    "separable_from": 1,
    "teacher": None,
    "distill_weight": 0.5,
    "deconvnet_filters": 0,
}
# How often a run saves its state: not what it computes, so never part of config_hash (a run may
# be resumed with another value).
NOT_HASHED = ("checkpoint_seconds",)
DEFAULT_DATA = "data/tnbc"


class ConfigError(InputError):
    """A configuration value or file that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Config:
    # data
    data: str | list = DEFAULT_DATA  # a data set folder, or a list of them (trained on together)
    dataset_weights: list | None = None  # with several data sets: how often each is drawn (None: evenly)
    crop: int = 256
    mpp: float = (
        0.25  # microns per pixel of the training tiles (TNBC and the glioma tiles: 40x scans); slides are read at it
    )

    # per-pixel weights (computed once per tile)
    class_balance: bool = True
    border_weight: float = 10.0  # w0 of U-Net: extra weight on background between nuclei
    border_sigma: float = 5.0  # sigma of U-Net, in pixels
    separate_touching: bool = True  # touching nuclei get a background line between them

    # augmentation
    flip: bool = True
    rotate90: bool = True
    rotate_max_degrees: float = 180.0
    blur_probability: float = 0.3
    blur_sigma_max: float = 1.5
    elastic_probability: float = 0.5
    elastic_sigma: float = 8.0  # pixels of displacement at the control points
    elastic_points: int = 3  # control grid of points x points
    stain_jitter: float = 0.05  # +- relative change of H, E and residual optical density (Tellez's HED jitter)
    zoom_max: float = 1.0  # zoom drawn log-uniformly in [1 / zoom_max, zoom_max]: 2.0 spans 20x and 40x scans
    brightness: float = 0.0  # +- shift of all channels, as a fraction of 255
    contrast: float = 0.0  # contrast scaled by a factor in [1 - contrast, 1 + contrast] around the mean
    saturation: float = 0.0  # saturation scaled by a factor in [1 - saturation, 1 + saturation]
    gamma: float = 0.0  # gamma drawn log-uniformly in [exp(-gamma), exp(gamma)]

    # network
    arch: str = "unet"
    base_filters: int = 64  # U-Net, FCN-8s, DeconvNet (unless deconvnet_filters): first level width (VGG16: 64)
    unet_depth: int = 4  # number of poolings; base_filters * 2**depth at the bottom
    fc_filters: int = 4096  # FCN-8s fc6/fc7 and DeconvNet fc width
    deconvnet_filters: int = 0  # DeconvNet's first level width, where it differs from base_filters (0: the same)
    batch_norm: bool = True
    input_norm: str = "per_image"  # "per_image": each image's channels to mean 0, std 1; "unit": 0..255 -> -1..1
    grid: int = 1  # U-Net and DIST: 2 runs the net at half resolution and upsamples its output (a quarter of the cost)
    separable: bool = False  # U-Net and DIST: depthwise-separable convolutions in the deeper blocks
    separable_from: int = 1  # with separable: the first level (0 = full resolution) whose blocks are separable
    grid_skip: bool = False  # with grid=2: full-resolution features join the upsampled ones before the head
    encoder_weights: str | None = None  # None, "imagenet" or a .weights.h5 / .h5 path
    init: str | None = None  # start from this model's weights (a .keras file of the same net): fine-tuning
    # DIST: knowledge distillation. The net learns a blend of the true distance and this trained
    # DIST's distance on the same augmented crop ((1 - distill_weight) * true + distill_weight *
    # teacher: the gradient of the two squared errors summed). A study fills in "{fold}" with the
    # fold's name (the patient or data set held out), so that each fold's teacher never saw it.
    teacher: str | None = None
    distill_weight: float = 0.5

    # optimisation
    steps: int = 20000
    steps_per_epoch: int = 500  # the loss is logged at each epoch's end, and the checkpoint written if due
    # An epoch's end writes the checkpoint once this many seconds have passed since the last one
    # (or the fit's start), and the last epoch's always: a killed run loses about this much
    # training at most. A `cpu` DIST's save: 0.26 s on a 2-core AVX2 EPYC (docs/speed.md, 24th round).
    checkpoint_seconds: float = 30.0
    batch_size: int = 8
    lr: float = 0.01
    lr_schedule: str = "cosine"  # "cosine" or "constant"
    warmup_fraction: float = 0.05  # the learning rate rises linearly from 0 over this part of the steps
    clip_norm: float = 1.0  # gradients are scaled down to this global norm (0: no clipping)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    mixed_precision: bool = False  # float16 on a GPU, bfloat16 on a CPU (nucseg.models.mixed_policy)
    seed: int = 0

    # prediction and post-processing (probability map -> instances)
    tta: bool = False  # average the 8 flips and rotations of each input (test-time augmentation)
    tune_postprocess: bool = True  # choose threshold and watershed distance per fold on its training tiles
    threshold: float = 0.5
    min_object_size: int = 30
    watershed_min_distance: int = 10  # pixels between two nucleus centres (tuned on glioma ground truth)
    watershed_footprint: int = 17
    # DIST (distance-map regression): foreground where the predicted distance exceeds dist_threshold
    # (pixels); one nucleus per maximum standing at least dist_lambda (pixels) above its surroundings
    dist_threshold: float = 0.5
    dist_lambda: float = 1.0

    @classmethod
    def from_profile(cls, name: str, **overrides) -> Config:
        if name not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}: choose one of {sorted(PROFILES)}")
        return cls(**{**PROFILES[name], **overrides}).validated()

    @classmethod
    def load(cls, path: str | os.PathLike, profile: str | None = None) -> Config:
        """Read a YAML or JSON file; its `profile` key (or `profile`) picks the starting profile."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read configuration ({err})") from err
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of field: value, got {type(values).__name__}")
        profile = profile or values.pop("profile", "paper")
        values.pop("profile", None)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{path}: unknown fields {sorted(unknown)}; see nucseg/config.py")
        if profile not in PROFILES:
            raise ConfigError(f"{path}: unknown profile {profile!r}: choose one of {sorted(PROFILES)}")
        return cls.from_dict({**PROFILES[profile], **values}, source=str(path))

    @classmethod
    def from_dict(cls, values, source: str = "configuration") -> Config:
        """A Config from a mapping of field: value (a saved config.json, a YAML file's fields),
        validated; an unknown or renamed field is named, with `source`."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of field: value, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown configuration field(s) {unknown} (renamed, or written by another "
                f"version of nucseg?); the fields are listed in nucseg/config.py"
            )
        try:
            return cls(**values).validated()
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from err

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> Config:
        """A saved config.json (beside every model and result nucseg writes)."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"{path}: not a readable configuration ({err}); it was cut short or edited by hand. "
                "Restore it from the run that wrote it, or remove the folder to start again."
            ) from err
        return cls.from_dict(values, source=str(path))

    def replace(self, **changes) -> Config:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown configuration fields {sorted(unknown)}")
        return dataclasses.replace(self, **changes).validated()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def config_hash(self, ignore=("data",)) -> str:
        """Names what determines the results: every field but the data path (and `ignore`)."""
        values = {
            k: v
            for k, v in self.to_dict().items()
            if k not in ignore
            and k not in NOT_HASHED
            and not (k in HASHED_ONLY_WHEN_SET and v == HASHED_ONLY_WHEN_SET[k])
        }
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def output_kind(self) -> str:
        """What the net outputs: "distance" (DIST) or "probability" (the four binary nets)."""
        return "distance" if self.arch in DISTANCE_ARCHS else "probability"

    def for_fold(self, name: str) -> Config:
        """The configuration of one fold of a study: "{fold}" in `teacher` becomes the fold's name."""
        return self.replace(teacher=self.teacher.replace("{fold}", name)) if self.teacher else self

    def validated(self) -> Config:
        problems = self._type_problems()
        if problems:  # the range checks below need the right types
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        if self.arch not in ARCHITECTURES:
            problems.append(f"arch={self.arch!r} is not one of {ARCHITECTURES}")
        if self.crop < 32 or self.crop % 32:
            problems.append(f"crop={self.crop} must be a multiple of 32, at least 32")
        for name in ("steps", "steps_per_epoch", "batch_size", "base_filters", "fc_filters", "elastic_points"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        if self.deconvnet_filters < 0:
            problems.append(
                f"deconvnet_filters={self.deconvnet_filters} must be 0 (DeconvNet at base_filters) or a positive width"
            )
        if not 1 <= self.unet_depth <= 5:
            problems.append(f"unet_depth={self.unet_depth} must be between 1 and 5")
        if self.lr <= 0:
            problems.append(f"lr={self.lr} must be positive")
        if self.grid not in (1, 2):
            problems.append(f"grid={self.grid} must be 1 (full resolution) or 2 (half resolution, upsampled)")
        if not 1 <= self.separable_from <= self.unet_depth:
            problems.append(
                f"separable_from={self.separable_from} must be between 1 and unet_depth={self.unet_depth} "
                "(the level whose blocks are the first separable ones; the bottom block always is)"
            )
        if self.grid_skip and self.grid != 2:
            problems.append("grid_skip=true needs grid=2 (it joins full-resolution features to the upsampled ones)")
        if not 0 < self.distill_weight <= 1:
            problems.append(f"distill_weight={self.distill_weight} must be in (0, 1]: the teacher's share")
        if self.input_norm not in INPUT_NORMS:
            problems.append(f"input_norm={self.input_norm!r} must be one of {INPUT_NORMS}")
        if self.zoom_max < 1:
            problems.append(f"zoom_max={self.zoom_max} must be at least 1 (1: no zoom)")
        for name in ("contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 0 and below 1")
        if self.lr_schedule not in ("cosine", "constant"):
            problems.append(f"lr_schedule={self.lr_schedule!r} must be 'cosine' or 'constant'")
        for name in ("blur_probability", "elastic_probability", "threshold", "warmup_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name}={getattr(self, name)} must be between 0 and 1")
        for name in ("border_sigma", "blur_sigma_max", "dist_lambda", "mpp"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        for name in (
            "border_weight",
            "elastic_sigma",
            "stain_jitter",
            "momentum",
            "weight_decay",
            "checkpoint_seconds",
            "clip_norm",
            "brightness",
            "gamma",
            "rotate_max_degrees",
            "min_object_size",
            "watershed_min_distance",
            "dist_threshold",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must not be negative")
        if self.watershed_footprint < 1:
            problems.append(f"watershed_footprint={self.watershed_footprint} must be at least 1")
        if self.steps > self.steps_per_epoch and self.steps % self.steps_per_epoch:
            problems.append(
                f"steps={self.steps} must be a multiple of steps_per_epoch={self.steps_per_epoch} (a "
                "checkpoint ends each epoch): round steps, or set steps_per_epoch to a divisor of it"
            )
        if self.dataset_weights is not None and len(self.dataset_weights) != len(self.data_paths):
            problems.append(
                f"dataset_weights has {len(self.dataset_weights)} weights for {len(self.data_paths)} "
                "data set(s): give one per data set, in the order of --data"
            )
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return self

    @property
    def data_paths(self) -> list[str]:
        """The data set folders, as a list (one or more)."""
        return [self.data] if isinstance(self.data, str) else list(self.data)

    def _type_problems(self) -> list[str]:
        """Each field holds the type of its default (an int where a float is asked is fine)."""
        problems = []
        for field in dataclasses.fields(self):
            value, default = getattr(self, field.name), field.default
            if field.name == "data":
                ok = isinstance(value, str) or (
                    isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, str) for v in value)
                )
                if not ok:
                    problems.append(f"data={value!r} must be a data set folder or a list of them")
                continue
            if field.name == "dataset_weights":
                ok = value is None or (
                    isinstance(value, (list, tuple))
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value)
                    and sum(value) > 0
                )
                if not ok:
                    problems.append(
                        f"dataset_weights={value!r} must be null (evenly) or a list of weights >= 0, one per data set"
                    )
                continue
            if default is None:  # encoder_weights, init: None or a string
                ok = value is None or isinstance(value, str)
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, type(default))
            if not ok:
                expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
                    type(default), "a string or null"
                )
                problems.append(f"{field.name}={value!r} must be {expected}")
        return problems


PROFILES: dict[str, dict] = {
    # The full recipe, for a GPU: original widths, 20k steps of batch 8 at 256x256.
    "paper": {},
    # Minutes on 2 CPU cores: narrow nets, small crops, a few hundred steps.
    "quick": {
        "crop": 128,
        "base_filters": 8,
        "unet_depth": 3,
        "fc_filters": 64,
        "steps": 600,
        "steps_per_epoch": 50,
        "batch_size": 4,
        "lr": 0.05,
    },
    # About 5 minutes a fold on 2 CPU cores (issue 20): U-Net and DIST of 8..128 filters, FCN-8s of
    # 8..64 with fc 128, 3000 steps of batch 4 at 128x128, training, choice of post-processing and
    # scoring included (a DIST fold: 157-171 s on a 2-core Intel Xeon with AMX, 256 s on an AMD EPYC Zen 4,
    # 283-361 s on an AVX2-only one by the day: results/measured/tnbc_cpu_dist_3000_xeon, _amd; 2400 steps
    # lost 0.011 PQ there: results/measured/tnbc_cpu_dist_2400).
    # Until 2026-12 it was 16 filters and 2000 steps; on the same TNBC folds these nets score as
    # high at a quarter of the multiply-adds (results/measured/tnbc_cpu_*_b8_3000, docs/speed.md,
    # seventeenth round). DeconvNet stays at 16..128, in folds of about 11 minutes on a Zen 4 EPYC (6 1/3 on
    # an AMX Xeon): at 8 it lost 0.08 AJI (results/measured/tnbc_cpu_deconvnet_b8_3000, tnbc_cpu_deconvnet_3000).
    "cpu": {
        "crop": 128,
        "base_filters": 8,
        "unet_depth": 4,
        "fc_filters": 128,
        "deconvnet_filters": 16,
        "steps": 3000,
        "steps_per_epoch": 100,
        "batch_size": 4,
        "lr": 0.05,
    },
}


def default_profile() -> str:
    """ "paper" where Keras sees a GPU, "quick" otherwise (what the notebooks start from)."""
    from nucseg.hardware import keras_sees_gpu

    return "paper" if keras_sees_gpu() else "quick"


def resolve_data_path(cli_value: str | None = None) -> str:
    """--data if given, else $NUCSEG_DATA, else data/tnbc."""
    return cli_value or os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA
