"""The `nucseg` command line's parser: every command and its options, apart from the work
(each command's function parses nothing, calls the library and prints)."""

from __future__ import annotations

import argparse

from nucseg.cli.apply import cmd_evaluate, cmd_predict, cmd_slide
from nucseg.cli.bench import cmd_bench_memory, cmd_bench_models, cmd_bench_pipeline, cmd_bench_slide, cmd_bench_stardist
from nucseg.cli.data import cmd_data_check, cmd_data_download
from nucseg.cli.options import (
    add_config_options,
    add_data,
    add_init,
    add_nuclei_workers,
    add_precision,
    add_ray,
    add_stain_reference,
)
from nucseg.cli.study import cmd_lodo, cmd_lopo, cmd_train
from nucseg.config import ARCHITECTURES
from nucseg.pretrained import DEFAULT as DEFAULT_MODEL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nucseg",
        description="nuclei segmentation in H&E histopathology: the same jobs as the notebooks, on one Config",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets: check, download").add_subparsers(
        dest="data_command", required=True
    )
    check = data.add_parser("check", help="print patients, tiles, nuclei; fail on bad files")
    check.add_argument("path", nargs="?", help="dataset folder (default: --data, $NUCSEG_DATA, data/tnbc)")
    add_data(check)
    check.set_defaults(run=cmd_data_check)
    download = data.add_parser("download", help="download a public dataset")
    download.add_argument("name", choices=["tnbc"])
    download.add_argument("--dest", default="data/tnbc")
    download.add_argument("--record", default="1175282", help="Zenodo record (default: 1175282)")
    download.add_argument("--zenodo-url", default="https://zenodo.org", help=argparse.SUPPRESS)
    download.set_defaults(run=cmd_data_download)

    bench = commands.add_parser("bench", help="benchmarks that print numbers").add_subparsers(
        dest="bench_command", required=True
    )
    pipeline = bench.add_parser("pipeline", help="augmented samples/s against elasticdeform and Keras")
    add_data(pipeline, several=True)
    add_config_options(pipeline)
    pipeline.add_argument("--seconds", type=float, default=20.0, help="measuring time per pipeline")
    pipeline.set_defaults(run=cmd_bench_pipeline)
    memory = bench.add_parser("memory", help="peak memory of the training input with one very large tile")
    add_data(memory, several=True)
    add_config_options(memory)
    memory.add_argument("--big-side", type=int, default=6000, help="side of the large tile added to the data set")
    memory.set_defaults(run=cmd_bench_memory)
    nets = bench.add_parser("models", help="parameters, training steps/s and predict time per net")
    add_config_options(nets)
    nets.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    nets.add_argument("--steps-to-time", type=int, default=5)
    nets.set_defaults(run=cmd_bench_models)

    stardist = bench.add_parser("stardist", help="StarDist trained from scratch on the same folds, for a given time")
    add_data(stardist)
    stardist.add_argument("--val-patients", nargs="+", required=True, help="the held-out patients, one fold each")
    stardist.add_argument("--seconds", type=float, help="wall time per fold (nucseg's fold time)")
    stardist.add_argument("--out", required=True, help="StarDist's models and folds.csv (rerun to resume)")
    stardist.add_argument(
        "--predict-only",
        action="store_true",
        help="no training: time the prediction of the fold's StarDist model in --out (trained by a run "
        "without this flag) against nucseg's slide route on the same mosaic, alternated",
    )
    stardist.add_argument(
        "--model", default=None, help=f"the nucseg model of --predict-only (default: pretrained:{DEFAULT_MODEL})"
    )
    stardist.add_argument("--side", type=int, default=4096, help="--predict-only: side of the square mosaic")
    stardist.add_argument("--repeats", type=int, default=3, help="--predict-only: pairs of timed runs")
    add_nuclei_workers(stardist)
    add_precision(stardist)
    stardist.set_defaults(run=cmd_bench_stardist)

    slide_bench = bench.add_parser(
        "slide", help="megapixels/s, seconds and CPU-seconds by stage and peak memory of `nucseg slide` on a mosaic"
    )
    slide_bench.add_argument("model", help="model.keras, a SavedModel folder or pretrained:NAME")
    add_data(slide_bench)
    slide_bench.add_argument(
        "--side", type=int, default=8192, help="side of the square mosaic slide (20000: 400 megapixels)"
    )
    slide_bench.add_argument("--work", default="results/bench_slide", help="where the slide and its outputs go")
    slide_bench.add_argument("--tile", type=int, default=1024)
    slide_bench.add_argument("--overlap", type=int, default=128)
    slide_bench.add_argument("--batch-size", type=int, default=2)
    add_nuclei_workers(slide_bench)
    add_precision(slide_bench)
    slide_bench.set_defaults(run=cmd_bench_slide)

    train = commands.add_parser("train", help="train one leave-one-patient-out fold, export it, score it")
    add_data(train, several=True)
    add_init(train)
    train.add_argument("--arch", choices=ARCHITECTURES, required=True)
    held_out = train.add_mutually_exclusive_group(required=True)
    held_out.add_argument("--val-patient", help="the held-out patient")
    held_out.add_argument(
        "--all-patients", action="store_true", help="train on every patient (a model to use elsewhere)"
    )
    train.add_argument("--out", required=True, help="the fold's folder (rerun with the same one to resume)")
    train.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="0: quiet, 1: one progress bar (default), 2: a line per epoch",
    )
    add_config_options(train)
    train.set_defaults(run=cmd_train)

    lopo = commands.add_parser("lopo", help="the leave-one-patient-out study of one or more nets")
    add_data(lopo, several=True)
    add_init(lopo)
    lopo.add_argument("--arch", nargs="+", choices=ARCHITECTURES, required=True)
    lopo.add_argument("--out", required=True, help="the run folder (rerun the same command to resume)")
    lopo.add_argument("--grid", help="YAML of lr / momentum / weight_decay lists: the study for each setting")
    lopo.add_argument("--val-patients", nargs="+", help="hold out only these patients (default: every patient)")
    lopo.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="0: a line per fold, 1: and one progress bar per fold (default), 2: a line per epoch",
    )
    add_ray(lopo)
    add_config_options(lopo)
    lopo.set_defaults(run=cmd_lopo)

    lodo = commands.add_parser(
        "lodo", help="leave one data set out: train on all data sets but one, score it, beside the Otsu baseline"
    )
    lodo.add_argument("--data", nargs="+", required=True, metavar="DATA", help="two or more data set folders")
    lodo.add_argument("--arch", nargs="+", choices=ARCHITECTURES, required=True)
    lodo.add_argument("--out", required=True, help="the run folder (rerun the same command to resume)")
    lodo.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    add_ray(lodo)
    add_init(lodo)
    add_config_options(lodo)
    lodo.set_defaults(run=cmd_lodo)

    evaluate = commands.add_parser("evaluate", help="score an exported model on a data set, beside the Otsu baseline")
    evaluate.add_argument(
        "inputs",
        nargs="+",
        metavar="[MODEL] DATA",
        help=f"model.keras, a SavedModel folder or pretrained:NAME (default: pretrained:{DEFAULT_MODEL}), "
        "then a data set folder (TNBC or generic layout)",
    )
    evaluate.add_argument(
        "--mpp",
        type=float,
        help="microns per pixel of the data set's tiles where its dataset.yaml "
        "does not say; they are resampled to the model's",
    )
    evaluate.add_argument("--out", required=True, help="folder for tiles.csv, patients.csv, summary.csv, summary.md")
    evaluate.add_argument("--tta", action="store_true", help="average the 8 flips and rotations of each tile")
    add_stain_reference(evaluate)
    evaluate.add_argument(
        "--patients",
        nargs="+",
        metavar="PATIENT",
        help="score these patients' tiles only (e.g. a fold's held-out patient)",
    )
    add_precision(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser(
        "predict", help="nuclei of images of any size: label image, GeoJSON, table, map, mask"
    )
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="[MODEL] IMAGE",
        help=f"model.keras, a SavedModel folder or pretrained:NAME (default: pretrained:{DEFAULT_MODEL}), "
        "then the images",
    )
    predict.add_argument(
        "--mpp",
        type=float,
        help="microns per pixel of the images (default: a TIFF's resolution "
        "tags, else the model's); they are resampled to the model's",
    )
    predict.add_argument("--out", required=True)
    predict.add_argument("--tile", type=int, default=512, help="tile side for large images (multiple of 32)")
    predict.add_argument("--overlap", type=int, default=64)
    predict.add_argument("--threshold", type=float, help="probability threshold (default: the model's saved one)")
    predict.add_argument(
        "--dist-threshold", type=float, help="DIST: foreground distance in pixels (default: the model's)"
    )
    predict.add_argument("--dist-lambda", type=float, help="DIST: h of the h-maxima markers (default: the model's)")
    predict.add_argument("--min-size", type=int, help="smallest nucleus kept, in pixels (default: the model's)")
    predict.add_argument("--tta", action="store_true", help="average the 8 flips and rotations of each image")
    add_stain_reference(predict)
    add_precision(predict)
    predict.set_defaults(run=cmd_predict)

    slide = commands.add_parser("slide", help="nuclei of whole-slide images (OpenSlide): GeoJSON, table, overview")
    slide.add_argument(
        "inputs",
        nargs="+",
        metavar="[MODEL] SLIDE",
        help=f"model.keras, a SavedModel folder or pretrained:NAME (default: pretrained:{DEFAULT_MODEL}), "
        "then the slides (.svs, .ndpi, .mrxs, .scn, pyramidal .tif, ...)",
    )
    slide.add_argument("--out", required=True, help="one folder per slide is made in it (rerun to resume)")
    slide.add_argument(
        "--region", type=int, nargs=4, metavar=("X", "Y", "W", "H"), help="level-0 pixels: only this part"
    )
    slide.add_argument(
        "--tile",
        type=int,
        default=1024,
        help="largest tile side at the model's resolution (multiple of 32); the tiles are fitted to the region",
    )
    slide.add_argument("--overlap", type=int, default=128, help="at least the widest nucleus, in pixels (default 128)")
    slide.add_argument("--batch-size", type=int, default=2, help="tiles per prediction (raise it on a GPU)")
    add_nuclei_workers(slide)
    slide.add_argument("--mpp", type=float, help="microns per pixel of the slide where its file does not say")
    slide.add_argument("--gzip", action="store_true", help="write nuclei.geojson.gz")
    slide.add_argument(
        "--label-image",
        action="store_true",
        help="also write labels.tif: the nuclei as a uint32 tiled TIFF of the region, ids as in nuclei.csv",
    )
    slide.add_argument("--tta", action="store_true", help="average the 8 flips and rotations of each tile")
    add_precision(slide)
    slide.add_argument("--verbose", type=int, default=1, choices=[0, 1], help="1: a progress bar (default)")
    slide.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="one Ray task per slide: on a local Ray instance, or on the cluster at ADDRESS",
    )
    slide.set_defaults(run=cmd_slide)
    return parser
