"""Training and evaluation images in the MVTec AD and VisA folder layouts.

MVTec AD: ``<root>/<category>/train/good/*``, ``<root>/<category>/test/<defect>/*`` (``good`` =
normal) and ``<root>/<category>/ground_truth/<defect>/<stem>_mask.png``.
VisA: ``<root>/split_csv/1cls.csv`` with columns ``object,split,label,image,mask`` (label
``normal``/``anomaly``; paths relative to ``<root>``).

Images are preprocessed as ``model-spec/README.md`` §1 says (PIL resize to H×W with the spec's
filter, [0, 1], mean/std); masks are resized nearest-neighbour and binarised at 0.5.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .spec import Spec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class DatasetError(ValueError):
    """A dataset folder that does not have the expected layout; the message names the path."""


@dataclass(frozen=True)
class Sample:
    image: Path
    label: int  # 0 normal, 1 anomaly
    mask: Optional[Path]  # None for normal images
    category: str
    defect: str


def _images(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def mvtec_samples(root: Path, categories: Optional[Sequence[str]], split: str) -> List[Sample]:
    """``split``: ``test`` (every defect with its mask, AnomalyCLIP's auxiliary-training protocol),
    ``train`` (train/good only) or ``all``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    found = sorted(p.name for p in root.iterdir() if (p / "test").is_dir() or (p / "train").is_dir())
    categories = list(categories) if categories else found
    if not categories:
        raise DatasetError(f"{root}: no <category>/train or <category>/test folders (MVTec AD layout)")
    samples = []
    for category in categories:
        base = root / category
        if not base.is_dir():
            raise DatasetError(f"{base}: category folder not found (have: {', '.join(found) or 'none'})")
        if split in ("train", "all") and (base / "train" / "good").is_dir():
            samples += [Sample(p, 0, None, category, "good") for p in _images(base / "train" / "good")]
        if split in ("test", "all"):
            test = base / "test"
            if not test.is_dir():
                raise DatasetError(f"{test}: missing (MVTec AD layout: <category>/test/<defect>/)")
            for defect in sorted(p.name for p in test.iterdir() if p.is_dir()):
                for image in _images(test / defect):
                    if defect == "good":
                        samples.append(Sample(image, 0, None, category, defect))
                        continue
                    mask = base / "ground_truth" / defect / f"{image.stem}_mask.png"
                    if not mask.is_file():
                        raise DatasetError(f"{image}: its mask {mask} is missing")
                    samples.append(Sample(image, 1, mask, category, defect))
    if not samples:
        raise DatasetError(f"{root}: no images found for categories {', '.join(categories)} (split {split})")
    return samples


def visa_samples(root: Path, categories: Optional[Sequence[str]], split: str) -> List[Sample]:
    root = Path(root)
    table = root / "split_csv" / "1cls.csv"
    if not table.is_file():
        raise DatasetError(f"{table}: missing (VisA layout)")
    samples = []
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        needed = {"object", "split", "label", "image", "mask"}
        if not needed <= set(reader.fieldnames or []):
            raise DatasetError(f"{table}: expected columns {', '.join(sorted(needed))}, found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            if categories and row["object"] not in categories:
                continue
            if split != "all" and row["split"] != split:
                continue
            if row["label"] not in ("normal", "anomaly"):
                raise DatasetError(f"{table}:{line}: label {row['label']!r}, expected normal or anomaly")
            anomalous = row["label"] == "anomaly"
            mask = root / row["mask"] if anomalous else None
            if anomalous and not row["mask"]:
                raise DatasetError(f"{table}:{line}: anomalous image {row['image']} has no mask")
            samples.append(Sample(root / row["image"], int(anomalous), mask, row["object"], row["label"]))
    if not samples:
        raise DatasetError(f"{table}: no rows for categories {categories or 'any'} (split {split})")
    return samples


_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


_SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(img: Image.Image) -> Image.Image:
    """§1 colour conversion to RGB8: grayscale replicated, alpha dropped, 16-bit samples reduced to
    their high byte. Pillow does the last itself for 16-bit RGB, but its 16-bit grayscale → RGB
    conversion clips at 255 (most of such an image turns white), so grayscale is reduced here."""
    if img.mode in _SIXTEEN_BIT_GRAY:
        high = np.clip(np.asarray(img).astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(high, "L").convert("RGB")
    return img.convert("RGB")


def load_image(path: Path, spec: Spec) -> torch.Tensor:
    """§1: upright per EXIF → RGB8 (``to_rgb``) → H×W → [0, 1] → normalised, [3, H, W] f32."""
    try:
        with Image.open(path) as img:
            img = to_rgb(ImageOps.exif_transpose(img))
            img = img.resize((spec.image_size, spec.image_size), _FILTERS[spec.preprocess.resize])
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read image: {e}") from e
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(spec.preprocess.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec.preprocess.std, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def load_mask(path: Optional[Path], spec: Spec) -> torch.Tensor:
    size = spec.image_size
    if path is None:
        return torch.zeros(size, size)
    try:
        with Image.open(path) as m:
            m = m.convert("L").resize((size, size), Image.NEAREST)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read mask: {e}") from e
    return torch.from_numpy((np.asarray(m, dtype=np.float32) / 255.0 > 0.5).astype(np.float32))


class AnomalyDataset(torch.utils.data.Dataset):
    def __init__(self, samples: List[Sample], spec: Spec):
        self.samples, self.spec = samples, spec

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        return load_image(s.image, self.spec), torch.tensor(s.label), load_mask(s.mask, self.spec)
