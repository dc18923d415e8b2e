"""The `nucseg` command line: the same jobs as the notebooks, on the same Config."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from nucseg.config import ARCHITECTURES, DEFAULT_DATA, PROFILES, Config, ConfigError, resolve_data_path
from nucseg.errors import InputError, TrainingDiverged
from nucseg.io import FolderBusy, RunLock
from nucseg.study.health import describe_flags

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


def _add_data(parser, several: bool = False):
    if several:
        parser.add_argument("--data", nargs="+", metavar="DATA",
                            help="data set folder(s); several are trained on together, drawn evenly "
                                 "(default: $NUCSEG_DATA, then data/tnbc)")
    else:
        parser.add_argument("--data", help="dataset folder (default: $NUCSEG_DATA, then data/tnbc)")


def _add_stain_reference(parser):
    parser.add_argument("--stain-reference", metavar="DATA_OR_IMAGE",
                        help="Macenko-normalise every image to the stains of this data set folder or image first "
                             "(the model's training data, for slides from another lab)")


def _add_config_options(parser):
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
    parser.add_argument("--mixed-precision", action="store_true", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other Config field, e.g. --set base_filters=16 (repeatable)")


def config_from_args(args, **fixed) -> Config:
    """Profile (or --config file), then the explicit options, then `fixed`."""
    if args.config:
        config = Config.load(args.config, profile=args.profile)
    else:
        config = Config.from_profile(args.profile or "paper")
    changes = {name: getattr(args, name) for name in
               ("steps", "batch_size", "crop", "lr", "momentum", "weight_decay", "seed", "mixed_precision")
               if getattr(args, name, None) is not None}
    for item in args.set:
        name, _, value = item.partition("=")
        changes[name] = _parse_field(name, value)
    if getattr(args, "init", None):
        changes["init"] = args.init
    from_file = args.config and config.data != DEFAULT_DATA
    data = getattr(args, "data", None) or (config.data if from_file else resolve_data_path())
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    return config.replace(**{**changes, **fixed, "data": data})


def _parse_field(name: str, value: str):
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


# ---------------------------------------------------------------- commands


def cmd_data_check(args) -> int:
    from nucseg.data.dataset import DatasetError, load_dataset, summarize

    path = resolve_data_path(args.path or args.data)
    try:
        tiles = load_dataset(path)
    except DatasetError as err:
        print(f"{path}: {len(err.problems)} problem(s):", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    rows = summarize(tiles)
    print(f"{path}")
    print(f"{'patient':<16} {'tiles':>5} {'nuclei':>6}  sizes")
    for row in rows:
        print(f"{row['patient']:<16} {row['tiles']:>5} {row['nuclei']:>6}  {row['sizes']}")
    print(f"{len(rows)} patients, {len(tiles)} tiles, {sum(r['nuclei'] for r in rows)} nuclei")
    for row in rows:
        if row["nuclei"] == 0:
            print(f"warning: patient {row['patient']} has no nucleus in its labels: as a held-out patient its "
                  "sensitivity (TPR) and Perf are undefined (NaN, flagged `empty` in folds.csv); check its "
                  "label files", file=sys.stderr)
    return 0


def cmd_data_download(args) -> int:
    from nucseg.data.download import DownloadError, download_tnbc

    try:
        download_tnbc(args.dest, record=args.record, base_url=args.zenodo_url)
    except DownloadError as err:
        print(f"download failed: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_bench_pipeline(args) -> int:
    from nucseg.bench.pipeline import bench_pipeline, format_throughputs
    from nucseg.data.dataset import load_dataset

    config = config_from_args(args)
    results = bench_pipeline(load_dataset(config.data, mpp=config.mpp), config, seconds=args.seconds)
    print(format_throughputs(results, config.crop))
    return 0


def cmd_train(args) -> int:
    from nucseg.data.dataset import load_dataset, patients_of
    from nucseg.study.folds import fold_for
    from nucseg.study.fold import train_fold

    config = config_from_args(args, arch=args.arch)
    tiles = load_dataset(config.data, mpp=config.mpp)
    if args.val_patient:
        fold_for(patients_of(tiles), args.val_patient)  # an unknown patient is named before anything is written
    result = train_fold(config, tiles, args.val_patient, args.out, verbose=args.verbose)
    held_out = f"held-out patient {result.val_patient}" if args.val_patient else "trained on every patient"
    print(f"{config.arch}, {held_out}: {result.steps} steps, {result.seconds} s")
    if result.flags:
        print(f"WARNING: {describe_flags(result.flags)}", file=sys.stderr)
    if args.val_patient:
        print("  " + "  ".join(f"{k}={v:.4f}" for k, v in result.scores.items()))
    print(f"  models: {Path(args.out) / 'model.keras'}, {Path(args.out) / 'saved_model'}")
    return 0


def _model_and_config(model_path: str, overrides: dict | None = None, precision: str = "float32",
                      engine: str = "tensorflow"):
    """(predictor, Config of its post-processing): the model's saved config.json and
    postprocess.json where they are beside it, else the defaults for its output kind; then
    `overrides` (None values ignored)."""
    from nucseg.inference.saved import model_config
    from nucseg.inference.predict import load_predictor, output_kind_of

    from nucseg.inference.engines import choose_engine, choose_precision, describe

    engine = choose_engine(engine)
    precision = choose_precision(precision, engine)
    predictor = load_predictor(model_path, precision, engine)
    print(f"{model_path}: {describe(engine, precision)}", file=sys.stderr)
    saved, config = model_config(model_path, output_kind_of(predictor))
    if saved is None:
        print(f"note: no config.json beside {model_path}; default post-processing of a {config.output_kind} map",
              file=sys.stderr)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    return predictor, config.replace(**changes) if changes else config


def _stain_normaliser(reference: str | None):
    """image -> image: Macenko-normalised to the stains of `reference` (a data set folder or an
    image, e.g. the model's training data), or unchanged without one."""
    if reference is None:
        return lambda image: image
    from nucseg.data.dataset import load_dataset, read_image
    from nucseg.data.stain import fit_reference, normalise

    path = Path(reference)
    if not path.exists():
        raise InputError(f"--stain-reference {reference}: no such file or folder; give the model's training data "
                         "set (a folder) or an image in the stains it was trained on")
    images = [t.image for t in load_dataset(path)] if path.is_dir() else [read_image(path)]
    try:
        target = fit_reference(images)
    except ValueError as err:
        raise InputError(f"--stain-reference {reference}: {err}") from err
    return lambda image: normalise(image, target)


def cmd_predict(args) -> int:
    from nucseg.data.dataset import read_image
    from nucseg.inference.objects import write_nuclei
    from nucseg.postprocess.instances import foreground, instances_from_config
    from nucseg.inference.predict import check_tiling, output_names, predict_nucleus_map, write_prediction
    from nucseg.inference.resolution import predict_at_model_scale, scale_factor, tiff_mpp

    check_tiling(args.tile, args.overlap)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise InputError(f"--threshold {args.threshold}: a probability threshold is between 0 and 1.")
    names = output_names(args.images)
    predictor, config = _model_and_config(args.model, {"threshold": args.threshold, "min_object_size": args.min_size,
                                                       "dist_threshold": args.dist_threshold, "dist_lambda": args.dist_lambda},
                                          precision=args.precision, engine=args.engine)
    stain_normalised = _stain_normaliser(args.stain_reference)
    if args.mpp is not None and not 0 < args.mpp < 100:
        raise InputError(f"--mpp {args.mpp}: microns per pixel of the images (40x scans: about 0.25, 20x: 0.5)")
    out = Path(args.out)
    for path, name in zip(args.images, names):
        image = read_image(path)
        factor = scale_factor(args.mpp or tiff_mpp(path), config.mpp)
        nucleus_map, labels = predict_at_model_scale(
            lambda im: predict_nucleus_map(predictor, stain_normalised(im), tile=args.tile, overlap=args.overlap,
                                           tta=args.tta),
            lambda m: instances_from_config(m, config), image, factor)
        map_png, mask_png = write_prediction(nucleus_map, foreground(nucleus_map, config), out, name, config.output_kind)
        if factor != 1.0:
            print(f"{path}: resampled x{factor:.3g} to the model's {config.mpp} µm per pixel, nuclei mapped back",
                  file=sys.stderr)
        map_name = "mean_distance" if config.output_kind == "distance" else "mean_probability"
        written = write_nuclei(labels, image, nucleus_map, out, name, map_name)
        print(f"{path}: {int(labels.max())} nuclei -> {map_png.name}, {mask_png.name}, "
              f"{written['label'].name}, {written['geojson'].name}, {written['table'].name}")
    return 0


def cmd_evaluate(args) -> int:
    from nucseg.inference.baseline import BASELINE_NAME, baseline_config, otsu_nucleus_map
    from nucseg.data.dataset import load_dataset
    from nucseg.study.evaluate import evaluate_methods
    from nucseg.io import write_text_atomic
    from nucseg.inference.predict import predict_nucleus_map
    from nucseg.study.results import summarize_folds, summary_markdown

    stain_normalised = _stain_normaliser(args.stain_reference)
    predictor, config = _model_and_config(args.model, precision=args.precision, engine=args.engine)
    if args.mpp is not None and not 0 < args.mpp < 100:
        raise InputError(f"--mpp {args.mpp}: microns per pixel of the tiles (40x scans: about 0.25, 20x: 0.5)")
    tiles = _only_patients(load_dataset(args.data, mpp=config.mpp, source_mpp=args.mpp), args.patients, args.data)
    name = Path(args.model).resolve().parent.name if Path(args.model).name in ("model.keras", "saved_model") else Path(args.model).stem
    name = f"{config.arch} ({name}){' + Macenko' if args.stain_reference else ''}{' + TTA' if args.tta else ''}"
    methods = {name: (lambda image: predict_nucleus_map(predictor, stain_normalised(image), tta=args.tta), config),
               BASELINE_NAME: (otsu_nucleus_map, baseline_config(config))}
    _warn_in_sample(args.model, args.data, tiles)
    tile_table, patient_table = evaluate_methods(methods, tiles)
    summary = summarize_folds(patient_table)
    out = Path(args.out)
    write_text_atomic(out / "tiles.csv", tile_table.to_csv(index=False))
    named = {"arch": "method", "val_patient": "patient"}
    write_text_atomic(out / "patients.csv", patient_table.drop(columns=["flags", "steps"]).rename(columns=named).to_csv(index=False))
    write_text_atomic(out / "summary.csv", summary.drop(columns=["flagged", "steps"]).rename(columns=named).to_csv(index=False))
    markdown = summary_markdown(summary)
    write_text_atomic(out / "summary.md", markdown)
    if config.output_kind == "distance":
        chosen = f"distance threshold {config.dist_threshold}, lambda {config.dist_lambda}"
    else:
        chosen = f"threshold {config.threshold}, min distance {config.watershed_min_distance}"
    print(f"{args.model} on {args.data}: {len(tiles)} tiles, mean ± std over patients (post-processing: {chosen})\n")
    print(markdown)
    return 0


def _warn_in_sample(model_path: str, data: str, tiles) -> None:
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
            print(f"WARNING: {model_path} was trained on the data set {name} (all of its patients): these scores are "
                  "in-sample, not held out. Use `nucseg lodo` for scores on a data set a model never saw.",
                  file=sys.stderr)
        return
    seen = sorted({t.patient for t in tiles if (name, t.patient) in trained})
    if seen:
        print(f"WARNING: {model_path} was trained on {len(seen)} of the scored patients ({', '.join(seen)} of {data}): "
              "their scores are in-sample, not held out. Score a fold's model on its held-out patient only "
              "(--patients).", file=sys.stderr)


def _only_patients(tiles, patients, data) -> list:
    """The tiles of `patients` (all where None); an unknown patient is refused by name."""
    from nucseg.data.dataset import patients_of

    if not patients:
        return tiles
    known = patients_of(tiles)
    unknown = [p for p in patients if p not in known]
    if unknown:
        raise InputError(f"{data}: no patient {', '.join(unknown)}; its patients are {', '.join(known)}")
    return [t for t in tiles if t.patient in patients]


def cmd_slide(args) -> int:
    from nucseg.inference.predict import output_names, with_tta
    from nucseg.inference.slide import run_slide

    names = output_names(args.slides)
    if args.ray is not None:
        from nucseg.distributed import run_slides_on_ray

        options = {"tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size, "region": args.region,
                   "mpp": args.mpp, "gzip_geojson": args.gzip, "tta": args.tta, "precision": args.precision, "engine": args.engine}
        run_slides_on_ray(args.model, [(p, Path(args.out) / n) for p, n in zip(args.slides, names)], options,
                          address=None if args.ray == "local" else args.ray)
        return 0
    predictor, config = _model_and_config(args.model, precision=args.precision, engine=args.engine)
    predictor = with_tta(predictor) if args.tta else predictor
    for path, name in zip(args.slides, names):
        print(f"{path} -> {Path(args.out) / name}")
        summary = run_slide(predictor, config, path, Path(args.out) / name, tile=args.tile, overlap=args.overlap,
                            batch_size=args.batch_size, region=args.region, mpp=args.mpp, gzip_geojson=args.gzip,
                            verbose=args.verbose)
        print(f"  {summary['nuclei']} nuclei in {summary['tiles']} tissue tiles ({summary['megapixels']} megapixels, "
              f"level {summary['level']}), {summary['seconds']} s; {summary['cut']} cut by a tile edge and dropped")
    return 0


def cmd_lopo(args) -> int:
    from nucseg.study.lopo import read_grid, run_grid, run_lopo
    from nucseg.study.results import summary_markdown, summarize_folds

    config = config_from_args(args)
    runner = None
    if args.ray is not None:
        from nucseg.distributed import RayRunner, import_ray

        import_ray()  # says how to install it, before anything is trained
        runner = RayRunner(address=None if args.ray == "local" else args.ray, cpus_per_fold=args.cpus_per_fold)
    if args.grid:
        table = run_grid(config, args.arch, args.out, read_grid(args.grid), args.val_patients, verbose=args.verbose,
                         runner=runner)
        print(table.to_string(index=False))
        return 0
    folds = run_lopo(config, args.arch, args.out, val_patients=args.val_patients, verbose=args.verbose, runner=runner)
    print(f"\n{len(folds)} folds in {Path(args.out) / 'folds.csv'}; summary (mean ± std over patients):\n")
    print(summary_markdown(summarize_folds(folds)))
    return 0


def cmd_lodo(args) -> int:
    from nucseg.study.lodo import lodo_markdown, run_lodo

    config = config_from_args(args)
    folds = run_lodo(config, args.arch, args.out, verbose=args.verbose)
    print(f"\n{len(folds)} rows in {Path(args.out) / 'folds.csv'}:\n")
    print(lodo_markdown(folds))
    return 0


def cmd_bench_memory(args) -> int:
    from nucseg.bench.memory import bench_training_memory, format_memory
    from nucseg.data.dataset import load_dataset

    config = config_from_args(args)
    print(format_memory(bench_training_memory(load_dataset(config.data, mpp=config.mpp), config, big_side=args.big_side)))
    return 0


def cmd_bench_slide(args) -> int:
    from nucseg.bench.slide import bench_slide, format_slide_benchmark
    from nucseg.data.dataset import load_dataset

    predictor, config = _model_and_config(args.model, precision=args.precision, engine=args.engine)
    tiles = load_dataset(resolve_data_path(args.data))
    from nucseg.inference.engines import cpu_summary

    print(format_slide_benchmark(bench_slide(predictor, config, tiles, Path(args.work), args.side, args.tile, args.overlap,
                                             args.batch_size)))
    print(f"CPU: {cpu_summary()}")
    return 0


def cmd_bench_stardist(args) -> int:
    import pandas as pd

    from nucseg.bench.stardist import bench_stardist_fold, import_stardist
    from nucseg.data.dataset import load_dataset
    from nucseg.io import write_text_atomic

    tiles = load_dataset(resolve_data_path(args.data))
    _only_patients(tiles, args.val_patients, args.data)  # an unknown patient is refused before any training
    table = Path(args.out) / "folds.csv"
    rows = pd.read_csv(table).to_dict("records") if table.is_file() else []
    budgets = {row.get("budget_seconds") for row in rows if pd.notna(row.get("budget_seconds"))} - {args.seconds}
    if budgets:  # a table of folds given other times would compare nothing
        raise InputError(f"{table} holds folds run with --seconds {', '.join(f'{b:g}' for b in sorted(budgets))}, "
                         f"not {args.seconds:g}: rerun with that --seconds to resume, or use a new --out")
    import_stardist()  # says how to install it
    for patient in args.val_patients:
        if any(row["val_patient"] == patient for row in rows):
            print(f"{patient}: already in {table}")
            continue
        row = {**bench_stardist_fold(tiles, patient, Path(args.out), args.seconds), "budget_seconds": args.seconds}
        rows.append(row)
        write_text_atomic(table, pd.DataFrame(rows).to_csv(index=False))  # resumable fold by fold
        print(f"{patient}: F1 {row['f1']:.3f}  AJI {row['aji']:.3f}  object F1 {row['object_f1']:.3f}  "
              f"PQ {row['pq']:.3f}  ({row['steps']} steps, {row['seconds']:.0f} s)")
    return 0


def cmd_bench_models(args) -> int:
    from nucseg.bench.models import bench_models, format_model_benchmarks

    config = config_from_args(args)
    print(format_model_benchmarks(bench_models(config, args.arch, args.steps_to_time)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nucseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets: check, download").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="print patients, tiles, nuclei; fail on bad files")
    check.add_argument("path", nargs="?", help="dataset folder (default: --data, $NUCSEG_DATA, data/tnbc)")
    _add_data(check)
    check.set_defaults(run=cmd_data_check)
    download = data.add_parser("download", help="download a public dataset")
    download.add_argument("name", choices=["tnbc"])
    download.add_argument("--dest", default="data/tnbc")
    download.add_argument("--record", default="1175282", help="Zenodo record (default: 1175282)")
    download.add_argument("--zenodo-url", default="https://zenodo.org", help=argparse.SUPPRESS)
    download.set_defaults(run=cmd_data_download)

    bench = commands.add_parser("bench", help="benchmarks that print numbers").add_subparsers(dest="bench_command", required=True)
    pipeline = bench.add_parser("pipeline", help="augmented samples/s against elasticdeform and Keras")
    _add_data(pipeline, several=True)
    _add_config_options(pipeline)
    pipeline.add_argument("--seconds", type=float, default=20.0, help="measuring time per pipeline")
    pipeline.set_defaults(run=cmd_bench_pipeline)
    memory = bench.add_parser("memory", help="peak memory of the training input with one very large tile")
    _add_data(memory, several=True)
    _add_config_options(memory)
    memory.add_argument("--big-side", type=int, default=6000, help="side of the large tile added to the data set")
    memory.set_defaults(run=cmd_bench_memory)
    nets = bench.add_parser("models", help="parameters, training steps/s and predict time per net")
    _add_config_options(nets)
    nets.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    nets.add_argument("--steps-to-time", type=int, default=5)
    nets.set_defaults(run=cmd_bench_models)

    stardist = bench.add_parser("stardist", help="StarDist trained from scratch on the same folds, for a given time")
    _add_data(stardist)
    stardist.add_argument("--val-patients", nargs="+", required=True, help="the held-out patients, one fold each")
    stardist.add_argument("--seconds", type=float, required=True, help="wall time per fold (nucseg's fold time)")
    stardist.add_argument("--out", required=True, help="StarDist's models and folds.csv (rerun to resume)")
    stardist.set_defaults(run=cmd_bench_stardist)

    slide_bench = bench.add_parser("slide", help="megapixels/s and peak memory of `nucseg slide` on a mosaic slide")
    slide_bench.add_argument("model", help="model.keras, a SavedModel folder or pretrained:NAME")
    _add_data(slide_bench)
    slide_bench.add_argument("--side", type=int, default=8192, help="side of the square mosaic slide (20000: 400 megapixels)")
    slide_bench.add_argument("--work", default="results/bench_slide", help="where the slide and its outputs go")
    slide_bench.add_argument("--tile", type=int, default=1024)
    slide_bench.add_argument("--overlap", type=int, default=128)
    slide_bench.add_argument("--batch-size", type=int, default=2)
    _add_precision(slide_bench)
    slide_bench.set_defaults(run=cmd_bench_slide)

    train = commands.add_parser("train", help="train one leave-one-patient-out fold, export it, score it")
    _add_data(train, several=True)
    _add_init(train)
    train.add_argument("--arch", choices=ARCHITECTURES, required=True)
    held_out = train.add_mutually_exclusive_group(required=True)
    held_out.add_argument("--val-patient", help="the held-out patient")
    held_out.add_argument("--all-patients", action="store_true", help="train on every patient (a model to use elsewhere)")
    train.add_argument("--out", required=True, help="the fold's folder (rerun with the same one to resume)")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="0: quiet, 1: one progress bar (default), 2: a line per epoch")
    _add_config_options(train)
    train.set_defaults(run=cmd_train)

    lopo = commands.add_parser("lopo", help="the leave-one-patient-out study of one or more nets")
    _add_data(lopo, several=True)
    _add_init(lopo)
    lopo.add_argument("--arch", nargs="+", choices=ARCHITECTURES, required=True)
    lopo.add_argument("--out", required=True, help="the run folder (rerun the same command to resume)")
    lopo.add_argument("--grid", help="YAML of lr / momentum / weight_decay lists: the study for each setting")
    lopo.add_argument("--val-patients", nargs="+", help="hold out only these patients (default: every patient)")
    lopo.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="0: a line per fold, 1: and one progress bar per fold (default), 2: a line per epoch")
    lopo.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                      help="run the folds as Ray tasks: on a local Ray instance, or on the cluster at ADDRESS (ray://host:10001 or host:6379)")
    lopo.add_argument("--cpus-per-fold", type=int, default=1, help="with --ray: CPU threads per fold (default 1)")
    _add_config_options(lopo)
    lopo.set_defaults(run=cmd_lopo)

    lodo = commands.add_parser("lodo", help="leave one data set out: train on all data sets but one, score it, "
                                            "beside the Otsu baseline")
    lodo.add_argument("--data", nargs="+", required=True, metavar="DATA", help="two or more data set folders")
    lodo.add_argument("--arch", nargs="+", choices=ARCHITECTURES, required=True)
    lodo.add_argument("--out", required=True, help="the run folder (rerun the same command to resume)")
    lodo.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    _add_init(lodo)
    _add_config_options(lodo)
    lodo.set_defaults(run=cmd_lodo)

    evaluate = commands.add_parser("evaluate", help="score an exported model on a data set, beside the Otsu baseline")
    evaluate.add_argument("inputs", nargs="+", metavar="[MODEL] DATA",
                          help="model.keras, a SavedModel folder or pretrained:NAME (default: the pretrained "
                               "he-nuclei), then a data set folder (TNBC or generic layout)")
    evaluate.add_argument("--mpp", type=float, help="microns per pixel of the data set's tiles where its dataset.yaml "
                                                    "does not say; they are resampled to the model's")
    evaluate.add_argument("--out", required=True, help="folder for tiles.csv, patients.csv, summary.csv, summary.md")
    evaluate.add_argument("--tta", action="store_true", help="average the 8 flips and rotations of each tile")
    _add_stain_reference(evaluate)
    evaluate.add_argument("--patients", nargs="+", metavar="PATIENT",
                          help="score these patients' tiles only (e.g. a fold's held-out patient)")
    _add_precision(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser("predict", help="nuclei of images of any size: label image, GeoJSON, table, map, mask")
    predict.add_argument("inputs", nargs="+", metavar="[MODEL] IMAGE",
                         help="model.keras, a SavedModel folder or pretrained:NAME (default: the pretrained "
                              "he-nuclei), then the images")
    predict.add_argument("--mpp", type=float, help="microns per pixel of the images (default: a TIFF's resolution "
                                                   "tags, else the model's); they are resampled to the model's")
    predict.add_argument("--out", required=True)
    predict.add_argument("--tile", type=int, default=512, help="tile side for large images (multiple of 32)")
    predict.add_argument("--overlap", type=int, default=64)
    predict.add_argument("--threshold", type=float, help="probability threshold (default: the model's saved one)")
    predict.add_argument("--dist-threshold", type=float, help="DIST: foreground distance in pixels (default: the model's)")
    predict.add_argument("--dist-lambda", type=float, help="DIST: h of the h-maxima markers (default: the model's)")
    predict.add_argument("--min-size", type=int, help="smallest nucleus kept, in pixels (default: the model's)")
    predict.add_argument("--tta", action="store_true", help="average the 8 flips and rotations of each image")
    _add_stain_reference(predict)
    _add_precision(predict)
    predict.set_defaults(run=cmd_predict)

    slide = commands.add_parser("slide", help="nuclei of whole-slide images (OpenSlide): GeoJSON, table, overview")
    slide.add_argument("inputs", nargs="+", metavar="[MODEL] SLIDE",
                       help="model.keras, a SavedModel folder or pretrained:NAME (default: the pretrained he-nuclei), "
                            "then the slides (.svs, .ndpi, .mrxs, .scn, pyramidal .tif, ...)")
    slide.add_argument("--out", required=True, help="one folder per slide is made in it (rerun to resume)")
    slide.add_argument("--region", type=int, nargs=4, metavar=("X", "Y", "W", "H"), help="level-0 pixels: only this part")
    slide.add_argument("--tile", type=int, default=1024, help="tile side at the model's resolution (multiple of 32)")
    slide.add_argument("--overlap", type=int, default=128, help="at least the widest nucleus, in pixels (default 128)")
    slide.add_argument("--batch-size", type=int, default=2, help="tiles per prediction (raise it on a GPU)")
    slide.add_argument("--mpp", type=float, help="microns per pixel of the slide where its file does not say")
    slide.add_argument("--gzip", action="store_true", help="write nuclei.geojson.gz")
    slide.add_argument("--tta", action="store_true", help="average the 8 flips and rotations of each tile")
    _add_precision(slide)
    slide.add_argument("--verbose", type=int, default=1, choices=[0, 1], help="1: a progress bar (default)")
    slide.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="one Ray task per slide: on a local Ray instance, or on the cluster at ADDRESS")
    slide.set_defaults(run=cmd_slide)
    return parser


def _add_init(parser) -> None:
    parser.add_argument("--init", metavar="MODEL",
                        help="start from this model's weights (fine-tuning): a model.keras of the same --arch and "
                             "widths, or `pretrained:NAME` (see `nucseg models`)")


def _add_precision(parser, default: str = "auto") -> None:
    from nucseg.inference.engines import ENGINES, PRECISION_CHOICES

    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="auto (default): TensorFlow on a GPU, else OpenVINO where installed, else TensorFlow")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=default,
                        help="auto (float32): bfloat16 is faster only on CPUs with AVX512_BF16 or AMX, and moves "
                             f"DIST's nuclei (see docs/speed.md) (default: {default})")


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


def main(argv=None) -> int:
    # TensorFlow's later C++ lines (CPU features, XLA) would come at every compilation; errors
    # still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see them all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.command != "data" and "tensorflow" not in sys.modules:
        import_tensorflow_once()
    _log_to_stderr()
    try:
        _split_model_and_inputs(args)
        out = _checked_out(args)
        if out is None:
            return args.run(args)
        with RunLock(out, command=f"nucseg {args.command}", log=lambda m: print(m, file=sys.stderr)):
            return args.run(args)
    except (InputError, FolderBusy) as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDiverged as err:
        print(f"TrainingDiverged: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def looks_like_model(value: str) -> bool:
    return (value.startswith("pretrained:") or value.endswith(".keras")
            or (Path(value) / "saved_model.pb").is_file())


def _split_model_and_inputs(args) -> None:
    """`predict|slide [MODEL] INPUT...` and `evaluate [MODEL] DATA`: the model is the first
    argument where it is one (a .keras file, a SavedModel folder, pretrained:NAME), else the
    shipped pretrained model; `args.model` becomes a path."""
    from nucseg import pretrained

    if getattr(args, "inputs", None) is not None:
        inputs = list(args.inputs)
        model = inputs.pop(0) if len(inputs) > 1 and looks_like_model(inputs[0]) else None
        if args.command == "evaluate":
            if len(inputs) != 1:
                raise InputError(f"evaluate takes [MODEL] DATA: one data set folder after the model, not {inputs}")
            args.data = inputs[0]
        else:
            setattr(args, "images" if args.command == "predict" else "slides", inputs)
        if model is None:
            print(f"using the pretrained model {pretrained.DEFAULT} (pass a model first to use your own)",
                  file=sys.stderr)
        args.model = model
    if hasattr(args, "model"):
        args.model = pretrained.resolve(args.model)


def _log_to_stderr() -> None:
    """nucseg's warnings (logging, logger "nucseg") as one line each on stderr."""
    import logging

    logger = logging.getLogger("nucseg")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _checked_out(args) -> str | None:
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


if __name__ == "__main__":
    sys.exit(main())
