"""The §8 training loss's Dice term, and the demo model's variant that leaves defect-free images
out of the anomaly map's Dice (``--dice-anomaly defective``)."""
import pytest
import torch

from dlvp_reference.losses import dice, dlvp_loss


def outputs(anomaly_maps):
    """Model outputs whose every feature layer has the anomaly probability map ``anomaly_maps``
    [B, H, W] (normal = 1 − anomaly) and an undecided image score."""
    a = anomaly_maps.unsqueeze(1).unsqueeze(1).expand(-1, 2, 1, -1, -1)  # [B, 2 layers, 1, H, W]
    return {"layer_maps": torch.cat([1 - a, a], dim=2), "image_probs": torch.full((len(anomaly_maps), 2), 0.5)}


def test_dice_of_an_empty_mask_pays_only_for_a_silent_map():
    empty = torch.zeros(1, 32, 32)
    faint = torch.full((1, 32, 32), 0.02)  # 20 pixels' worth of probability in all
    assert dice(faint, empty).item() == pytest.approx(1 - 1 / (0.02 * 32 * 32 + 1))
    assert dice(torch.zeros(1, 32, 32), empty).item() == pytest.approx(0.0)


def test_defective_only_dice_ignores_defect_free_images():
    mask = torch.zeros(2, 32, 32)
    mask[1, 8:16, 8:16] = 1  # image 0 defect-free, image 1 defective
    found = torch.zeros(2, 32, 32)
    found[1] = mask[1] * 0.9
    silent, faint = found.clone(), found.clone()
    faint[0] = 0.05  # a faint map on the defect-free image
    label = torch.tensor([0, 1])

    spec = [dlvp_loss(outputs(m), label, mask)["loss"].item() for m in (silent, faint)]
    variant = [dlvp_loss(outputs(m), label, mask, "defective")["loss"].item() for m in (silent, faint)]
    # §8: silencing the defect-free map saves nearly a whole Dice per layer (2 layers, mean of 2 images)
    assert spec[1] - spec[0] > 0.9
    # the variant: only the focal term (and the normal map's Dice) see the faint map, pixel by pixel
    assert 0 < variant[1] - variant[0] < 0.05
    defective_alone = dlvp_loss(outputs(found[1:]), label[1:], mask[1:])["segmentation"].item()
    assert dlvp_loss(outputs(silent), label, mask, "defective")["segmentation"].item() == pytest.approx(
        defective_alone, abs=0.02)


def test_a_batch_without_defects_has_no_anomaly_dice():
    out = outputs(torch.full((2, 16, 16), 0.3))
    parts = dlvp_loss(out, torch.tensor([0, 0]), torch.zeros(2, 16, 16), "defective")
    assert torch.isfinite(parts["loss"])
    assert dice(torch.full((2, 16, 16), 0.3), torch.zeros(2, 16, 16), torch.zeros(2)).item() == 0.0


def test_an_unknown_dice_mode_is_named():
    with pytest.raises(ValueError, match="dice_anomaly 'some': expected one of all, defective"):
        dlvp_loss(outputs(torch.zeros(1, 8, 8)), torch.tensor([0]), torch.zeros(1, 8, 8), "some")
