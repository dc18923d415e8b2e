#!/usr/bin/env bash
# float32 against bfloat16 (last layer in float32) out of sample: each fold model of
# results/measured/lodo_dist_grid_skip scores the data set it never saw, in either precision,
# with OpenVINO. RUN: the lodo run's folder (its dist/<left out>/model.keras).
#   bash results/measured/engines/bfloat16_lodo.sh RUN OUT > results/measured/engines/bfloat16_lodo.txt
set -euo pipefail
RUN=$1
OUT=$2
for set in tnbc tcga_glioma consep monuseg_train; do
  for precision in float32 bfloat16; do
    .venv/bin/nucseg evaluate "$RUN/dist/$set/model.keras" "../shared/data/$set" --engine openvino \
      --precision "$precision" --out "$OUT/$set/$precision" > /dev/null 2>&1
    echo "$set $precision: $(grep '^| dist' "$OUT/$set/$precision/summary.md")"
  done
done
