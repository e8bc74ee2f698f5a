#!/usr/bin/env bash
# bench/int8_every_cpu.sh [WORK]: the demo model's int8 graphs — reduced weights (|q| <= 64, the
# default) and full-range ones (|q| <= 127, `--int8-weights full`) — against its fp32 graph, on
# ONNX Runtime CPU, on this machine's CPU and on an emulated AVX2-only CPU (AMD Zen 3 by
# `qemu-x86_64 -cpu EPYC-Milan`: no AVX-512, no VNNI), which runs ONNX Runtime's AVX2 int8 kernels
# whatever CPU this is. docs/int8.md ("Every CPU") records the results.
#
# Calibration: 64 defect-free images of `dlvp demo-data --seed 5`; evaluation: the 150 test images
# of `--seed 2`. Prints `dlvp eval`'s image/pixel AUROC means on this CPU, then
# bench/int8_accuracy.py's table (differences from fp32, Top-K retention, image AUROCs) for each
# graph on each CPU. Needs the release build, reference/.venv (scripts/test) and qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
dlvp=${DLVP_BIN:-target/release/dlvp}
py=reference/.venv/bin/python
work=${1:-/tmp/dlvp-int8-every-cpu}
mkdir -p "$work"
if [ ! -d "$work/calibration-data" ]; then
  "$dlvp" demo-data --out "$work/calibration-data" --seed 5 --train-count 13 --count 3 >/dev/null
fi
mkdir -p "$work/calibration"
for f in "$work"/calibration-data/*/train/good/*.png; do
  cat=${f#"$work"/calibration-data/}; cat=${cat%%/*}
  ln -sf "$f" "$work/calibration/$cat-$(basename "$f")"
done
[ -d "$work/eval-data" ] || "$dlvp" demo-data --out "$work/eval-data" --seed 2 >/dev/null
fp32=models/demo/dlvp-clip-demo.onnx
for range in reduced full; do
  "$dlvp" export --weights models/demo/checkpoint.safetensors --out "$work/int8-$range.onnx" --int8 \
    --calibrate "$work/calibration" --calib-count 64 --int8-weights "$range" 2>/dev/null | tail -n 1
done
for model in "$fp32" "$work/int8-reduced.onnx" "$work/int8-full.onnx"; do
  echo "## dlvp eval, this CPU, $(basename "$model")"
  "$dlvp" eval --data "$work/eval-data" --model "$model" --backend ort-cpu --out "$work/eval-$(basename "$model" .onnx)" 2>/dev/null \
    | grep -iE "mean|auroc" | tail -n 3
done
# The emulated CPU is ~1000x slower: there, N test images per category (spread over each list).
n=${DLVP_EMULATED_PER_CATEGORY:-6}
for range in reduced full; do
  echo "## $range weights, this CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  "$py" bench/int8_accuracy.py "$fp32" "$work/int8-$range.onnx" "$work/eval-data" --save "$work/native-$range.npz"
  echo "## $range weights, emulated AMD Zen 3 (qemu-x86_64 -cpu EPYC-Milan: AVX2, no VNNI), $n test images per category"
  qemu-x86_64 -cpu EPYC-Milan "$py" bench/int8_accuracy.py "$fp32" "$work/int8-$range.onnx" "$work/eval-data" \
    --per-category "$n" --save "$work/zen3-$range.npz" 2> >(grep -v "TCG doesn't support" >&2)
  "$py" - "$work/native-$range.npz" "$work/zen3-$range.npz" <<'PY'
import sys
import numpy as np
native, zen3 = np.load(sys.argv[1]), np.load(sys.argv[2])
worst = {kind: max(float(np.abs(native[k] - zen3[k]).max()) for k in zen3.files if k.endswith(kind))
         for kind in (":score", ":map")}
print(f"int8 on the emulated Zen 3 vs on this CPU, the same {len(zen3.files) // 2} images: "
      f"max abs difference score {worst[':score']:.2e}, map {worst[':map']:.2e}")
PY
done
