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
# The emulated CPU is ~1000x slower: there only the int8 graph runs, on N test images per category
# (spread over each list), compared with this CPU's int8 and fp32 outputs for the same images.
n=${DLVP_EMULATED_PER_CATEGORY:-2}
for range in reduced full; do
  echo "## $range weights, this CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  "$py" bench/int8_accuracy.py "$fp32" "$work/int8-$range.onnx" "$work/eval-data" --save "$work/native-$range.npz"
  echo "## $range weights, emulated AMD Zen 3 (qemu-x86_64 -cpu EPYC-Milan: AVX2, no VNNI), $n test images per category"
  qemu-x86_64 -cpu EPYC-Milan "$py" - "$work/int8-$range.onnx" "$work/eval-data" "$n" "$work/native-$range.npz" \
    2> >(grep -v "TCG doesn't support" >&2) <<'PY'
import sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
sys.path.insert(0, "reference")
from dlvp_reference import spec as spec_mod
from dlvp_reference.data import load_image, mvtec_samples
import onnx
model, data, n, native = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), np.load(sys.argv[4])
spec = spec_mod.from_yaml({m.key: m.value for m in onnx.load(model).metadata_props}["dlvp.spec"], model)
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
groups = {}
for sample in mvtec_samples(data, None, "test"):
    groups.setdefault(sample.category, []).append(sample)
worst = {"native score": 0.0, "native map": 0.0, "fp32 score": 0.0, "fp32 map": 0.0}
count = 0
for group in groups.values():
    for i in range(n):
        sample = group[i * len(group) // n]
        score, amap, _ = session.run(None, {"image": load_image(sample.image, spec).unsqueeze(0).numpy()})
        key = str(sample.image)
        for ref, label in ((":", "native"), (":fp32_", "fp32")):
            worst[f"{label} score"] = max(worst[f"{label} score"], float(np.abs(native[key + ref + "score"] - score).max()))
            worst[f"{label} map"] = max(worst[f"{label} map"], float(np.abs(native[key + ref + "map"] - amap).max()))
        count += 1
print(f"{count} images: max abs difference from this CPU's int8 outputs score {worst['native score']:.2e}, map {worst['native map']:.2e}; "
      f"from the fp32 graph's score {worst['fp32 score']:.2e}, map {worst['fp32 map']:.2e}")
PY
done
