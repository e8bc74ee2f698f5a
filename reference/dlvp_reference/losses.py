"""Training losses (``model-spec/README.md`` §8), as AnomalyCLIP defines them:

``L = BCE(S[a], y) + Σ_{i∈𝓛} [Dice(m^a_i↑, G) + Dice(m^n_i↑, 1−G) + Focal([m^n_i↑, m^a_i↑], G; γ=2)]``
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

EPS = 1e-5


def dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean over images of (2|P∩G| + 1)/(|P| + |G| + 1), prob and target [B, H, W]."""
    p, g = prob.flatten(1), target.flatten(1)
    score = (2 * (p * g).sum(1) + 1) / (p.sum(1) + g.sum(1) + 1)
    return 1 - score.mean()


def focal(probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean of −(1−p_t)^γ log p_t over pixels; probs [B, 2, H, W] (normal, anomaly), target [B, H, W] ∈ {0, 1}."""
    p_t = torch.where(target > 0.5, probs[:, 1], probs[:, 0]).clamp(EPS, 1.0)
    return (-(1 - p_t) ** gamma * p_t.log()).mean()


def dlvp_loss(out: Dict[str, torch.Tensor], label: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The §8 loss and its parts. ``label`` [B] ∈ {0, 1}, ``mask`` [B, H, W] ∈ {0, 1} (G)."""
    classification = F.binary_cross_entropy(out["image_probs"][:, 1].clamp(EPS, 1 - EPS), label.float())
    maps = out["layer_maps"]  # [B, |𝓛|, 2, H, W]
    segmentation = sum(
        dice(maps[:, i, 1], mask) + dice(maps[:, i, 0], 1 - mask) + focal(maps[:, i], mask)
        for i in range(maps.shape[1])
    )
    return {"loss": classification + segmentation, "classification": classification, "segmentation": segmentation}
