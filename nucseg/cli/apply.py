"""`nucseg predict | evaluate | slide`: a model applied to images, data sets and slides."""

from __future__ import annotations

import sys
from pathlib import Path

from nucseg.cli.common import model_and_config, only_patients, stain_normaliser, warn_in_sample
from nucseg.errors import InputError
from nucseg.postprocess.kinds import kind_of


def cmd_predict(args) -> int:
    from nucseg.data.dataset import read_image
    from nucseg.inference.objects import write_nuclei
    from nucseg.postprocess.kinds import foreground, instances_from_config
    from nucseg.inference.predict import check_tiling, output_names, predict_nucleus_map, write_prediction
    from nucseg.inference.resolution import predict_at_model_scale, scale_factor, tiff_mpp

    check_tiling(args.tile, args.overlap)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise InputError(f"--threshold {args.threshold}: a probability threshold is between 0 and 1.")
    names = output_names(args.images)
    predictor, config = model_and_config(
        args.model,
        {
            "threshold": args.threshold,
            "min_object_size": args.min_size,
            "dist_threshold": args.dist_threshold,
            "dist_lambda": args.dist_lambda,
        },
        precision=args.precision,
        engine=args.engine,
    )
    stain_normalised = stain_normaliser(args.stain_reference)
    if args.mpp is not None and not 0 < args.mpp < 100:
        raise InputError(f"--mpp {args.mpp}: microns per pixel of the images (40x scans: about 0.25, 20x: 0.5)")
    out = Path(args.out)
    for path, name in zip(args.images, names):
        image = read_image(path)
        factor = scale_factor(args.mpp or tiff_mpp(path), config.mpp)
        nucleus_map, labels = predict_at_model_scale(
            lambda im: predict_nucleus_map(
                predictor, stain_normalised(im), tile=args.tile, overlap=args.overlap, tta=args.tta
            ),
            lambda m: instances_from_config(m, config),
            image,
            factor,
        )
        map_png, mask_png = write_prediction(
            nucleus_map, foreground(nucleus_map, config), out, name, config.output_kind
        )
        if factor != 1.0:
            print(
                f"{path}: resampled x{factor:.3g} to the model's {config.mpp} µm per pixel, nuclei mapped back",
                file=sys.stderr,
            )
        map_name = kind_of(config).map_column
        written = write_nuclei(labels, image, nucleus_map, out, name, map_name)
        print(
            f"{path}: {int(labels.max())} nuclei -> {map_png.name}, {mask_png.name}, "
            f"{written['label'].name}, {written['geojson'].name}, {written['table'].name}"
        )
    return 0


def cmd_evaluate(args) -> int:
    from nucseg.inference.baseline import BASELINE_NAME, baseline_method
    from nucseg.data.dataset import load_dataset
    from nucseg.study.evaluate import evaluate_methods
    from nucseg.io import write_text_atomic
    from nucseg.inference.predict import predict_nucleus_map
    from nucseg.study.results import summarize_folds, summary_markdown

    stain_normalised = stain_normaliser(args.stain_reference)
    predictor, config = model_and_config(args.model, precision=args.precision, engine=args.engine)
    if args.mpp is not None and not 0 < args.mpp < 100:
        raise InputError(f"--mpp {args.mpp}: microns per pixel of the tiles (40x scans: about 0.25, 20x: 0.5)")
    tiles = only_patients(load_dataset(args.data, mpp=config.mpp, source_mpp=args.mpp), args.patients, args.data)
    name = (
        Path(args.model).resolve().parent.name
        if Path(args.model).name in ("model.keras", "saved_model")
        else Path(args.model).stem
    )
    name = f"{config.arch} ({name}){' + Macenko' if args.stain_reference else ''}{' + TTA' if args.tta else ''}"
    methods = {
        name: (lambda image: predict_nucleus_map(predictor, stain_normalised(image), tta=args.tta), config),
        BASELINE_NAME: baseline_method(config),
    }
    warn_in_sample(args.model, args.data, tiles)
    tile_table, patient_table = evaluate_methods(methods, tiles)
    summary = summarize_folds(patient_table)
    out = Path(args.out)
    write_text_atomic(out / "tiles.csv", tile_table.to_csv(index=False))
    named = {"arch": "method", "val_patient": "patient"}
    write_text_atomic(
        out / "patients.csv", patient_table.drop(columns=["flags", "steps"]).rename(columns=named).to_csv(index=False)
    )
    write_text_atomic(
        out / "summary.csv", summary.drop(columns=["flagged", "steps"]).rename(columns=named).to_csv(index=False)
    )
    markdown = summary_markdown(summary)
    write_text_atomic(out / "summary.md", markdown)
    chosen = kind_of(config).describe_postprocess(config)
    print(f"{args.model} on {args.data}: {len(tiles)} tiles, mean ± std over patients (post-processing: {chosen})\n")
    print(markdown)
    return 0


def cmd_slide(args) -> int:
    from nucseg.inference.predict import output_names, with_tta
    from nucseg.inference.slide import run_slide

    names = output_names(args.slides)
    if args.ray is not None:
        from nucseg.distributed import run_slides_on_ray

        options = {
            "tile": args.tile,
            "overlap": args.overlap,
            "batch_size": args.batch_size,
            "region": args.region,
            "mpp": args.mpp,
            "gzip_geojson": args.gzip,
            "tta": args.tta,
            "precision": args.precision,
            "engine": args.engine,
            "nuclei_workers": args.nuclei_workers,
            "label_image": args.label_image,
        }
        run_slides_on_ray(
            args.model,
            [(p, Path(args.out) / n) for p, n in zip(args.slides, names)],
            options,
            address=None if args.ray == "local" else args.ray,
        )
        return 0
    predictor, config = model_and_config(args.model, precision=args.precision, engine=args.engine)
    predictor = with_tta(predictor) if args.tta else predictor
    for path, name in zip(args.slides, names):
        print(f"{path} -> {Path(args.out) / name}")
        summary = run_slide(
            predictor,
            config,
            path,
            Path(args.out) / name,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            region=args.region,
            mpp=args.mpp,
            gzip_geojson=args.gzip,
            verbose=args.verbose,
            nuclei_workers=args.nuclei_workers,
            label_image=args.label_image,
        )
        print(
            f"  {summary['nuclei']} nuclei in {summary['tiles']} tissue tiles ({summary['megapixels']} megapixels, "
            f"level {summary['level']}), {summary['seconds']} s; {summary['cut']} cut by a tile edge and dropped"
        )
    return 0
