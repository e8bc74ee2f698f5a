"""Training losses (``model-spec/README.md`` §8), as AnomalyCLIP defines them:

``L = BCE(S[a], y) + Σ_{i∈𝓛} [Dice(m^a_i↑, G) + Dice(m^n_i↑, 1−G) + Focal([m^n_i↑, m^a_i↑], G; γ=2)]``
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

EPS = 1e-5


def dice(prob: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1 − mean over images of (2|P∩G| + 1)/(|P| + |G| + 1), prob and target [B, H, W]; ``weight``
    [B] ∈ {0, 1} keeps only some images in the mean (0 when it keeps none)."""
    p, g = prob.flatten(1), target.flatten(1)
    score = (2 * (p * g).sum(1) + 1) / (p.sum(1) + g.sum(1) + 1)
    if weight is None:
        return 1 - score.mean()
    return ((1 - score) * weight).sum() / weight.sum().clamp(min=1)


def focal(probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean of −(1−p_t)^γ log p_t over pixels; probs [B, 2, H, W] (normal, anomaly), target [B, H, W] ∈ {0, 1}."""
    p_t = torch.where(target > 0.5, probs[:, 1], probs[:, 0]).clamp(EPS, 1.0)
    return (-(1 - p_t) ** gamma * p_t.log()).mean()


DICE_ANOMALY = ("all", "defective")


def dlvp_loss(out: Dict[str, torch.Tensor], label: torch.Tensor, mask: torch.Tensor,
              dice_anomaly: str = "all") -> Dict[str, torch.Tensor]:
    """The §8 loss and its parts. ``label`` [B] ∈ {0, 1}, ``mask`` [B, H, W] ∈ {0, 1} (G).

    ``dice_anomaly="defective"`` leaves defect-free images out of the anomaly map's Dice term.
    On an empty mask that term is 1 − 1/(|P| + 1): near 1 until the map's whole sum |P| falls
    under about one pixel, so it pays a model to silence its map on every image it takes for
    defect-free — and, unsure, on small defects too (measured on the demo model: see
    models/demo/README.md, run 2). The focal term still penalises false alarms pixel by pixel."""
    if dice_anomaly not in DICE_ANOMALY:
        raise ValueError(f"dice_anomaly {dice_anomaly!r}: expected one of {', '.join(DICE_ANOMALY)}")
    classification = F.binary_cross_entropy(out["image_probs"][:, 1].clamp(EPS, 1 - EPS), label.float())
    maps = out["layer_maps"]  # [B, |𝓛|, 2, H, W]
    weight = (mask.flatten(1).amax(1) > 0).float() if dice_anomaly == "defective" else None
    segmentation = sum(
        dice(maps[:, i, 1], mask, weight) + dice(maps[:, i, 0], 1 - mask) + focal(maps[:, i], mask)
        for i in range(maps.shape[1])
    )
    return {"loss": classification + segmentation, "classification": classification, "segmentation": segmentation}
