"""`nucseg train | lopo | lodo`: training and the studies."""

from __future__ import annotations

import sys
from pathlib import Path

from nucseg.cli.options import config_from_args
from nucseg.study.health import describe_flags


def cmd_train(args) -> int:
    from nucseg.data.dataset import load_dataset, patients_of
    from nucseg.study.folds import fold_for
    from nucseg.study.fold import train_fold
    from nucseg.training.train import check_teacher

    config = config_from_args(args, arch=args.arch)
    tiles = load_dataset(config.data, mpp=config.mpp)
    if args.val_patient:
        fold_for(patients_of(tiles), args.val_patient)  # an unknown patient is named before anything is written
        config = config.for_fold(args.val_patient)
    check_teacher(config)  # before the run folder is claimed (lopo and lodo check each fold's)
    result = train_fold(config, tiles, args.val_patient, args.out, verbose=args.verbose)
    held_out = f"held-out patient {result.val_patient}" if args.val_patient else "trained on every patient"
    print(f"{config.arch}, {held_out}: {result.steps} steps, {result.seconds} s")
    if result.flags:
        print(f"WARNING: {describe_flags(result.flags)}", file=sys.stderr)
    if args.val_patient:
        print("  " + "  ".join(f"{k}={v:.4f}" for k, v in result.scores.items()))
    print(f"  models: {Path(args.out) / 'model.keras'}, {Path(args.out) / 'saved_model'}")
    return 0


def ray_runner(args, fold_function=None):
    """The RayRunner that --ray asks for (None without it); Ray's absence is named before anything trains."""
    if args.ray is None:
        return None
    from nucseg.distributed import RayRunner, import_ray

    import_ray()
    return RayRunner(
        address=None if args.ray == "local" else args.ray, cpus_per_fold=args.cpus_per_fold, fold_function=fold_function
    )


def cmd_lopo(args) -> int:
    from nucseg.study.lopo import read_grid, run_grid, run_lopo
    from nucseg.study.results import summary_markdown, summarize_folds

    config = config_from_args(args)
    runner = ray_runner(args)
    if args.grid:
        table = run_grid(
            config, args.arch, args.out, read_grid(args.grid), args.val_patients, verbose=args.verbose, runner=runner
        )
        print(table.to_string(index=False))
        return 0
    folds = run_lopo(config, args.arch, args.out, val_patients=args.val_patients, verbose=args.verbose, runner=runner)
    print(f"\n{len(folds)} folds in {Path(args.out) / 'folds.csv'}; summary (mean ± std over patients):\n")
    print(summary_markdown(summarize_folds(folds)))
    return 0


def cmd_lodo(args) -> int:
    from nucseg.study.lodo import lodo_markdown, run_lodo, train_without

    config = config_from_args(args)
    runner = ray_runner(args, fold_function=train_without)
    folds = run_lodo(config, args.arch, args.out, verbose=args.verbose, runner=runner)
    print(f"\n{len(folds)} rows in {Path(args.out) / 'folds.csv'}:\n")
    print(lodo_markdown(folds))
    return 0
