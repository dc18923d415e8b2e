#!/usr/bin/env bash
# Two TNBC folds side by side on a local Ray (--cpus-per-fold 1, the default), the code of two
# checkouts alternated: usage ray_fold_threads.sh OLD_DIR NEW_DIR PAIRS [PROFILE]. Prints each run's
# wall and CPU seconds and its folds' scores. Run from the repository (its .venv); the runs go to
# a temporary folder, removed at the end.
set -euo pipefail
old=$1 new=$2 pairs=$3 profile=${4:-quick}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
for i in $(seq "$pairs"); do
  for side in old new; do
    dir=${!side}
    out=$runs/${side}_$i
    /usr/bin/time -f "$side pair $i: wall %e s, user %U s, system %S s" env PYTHONPATH="$dir" TF_CPP_MIN_LOG_LEVEL=2 \
      .venv/bin/python -m nucseg.cli lopo --data ../shared/data/tnbc --profile "$profile" --arch dist \
      --val-patients patient_02 patient_03 --ray --verbose 0 --out "$out" >/dev/null 2>"$out.err" || { cat "$out.err"; exit 1; }
    tail -1 "$out.err"
    python3 -c "import csv; print('  ', [(r['val_patient'], r['aji']) for r in csv.DictReader(open('$out/folds.csv'))])"
  done
done
