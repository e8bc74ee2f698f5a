"""The OpenCLIP towers a spec describes, built with open_clip's own modules (no pretrained weights).

Tensor names are OpenCLIP's, so ``model.state_dict()`` is the CLIP part of a DLVP checkpoint
(``model-spec/README.md``, "Checkpoint format").
"""
from __future__ import annotations

import torch.nn as nn
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import QuickGELU

from .spec import Spec


def _activation(name: str) -> nn.Module:
    return QuickGELU() if name == "quick_gelu" else nn.GELU()


def build_clip(spec: Spec) -> CLIP:
    """A randomly initialised OpenCLIP CLIP with the spec's towers."""
    v, t = spec.vision, spec.text
    vision_cfg = CLIPVisionCfg(layers=v.layers, width=v.width, head_width=v.width // v.heads,
                               mlp_ratio=v.mlp_ratio, patch_size=v.patch_size, image_size=spec.image_size)
    text_cfg = CLIPTextCfg(context_length=t.context_length, vocab_size=t.vocab_size, width=t.width,
                           heads=t.heads, layers=t.layers, mlp_ratio=t.mlp_ratio)
    model = CLIP(spec.embed_dim, vision_cfg, text_cfg, quick_gelu=v.act == "quick_gelu")
    # open_clip applies one activation to both towers; the spec sets each tower's own.
    for block in model.transformer.resblocks:
        block.mlp.gelu = _activation(t.act)
    return model
