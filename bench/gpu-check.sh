#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (none of our development machines has one).
#
#   bench/gpu-check.sh [ORT_GPU_LIB]
#
# 1. Builds dlvp, and installs the GPU build of ONNX Runtime (PyPI `onnxruntime-gpu`, same
#    version as the CPU wheel we pin) into a venv of its own unless ORT_GPU_LIB names a
#    libonnxruntime.so with the CUDA provider.
# 2. Runs the conformance suite with the CUDA provider added (DLVP_TEST_CUDA=1; TensorRT too when
#    DLVP_TEST_TENSORRT=1 and TensorRT's libraries are on LD_LIBRARY_PATH): the same golden model
#    and images must agree with the reference and with tract / ORT CPU within 1e-4.
# 3. Prints a latency table (dlvp bench) for the tiny model and the embedded demo model on each
#    backend that loads, batch 1 and 8, and writes the JSON lines to out/gpu-check/bench.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=out/gpu-check
mkdir -p "$out"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || {
  echo "gpu-check: nvidia-smi failed: no NVIDIA GPU here" >&2; exit 1; }

cargo build --release --locked --bin dlvp
dlvp=target/release/dlvp

ort_version=$(sed -n 's/^onnxruntime==//p' reference/requirements.txt)
if [ -z "${1:-}" ]; then
  venv=out/gpu-check/venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime-gpu==$ort_version" "nvidia-cudnn-cu12" "nvidia-cuda-runtime-cu12" "nvidia-cublas-cu12" "nvidia-cufft-cu12" "nvidia-curand-cu12"
  gpu_lib=$(ls "$root/$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
  # The CUDA provider dlopens cuDNN/cuBLAS from the nvidia-* wheels.
  for d in "$root/$venv"/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
  export LD_LIBRARY_PATH
else
  gpu_lib=$1
fi
export ORT_DYLIB_PATH=$gpu_lib
echo "== ONNX Runtime (GPU): $ORT_DYLIB_PATH"

echo "== conformance suite with the CUDA provider"
DLVP_TEST_CUDA=1 cargo test --release --locked -p dlvp-runtime --test conformance -- --nocapture 2>&1 | tee "$out/conformance.log"

echo "== latency"
"$dlvp" export --weights fixtures/tiny/weights.safetensors --out "$out/tiny.onnx" >/dev/null
models=("$out/tiny.onnx")
[ -f models/demo/dlvp-clip-demo.onnx ] && models+=(models/demo/dlvp-clip-demo.onnx)
: > "$out/bench.jsonl"
printf '%-28s %-14s %5s %9s %9s %9s %10s %9s\n' model backend batch first_ms p50_ms p90_ms images/s rss_MiB
for model in "${models[@]}"; do
  for backend in ort-tensorrt ort-cuda ort-cpu tract; do
    for batch in 1 8; do
      line=$("$dlvp" bench --model "$model" --backend "$backend" --batch "$batch" --iters 50 --warmup 5 \
               --trt-cache "$out/trt-cache" --json 2>/dev/null) || { echo "$(basename "$model") $backend: not available" >&2; continue; }
      echo "$line" >> "$out/bench.jsonl"
      python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"{r['spec']:<28} {r['backend']:<14} {r['batch']:>5} {r['first_run_s']*1e3:>9.1f} {r['latency_ms']['p50']:>9.2f} "
      f"{r['latency_ms']['p90']:>9.2f} {r['images_per_s']:>10.1f} {(r['peak_rss_bytes'] or 0)/2**20:>9.0f}")
PY
    done
  done
done
echo "== results in $out/ (conformance.log, bench.jsonl)"
