"""A contact sheet of `dlvp demo-data --universe` output: per family one defect-free and N
defective test images, each mask outlined in red, the family and kind written under each.

    python scripts/universe_contact_sheet.py ROOT OUT.png [--defective N] [--tile PX]

ROOT is a `--universe` dataset (its `universe.json` lists the families). Used for
docs/universe-contact-sheet.png:

    dlvp demo-data --universe --out /tmp/sheet --count 36 --train-count 0 --seed 5
    python scripts/universe_contact_sheet.py /tmp/sheet docs/universe-contact-sheet.png --tile 96 --defective 2
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


def outlined(image: Path, mask: Path | None, tile: int) -> Image.Image:
    img = Image.open(image).convert("RGB").resize((tile, tile), Image.BILINEAR)
    if mask is not None:
        m = Image.open(mask).convert("L").resize((tile, tile), Image.NEAREST)
        edge = m.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 0 else 0)
        img.paste((255, 0, 0), mask=edge)
    return img


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--defective", type=int, default=3, help="defective images per family")
    p.add_argument("--tile", type=int, default=128)
    args = p.parse_args(argv)
    manifest = args.root / "universe.json"
    try:
        families = list(json.loads(manifest.read_text())["families"])
    except (OSError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {manifest}: not a --universe dataset manifest ({e})", file=sys.stderr)
        return 1
    label = 14
    cols = 1 + args.defective
    sheet = Image.new("RGB", (cols * args.tile, len(families) * (args.tile + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, family in enumerate(families):
        test = args.root / family / "test"
        good = sorted((test / "good").glob("*.png"))[:1]
        defects = sorted(p for p in test.glob("*/*.png") if p.parent.name != "good")
        # one image of each of several kinds, a different run of kinds on each row
        kinds = sorted({p.parent.name for p in defects})
        start = (row * args.defective) % max(len(kinds), 1)
        kinds = (kinds[start:] + kinds[:start])[: args.defective]
        picks = [next(p for p in defects if p.parent.name == k) for k in kinds]
        y = row * (args.tile + label)
        for col, path in enumerate(good + picks):
            kind = path.parent.name
            mask = None
            if kind != "good":
                mask = args.root / family / "ground_truth" / kind / f"{path.stem}_mask.png"
            sheet.paste(outlined(path, mask, args.tile), (col * args.tile, y))
            draw.text((col * args.tile + 2, y + args.tile), f"{family} {kind}", fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.png")
    # 256 colours: a third of the bytes, enough to see surfaces and outlines
    sheet.quantize(256).save(tmp, optimize=True)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(families)} families × {cols} images")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
