"""bench/loss_parts.py DATA_ROOT CHECKPOINT [CHECKPOINT ...] [--good N] [--defective N]: the parts
of the training loss (model-spec §8) a checkpoint pays on defect-free and on defective images,
separately — the measurement that showed the anomaly map's Dice term on defect-free images
paying a model to silence its map (models/demo/README.md, run 2; the trainer's
``--dice-anomaly defective``).

Per checkpoint and image group (a seeded sample of an MVTec-layout folder's test images, e.g.
``dlvp demo-data`` output), means over the feature layers: the anomaly map's Dice, the normal
map's Dice, the focal loss, the anomaly map's sum |P| (224² pixels), the final map's maximum and
the image anomaly probability. A silenced map shows as anomaly Dice near 0 and |P| under ~100
on defect-free images.

    reference/.venv/bin/python bench/loss_parts.py /tmp/u2-indist models/demo/checkpoint.safetensors
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reference"))
from dlvp_reference.data import AnomalyDataset, DatasetError, mvtec_samples  # noqa: E402
from dlvp_reference.losses import dice, focal  # noqa: E402
from dlvp_reference.model import from_checkpoint  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--good", type=int, default=48, help="defect-free images sampled (default 48)")
    p.add_argument("--defective", type=int, default=96, help="defective images sampled (default 96)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    try:
        samples = mvtec_samples(args.data, None, "test")
    except DatasetError as e:
        raise SystemExit(f"error: {e}")
    for ckpt in args.checkpoints:
        if not ckpt.is_file():
            raise SystemExit(f"error: {ckpt}: checkpoint not found (a DLVP .safetensors)")
    random.Random(args.seed).shuffle(samples)
    groups = {"defect-free": [s for s in samples if s.label == 0][:args.good],
              "defective": [s for s in samples if s.label == 1][:args.defective]}
    print("| checkpoint | images | n | anomaly Dice | normal Dice | focal | map sum | map max | image prob |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    torch.set_grad_enabled(False)
    for ckpt in args.checkpoints:
        model = from_checkpoint(ckpt).eval()
        for name, group in groups.items():
            if not group:
                continue
            data = AnomalyDataset(group, model.spec)
            items = [data[i] for i in range(len(group))]
            image, mask = torch.stack([x[0] for x in items]), torch.stack([x[2] for x in items])
            out = model(image)
            maps = out["layer_maps"]  # [B, |L|, 2, H, W]
            layers = range(maps.shape[1])
            mean = lambda f: sum(f(i) for i in layers).item() / len(layers)  # noqa: E731
            print(f"| {ckpt} | {name} | {len(group)} | {mean(lambda i: dice(maps[:, i, 1], mask)):.3f} "
                  f"| {mean(lambda i: dice(maps[:, i, 0], 1 - mask)):.4f} | {mean(lambda i: focal(maps[:, i], mask)):.4f} "
                  f"| {maps[:, :, 1].flatten(2).sum(-1).mean().item():.1f} "
                  f"| {out['anomaly_map'].flatten(1).max(1).values.mean().item():.3f} "
                  f"| {out['image_probs'][:, 1].mean().item():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
