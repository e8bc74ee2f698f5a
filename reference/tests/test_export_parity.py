"""`dlvp export` graphs run by ONNX Runtime against the PyTorch reference (fp32: ≤ 1e-4 on scores
and maps, exact topk_indices), for the golden checkpoint and for fresh random weights of the tiny
spec and of a wider spec with an odd 9×9 grid, more prompts and a score/map mix. Every graph passes
``onnx.checker.check_model(full_check=True)`` and uses default-domain ops only."""
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors import safe_open

from conftest import REPO, SPEC_DIR
from dlvp_reference import checkpoint, spec as spec_mod
from dlvp_reference.golden import random_tiny_model
from dlvp_reference.model import DLVPCLIP

TOL = 1e-4

WIDE = """\
name: parity-wide
image_size: 72
vision: {patch_size: 8, width: 256, layers: 5, heads: 8, act: quick_gelu}
text: {width: 64, layers: 2, heads: 4, act: gelu}
embed_dim: 48
feature_layers: [2, 4, 5]
slfs: {top_k: 6}
mlop: {visual_static_layers: 3, text_depth: 2}
prompts:
  normal: ["flawless object.", "a photo of a good part."]
  anomaly: ["damaged object.", "a photo of a broken part with a scratch."]
score: {map_max_weight: 0.3}
postprocess: {gaussian_sigma: 2.0}
"""


def export(dlvp_bin, weights, out):
    run = subprocess.run([dlvp_bin, "export", "--weights", weights, "--out", out], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} <= {""}, "only default-domain ops"
    return ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])


def compare(session, expected, image):
    score, amap, topk = session.run(["anomaly_score", "anomaly_map", "topk_indices"], {"image": image.numpy()})
    assert np.array_equal(topk, expected["topk_indices"].numpy())
    assert np.abs(score - expected["anomaly_score"].numpy()).max() <= TOL
    assert np.abs(amap - expected["anomaly_map"].numpy()).max() <= TOL


def test_golden_checkpoint_on_onnxruntime(dlvp_bin, tmp_path):
    session = export(dlvp_bin, REPO / "fixtures/tiny/weights.safetensors", tmp_path / "tiny.onnx")
    with safe_open(str(REPO / "fixtures/tiny/golden.safetensors"), framework="pt") as f:
        golden = {k: f.get_tensor(k) for k in f.keys()}
    compare(session, golden, golden["image"])


@pytest.mark.parametrize("which, seed", [("tiny", 7), ("wide", 8)])
def test_fresh_random_weights_match_the_reference(dlvp_bin, tmp_path, which, seed):
    if which == "tiny":
        spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    else:
        spec = spec_mod.from_yaml(WIDE, "parity-wide")
    model = random_tiny_model(spec, seed)
    weights = tmp_path / f"{which}.safetensors"
    checkpoint.save(weights, model.state_dict(), spec)
    session = export(dlvp_bin, weights, tmp_path / f"{which}.onnx")
    image = torch.randn(3, 3, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(image)
    compare(session, expected, image)
    # Batch 3 equals three batch-1 runs.
    singles = [session.run(["anomaly_map"], {"image": image[i : i + 1].numpy()})[0] for i in range(3)]
    batch = session.run(["anomaly_map"], {"image": image.numpy()})[0]
    assert np.abs(np.concatenate(singles) - batch).max() <= 1e-5


def test_export_refuses_unused_tensors(dlvp_bin, tmp_path):
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    tensors = DLVPCLIP(spec).state_dict()
    tensors["dlvp.extra"] = torch.zeros(3)
    weights = tmp_path / "extra.safetensors"
    checkpoint.save(weights, tensors, spec)
    out = tmp_path / "extra.onnx"
    run = subprocess.run([dlvp_bin, "export", "--weights", weights, "--out", out], capture_output=True, text=True)
    assert run.returncode == 1 and "dlvp.extra" in run.stderr and not out.exists()
    run = subprocess.run([dlvp_bin, "export", "--weights", weights, "--out", out, "--allow-unused"], capture_output=True, text=True)
    assert run.returncode == 0 and out.exists()


@pytest.mark.parametrize("old_grid", [5, 12])
def test_a_checkpoint_of_another_grid_is_resized_as_open_clip_does(dlvp_bin, tmp_path, old_grid):
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    model = random_tiny_model(spec, 11)
    tensors = model.state_dict()
    tensors["visual.positional_embedding"] = torch.randn(old_grid * old_grid + 1, spec.vision.width,
                                                         generator=torch.Generator().manual_seed(old_grid))
    weights = tmp_path / "grid.safetensors"
    checkpoint.save(weights, tensors, spec)
    session = export(dlvp_bin, weights, tmp_path / "grid.onnx")
    from dlvp_reference.model import from_checkpoint
    reference = from_checkpoint(weights).eval()
    image = torch.randn(2, 3, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(image)
    compare(session, expected, image)


def test_embedded_preprocessing_equals_normalising_outside(dlvp_bin, tmp_path):
    weights = REPO / "fixtures/tiny/weights.safetensors"
    plain = export(dlvp_bin, weights, tmp_path / "plain.onnx")
    run = subprocess.run([dlvp_bin, "export", "--weights", weights, "--out", tmp_path / "u8.onnx", "--embed-preprocess"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    model = onnx.load(str(tmp_path / "u8.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image_u8"]
    u8 = ort.InferenceSession(str(tmp_path / "u8.onnx"), providers=["CPUExecutionProvider"])
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    rgb = np.random.default_rng(4).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    mean, std = np.array(spec.preprocess.mean, np.float32), np.array(spec.preprocess.std, np.float32)
    normalised = ((rgb.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy()
    a = plain.run(None, {"image": normalised})
    b = u8.run(None, {"image_u8": rgb})
    assert np.array_equal(a[2], b[2])
    assert np.abs(a[0] - b[0]).max() <= 1e-5 and np.abs(a[1] - b[1]).max() <= 1e-5


def test_external_data_loads_and_matches(dlvp_bin, tmp_path):
    out = tmp_path / "model.onnx"
    run = subprocess.run([dlvp_bin, "export", "--weights", REPO / "fixtures/tiny/weights.safetensors", "--out", out,
                          "--external-data"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = tmp_path / "model.onnx.data"
    assert data.stat().st_size > out.stat().st_size, "the weights live in the data file"
    onnx.checker.check_model(str(out), full_check=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with safe_open(str(REPO / "fixtures/tiny/golden.safetensors"), framework="pt") as f:
        golden = {k: f.get_tensor(k) for k in f.keys()}
    compare(session, golden, golden["image"])


FP16_TOL = 1e-2


@pytest.mark.parametrize("which", ["golden", "wide"])
def test_fp16_graph_stays_within_1e_2_of_the_reference(dlvp_bin, tmp_path, which):
    if which == "golden":
        weights = REPO / "fixtures/tiny/weights.safetensors"
        with safe_open(str(REPO / "fixtures/tiny/golden.safetensors"), framework="pt") as f:
            expected = {k: f.get_tensor(k) for k in f.keys()}
        image = expected["image"]
    else:
        spec = spec_mod.from_yaml(WIDE, "parity-wide")
        model = random_tiny_model(spec, 8)
        weights = tmp_path / "wide.safetensors"
        checkpoint.save(weights, model.state_dict(), spec)
        image = torch.randn(3, 3, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(8))
        with torch.no_grad():
            expected = model(image)
    out = tmp_path / "f16.onnx"
    run = subprocess.run([dlvp_bin, "export", "--weights", weights, "--out", out, "--fp16"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph, full_check=True)
    assert [i.type.tensor_type.elem_type for i in graph.graph.input] == [onnx.TensorProto.FLOAT]
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    score, amap, topk = session.run(["anomaly_score", "anomaly_map", "topk_indices"], {"image": image.numpy()})
    e_score = np.abs(score - expected["anomaly_score"].numpy()).max()
    e_map = np.abs(amap - expected["anomaly_map"].numpy()).max()
    print(f"fp16 {which}: max abs error score {e_score:.2e}, map {e_map:.2e}, topk exact {np.array_equal(topk, expected['topk_indices'].numpy())}")
    assert e_score <= FP16_TOL and e_map <= FP16_TOL


INT8_TOL = 0.1  # scores and maps on the calibration images; measured on this tiny random model: docs/int8.md


def test_int8_graph_is_standard_symmetric_qdq_and_near_the_fp32_graph(dlvp_bin, tmp_path):
    """`--int8`: passes the full checker, default domain only, QuantizeLinear/DequantizeLinear with
    int8 zero points all 0 (symmetric, as TensorRT requires), per-channel (axis 1) int8 weights;
    on ONNX Runtime within INT8_TOL of the fp32 graph on the images it was calibrated on."""
    from dlvp_reference.data import load_image

    out = tmp_path / "int8.onnx"
    samples = REPO / "fixtures/samples"
    run = subprocess.run([dlvp_bin, "export", "--weights", REPO / "fixtures/tiny/weights.safetensors", "--out", out,
                          "--int8", "--calibrate", samples], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph, full_check=True)
    assert {n.domain for n in graph.graph.node} <= {""}
    inits = {t.name: t for t in graph.graph.initializer}
    qdq = [n for n in graph.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        zero_point = onnx.numpy_helper.to_array(inits[n.input[2]])
        assert zero_point.dtype == np.int8 and not zero_point.any(), n.name
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            weight = onnx.numpy_helper.to_array(inits[n.input[0]])
            scales = onnx.numpy_helper.to_array(inits[n.input[1]])
            axis = next(a.i for a in n.attribute if a.name == "axis")
            assert weight.dtype == np.int8 and axis == 1 and scales.shape == (weight.shape[1],)
            assert np.abs(weight.astype(np.int16)).max() <= 64  # reduced range: test_int8_cpu.py
    meta = {m.key: m.value for m in graph.metadata_props}
    assert meta["dlvp.precision"] == "int8" and meta["dlvp.int8.images"] == "10"
    fp32 = export(dlvp_bin, REPO / "fixtures/tiny/weights.safetensors", tmp_path / "fp32.onnx")
    int8 = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    image = np.concatenate([load_image(p, spec).unsqueeze(0).numpy() for p in sorted(samples.glob("*.png"))])
    (s32, m32, _), (s8, m8, _) = (s.run(None, {"image": image}) for s in (fp32, int8))
    e_score, e_map = np.abs(s32 - s8).max(), np.abs(m32 - m8).max()
    print(f"int8 vs fp32 on the calibration images: max abs difference score {e_score:.2e}, map {e_map:.2e}")
    assert e_score <= INT8_TOL and e_map <= INT8_TOL
