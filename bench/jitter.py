"""How much a graph's outputs move with the batch an image is run in, per backend: the float
jitter a decision threshold must stand clear of (docs/decisions.md, "Scores move in the last
digits").

The same preprocessed images run through `dlvp bench --input … --save-outputs` (the graph alone,
so the numbers are the backend's, not the preprocessing's) at batch 1, at batch 8 in file order,
and "mixed": batch 8 in a shuffled order with one image twice in the same batch. For each backend
it prints the largest change of `anomaly_score`, of the map's maximum (what the pixel threshold
decides on) and of any map value against batch 1, and the largest difference from ONNX Runtime
at batch 1.

    reference/.venv/bin/python bench/jitter.py [--dlvp target/release/dlvp] [--model M.onnx]
        [--images N] [--backends ort-cpu,tract,openvino]

Defaults: the embedded demo model's graph (models/demo), 40 good images of `dlvp demo-data`
(seed 7, 256 px), ONNX Runtime CPU, tract and OpenVINO CPU (f32).
"""

import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def preprocess(path, size):
    img = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1)


def run_graph(dlvp, model, backend, batch, work, tag):
    """The graph's outputs for `batch` [B, 3, S, S] on `backend`."""
    inp, out = work / f"{tag}.in.safetensors", work / f"{tag}.out.safetensors"
    save_file({"image": np.ascontiguousarray(batch)}, str(inp))
    cmd = [dlvp, "bench", "--model", str(model), "--backend", backend, "--input", str(inp),
           "--save-outputs", str(out), "--iters", "1", "--warmup", "0", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    got = load_file(str(out))
    return got["anomaly_score"].reshape(-1), got["anomaly_map"].reshape(len(batch), -1)


def outputs(dlvp, model, backend, images, order, batch, work, tag):
    """Score and map of every image, run `batch` at a time in `order` (indices; may repeat), as
    lists indexed like `images` (a repeated image keeps every run)."""
    scores = [[] for _ in images]
    maps = [[] for _ in images]
    for start in range(0, len(order), batch):
        part = order[start:start + batch]
        s, m = run_graph(dlvp, model, backend, np.stack([images[i] for i in part]), work,
                         f"{tag}-{start}")
        for j, i in enumerate(part):
            scores[i].append(float(s[j]))
            maps[i].append(m[j])
    return scores, maps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dlvp", default=str(ROOT / "target/release/dlvp"))
    ap.add_argument("--model", default=str(ROOT / "models/demo/dlvp-clip-demo.onnx"))
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--backends", default="ort-cpu,tract,openvino")
    args = ap.parse_args()
    os.environ.setdefault("ORT_DYLIB_PATH", str(next(
        (ROOT / "reference/.venv/lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))))
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        per = max(1, args.images // 5)
        subprocess.run([args.dlvp, "demo-data", "--out", str(work / "data"), "--count", "0",
                        "--train-count", str(per), "--size", "256", "--seed", "7"],
                       check=True, capture_output=True)
        files = sorted((work / "data").glob("*/train/good/*.png"))[:args.images]
        size = 224
        images = [preprocess(f, size) for f in files]
        n = len(images)
        shuffled = list(range(n))
        random.Random(3).shuffle(shuffled)
        # One image twice in one batch (first and sixth place): the position in the batch alone.
        mixed = shuffled[:5] + [shuffled[0]] + shuffled[5:]
        rows, reference = [], None
        for backend in args.backends.split(","):
            one_s, one_m = outputs(args.dlvp, args.model, backend, images, list(range(n)), 1, work, f"{backend}-1")
            runs = {
                "batch 8": outputs(args.dlvp, args.model, backend, images, list(range(n)), 8, work, f"{backend}-8"),
                "mixed": outputs(args.dlvp, args.model, backend, images, mixed, 8, work, f"{backend}-mixed"),
            }
            base_s = np.array([s[0] for s in one_s])
            base_m = np.stack([m[0] for m in one_m])
            row = {"backend": backend}
            for name, (s, m) in runs.items():
                ds = max(abs(v - base_s[i]) for i in range(n) for v in s[i])
                dmax = max(abs(float(v.max()) - float(base_m[i].max())) for i in range(n) for v in m[i])
                dmap = max(float(np.abs(v - base_m[i]).max()) for i in range(n) for v in m[i])
                row[name] = {"score": ds, "map_max": dmax, "map": dmap}
            twice = runs["mixed"][0][mixed[0]]
            row["same image twice in a batch"] = abs(twice[0] - twice[1])
            if reference is None:
                reference = (base_s, base_m)
            else:
                row["vs ort-cpu at batch 1"] = {
                    "score": float(np.abs(base_s - reference[0]).max()),
                    "map_max": float(np.abs(base_m.max(1) - reference[1].max(1)).max()),
                    "map": float(np.abs(base_m - reference[1]).max()),
                }
            rows.append(row)
        print(json.dumps({"model": args.model, "images": n, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
