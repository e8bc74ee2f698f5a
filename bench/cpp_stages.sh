#!/usr/bin/env bash
# The C++ example's stages beside `dlvp detect`'s on the same frames: 20 JPEGs of 2448×2048 (5 MP,
# sensor noise as bench/pipeline.sh makes them) and 200 demo-data PNGs of 256 px, scored by the
# tiny golden graph (its 1.6 ms leave the CPU stages alone). `dlvp_detect --profile` times decode
# (OpenCV), resize (dlvp/resize.hpp, Pillow-exact), detect and write one after another on one
# thread; `dlvp detect --profile` gives the CPU time of its stages (decode with image-rs, resize
# Pillow-exact, run on one thread per core): the per-image CPU cost of each stage compares.
#
#   bench/cpp_stages.sh [DLVP] [DLVP_DETECT]
#
# DLVP defaults to target/release/dlvp, DLVP_DETECT to examples/cpp/build/dlvp_detect (build it
# with examples/cpp/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dlvp=$(realpath "${1:-target/release/dlvp}")
cpp=$(realpath "${2:-examples/cpp/build/dlvp_detect}")
python=reference/.venv/bin/python
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$PWD"/reference/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$dlvp" demo-data --out "$work/data" --count 40 --train-count 0 --size 256 --seed 11 2>/dev/null
mkdir -p "$work/png" "$work/jpeg"
find "$work/data" -path '*/test/*' -name '*.png' | sort | head -200 | nl -w3 -nrz |
  while read -r n f; do cp "$f" "$work/png/$n.png"; done
"$dlvp" export --weights fixtures/tiny/weights.safetensors --out "$work/tiny.onnx" >/dev/null 2>&1
"$python" bench/camera_jpegs.py "$work/png" "$work/jpeg"
for set in jpeg png; do
  echo "== $set: dlvp detect --profile (ONNX Runtime CPU), then dlvp_detect --profile"
  "$dlvp" detect "$work/$set" --model "$work/tiny.onnx" --backend ort-cpu --json --out "$work/out-rs" \
    --write map --profile 2>&1 >/dev/null | grep '^profile'
  # shellcheck disable=SC2046
  "$cpp" "$work/tiny.onnx" $(ls "$work/$set"/*) --json --out "$work/out-cpp" --batch 8 --profile 2>&1 >/dev/null |
    grep '^profile'
done
