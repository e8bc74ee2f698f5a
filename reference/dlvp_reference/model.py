"""DLVP-CLIP in PyTorch, exactly as ``model-spec/README.md`` §1–§7 define it.

``DLVPCLIP`` holds OpenCLIP's own tower modules under their OpenCLIP names (``visual``,
``transformer``, ``token_embedding``, ...) and the DLVP parts under ``dlvp``, so its
``state_dict()`` *is* a DLVP checkpoint (§9). ``forward`` returns the graph outputs
(``anomaly_score`` [B], ``anomaly_map`` [B,1,H,W], ``topk_indices`` [B,K]) and the
intermediates the tests compare: ``cls_attention`` [B,N], ``prompts`` P' [B,M,C],
``text_features`` [B,2,D] (normal, anomaly), ``layer_maps`` [B,|𝓛|,2,H,W] (upsampled
normal/anomaly probabilities per feature layer, before the blur), ``image_probs`` [B,2].

Initialisation of the DLVP parts (a plain OpenCLIP checkpoint plus this init is a valid DLVP
model that starts out as CLIP): ``mlop.norm`` = LayerNorm(1, 0); ``mlop.proj`` = identity, bias 0;
``mlop.text_proj`` ~ N(0, 0.02), bias 0; ``mlop.text_static`` ~ N(0, 0.02); HFD ``in_proj`` =
identity, ``low`` and ``high`` = 0 (so F^D = 0 at first); ``head.local_proj`` = 0.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .clip import build_clip
from .spec import Spec
from .tokenizer import template_token_ids

# The keys of every output, for golden files and tests.
OUTPUTS = ("anomaly_score", "anomaly_map", "topk_indices")
INTERMEDIATES = ("cls_attention", "prompts", "text_features", "layer_maps", "image_probs")


class HFDLayer(nn.Module):
    """W_v, W_L, W_H of one feature layer (§5), each a [C, C] Linear."""

    def __init__(self, width: int):
        super().__init__()
        self.in_proj = nn.Linear(width, width)
        self.low = nn.Linear(width, width)
        self.high = nn.Linear(width, width)


class MLoP(nn.Module):
    """LN_m, W_m (visual prompts), W_θ (text prompts) and E (static text prompt vectors), §4."""

    def __init__(self, spec: Spec):
        super().__init__()
        c, ct = spec.vision.width, spec.text.width
        self.norm = nn.LayerNorm(c)
        self.proj = nn.Linear(c, c)
        self.text_proj = nn.Linear(c, ct)
        self.text_static = nn.Parameter(torch.zeros(spec.mlop.text_depth, spec.slfs.top_k, ct))


class Head(nn.Module):
    """W_g: the multi-layer patch summary projected to the joint space, §7."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.local_proj = nn.Linear(len(spec.feature_layers) * spec.vision.width, spec.embed_dim)


class DLVPParts(nn.Module):
    """Everything under ``dlvp.*`` in a checkpoint."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.mlop = MLoP(spec)
        self.hfd = nn.ModuleDict({str(i): HFDLayer(spec.vision.width) for i in spec.feature_layers})
        self.head = Head(spec)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The documented init (module docstring)."""
        self.mlop.norm.reset_parameters()
        nn.init.eye_(self.mlop.proj.weight)
        nn.init.zeros_(self.mlop.proj.bias)
        nn.init.normal_(self.mlop.text_proj.weight, std=0.02)
        nn.init.zeros_(self.mlop.text_proj.bias)
        nn.init.normal_(self.mlop.text_static, std=0.02)
        for layer in self.hfd.values():
            nn.init.eye_(layer.in_proj.weight)
            nn.init.zeros_(layer.in_proj.bias)
            for linear in (layer.low, layer.high):
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)
        nn.init.zeros_(self.head.local_proj.weight)
        nn.init.zeros_(self.head.local_proj.bias)


def haar_dwt(x: torch.Tensor):
    """One-level orthonormal 2-D Haar DWT of [B, C, 2h, 2w] → LL, LH, HL, HH, each [B, C, h, w] (§5)."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2


def haar_idwt(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    """The inverse (= transpose) of ``haar_dwt``: four [B, C, h, w] bands → [B, C, 2h, 2w]."""
    a = (ll + lh + hl + hh) / 2
    b = (ll + lh - hl - hh) / 2
    c = (ll - lh + hl - hh) / 2
    d = (ll - lh - hl + hh) / 2
    bsz, ch, h, w = ll.shape
    top = torch.stack([a, b], dim=-1).reshape(bsz, ch, h, 2 * w)
    bottom = torch.stack([c, d], dim=-1).reshape(bsz, ch, h, 2 * w)
    return torch.stack([top, bottom], dim=-2).reshape(bsz, ch, 2 * h, 2 * w)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W]: radius ⌈4σ⌉, reflect padding without repeating the edge (§6)."""
    if sigma <= 0:
        return x
    radius = math.ceil(4 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))


def causal_mask(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu_(1)


class DLVPCLIP(nn.Module):
    def __init__(self, spec: Spec, clip: Optional[nn.Module] = None):
        super().__init__()
        self.spec = spec
        clip = clip if clip is not None else build_clip(spec)
        # OpenCLIP's modules under OpenCLIP's names, so state_dict() keys match the checkpoint format.
        self.visual = clip.visual
        self.transformer = clip.transformer
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.logit_scale = clip.logit_scale
        self.dlvp = DLVPParts(spec)
        self.dlvp.reset_parameters()
        ids, classes = template_token_ids(spec)
        self.register_buffer("template_ids", ids, persistent=False)  # [T, context_length]
        self.register_buffer("template_class", classes, persistent=False)  # [T] 0 normal, 1 anomaly
        self.register_buffer("text_mask", causal_mask(spec.text.context_length), persistent=False)

    def clip_parameters(self) -> List[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("dlvp.")]

    def freeze_clip(self, frozen: bool = True) -> None:
        """CLIP frozen, ``dlvp.*`` trainable (§8); ``frozen=False`` trains the backbone too."""
        for p in self.clip_parameters():
            p.requires_grad_(not frozen)

    # §2 -------------------------------------------------------------------------------------
    def embed_patches(self, image: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] → Z⁰ = ln_pre([cls; patches] + pos) [B, 1+N, C]."""
        v = self.visual
        x = v.conv1(image).flatten(2).transpose(1, 2)  # [B, N, C], row-major over the grid
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)

    # §3 -------------------------------------------------------------------------------------
    @staticmethod
    def block_with_attention(block: nn.Module, x: torch.Tensor):
        """One OpenCLIP residual block that also returns its head-averaged attention probabilities."""
        y = block.ln_1(x)
        out, probs = block.attn(y, y, y, need_weights=True, average_attn_weights=True)
        x = x + block.ls_1(out)
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x, probs

    def pass1(self, z0: torch.Tensor):
        """Frozen CLIP, no prompts: (block L output [B,1+N,C], its head-averaged attention [B,1+N,1+N])."""
        blocks = self.visual.transformer.resblocks
        x = z0
        for block in blocks[:-1]:
            x = block(x)
        return self.block_with_attention(blocks[-1], x)

    def select_patches(self, z0: torch.Tensor):
        """SLFS: (A_cls [B,N], T [B,K] int64, P = V[T] [B,K,C])."""
        x, probs = self.pass1(z0)
        a_cls = probs[:, 0, 1:]
        # Stable descending sort: ties go to the lower index, as ONNX TopK specifies.
        if torch.onnx.is_in_onnx_export():
            # torch.onnx.export (bench/compare) has no stable Sort; ONNX TopK breaks ties the same way.
            topk = torch.topk(a_cls, self.spec.slfs.top_k, dim=-1, largest=True, sorted=True).indices
        else:
            topk = torch.sort(a_cls, dim=-1, descending=True, stable=True).indices[:, : self.spec.slfs.top_k]
        v = x[:, 1:]
        p = torch.gather(v, 1, topk.unsqueeze(-1).expand(-1, -1, v.shape[-1]))
        return a_cls, topk, p

    # §4 -------------------------------------------------------------------------------------
    def visual_pass2(self, z0: torch.Tensor, prompts: torch.Tensor):
        """Blocks 1..L on [cls; patches; P'] with the prompt slots reset after blocks 1..J.
        Returns ({i: F_i [B,N,C]} for i ∈ 𝓛, c [B,C])."""
        n = z0.shape[1] - 1
        z = torch.cat([z0, prompts], dim=1)
        features = {}
        for j, block in enumerate(self.visual.transformer.resblocks, start=1):
            z = block(z)
            if j <= self.spec.mlop.visual_static_layers:
                z = torch.cat([z[:, : n + 1], prompts], dim=1)
            if j in self.spec.feature_layers:
                features[j] = z[:, 1 : n + 1]
        return features, z[:, 0]

    def text_features(self, prompts: torch.Tensor) -> torch.Tensor:
        """Per-image class embeddings [B, 2, D] (normal, anomaly), L2-normalised."""
        m, depth = self.spec.slfs.top_k, self.spec.mlop.text_depth
        bsz = prompts.shape[0]
        ids, classes = self.template_ids, self.template_class
        t, length = ids.shape
        text_prompts = self.dlvp.mlop.text_proj(prompts)[:, None] + self.dlvp.mlop.text_static[None]  # [B,d_t,M,Ct]

        def inject(x: torch.Tensor, j: int) -> torch.Tensor:  # x [B, T, L, Ct]
            p = text_prompts[:, j, None].expand(-1, t, -1, -1)
            return torch.cat([x[:, :, :1], p, x[:, :, 1 + m :]], dim=2)

        x = self.token_embedding(ids)[None].expand(bsz, -1, -1, -1)
        x = inject(x, 0) + self.positional_embedding
        for j, block in enumerate(self.transformer.resblocks):
            if 1 <= j < depth:
                x = inject(x, j)
            x = block(x.reshape(bsz * t, length, -1), attn_mask=self.text_mask).reshape(bsz, t, length, -1)
        x = self.ln_final(x)
        eot = ids.argmax(dim=-1)  # EOT has the largest id of CLIP's vocabulary
        x = x[:, torch.arange(t), eot] @ self.text_projection  # [B, T, D]
        x = F.normalize(x, dim=-1)
        per_class = [F.normalize(x[:, classes == k].mean(dim=1), dim=-1) for k in (0, 1)]
        return torch.stack(per_class, dim=1)

    # §5 -------------------------------------------------------------------------------------
    def hfd(self, layer: int, f: torch.Tensor) -> torch.Tensor:
        """F^o_i = F_i + IDWT(W_L·LL + b_L, W_H·{LH,HL,HH} + b_H) of W_v·F_i + b_v, [B,N,C]."""
        parts = self.dlvp.hfd[str(layer)]
        g = self.spec.grid
        bsz, n, c = f.shape
        x = parts.in_proj(f).transpose(1, 2).reshape(bsz, c, g, g)
        x = F.pad(x, (0, g % 2, 0, g % 2))

        def channel_map(linear: nn.Linear, band: torch.Tensor) -> torch.Tensor:
            return linear(band.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

        ll, lh, hl, hh = haar_dwt(x)
        y = haar_idwt(channel_map(parts.low, ll), *(channel_map(parts.high, band) for band in (lh, hl, hh)))
        fd = y[..., :g, :g].reshape(bsz, c, n).transpose(1, 2)
        return f + fd

    # §6, §7 ---------------------------------------------------------------------------------
    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual.ln_post(x) @ self.visual.proj

    def forward(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        spec = self.spec
        tau = 1.0 / spec.temperature
        g, size = spec.grid, spec.image_size
        z0 = self.embed_patches(image)
        a_cls, topk, p = self.select_patches(z0)
        prompts = self.dlvp.mlop.proj(self.dlvp.mlop.norm(p))
        features, cls = self.visual_pass2(z0, prompts)
        text = self.text_features(prompts)  # [B, 2, D]

        refined = {i: self.hfd(i, f) for i, f in features.items()}
        layer_maps = []
        for i in spec.feature_layers:
            y = F.normalize(self.project(refined[i]), dim=-1)
            probs = torch.softmax(tau * torch.einsum("bnd,bkd->bnk", y, text), dim=-1)  # [B, N, 2]
            probs = probs.transpose(1, 2).reshape(-1, 2, g, g)
            layer_maps.append(F.interpolate(probs, size=(size, size), mode="bilinear", align_corners=False))
        layer_maps = torch.stack(layer_maps, dim=1)  # [B, |𝓛|, 2, H, W]
        raw = ((layer_maps[:, :, 1] + 1 - layer_maps[:, :, 0]) / 2).mean(dim=1, keepdim=True)
        anomaly_map = gaussian_blur(raw, spec.postprocess.gaussian_sigma)

        x_c = self.project(cls)
        pooled = torch.cat([refined[i].mean(dim=1) for i in spec.feature_layers], dim=-1)
        x = F.normalize(x_c + self.dlvp.head.local_proj(pooled), dim=-1)
        image_probs = torch.softmax(tau * torch.einsum("bd,bkd->bk", x, text), dim=-1)
        w = spec.score.map_max_weight
        score = (1 - w) * image_probs[:, 1] + w * anomaly_map.flatten(1).max(dim=1).values
        return {
            "anomaly_score": score,
            "anomaly_map": anomaly_map,
            "topk_indices": topk,
            "cls_attention": a_cls,
            "prompts": prompts,
            "text_features": text,
            "layer_maps": layer_maps,
            "image_probs": image_probs,
        }


def resize_positional_embedding(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """[g₀²+1, C] → [g²+1, C] as OpenCLIP's ``resize_pos_embed`` (§2): antialiased bicubic on the
    g₀×g₀ part (PIL's a = −0.5 kernel, even when enlarging), class row kept."""
    old = round(math.sqrt(pos.shape[0] - 1))
    if old * old != pos.shape[0] - 1:
        raise ValueError(f"positional embedding of {pos.shape[0]} rows is not 1 + a square grid")
    if old == grid:
        return pos
    patches = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False, antialias=True)
    return torch.cat([pos[:1], patches.permute(0, 2, 3, 1).reshape(grid * grid, -1)], dim=0)


def from_checkpoint(path, spec: Optional[Spec] = None) -> DLVPCLIP:
    """A model with the weights of a DLVP checkpoint (its own spec unless one is given); a missing,
    unexpected or mis-shaped tensor is an error naming it."""
    from . import checkpoint

    tensors, stored = checkpoint.load(path)
    spec = spec or stored
    key = "visual.positional_embedding"
    if key in tensors:
        tensors[key] = resize_positional_embedding(tensors[key], spec.grid)
    model = DLVPCLIP(spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise checkpoint.CheckpointError(f"{path}: missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}")
    for name, value in expected.items():
        if tensors[name].shape != value.shape:
            raise checkpoint.CheckpointError(
                f"{path}: tensor `{name}` has shape {list(tensors[name].shape)}, expected {list(value.shape)}")
    model.load_state_dict(tensors)
    return model


def from_openclip(spec: Spec, state_dict: Dict[str, torch.Tensor]) -> DLVPCLIP:
    """A plain OpenCLIP state dict + the documented DLVP init (module docstring)."""
    model = DLVPCLIP(spec)
    tensors = dict(state_dict)
    if "visual.positional_embedding" in tensors:
        tensors["visual.positional_embedding"] = resize_positional_embedding(tensors["visual.positional_embedding"], spec.grid)
    tensors.update({k: v for k, v in model.state_dict().items() if k.startswith("dlvp.")})
    model.load_state_dict(tensors)
    return model
