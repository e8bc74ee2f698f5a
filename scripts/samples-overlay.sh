#!/usr/bin/env bash
# Rebuilds docs/samples-overlay.png, the README's picture: the embedded demo model's overlays
# (with --show-topk) of six samples, side by side. Needs the reference venv (Pillow).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# DLVP_BIN: a dlvp binary already built (any profile: tract's scores agree within 1e-5).
if [ -n "${DLVP_BIN:-}" ]; then dlvp=("$DLVP_BIN"); else dlvp=(cargo run --release --quiet --); fi
"${dlvp[@]}" detect fixtures/samples --out "$out" --show-topk --backend tract >/dev/null
reference/.venv/bin/python - "$out" <<'PY'
import sys
from pathlib import Path
from PIL import Image

out = Path(sys.argv[1])
names = ["fabric_hole", "wood_crack", "metal_scratch", "tile_chip", "leather_stain", "tile_good"]
tiles = [Image.open(out / f"{n}.overlay.png").convert("RGB").resize((200, 200), Image.BICUBIC) for n in names]
strip = Image.new("RGB", (200 * len(tiles) + 4 * (len(tiles) - 1), 200), "white")
for i, t in enumerate(tiles):
    strip.paste(t, (i * 204, 0))
strip.save("docs/samples-overlay.png", optimize=True)
PY
echo "wrote docs/samples-overlay.png"
