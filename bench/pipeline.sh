#!/usr/bin/env bash
# End-to-end throughput: `dlvp detect` on a folder against the graph alone (`dlvp bench`), and
# where detect's time goes (`--profile`). Three workloads: the demo model on 200 demo-data images
# of 256 px; the tiny golden graph (1.6 ms per image: the CPU stages alone) on the same images;
# the tiny graph on 20 JPEGs of 2448×2048 (5 MP, a line camera), beside Pillow's
# open → convert("RGB") → resize(224, BICUBIC) of the same files in the same run (and with
# Pillow's draft, beside `--jpeg-draft`); then what `--jpeg-draft` does to the demo model's scores.
#
#   bench/pipeline.sh [DLVP] [BACKEND] [OLD_DLVP]
#
# DLVP defaults to target/release/dlvp, BACKEND to ort-cpu. With OLD_DLVP (another build, say the
# previous release) both are timed on the same files, one after the other. A run's time per image
# is (wall(N images) − wall(1 image)) / (N − 1): the model load and first-run costs cancel.
set -euo pipefail
cd "$(dirname "$0")/.."
dlvp=$(realpath "${1:-target/release/dlvp}")
backend=${2:-ort-cpu}
old=${3:+$(realpath "$3")}
python=reference/.venv/bin/python
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$PWD"/reference/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The inputs: 200 test images of the five demo categories; the tiny golden graph; 20 5-MP JPEGs.
"$dlvp" demo-data --out "$work/data" --count 40 --train-count 0 --size 256 --seed 11 2>/dev/null
mkdir -p "$work/png" "$work/one" "$work/jpeg"
find "$work/data" -path '*/test/*' -name '*.png' | sort | head -200 | nl -w3 -nrz |
  while read -r n f; do cp "$f" "$work/png/$n.png"; done
cp "$work/png/001.png" "$work/one/"
"$dlvp" export --weights fixtures/tiny/weights.safetensors --out "$work/tiny.onnx" >/dev/null 2>&1
"$python" bench/camera_jpegs.py "$work/png" "$work/jpeg"
cp "$work/jpeg/00.jpg" "$work/one/00.jpg"

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
# ms per image of `detect` with these arguments over folder $1 of $2 images (one-image run subtracted).
per_image() {
  local bin=$1 dir=$2 n=$3 one=$4; shift 4
  local all single
  all=$(seconds "$bin" detect "$dir" --backend "$backend" "$@")
  single=$(seconds "$bin" detect "$one" --backend "$backend" "$@")
  awk -v a="$all" -v s="$single" -v n="$n" 'BEGIN { print (a - s) * 1000 / (n - 1) }'
}
printf '%-58s %10s %10s\n' "workload ($backend)" "ms/image" "images/s"
row() { printf '%-58s %10.2f %10.1f\n' "$1" "$2" "$(awk -v m="$2" 'BEGIN { print 1000 / m }')"; }

graph=$("$dlvp" bench --backend "$backend" --batch 8 --iters 10 --json 2>/dev/null |
  "$python" -c 'import json,sys; print(1000 / json.load(sys.stdin)["images_per_s"])')
row "demo model, graph alone (bench, batch 8)" "$graph"
for bin in "$dlvp" ${old:+"$old"}; do
  tag=$([ "$bin" = "$dlvp" ] && echo new || echo old)
  mkdir -p "$work/out-$tag"
  row "[$tag] demo model, detect --json (200 × 256 px PNG)" \
    "$(per_image "$bin" "$work/png" 200 "$work/one/001.png" --json)"
  row "[$tag] demo model, detect --json --out" \
    "$(per_image "$bin" "$work/png" 200 "$work/one/001.png" --json --out "$work/out-$tag")"
  row "[$tag] tiny graph, detect --json (200 × 256 px PNG)" \
    "$(per_image "$bin" "$work/png" 200 "$work/one/001.png" --json --model "$work/tiny.onnx")"
  row "[$tag] tiny graph, detect --json --out" \
    "$(per_image "$bin" "$work/png" 200 "$work/one/001.png" --json --out "$work/out-$tag" --model "$work/tiny.onnx")"
  row "[$tag] tiny graph, detect --json (20 × 5 MP JPEG)" \
    "$(per_image "$bin" "$work/jpeg" 20 "$work/one/00.jpg" --json --model "$work/tiny.onnx")"
  row "[$tag] tiny graph, detect --json --out (20 × 5 MP JPEG)" \
    "$(per_image "$bin" "$work/jpeg" 20 "$work/one/00.jpg" --json --out "$work/out-$tag" --model "$work/tiny.onnx")"
done
row "[new] tiny graph, detect --json --out --png fast (20 × 5 MP JPEG)" \
  "$(per_image "$dlvp" "$work/jpeg" 20 "$work/one/00.jpg" --json --out "$work/out-new" --png fast --model "$work/tiny.onnx")"
row "[new] tiny graph, detect --json --out --write overlay (20 × 5 MP JPEG)" \
  "$(per_image "$dlvp" "$work/jpeg" 20 "$work/one/00.jpg" --json --out "$work/out-new" --write overlay --model "$work/tiny.onnx")"
row "[new] tiny graph, detect --json --out --write overlay --png fast (5 MP)" \
  "$(per_image "$dlvp" "$work/jpeg" 20 "$work/one/00.jpg" --json --out "$work/out-new" --write overlay --png fast --model "$work/tiny.onnx")"
row "[new] tiny graph, detect --json --jpeg-draft (20 × 5 MP JPEG)" \
  "$(per_image "$dlvp" "$work/jpeg" 20 "$work/one/00.jpg" --json --jpeg-draft --model "$work/tiny.onnx")"
row "[new] tiny graph, detect --json --out --jpeg-draft (20 × 5 MP JPEG)" \
  "$(per_image "$dlvp" "$work/jpeg" 20 "$work/one/00.jpg" --json --out "$work/out-new" --jpeg-draft --model "$work/tiny.onnx")"
# Pillow in the same run: the full decode (what the parity is with), and with draft("RGB", 224×224)
# (libjpeg's DCT scaling, what --jpeg-draft does with another IDCT).
pillow() {
  "$python" - "$work/jpeg" "$1" <<'EOF'
import sys, pathlib, time
from PIL import Image
files, draft = sorted(pathlib.Path(sys.argv[1]).glob("*.jpg")), sys.argv[2] == "draft"
t = time.perf_counter()
for f in files:
    im = Image.open(f)
    if draft:
        im.draft("RGB", (224, 224))
    im.convert("RGB").resize((224, 224), Image.BICUBIC)
print((time.perf_counter() - t) * 1000 / len(files))
EOF
}
row "Pillow open → convert → resize(224, BICUBIC), 5 MP JPEG" "$(pillow full)"
row "Pillow open → draft → convert → resize(224, BICUBIC), 5 MP JPEG" "$(pillow draft)"
echo
echo "where the time goes (new; demo model, then the tiny graph on 5 MP JPEGs; --json --out):"
"$dlvp" detect "$work/png" --backend "$backend" --json --out "$work/out-new" --profile 2>&1 >/dev/null | grep '^profile'
"$dlvp" detect "$work/jpeg" --backend "$backend" --json --out "$work/out-new" --model "$work/tiny.onnx" --profile 2>&1 >/dev/null | grep '^profile'
"$dlvp" detect "$work/jpeg" --backend "$backend" --json --jpeg-draft --model "$work/tiny.onnx" --profile 2>&1 >/dev/null | grep '^profile'
echo
echo "what --jpeg-draft does to the demo model's scores on the 5 MP JPEGs (|draft − full|):"
"$dlvp" detect "$work/jpeg" --backend "$backend" --json 2>/dev/null >"$work/full.jsonl"
"$dlvp" detect "$work/jpeg" --backend "$backend" --json --jpeg-draft 2>/dev/null >"$work/draft.jsonl"
"$python" - "$work/full.jsonl" "$work/draft.jsonl" <<'EOF'
import json, sys
full, draft = ([json.loads(l)["score"] for l in open(p)] for p in sys.argv[1:])
d = [abs(a - b) for a, b in zip(full, draft)]
print(f"max {max(d):.2e}, mean {sum(d) / len(d):.2e} over {len(d)} images")
EOF
