#!/usr/bin/env bash
# The false-alarm guarantee of `dlvp threshold`, measured with the embedded demo model:
# calibrate on the good images of one demo-data seed, then count on good images of another seed
# how often a good part is flagged NG (realised false-alarm rate, against the α asked for), and
# how many defective parts are caught — per category, and with one threshold for all five.
#
#   bench/threshold.sh [DLVP] [BACKEND] [CALIBRATION_PER_CATEGORY] [TEST_PER_CATEGORY]
#
# Defaults: target/release/dlvp, ort-cpu, 200 calibration and 1000 test good images per category
# (5000 in all), 256 px. The defects are the test split of the second seed.
set -euo pipefail
cd "$(dirname "$0")/.."
dlvp=$(realpath "${1:-target/release/dlvp}")
backend=${2:-ort-cpu}
calib=${3:-200}
test=${4:-1000}
python=reference/.venv/bin/python
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$PWD"/reference/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$dlvp" demo-data --out "$work/calib" --count 0 --train-count "$calib" --size 256 --seed 101 2>/dev/null
"$dlvp" demo-data --out "$work/test" --count 150 --train-count "$test" --size 256 --seed 202 2>/dev/null
cats="fabric metal wood tile leather"
# Scores of the second seed: its good images (train/good) and its defects (test/<kind>).
for c in $cats; do
  "$dlvp" detect "$work/test/$c/train/good" --backend "$backend" --json 2>/dev/null > "$work/$c.good.jsonl"
  find "$work/test/$c/test" -mindepth 1 -maxdepth 1 -type d ! -name good -print0 |
    xargs -0 "$dlvp" detect --backend "$backend" --json 2>/dev/null > "$work/$c.bad.jsonl"
done
# Thresholds: per category, and one for all five (calibrated on every category's good images).
for a in 0.1 0.05 0.01; do
  for c in $cats; do
    "$dlvp" threshold --good "$work/calib/$c/train/good" --false-alarm "$a" --backend "$backend" \
      --out "$work/$c-$a.onnx" >/dev/null 2>&1
  done
  "$dlvp" threshold --good "$work/calib" --false-alarm "$a" --backend "$backend" \
    --out "$work/all-$a.onnx" >/dev/null 2>&1
done
"$python" - "$work" "$cats" "$dlvp" <<'EOF'
import json, math, subprocess, sys
work, cats, dlvp = sys.argv[1], sys.argv[2].split(), sys.argv[3]
def scores(path):
    return [json.loads(line)["score"] for line in open(path)]
def threshold(model):
    meta = json.loads(subprocess.run([dlvp, "inspect", model, "--json"], capture_output=True, text=True, check=True).stdout)["metadata"]
    return float(meta["dlvp.threshold.image"]), int(meta["dlvp.threshold.images"])
def interval(k, n):  # Wilson 95% interval of a rate k/n
    if n == 0: return (0.0, 1.0)
    p, z = k / n, 1.96
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))
good = {c: scores(f"{work}/{c}.good.jsonl") for c in cats}
bad = {c: scores(f"{work}/{c}.bad.jsonl") for c in cats}
print("| threshold | α | n calib | good tested | realised false alarms [95%] | defects caught [95%] |")
print("|---|---:|---:|---:|---|---|")
for a in ("0.1", "0.05", "0.01"):
    for c in cats + ["all five"]:
        model = f"{work}/{'all' if c == 'all five' else c}-{a}.onnx"
        t, n = threshold(model)
        g = sum((good[x] for x in cats), []) if c == "all five" else good[c]
        b = sum((bad[x] for x in cats), []) if c == "all five" else bad[c]
        fa, caught = sum(s > t for s in g), sum(s > t for s in b)
        lo, hi = interval(fa, len(g)); blo, bhi = interval(caught, len(b))
        print(f"| {c} | {a} | {n} | {len(g)} | {fa / len(g):.4f} [{lo:.4f}, {hi:.4f}] | {caught / len(b):.3f} [{blo:.3f}, {bhi:.3f}] ({len(b)}) |")
EOF
