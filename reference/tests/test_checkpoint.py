"""Checkpoints written by the reference: OpenCLIP's own tensor names plus dlvp.*, read back by
both the reference and ``dlvp weights check`` (which proves the Rust manifest matches OpenCLIP)."""
import subprocess

import pytest
import torch

from conftest import SPEC_DIR
from dlvp_reference import checkpoint, spec as spec_mod
from dlvp_reference.clip import build_clip


def tiny_tensors(seed=0):
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    torch.manual_seed(seed)
    tensors = dict(build_clip(spec).state_dict())
    for name, shape in checkpoint.dlvp_tensor_shapes(spec).items():
        tensors[name] = torch.randn(shape) * 0.02
    return spec, tensors


def test_text_tower_activation_follows_the_spec():
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    model = build_clip(spec)
    assert type(model.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"


def test_checkpoint_round_trips(tmp_path):
    spec, tensors = tiny_tensors()
    path = tmp_path / "tiny.safetensors"
    checkpoint.save(path, tensors, spec)
    loaded, loaded_spec = checkpoint.load(path)
    assert loaded_spec == spec
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor.float()), name


def test_loading_without_a_dlvp_tensor_names_it(tmp_path):
    spec, tensors = tiny_tensors()
    del tensors["dlvp.hfd.2.high.weight"]
    path = tmp_path / "tiny.safetensors"
    checkpoint.save(path, tensors, spec)
    with pytest.raises(checkpoint.CheckpointError, match=r"missing tensor\(s\) dlvp.hfd.2.high.weight"):
        checkpoint.load(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dlvp_weights_check_accepts_a_reference_checkpoint(tmp_path, dlvp_bin, dtype):
    spec, tensors = tiny_tensors()
    path = tmp_path / "tiny.safetensors"
    checkpoint.save(path, {k: v.to(dtype) for k, v in tensors.items()}, spec)
    out = subprocess.run([dlvp_bin, "weights", "check", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok: all" in out.stdout


def test_dlvp_weights_check_names_what_the_reference_checkpoint_lacks(tmp_path, dlvp_bin):
    spec, tensors = tiny_tensors()
    del tensors["visual.transformer.resblocks.3.attn.out_proj.bias"]
    tensors["dlvp.head.local_proj.weight"] = torch.zeros(32, 64)
    tensors["dlvp.unexpected"] = torch.zeros(2)
    path = tmp_path / "tiny.safetensors"
    checkpoint.save(path, tensors, spec)
    out = subprocess.run([dlvp_bin, "weights", "check", path], capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "missing     visual.transformer.resblocks.3.attn.out_proj.bias: expected shape [64]" in out.stdout
    assert "mis-shaped  dlvp.head.local_proj.weight: found [32, 64], expected [32, 256]" in out.stdout
    assert "unused      dlvp.unexpected: [2]" in out.stdout
