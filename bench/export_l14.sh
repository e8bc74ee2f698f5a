#!/usr/bin/env bash
# Opt-in benchmark (not CI): export DLVP-CLIP ViT-L/14 @ 518 with random weights at real shapes.
# Writes a random checkpoint with the PyTorch reference (open_clip init + random dlvp.* tensors),
# exports it with the release `dlvp`, and reports export time, peak RSS, graph bytes and the
# checkpoint bytes the graph uses (MODEL.md §9 tensors minus the folded token table and
# logit_scale). Needs ~8 GB of disk under $WORK (default /tmp/dlvp-l14) and the venv of scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/dlvp-l14}
mkdir -p "$work"
py=reference/.venv/bin/python
spec=model-spec/dlvp-clip-vit-l14-518.yaml
if [ ! -f "$work/l14.safetensors" ]; then
  "$py" - "$spec" "$work/l14.safetensors" <<'PY'
import sys, time, torch
from dlvp_reference import checkpoint, spec as spec_mod
from dlvp_reference.golden import random_tiny_model
t = time.time()
spec = spec_mod.load(sys.argv[1])
model = random_tiny_model(spec, 1)
checkpoint.save(sys.argv[2], model.state_dict(), spec)
print(f"random checkpoint written in {time.time() - t:.0f} s", file=sys.stderr)
PY
fi
cargo build --release --locked --bin dlvp
/usr/bin/time -v target/release/dlvp export --weights "$work/l14.safetensors" --out "$work/l14.onnx" \
  2> "$work/time.txt"
grep -E "Elapsed|Maximum resident" "$work/time.txt"
"$py" - "$work/l14.safetensors" "$work/l14.onnx" <<'PY'
import math, os, sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="pt") as f:
    skipped = ("token_embedding.weight", "logit_scale")
    used = 4 * sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if k not in skipped)
graph = os.path.getsize(sys.argv[2])
print(f"graph {graph / 1e6:.1f} MB, checkpoint tensors used by the graph {used / 1e6:.1f} MB, ratio {graph / used:.4f}")
PY
