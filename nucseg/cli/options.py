"""Options shared by several commands, and the Config they make: the profile (or --config
file), then the explicit options, then --set FIELD=VALUE, validated by Config itself."""

from __future__ import annotations

import dataclasses

from nucseg.config import DEFAULT_DATA, PROFILES, Config, ConfigError, resolve_data_path


def add_data(parser, several: bool = False):
    if several:
        parser.add_argument(
            "--data",
            nargs="+",
            metavar="DATA",
            help="data set folder(s); several are trained on together, drawn evenly "
            "(default: $NUCSEG_DATA, then data/tnbc)",
        )
    else:
        parser.add_argument("--data", help="dataset folder (default: $NUCSEG_DATA, then data/tnbc)")


def add_stain_reference(parser):
    parser.add_argument(
        "--stain-reference",
        metavar="DATA_OR_IMAGE",
        help="Macenko-normalise every image to the stains of this data set folder or image first "
        "(the model's training data, for slides from another lab)",
    )


def add_config_options(parser):
    """Options that map onto Config fields; unset ones keep the profile's value."""
    parser.add_argument("--config", help="YAML or JSON configuration file (its `profile` key, then its fields)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="starting profile (default: paper, or the file's)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--crop", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        default=None,
        help="train in float16 on a GPU, bfloat16 on a CPU (faster only with AMX or AVX512_BF16)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other Config field, e.g. --set base_filters=16 (repeatable)",
    )


def config_from_args(args, **fixed) -> Config:
    """Profile (or --config file), then the explicit options, then `fixed`."""
    if args.config:
        config = Config.load(args.config, profile=args.profile)
    else:
        config = Config.from_profile(args.profile or "paper")
    changes = {
        name: getattr(args, name)
        for name in ("steps", "batch_size", "crop", "lr", "momentum", "weight_decay", "seed", "mixed_precision")
        if getattr(args, name, None) is not None
    }
    for item in args.set:
        name, _, value = item.partition("=")
        changes[name] = parse_field(name, value)
    if getattr(args, "init", None):
        from pathlib import Path

        from nucseg import pretrained

        source = Path(pretrained.resolve(args.init))
        if not (source.is_file() or (source / "model.keras").is_file()):  # named before any folder is written
            raise ConfigError(
                f"--init {args.init}: no model.keras there; give a trained model's .keras file "
                "(or its folder), or pretrained:NAME"
            )
        changes["init"] = args.init
    from_file = args.config and config.data != DEFAULT_DATA
    data = getattr(args, "data", None) or (config.data if from_file else resolve_data_path())
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    return config.replace(**{**changes, **fixed, "data": data})


def parse_field(name: str, value: str):
    fields = {f.name: f for f in dataclasses.fields(Config)}
    if name not in fields:
        raise ConfigError(f"--set {name}=...: no such Config field; known fields: {sorted(fields)}")
    default = getattr(Config(), name)
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {name}={value}: expected a boolean (true/false, yes/no, on/off, 1/0)")
    if value.lower() in ("none", "null"):
        return None
    if default is None:
        return value
    try:
        return type(default)(value)
    except ValueError as err:
        raise ConfigError(f"--set {name}={value}: expected a {type(default).__name__}") from err


def add_init(parser) -> None:
    parser.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this model's weights (fine-tuning): a model.keras of the same --arch and "
        "widths, or `pretrained:NAME` (see `nucseg models`)",
    )


def add_precision(parser, default: str = "auto") -> None:
    from nucseg.inference.engines import ENGINES, PRECISION_CHOICES

    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto (default): TensorFlow on a GPU, else OpenVINO where installed, else TensorFlow",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=default,
        help="auto: bfloat16 with OpenVINO on a CPU with AMX or AVX512_BF16; int8 with OpenVINO on an AVX2-only "
        "CPU for a model shipped with an int8 copy (the default one); else float32 (each measured faster there, "
        "with nuclei as good). bfloat16 on CPUs without AVX512_BF16 or AMX is float32 with OpenVINO and slower "
        f"with TensorFlow; int8 runs in OpenVINO only (see docs/speed.md) (default: {default})",
    )


def add_ray(parser) -> None:
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the folds as Ray tasks: on a local Ray instance, or on the cluster at ADDRESS "
        "(ray://host:10001 or host:6379; --out on storage the workers share)",
    )
    parser.add_argument("--cpus-per-fold", type=int, default=1, help="with --ray: CPU threads per fold (default 1)")


def add_nuclei_workers(parser) -> None:
    parser.add_argument(
        "--nuclei-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes that find the nuclei while the net predicts (default: one per CPU; "
        "0: one thread of the main process)",
    )
