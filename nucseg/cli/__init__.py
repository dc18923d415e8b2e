"""The `nucseg` command line: the same jobs as the notebooks, on the same Config.

One module per group of commands (`data`, `study`: train, lopo, lodo; `apply`: predict,
evaluate, slide; `bench`), the parser apart (`parser`), shared options (`options`) and helpers
(`common`). `main` checks --out against the inputs, takes the folder's run lock, runs the command
and turns bad input into one line and exit 2."""

from __future__ import annotations

import os
import sys

from nucseg.cli.common import checked_out, import_tensorflow_once, split_model_and_inputs
from nucseg.cli.options import config_from_args
from nucseg.cli.parser import build_parser
from nucseg.errors import InputError, TrainingDiverged
from nucseg.io import FolderBusy, RunLock
from nucseg.logs import show_messages

__all__ = ["main", "build_parser", "config_from_args"]
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


def needs_tensorflow(args) -> bool:
    """Whether the command runs TensorFlow, which is then imported at once (its start-up lines
    captured and shown once). Not `data`, and not predict, evaluate, slide or bench slide with
    their net in OpenVINO: importing TensorFlow costs 6.7 s and 0.6 GB on a 2-core AMD EPYC, and
    they need it only to convert a model not yet in OpenVINO's cache (nucseg.inference.engines)."""
    if args.command == "data":
        return False
    if getattr(args, "engine", None) is None or getattr(args, "bench_command", None) == "stardist":
        return True
    from nucseg.hardware import surely_no_gpu
    from nucseg.inference.engines import choose_engine

    if args.engine == "auto" and not surely_no_gpu():
        return True  # only TensorFlow can say whether it sees the GPU: imported first, quietly
    return choose_engine(args.engine) != "openvino"


def main(argv=None) -> int:
    # TensorFlow's later C++ lines (CPU features, XLA) would come at every compilation; errors
    # still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see them all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if needs_tensorflow(args) and "tensorflow" not in sys.modules:
        import_tensorflow_once()
    show_messages()
    try:
        split_model_and_inputs(args)
        out = checked_out(args)
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
