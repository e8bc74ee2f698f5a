"""The DLVP-CLIP checkpoint (``model-spec/README.md``, "Checkpoint format"): one safetensors file,
OpenCLIP names for CLIP, ``dlvp.*`` for the DLVP parts, ``format``/``spec`` metadata."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict, Tuple

import torch
from safetensors import safe_open

from . import spec as spec_mod
from .spec import Spec

FORMAT_KEY = "format"
SPEC_KEY = "spec"
FORMAT_TAG = "dlvp-clip/1"


class CheckpointError(ValueError):
    """A checkpoint that does not fit its spec; the message names the file and the tensor."""


def dlvp_tensor_shapes(spec: Spec) -> Dict[str, Tuple[int, ...]]:
    """Every ``dlvp.*`` tensor of a checkpoint for ``spec`` (PyTorch Linear layout, [out, in])."""
    c, ct, d, m = spec.vision.width, spec.text.width, spec.embed_dim, spec.slfs.top_k
    shapes = {
        "dlvp.mlop.norm.weight": (c,), "dlvp.mlop.norm.bias": (c,),
        "dlvp.mlop.proj.weight": (c, c), "dlvp.mlop.proj.bias": (c,),
        "dlvp.mlop.text_proj.weight": (ct, c), "dlvp.mlop.text_proj.bias": (ct,),
        "dlvp.mlop.text_static": (spec.mlop.text_depth, m, ct),
    }
    for layer in spec.feature_layers:
        for part in ("in_proj", "low", "high"):
            shapes[f"dlvp.hfd.{layer}.{part}.weight"] = (c, c)
            shapes[f"dlvp.hfd.{layer}.{part}.bias"] = (c,)
    shapes["dlvp.head.local_proj.weight"] = (d, len(spec.feature_layers) * c)
    shapes["dlvp.head.local_proj.bias"] = (d,)
    return shapes


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
           torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL", torch.float64: "F64"}


def write_safetensors(path: str | Path, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    """A byte-for-byte deterministic safetensors file (sorted names and metadata; the safetensors
    package orders metadata by hash, so the same content would give different files), written
    atomically: a temp file beside ``path``, then a rename."""
    path = Path(path)
    header: Dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor `{name}`: dtype {t.dtype} cannot be stored")
        blob = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned, as the safetensors writer does
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    tmp.replace(path)


def save(path: str | Path, tensors: Dict[str, torch.Tensor], spec: Spec) -> None:
    """Writes a DLVP checkpoint: ``tensors`` plus the format tag and the spec in the metadata."""
    write_safetensors(path, tensors, {FORMAT_KEY: FORMAT_TAG, SPEC_KEY: spec.to_yaml()})


def load(path: str | Path) -> Tuple[Dict[str, torch.Tensor], Spec]:
    """Reads a DLVP checkpoint and the spec it carries; every tensor comes back as float32."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        found = metadata.get(FORMAT_KEY)
        if found != FORMAT_TAG:
            raise CheckpointError(f"{path}: metadata `{FORMAT_KEY}` is {found!r}, expected {FORMAT_TAG!r}")
        if SPEC_KEY not in metadata:
            raise CheckpointError(f"{path}: metadata `{SPEC_KEY}` is missing")
        spec = spec_mod.from_yaml(metadata[SPEC_KEY], f"{path} (metadata `{SPEC_KEY}`)")
        tensors = {name: f.get_tensor(name).float() for name in f.keys()}
    missing = sorted(set(dlvp_tensor_shapes(spec)) - set(tensors))
    if missing:
        raise CheckpointError(f"{path}: missing tensor(s) {', '.join(missing)}")
    for name, shape in dlvp_tensor_shapes(spec).items():
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(f"{path}: tensor `{name}` has shape {list(tensors[name].shape)}, expected {list(shape)}")
    return tensors, spec
