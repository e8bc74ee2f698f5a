#!/usr/bin/env bash
# Opt-in benchmark (not CI): export DLVP-CLIP ViT-L/14 @ 518 with random weights at real shapes.
# Writes a random checkpoint with the PyTorch reference (open_clip init + random dlvp.* tensors),
# exports it with the release `dlvp`, and reports export time, peak RSS, graph bytes and the
# checkpoint bytes the graph uses (model-spec/README.md "Checkpoint format" tensors minus the folded token table and
# logit_scale), then runs the graph on ONNX Runtime and PyTorch once and compares them. Needs
# ~8 GB of disk under $WORK (default /tmp/dlvp-l14) and the venv of scripts/test.
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
# Parity at real shapes: the exported graph on ONNX Runtime CPU vs the PyTorch reference, batch 1.
"$py" - "$work/l14.safetensors" "$work/l14.onnx" <<'PY'
import sys, time
import numpy as np, onnxruntime as ort, torch
from dlvp_reference.model import from_checkpoint
t = time.time()
session = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
print(f"onnxruntime session load {time.time() - t:.1f} s")
image = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(0))
t = time.time()
score, amap, topk = session.run(None, {"image": image.numpy()})
print(f"onnxruntime run {time.time() - t:.1f} s")
model = from_checkpoint(sys.argv[1]).eval()
t = time.time()
with torch.no_grad():
    ref = model(image)
print(f"pytorch run {time.time() - t:.1f} s")
print("max abs error: score %.2e, map %.2e; topk exact: %s" % (
    np.abs(score - ref["anomaly_score"].numpy()).max(), np.abs(amap - ref["anomaly_map"].numpy()).max(),
    bool((topk == ref["topk_indices"].numpy()).all())))
PY
