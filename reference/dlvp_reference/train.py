"""Train DLVP-CLIP: ``python -m dlvp_reference.train --data ROOT --out DIR [options]``.

model-spec/README.md §8 losses, Adam (lr 1.5e-4), CLIP frozen and only ``dlvp.*`` trained unless
``--train-backbone`` (needed for a model without CLIP pretraining, such as the tiny demo model).
The model starts from ``--init`` (a DLVP checkpoint, or a plain OpenCLIP safetensors state dict
plus the documented DLVP init) or, without it, from a randomly initialised CLIP of ``--spec``.

``DIR/checkpoint.safetensors`` (the DLVP checkpoint ``dlvp export`` reads) and ``DIR/state.pt``
(optimizer, epoch, RNG) are written atomically after every epoch; ``--resume`` continues from
them. ``DIR/train_log.jsonl`` has one line per step.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors import safe_open
from tqdm import tqdm

from . import checkpoint, spec as spec_mod
from .data import AnomalyDataset, DatasetError, mvtec_samples, visa_samples
from .losses import DICE_ANOMALY, dlvp_loss
from .model import DLVPCLIP, from_checkpoint, from_openclip


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m dlvp_reference.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--layout", choices=["mvtec", "visa"], default="mvtec")
    p.add_argument("--categories", nargs="+", help="categories to train on (default: all)")
    p.add_argument("--split", choices=["test", "train", "all"], default="test",
                   help="test = every defect with its mask (AnomalyCLIP protocol); all adds train/good")
    p.add_argument("--spec", type=Path, help="model spec (default: the --init checkpoint's)")
    p.add_argument("--init", help="start from: a DLVP checkpoint; a plain OpenCLIP .safetensors/.pt/.bin "
                   "(with --spec); or openclip:MODEL:TAG, e.g. openclip:ViT-L-14:openai (needs open_clip's download)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1.5e-4; with --resume: the saved "
                   "run's, unless given — e.g. to anneal the last epochs at a lower rate)")
    p.add_argument("--train-backbone", action="store_true", help="train CLIP too (no pretrained weights)")
    p.add_argument("--seed", type=int, default=111)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    p.add_argument("--dice-anomaly", choices=DICE_ANOMALY,
                   help="images in the anomaly map's Dice term: all (§8, the default) or defective ones only "
                        "(on an empty mask that term pays a model to silence its whole map; with --resume: "
                        "the saved run's, unless given)")
    return p.parse_args(argv)


def openclip_state_dict(init: str) -> dict:
    """A plain OpenCLIP state dict from ``openclip:MODEL:TAG`` (open_clip's own download and cache)
    or a ``.pt``/``.bin`` file."""
    if init.startswith("openclip:"):
        _, name, tag = (init.split(":", 2) + [""])[:3]
        try:
            model = open_clip.create_model(name, pretrained=tag or None)
        except Exception as e:  # open_clip raises many kinds; the user needs the name and the cause
            raise SystemExit(f"error: --init {init}: open_clip could not create {name!r} with weights {tag!r}: {e}")
        return model.state_dict()
    state = torch.load(init, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    # Checkpoints saved from DataParallel/DDP prefix every key with "module.".
    return {k.removeprefix("module."): v.float() for k, v in state.items()}


def build_model(args) -> DLVPCLIP:
    if args.init is None:
        if args.spec is None:
            raise SystemExit("error: pass --spec (or --init with a checkpoint that carries one)")
        return DLVPCLIP(spec_mod.load(args.spec))
    spec = spec_mod.load(args.spec) if args.spec else None
    if str(args.init).startswith("openclip:") or Path(args.init).suffix in (".pt", ".bin", ".pth"):
        if spec is None:
            raise SystemExit(f"error: --init {args.init}: a plain OpenCLIP checkpoint carries no spec; pass --spec")
        return from_openclip(spec, openclip_state_dict(str(args.init)))
    with safe_open(str(args.init), framework="pt") as f:
        is_dlvp = (f.metadata() or {}).get(checkpoint.FORMAT_KEY) == checkpoint.FORMAT_TAG
        if not is_dlvp:
            if spec is None:
                raise SystemExit(f"error: {args.init}: a plain OpenCLIP checkpoint carries no spec; pass --spec")
            return from_openclip(spec, {k: f.get_tensor(k).float() for k in f.keys()})
    return from_checkpoint(args.init, spec)


def atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path, state_path, log_path = args.out / "checkpoint.safetensors", args.out / "state.pt", args.out / "train_log.jsonl"

    if args.resume:
        if not (ckpt_path.is_file() and state_path.is_file()):
            raise SystemExit(f"error: --resume: {ckpt_path} and {state_path} must both exist")
        model = from_checkpoint(ckpt_path)
    else:
        model = build_model(args)
    spec = model.spec
    model.freeze_clip(not args.train_backbone)
    model.to(device)

    try:
        make = mvtec_samples if args.layout == "mvtec" else visa_samples
        samples = make(args.data, args.categories, args.split)
    except DatasetError as e:
        raise SystemExit(f"error: {e}")
    loader = torch.utils.data.DataLoader(
        AnomalyDataset(samples, spec), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        generator=torch.Generator().manual_seed(args.seed), drop_last=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.lr if args.lr is not None else 1.5e-4)
    start_epoch = 0
    if args.resume:
        state = torch.load(state_path, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        if args.lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = args.lr
        start_epoch = state["epoch"]
        if args.dice_anomaly is None:
            args.dice_anomaly = state.get("args", {}).get("dice_anomaly") or "all"
        torch.set_rng_state(state["rng"])
        loader.generator.set_state(state["loader_rng"])
    args.dice_anomaly = args.dice_anomaly or "all"
    anomalous = sum(s.label for s in samples)
    print(f"training {spec.name} on {len(samples)} images ({anomalous} anomalous) from {args.data}, "
          f"{sum(p.numel() for p in trainable)} trainable parameters, device {device}, "
          f"epochs {start_epoch + 1}..{args.epochs}, anomaly Dice over {args.dice_anomaly} images", file=sys.stderr)

    with open(log_path, "a") as log:
        for epoch in range(start_epoch, args.epochs):
            model.train()
            totals, steps, started = 0.0, 0, time.time()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", file=sys.stderr)
            for image, label, mask in bar:
                image, label, mask = image.to(device), label.to(device), mask.to(device)
                parts = dlvp_loss(model(image), label, mask, args.dice_anomaly)
                optimizer.zero_grad(set_to_none=True)
                parts["loss"].backward()
                optimizer.step()
                record = {k: round(v.item(), 6) for k, v in parts.items()}
                log.write(json.dumps({"epoch": epoch + 1, "step": steps + 1, **record}) + "\n")
                totals += record["loss"]
                steps += 1
                bar.set_postfix(loss=f"{totals / steps:.4f}")
            log.flush()
            checkpoint.save(ckpt_path, {k: v.cpu() for k, v in model.state_dict().items()}, spec)
            atomic_torch_save({"optimizer": optimizer.state_dict(), "epoch": epoch + 1, "rng": torch.get_rng_state(),
                               "loader_rng": loader.generator.get_state(), "args": vars(args)}, state_path)
            print(f"epoch {epoch + 1}: mean loss {totals / max(steps, 1):.4f}, lr {optimizer.param_groups[0]['lr']:g}, "
                  f"{time.time() - started:.1f} s, "
                  f"saved {ckpt_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
