#!/usr/bin/env bash
# Tiled inference on high-resolution frames with small defects (issue 32's measurement): the
# embedded demo model on `dlvp demo-data --size 2048 --detail-size 256` (the five categories,
# COUNT test images each; holes and chips 20–40 px across, scratches and cracks 2–4 px wide),
# evaluated with maps compared to masks at the frames' own 2048 px: whole frames resized to the
# model's 224 px, then tiled at native resolution (scale 1) and at half (scale 0.5). Then the
# time per megapixel of `detect --tile` on ONNX Runtime CPU and tract, and the peak RSS of one
# 20 MP frame (5472×3648) tiled.
#
#   bench/tiling.sh [DLVP] [COUNT]
#
# DLVP defaults to target/release/dlvp, COUNT to 20.
set -euo pipefail
cd "$(dirname "$0")/.."
dlvp=$(realpath "${1:-target/release/dlvp}")
count=${2:-20}
python=reference/.venv/bin/python
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$PWD"/reference/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$dlvp" demo-data --out "$work/hr" --count "$count" --train-count 0 --size 2048 --detail-size 256 --seed 31 2>/dev/null
echo "== $((count * 5)) frames of 2048 px, maps and masks compared at 2048 px (mean of the five categories)"
printf '%-34s %12s %12s %12s %10s\n' run "image AUROC" "pixel AUROC" "AUPRO@0.3" "s"
for run in "resized to 224 (no tiling)|" "tiled, scale 1|--tile" "tiled, scale 0.5|--tile --tile-scale 0.5"; do
  name=${run%%|*}; flags=${run#*|}
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$dlvp" eval --data "$work/hr" --map-size 2048 --backend ort-cpu --out "$work/eval" $flags >/dev/null 2>&1
  t1=$(date +%s.%N)
  "$python" - "$work/eval/metrics.json" "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["mean"]
print(f"{sys.argv[2]:<34} {m['image_auroc']:12.4f} {m['pixel_auroc']:12.4f} {m['aupro']:12.4f} {float(sys.argv[3]):10.1f}")
EOF
done
echo
echo "== the same, defects of at most 40 px only (mask bounding box; eval --max-defect-px 40), all good frames kept"
for run in "resized to 224 (no tiling)|" "tiled, scale 1|--tile"; do
  name=${run%%|*}; flags=${run#*|}
  # shellcheck disable=SC2086
  "$dlvp" eval --data "$work/hr" --map-size 2048 --backend ort-cpu --out "$work/eval" --max-defect-px 40 $flags >/dev/null 2>&1
  "$python" - "$work/eval/metrics.json" "$name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m, n = r["mean"], sum(c["anomalous"] for c in r["categories"])
print(f"{sys.argv[2]:<34} {m['image_auroc']:12.4f} {m['pixel_auroc']:12.4f} {m['aupro']:12.4f}   ({n} defective frames)")
EOF
done
echo
echo "== time per megapixel, detect --tile (scale 1) on 5 frames of 2048 px (4.19 MP each)"
mkdir -p "$work/five"
find "$work/hr" -path '*/test/*' -name '*.png' | sort | head -5 | while read -r f; do cp "$f" "$work/five/$(basename "$(dirname "$f")")-$(basename "$f")"; done
for backend in ort-cpu tract; do
  t0=$(date +%s.%N)
  "$dlvp" detect "$work/five" --tile --backend "$backend" --json >/dev/null 2>&1
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v be="$backend" 'BEGIN { printf "%-10s %8.2f s per MP (%.1f s for 5 × 4.19 MP)\n", be, (b - a) / (5 * 4.194304), b - a }'
done
echo
echo "== peak RSS, one 20 MP frame (5472×3648) tiled at scale 1, ONNX Runtime CPU, --out (map and overlay written)"
"$python" - "$work/hr" "$work/big.png" <<'EOF'
import sys, pathlib
from PIL import Image
src = sorted(pathlib.Path(sys.argv[1]).glob("*/test/*/*.png"))[0]
Image.open(src).convert("RGB").resize((5472, 3648), Image.BICUBIC).save(sys.argv[2])
EOF
/usr/bin/time -v "$dlvp" detect "$work/big.png" --tile --backend ort-cpu --json --out "$work/bigout" 2>"$work/time.txt" >/dev/null
grep -E "Maximum resident|Elapsed" "$work/time.txt"
echo "(the frame itself: 60 MB of RGB; its map: 80 MB of f32; the overlay: 60 MB)"
