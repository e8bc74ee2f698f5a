#!/usr/bin/env bash
# bench/int8_b16_cpu.sh [WORK]: ViT-B/16 @ 224 (random weights at real shapes, bench/compare's
# `prepare`), int8 with reduced (default) and full-range weights against its fp32 graph: speed and
# the largest score/map differences from the fp32 graph on ONNX Runtime CPU, OpenVINO and tract on
# this CPU, and ONNX Runtime on an emulated AMD Zen 3 (qemu, accuracy only). docs/int8.md ("Every
# CPU") records the results. (Capping OpenVINO's oneDNN with ONEDNN_MAX_CPU_ISA=AVX2 is no stand-in
# for an AVX2 CPU: on a Xeon it makes even the fp32 graph differ by 9e-2, measured.)
set -euo pipefail
cd "$(dirname "$0")/.."
dlvp=${DLVP_BIN:-target/release/dlvp}
py=reference/.venv/bin/python
work=${1:-/tmp/dlvp-int8-b16}
iters=${ITERS:-5}
mkdir -p "$work"
"$py" -c "import sys; sys.path.insert(0, 'bench'); from compare import prepare; from pathlib import Path; prepare('vit-b16-224', Path('$work'), 1)"
"$py" - "$work/input.safetensors" <<'PY'
import sys, torch
from safetensors.torch import save_file
save_file({"image": torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))}, sys.argv[1])
PY
[ -d "$work/calibration" ] || "$dlvp" demo-data --out "$work/calibration" --size 224 --count 1 --train-count 8 --seed 5 >/dev/null
[ -f "$work/fp32.onnx" ] || "$dlvp" export --weights "$work/weights.safetensors" --out "$work/fp32.onnx" | tail -n 1
for range in reduced full; do
  [ -f "$work/int8-$range.onnx" ] || "$dlvp" export --weights "$work/weights.safetensors" --out "$work/int8-$range.onnx" \
    --int8 --calibrate "$work/calibration" --calib-count 32 --int8-weights "$range" 2>/dev/null | tail -n 1
done
# One row: GRAPH BACKEND LABEL [ENV...]: ms per image (median), then differences from the fp32 graph on ORT.
row() {
  local graph=$1 backend=$2 label=$3; shift 3
  local out="$work/out-$label.safetensors"
  local report
  report=$(env "$@" "$dlvp" bench --model "$work/$graph.onnx" --backend "$backend" --input "$work/input.safetensors" \
    --save-outputs "$out" --iters "$iters" --warmup 1 --json 2>/dev/null) || { echo "| $label | refused: $(env "$@" "$dlvp" bench --model "$work/$graph.onnx" --backend "$backend" --iters 1 --warmup 0 2>&1 | grep error | head -c 160) |"; return; }
  "$py" - "$work/out-fp32-ort.safetensors" "$out" "$label" "$report" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import load_file
ref, got, label, report = load_file(sys.argv[1]), load_file(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
e = {k: float(np.abs(ref[k].reshape(-1) - got[k].reshape(-1)).max()) for k in ("anomaly_score", "anomaly_map")}
topk = np.array_equal(ref["topk_indices"].reshape(-1), got["topk_indices"].reshape(-1))
print(f"| {label} | {report['latency_ms']['p50']:.1f} | {e['anomaly_score']:.1e} / {e['anomaly_map']:.1e} | {'same' if topk else 'differs'} |")
PY
}
echo "ViT-B/16 @ 224, batch 1, median of $iters runs after 1 warm-up; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| subject | ms | max Δ score / map vs fp32 (ORT) | Top-K |"
echo "|---|---:|---|---|"
row fp32 ort-cpu fp32-ort
for range in reduced full; do row "int8-$range" ort-cpu "int8-$range-ort"; done
row fp32 openvino fp32-openvino
for range in reduced full; do row "int8-$range" openvino "int8-$range-openvino"; done
row fp32 tract fp32-tract
row int8-reduced tract int8-reduced-tract
# ONNX Runtime's AVX2 int8 kernels, emulated (~1000x slower: one image, accuracy only).
for range in reduced full; do
  qemu-x86_64 -cpu EPYC-Milan "$py" - "$work/int8-$range.onnx" "$work/input.safetensors" "$work/out-fp32-ort.safetensors" "$range" \
    2> >(grep -v "TCG doesn't support" >&2) <<'PY'
import sys
import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file
x = load_file(sys.argv[2])["image"]
score, amap, topk = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).run(None, {"image": x})
ref = load_file(sys.argv[3])
print(f"| int8-{sys.argv[4]}-ort on an emulated Zen 3 | (emulated) | {np.abs(ref['anomaly_score'].reshape(-1) - score.reshape(-1)).max():.1e} / "
      f"{np.abs(ref['anomaly_map'].reshape(-1) - amap.reshape(-1)).max():.1e} | {'same' if np.array_equal(ref['topk_indices'].reshape(-1), topk.reshape(-1)) else 'differs'} |")
PY
done
