#!/usr/bin/env bash
# Sets up .venv (scripts/install.sh) and runs the main job: the leave-one-patient-out study.
# Default: PangNet, U-Net and DIST, `quick` profile (minutes on a CPU), results in results/demo.
# The dataset: $NUCSEG_DATA, else data/tnbc, else ../shared/data/tcga_glioma where it exists.
# Extra arguments go to `nucseg lopo` and win over these defaults, e.g. on a GPU:
#   bash scripts/main.sh --profile paper --arch pangnet fcn8 deconvnet unet dist --out results/paper
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
data="${NUCSEG_DATA:-data/tnbc}"
if [ ! -d "$data" ] && [ -d ../shared/data/tcga_glioma ]; then
  data=../shared/data/tcga_glioma
fi
exec .venv/bin/nucseg lopo --data "$data" --arch pangnet unet dist --profile quick --out results/demo "$@"
