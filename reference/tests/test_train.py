"""The trainer end to end on a tiny MVTec-layout folder: trains, writes a checkpoint that both
the reference and ``dlvp weights check`` accept, resumes, and names a broken layout."""
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SPEC_DIR
from dlvp_reference import train
from dlvp_reference.data import DatasetError, mvtec_samples
from dlvp_reference.model import from_checkpoint


def make_mvtec(root, category="plate", seed=0):
    rng = np.random.default_rng(seed)
    base = root / category
    for sub in ("train/good", "test/good", "test/scratch", "ground_truth/scratch"):
        (base / sub).mkdir(parents=True, exist_ok=True)

    def surface():
        return (128 + 20 * rng.standard_normal((64, 64, 3))).clip(0, 255).astype(np.uint8)

    for i in range(2):
        Image.fromarray(surface()).save(base / "train/good" / f"{i:03d}.png")
        Image.fromarray(surface()).save(base / "test/good" / f"{i:03d}.png")
        img, mask = surface(), np.zeros((64, 64), np.uint8)
        img[20:30, 10:50] = 255
        mask[20:30, 10:50] = 255
        Image.fromarray(img).save(base / "test/scratch" / f"{i:03d}.png")
        Image.fromarray(mask).save(base / "ground_truth/scratch" / f"{i:03d}_mask.png")
    return root


def test_layout_reader_pairs_images_with_masks(tmp_path):
    make_mvtec(tmp_path)
    samples = mvtec_samples(tmp_path, None, "all")
    assert len(samples) == 6 and sum(s.label for s in samples) == 2
    assert all(s.mask.name == f"{s.image.stem}_mask.png" for s in samples if s.label)


def test_a_missing_mask_is_named(tmp_path):
    make_mvtec(tmp_path)
    (tmp_path / "plate/ground_truth/scratch/001_mask.png").unlink()
    with pytest.raises(DatasetError, match=r"001.png: its mask .*001_mask.png is missing"):
        mvtec_samples(tmp_path, None, "test")


def test_an_unknown_category_is_named(tmp_path):
    make_mvtec(tmp_path)
    with pytest.raises(DatasetError, match="wood: category folder not found \\(have: plate\\)"):
        mvtec_samples(tmp_path, ["wood"], "test")


def test_trains_resumes_and_writes_an_exportable_checkpoint(tmp_path, dlvp_bin):
    data, out = make_mvtec(tmp_path / "data"), tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--spec", str(SPEC_DIR / "tiny.yaml"),
              "--batch-size", "2", "--device", "cpu", "--train-backbone"]
    assert train.main(common + ["--epochs", "1"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 1] and all(np.isfinite(r["loss"]) for r in log)
    first = from_checkpoint(out / "checkpoint.safetensors").state_dict()

    assert train.main(common + ["--epochs", "2", "--resume"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 1, 2, 2]
    assert torch.load(out / "state.pt", weights_only=False)["epoch"] == 2
    assert torch.load(out / "state.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"] == 1.5e-4
    assert train.main(common + ["--epochs", "3", "--resume", "--lr", "2e-5"]) == 0
    assert torch.load(out / "state.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"] == 2e-5, \
        "--lr on --resume anneals"
    second = from_checkpoint(out / "checkpoint.safetensors").state_dict()
    assert not torch.equal(first["visual.conv1.weight"], second["visual.conv1.weight"]), "backbone trained"

    check = subprocess.run([dlvp_bin, "weights", "check", out / "checkpoint.safetensors"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_dice_mode_is_recorded_and_kept_on_resume(tmp_path):
    data, out = make_mvtec(tmp_path / "data"), tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--spec", str(SPEC_DIR / "tiny.yaml"),
              "--batch-size", "2", "--device", "cpu"]
    assert train.main(common + ["--epochs", "1", "--dice-anomaly", "defective"]) == 0
    assert train.main(common + ["--epochs", "2", "--resume"]) == 0
    assert torch.load(out / "state.pt", weights_only=False)["args"]["dice_anomaly"] == "defective"
    assert train.main(common + ["--epochs", "3", "--resume", "--dice-anomaly", "all"]) == 0
    assert torch.load(out / "state.pt", weights_only=False)["args"]["dice_anomaly"] == "all"


def test_frozen_backbone_trains_only_dlvp(tmp_path):
    data, out = make_mvtec(tmp_path / "data"), tmp_path / "run"
    assert train.main(["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "3",
                       "--device", "cpu", "--seed", "5", "--init", str(SPEC_DIR.parent / "fixtures/tiny/weights.safetensors")]) == 0
    before = from_checkpoint(SPEC_DIR.parent / "fixtures/tiny/weights.safetensors").state_dict()
    after = from_checkpoint(out / "checkpoint.safetensors").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("dlvp.") for k in changed), sorted(changed)[:5]


def test_a_plain_openclip_checkpoint_starts_as_clip_with_the_documented_init(tmp_path):
    from dlvp_reference import spec as spec_mod
    from dlvp_reference.clip import build_clip

    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    clip = build_clip(spec)
    state = {f"module.{k}": v for k, v in clip.state_dict().items()}  # as DDP saves it
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    args = train.parse_args(["--data", "x", "--out", str(tmp_path / "o"), "--spec", str(SPEC_DIR / "tiny.yaml"),
                             "--init", str(tmp_path / "open_clip_pytorch_model.bin")])
    model = train.build_model(args)
    assert torch.equal(model.visual.conv1.weight, clip.visual.conv1.weight)
    assert torch.equal(model.dlvp.hfd["1"].in_proj.weight, torch.eye(spec.vision.width))
    assert not model.dlvp.head.local_proj.weight.any()


def test_an_unknown_openclip_model_is_named(tmp_path):
    args = train.parse_args(["--data", "x", "--out", str(tmp_path), "--spec", str(SPEC_DIR / "tiny.yaml"),
                             "--init", "openclip:NoSuchModel-42"])
    with pytest.raises(SystemExit, match="open_clip could not create 'NoSuchModel-42'"):
        train.build_model(args)


def test_visa_layout_reads_the_split_csv(tmp_path):
    from dlvp_reference.data import visa_samples

    root = tmp_path / "visa"
    (root / "split_csv").mkdir(parents=True)
    (root / "candle/Data/Images/Normal").mkdir(parents=True)
    (root / "candle/Data/Images/Anomaly").mkdir(parents=True)
    (root / "candle/Data/Masks/Anomaly").mkdir(parents=True)
    rows = ["object,split,label,image,mask",
            "candle,train,normal,candle/Data/Images/Normal/0001.JPG,",
            "candle,test,normal,candle/Data/Images/Normal/0002.JPG,",
            "candle,test,anomaly,candle/Data/Images/Anomaly/0003.JPG,candle/Data/Masks/Anomaly/0003.png",
            "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/0004.JPG,pcb1/Data/Masks/Anomaly/0004.png"]
    (root / "split_csv/1cls.csv").write_text("\n".join(rows) + "\n")
    samples = visa_samples(root, ["candle"], "test")
    assert [(s.image.name, s.label) for s in samples] == [("0002.JPG", 0), ("0003.JPG", 1)]
    assert samples[1].mask == root / "candle/Data/Masks/Anomaly/0003.png"
    assert len(visa_samples(root, None, "all")) == 4
    (root / "split_csv/1cls.csv").write_text("object,split,image\ncandle,test,x.JPG\n")
    with pytest.raises(DatasetError, match="expected columns"):
        visa_samples(root, None, "test")


def test_images_are_read_upright_per_exif(tmp_path):
    from dlvp_reference import spec as spec_mod
    from dlvp_reference.data import load_image

    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:10, :15] = (255, 0, 0)  # red top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: red ends top-right
    Image.fromarray(arr).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    x = load_image(tmp_path / "rotated.jpg", spec_mod.load(SPEC_DIR / "tiny.yaml"))
    red = x[0]
    assert red[:20, -20:].mean() > red[-20:, :20].mean() + 1.0
