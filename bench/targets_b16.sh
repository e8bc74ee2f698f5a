#!/usr/bin/env bash
# Opt-in check (not CI): DLVP-CLIP ViT-B/16 @ 224 with random weights at real shapes, exported
# for every target (`dlvp export --target T --verify`: the graph passes T's static check, and
# tract agrees with ONNX Runtime), then each graph on ONNX Runtime CPU against the PyTorch
# reference (max abs error of score and map, Top-K exact). Needs the venv of scripts/test and
# ~2 GB under $WORK (default /tmp/dlvp-b16).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/dlvp-b16}
mkdir -p "$work"
py=reference/.venv/bin/python
spec=model-spec/dlvp-clip-vit-b16-224.yaml
if [ ! -f "$work/b16.safetensors" ]; then
  "$py" - "$spec" "$work/b16.safetensors" <<'PY'
import sys
from dlvp_reference import checkpoint, spec as spec_mod
from dlvp_reference.golden import random_tiny_model
spec = spec_mod.load(sys.argv[1])
checkpoint.save(sys.argv[2], random_tiny_model(spec, 1).state_dict(), spec)
PY
fi
cargo build --release --locked --bin dlvp
for target in generic tensorrt-8.5 tensorrt-8.6 tensorrt-10; do
  target/release/dlvp export --weights "$work/b16.safetensors" --out "$work/$target.onnx" \
    --target "$target" --verify | grep -E "^verify onnxruntime"
  target/release/dlvp inspect "$work/$target.onnx" --target "$target" | grep "^target"
done
"$py" - "$work" <<'PY'
import sys
import numpy as np, onnxruntime as ort, torch
from dlvp_reference.model import from_checkpoint
work = sys.argv[1]
image = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
model = from_checkpoint(f"{work}/b16.safetensors").eval()
with torch.no_grad():
    ref = model(image)
for target in ["generic", "tensorrt-8.5", "tensorrt-8.6", "tensorrt-10"]:
    session = ort.InferenceSession(f"{work}/{target}.onnx", providers=["CPUExecutionProvider"])
    score, amap, topk = session.run(None, {"image": image.numpy()})
    print("%-13s vs PyTorch: score %.1e, map %.1e, topk exact %s" % (
        target, np.abs(score - ref["anomaly_score"].numpy()).max(),
        np.abs(amap - ref["anomaly_map"].numpy()).max(), bool((topk == ref["topk_indices"].numpy()).all())))
PY
