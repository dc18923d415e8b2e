#!/usr/bin/env bash
# Sets up .venv (scripts/install.sh) and runs the main job: the leave-one-patient-out study.
# Default: PangNet, U-Net and DIST, `quick` profile (minutes on a CPU), results in results/demo.
# The data set: $NUCSEG_DATA, else data/tnbc, else ../shared/data/tcga_glioma where it exists (the
# developers' annotated tiles), else TNBC downloaded from Zenodo into data/tnbc (MD5 checked).
# Extra arguments go to `nucseg lopo` and win over these defaults, e.g. on a GPU:
#   bash scripts/main.sh --profile paper --arch pangnet fcn8 deconvnet unet dist --out results/paper
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
data="${NUCSEG_DATA:-data/tnbc}"
if [ ! -d "$data" ] && [ -z "${NUCSEG_DATA:-}" ]; then
  if [ -d ../shared/data/tcga_glioma ]; then
    data=../shared/data/tcga_glioma
  elif ! .venv/bin/nucseg data download tnbc --dest data/tnbc; then
    echo "main.sh: no data set: TNBC could not be downloaded (no network?). Download Zenodo record 1175282" \
         "(TNBC_NucleiSegmentation.zip) by hand and unpack it into data/tnbc, or set NUCSEG_DATA to your data set." >&2
    exit 1
  fi
fi
exec .venv/bin/nucseg lopo --data "$data" --arch pangnet unet dist --profile quick --out results/demo "$@"
