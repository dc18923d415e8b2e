#!/usr/bin/env bash
# Sets up .venv (scripts/install.sh) and runs the whole test suite: unit tests, then the
# notebooks under nbval, on the annotated H&E tiles in ../shared/data/tcga_glioma.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export NUCSEG_DATA="${NUCSEG_DATA:-$(cd .. && pwd)/shared/data/tcga_glioma}"
export NUCSEG_SMOKE=1  # notebook 02 trains a small subset (see its first cell)
.venv/bin/ruff check nucseg tests scripts  # the linter's configuration: pyproject.toml [tool.ruff]
# The library's layout: `ruff format nucseg scripts` fixes it. Not the tests: their command lines
# (main(["lopo", "--data", ...])) read better a few words to a line than one word to a line.
.venv/bin/ruff format --check nucseg scripts
export TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}" MPLBACKEND=Agg
# One pytest worker per core (pytest-xdist); a file's tests stay on one worker, in order (a
# notebook's cells run in one kernel; a module's fixtures are made once); the files with slow
# tests are handed out first (tests/conftest.py), not the ones with the most tests. Notebook 03 reads the
# folds notebook 02 wrote, so it runs after the rest (skipped when arguments select a part).
pytest=(.venv/bin/python -m pytest --nbval-sanitize-with notebooks/sanitize.cfg --nbval-current-env -p no:cacheprovider)
"${pytest[@]}" tests notebooks --nbval --ignore=notebooks/03_results.ipynb -n auto --dist loadfile --no-loadscope-reorder "$@"
if [ $# -eq 0 ]; then
  "${pytest[@]}" notebooks/03_results.ipynb --nbval
fi
