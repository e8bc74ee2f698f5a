"""The benchmarks' line-camera frames: the first 20 PNGs of SRC (sorted) upscaled to 2448×2048
(5 MP) with sensor noise added, so they compress like camera frames rather than a smooth upscale,
saved as quality-90 JPEGs NN.jpg in DST. Deterministic (seed 5).

    python bench/camera_jpegs.py SRC DST
"""

import pathlib
import sys

import numpy as np
from PIL import Image

src, dst = map(pathlib.Path, sys.argv[1:])
rng = np.random.default_rng(5)
for i, f in enumerate(sorted(src.glob("*.png"))[:20]):
    big = np.asarray(Image.open(f).convert("RGB").resize((2448, 2048), Image.BICUBIC), np.float32)
    big += rng.normal(0, 4, big.shape)
    Image.fromarray(big.clip(0, 255).astype(np.uint8)).save(dst / f"{i:02d}.jpg", quality=90)
