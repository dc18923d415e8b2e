#!/usr/bin/env bash
# The speed targets of docs/speed.md measured on this machine, in one command, for a session on a
# kind of CPU the project has not measured yet (or to see the day's speed). About 25 minutes on 2
# cores of an Intel Xeon with AMX, longer on an AVX2-only CPU; start it first and alone (anything
# beside it slows it).
#
#     bash results/measured/speed/targets.sh OUT [WORK]
#
# OUT (e.g. results/measured/targets/2026-12-05_epyc_avx2) gets, each as soon as its step ends:
#   machine.txt          the CPU's name, model and the flags that choose kernels; the date; the commit
#   train_step.txt       the day's speed: train_step.py 300 16 (ms a step; sessions compare days by it)
#   bench_slide.txt      nucseg bench slide pretrained:he-nuclei-fast on a 20,000 x 20,000 glioma mosaic
#                        (target: 3 megapixels/s end to end); the mosaic is written once into WORK first
#   fold_dist.csv        a `cpu` DIST fold of TNBC patient_01 (target: 300 s in its `seconds` column)
#   stardist.txt         StarDist side by side (target: nucseg at 2 times its throughput), where the
#                        [stardist] extra is installed (.venv/bin/pip install -e '.[stardist]'): trained
#                        300 s on that fold (its scores in stardist_folds.csv), then timed on a mosaic
# WORK (default: a new temporary folder) holds the mosaic, the slide's outputs, the fold's model and
# each step's messages (*.log): a step that fails stops the script and names its log.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash results/measured/speed/targets.sh OUT [WORK]" >&2
  exit 2
fi
out=$(realpath -m "$1")
work=$(realpath -m "${2:-$(mktemp -d)}")
cd "$(dirname "$0")/../../.."
mkdir -p "$out" "$work"
step=install
trap 'echo "targets.sh: the step \"$step\" failed; its messages are in $work/$step.log" >&2' ERR
bash scripts/install.sh >"$work/install.log" 2>&1
python=.venv/bin/python
nucseg=.venv/bin/nucseg
step=machine
flags='avx2|fma|avx512f|avx512_vnni|avx512_bf16|avx512_fp16|avx_vnni|amx_bf16|amx_int8|amx_tile'
{
  lscpu | grep -E '^(Model name|Model|CPU\(s\)):'
  echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x -E "$flags" | tr '\n' ' ')"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git rev-parse --short HEAD)"
} >"$out/machine.txt"
cat "$out/machine.txt"

echo "== the day's speed"
step=train_step
"$python" results/measured/speed/train_step.py 300 16 2>"$work/$step.log" | tail -1 | tee "$out/train_step.txt"

echo "== a 20,000 x 20,000 slide"
step=bench_slide
"$nucseg" bench slide pretrained:he-nuclei-fast --data ../shared/data/tcga_glioma --side 20000 --work "$work/slide" \
  2>"$work/$step.log" | tr '\r' '\n' | grep -v -E '^\s*$|it/s|s/it' | tee "$out/bench_slide.txt"

echo "== a cpu DIST fold"
step=fold_dist
"$nucseg" lopo --data ../shared/data/tnbc --profile cpu --arch dist --val-patients patient_01 --out "$work/fold_dist" \
  >"$work/$step.log" 2>&1
cp "$work/fold_dist/folds.csv" "$out/fold_dist.csv"
cut -d, -f2,4,10,13,14,17,18 "$out/fold_dist.csv"

if "$python" -c "import stardist" 2>/dev/null; then
  echo "== StarDist side by side"
  step=stardist
  {
    "$nucseg" bench stardist --data ../shared/data/tnbc --val-patients patient_01 --seconds 300 --out "$work/stardist"
    "$nucseg" bench stardist --data ../shared/data/tnbc --val-patients patient_01 --out "$work/stardist" \
      --predict-only --side 6000 --repeats 3
  } 2>"$work/$step.log" | tr '\r' '\n' | grep -v -E '^\s*$|it/s|s/it|step - |^Epoch [0-9]+/' | tee "$out/stardist.txt"
  cp "$work/stardist/folds.csv" "$out/stardist_folds.csv"
else
  echo "StarDist not installed: its comparison was not run" | tee "$out/stardist.txt"
fi
