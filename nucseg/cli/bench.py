"""`nucseg bench ...`: benchmarks that print numbers."""

from __future__ import annotations

from pathlib import Path

from nucseg.cli.common import model_and_config, only_patients
from nucseg.cli.options import config_from_args
from nucseg.config import resolve_data_path
from nucseg.errors import InputError


def cmd_bench_pipeline(args) -> int:
    from nucseg.bench.pipeline import bench_pipeline, format_throughputs
    from nucseg.data.dataset import load_dataset

    config = config_from_args(args)
    results = bench_pipeline(load_dataset(config.data, mpp=config.mpp), config, seconds=args.seconds)
    print(format_throughputs(results, config.crop))
    return 0


def cmd_bench_memory(args) -> int:
    from nucseg.bench.memory import bench_training_memory, format_memory
    from nucseg.data.dataset import load_dataset

    config = config_from_args(args)
    print(
        format_memory(bench_training_memory(load_dataset(config.data, mpp=config.mpp), config, big_side=args.big_side))
    )
    return 0


def cmd_bench_slide(args) -> int:
    from nucseg.bench.slide import bench_slide, format_slide_benchmark
    from nucseg.data.dataset import load_dataset

    predictor, config = model_and_config(args.model, precision=args.precision, engine=args.engine)
    tiles = load_dataset(resolve_data_path(args.data))
    from nucseg.hardware import cpu_summary

    print(
        format_slide_benchmark(
            bench_slide(
                predictor,
                config,
                tiles,
                Path(args.work),
                args.side,
                args.tile,
                args.overlap,
                args.batch_size,
                args.nuclei_workers,
            )
        )
    )
    print(f"CPU: {cpu_summary()}")
    return 0


def cmd_bench_stardist(args) -> int:
    import pandas as pd

    from nucseg.bench.stardist import bench_stardist_fold, import_stardist
    from nucseg.data.dataset import load_dataset
    from nucseg.io import write_text_atomic

    tiles = load_dataset(resolve_data_path(args.data))
    only_patients(tiles, args.val_patients, args.data)  # an unknown patient is refused before any training
    if args.predict_only:
        return _stardist_predict_only(args, tiles)
    if args.seconds is None:
        raise InputError("--seconds: the wall time per fold is needed to train StarDist (or pass --predict-only)")
    table = Path(args.out) / "folds.csv"
    rows = pd.read_csv(table).to_dict("records") if table.is_file() else []
    budgets = {row.get("budget_seconds") for row in rows if pd.notna(row.get("budget_seconds"))} - {args.seconds}
    if budgets:  # a table of folds given other times would compare nothing
        raise InputError(
            f"{table} holds folds run with --seconds {', '.join(f'{b:g}' for b in sorted(budgets))}, "
            f"not {args.seconds:g}: rerun with that --seconds to resume, or use a new --out"
        )
    import_stardist()  # says how to install it
    for patient in args.val_patients:
        if any(row["val_patient"] == patient for row in rows):
            print(f"{patient}: already in {table}")
            continue
        row = {**bench_stardist_fold(tiles, patient, Path(args.out), args.seconds), "budget_seconds": args.seconds}
        rows.append(row)
        write_text_atomic(table, pd.DataFrame(rows).to_csv(index=False))  # resumable fold by fold
        print(
            f"{patient}: F1 {row['f1']:.3f}  AJI {row['aji']:.3f}  object F1 {row['object_f1']:.3f}  "
            f"PQ {row['pq']:.3f}  ({row['steps']} steps, {row['seconds']:.0f} s)"
        )
    return 0


def cmd_bench_models(args) -> int:
    from nucseg.bench.models import bench_models, format_model_benchmarks

    config = config_from_args(args)
    print(format_model_benchmarks(bench_models(config, args.arch, args.steps_to_time)))
    return 0


def _stardist_predict_only(args, tiles) -> int:
    import pandas as pd

    from nucseg.bench.stardist import import_stardist, predict_speed
    from nucseg.hardware import cpu_summary, onednn_by_nucseg

    import_stardist()  # says how to install it
    model_dir = Path(args.out) / args.val_patients[0]
    if not (model_dir / "config.json").is_file():
        raise InputError(
            f"{model_dir}: no StarDist model; train it first: nucseg bench stardist --data {args.data} "
            f"--val-patients {args.val_patients[0]} --seconds S --out {args.out}"
        )
    from nucseg.pretrained import resolve

    predictor, config = model_and_config(resolve(args.model), precision=args.precision, engine=args.engine)
    rows = predict_speed(
        model_dir,
        tiles,
        predictor,
        config,
        Path(args.out) / "predict_only",
        args.side,
        args.repeats,
        nuclei_workers=args.nuclei_workers,
    )
    table = pd.DataFrame(rows)
    print(table.round(3).to_string(index=False))
    print(
        f"median megapixels/s: StarDist {table['stardist_megapixels_per_second'].median():.2f}, "
        f"nucseg {table['nucseg_megapixels_per_second'].median():.2f}; nucseg / StarDist, pair by pair: "
        f"median {table['ratio'].median():.2f}"
    )
    print(f"CPU: {cpu_summary()}")
    if onednn_by_nucseg():
        print(
            "StarDist ran on TensorFlow through oneDNN, which nucseg turns on for training on this CPU and "
            "TensorFlow by itself does not: StarDist predicted 1.5 times slower so on an AVX2-only AMD EPYC "
            "(docs/speed.md, twenty-first round). TF_ENABLE_ONEDNN_OPTS=0 times StarDist as TensorFlow runs "
            "it by itself; nucseg's route in OpenVINO (the default engine on a CPU) does not change."
        )
    return 0
