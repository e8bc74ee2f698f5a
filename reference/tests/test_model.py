"""The reference model against the laws of model-spec/README.md and against open_clip itself."""

import pytest
import torch
import torch.nn.functional as F

from conftest import SPEC_DIR
from dlvp_reference import checkpoint, spec as spec_mod
from dlvp_reference.clip import build_clip
from dlvp_reference.golden import random_tiny_model
from dlvp_reference.losses import dlvp_loss
from dlvp_reference.model import (DLVPCLIP, from_checkpoint, gaussian_blur, haar_dwt, haar_idwt,
                                  resize_positional_embedding)
from dlvp_reference.tokenizer import template_ids


def tiny_spec(**changes):
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = spec
        for part in path:
            target = getattr(target, part)
        setattr(target, last, value)
    return spec


@pytest.fixture(scope="module")
def spec():
    return tiny_spec()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 56, 56, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 5, 8, 8), (1, 3, 38, 38)])
def test_idwt_inverts_dwt(shape):
    x = torch.randn(shape, dtype=torch.float64)
    assert torch.allclose(haar_idwt(*haar_dwt(x)), x, atol=1e-12)
    # Orthonormal: energy is preserved.
    assert torch.allclose(sum((b**2).sum() for b in haar_dwt(x)), (x**2).sum())


def test_haar_bands_follow_the_spec_window_formulas():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # a b / c d
    ll, lh, hl, hh = (b.item() for b in haar_dwt(x))
    assert (ll, lh, hl, hh) == ((1 + 2 + 3 + 4) / 2, (1 + 2 - 3 - 4) / 2, (1 - 2 + 3 - 4) / 2, (1 - 2 - 3 + 4) / 2)


def test_identity_hfd_doubles_the_features_on_an_odd_grid(spec):
    model = DLVPCLIP(spec)
    with torch.no_grad():
        for layer in model.dlvp.hfd.values():
            for linear in (layer.in_proj, layer.low, layer.high):
                linear.weight.copy_(torch.eye(linear.weight.shape[0]))
                linear.bias.zero_()
    f = torch.randn(2, spec.num_patches, spec.vision.width, dtype=torch.float64)
    model = model.double()
    assert spec.grid % 2 == 1, "the tiny grid is odd so padding and cropping are exercised"
    assert torch.allclose(model.hfd(spec.feature_layers[0], f), 2 * f, atol=1e-6)


def test_cls_attention_matches_an_independent_computation(spec, images):
    model = random_tiny_model(spec, 0)
    with torch.no_grad():
        out = model(images)
        # By hand from the last block's in_proj: softmax(q kᵀ/√d) averaged over heads, row 0.
        x = model.embed_patches(images)
        for block in model.visual.transformer.resblocks[:-1]:
            x = block(x)
        block = model.visual.transformer.resblocks[-1]
        qkv = F.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias)
        q, k, _ = qkv.chunk(3, dim=-1)
        heads, dh = spec.vision.heads, spec.vision.width // spec.vision.heads
        q = q.reshape(*q.shape[:2], heads, dh).transpose(1, 2)
        k = k.reshape(*k.shape[:2], heads, dh).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5, dim=-1).mean(dim=1)
    assert torch.allclose(out["cls_attention"], probs[:, 0, 1:], atol=1e-6)
    assert torch.equal(out["topk_indices"], torch.topk(out["cls_attention"], spec.slfs.top_k).indices)


def test_topk_follows_the_attention_with_ties_to_the_lower_index(spec, images, monkeypatch):
    model = random_tiny_model(spec, 0)
    n, k = spec.num_patches, spec.slfs.top_k
    scores = torch.rand(images.shape[0], n, generator=torch.Generator().manual_seed(5))
    scores[0, [40, 3, 17]] = 2.0  # a three-way tie at the top: expect 3, 17, 40
    scores[1] = scores[1][torch.randperm(n, generator=torch.Generator().manual_seed(6))]
    original = DLVPCLIP.block_with_attention

    def crafted(block, x):
        x, probs = original(block, x)
        probs = probs.clone()
        probs[:, 0, 1:] = scores
        return x, probs

    monkeypatch.setattr(DLVPCLIP, "block_with_attention", staticmethod(crafted))
    with torch.no_grad():
        z0 = model.embed_patches(images)
        a_cls, topk, p = model.select_patches(z0)
        v = model.pass1(z0)[0][:, 1:]
    assert topk[0, :3].tolist() == [3, 17, 40]
    for b in range(images.shape[0]):
        order = sorted(range(n), key=lambda i: (-scores[b, i].item(), i))[:k]
        assert topk[b].tolist() == order
        assert torch.equal(p[b], v[b, topk[b]])


def test_pass1_is_the_unmodified_backbone(spec, images):
    clip = build_clip(spec).eval()
    model = DLVPCLIP(spec, clip).eval()
    with torch.no_grad():
        x, _ = model.pass1(model.embed_patches(images))
        ours = model.project(x[:, 0])
        theirs = clip.encode_image(images)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_text_tower_with_placeholder_prompts_is_open_clip_encode_text():
    spec = tiny_spec(mlop__text_depth=1)
    spec.prompts = spec_mod.PromptsSpec(normal=["object."], anomaly=["damaged object."])
    clip = build_clip(spec).eval()
    model = DLVPCLIP(spec, clip).eval()
    x_id = template_ids(spec, "")[1]
    with torch.no_grad():
        model.dlvp.mlop.text_proj.weight.zero_()
        model.dlvp.mlop.text_proj.bias.zero_()
        model.dlvp.mlop.text_static.copy_(model.token_embedding.weight[x_id].expand_as(model.dlvp.mlop.text_static))
        prompts = torch.randn(2, spec.slfs.top_k, spec.vision.width)
        ours = model.text_features(prompts)
        theirs = F.normalize(clip.encode_text(model.template_ids), dim=-1)
    for b in range(2):
        assert torch.allclose(ours[b], theirs, atol=1e-5)


def test_batched_outputs_equal_single_image_outputs(spec, images):
    model = random_tiny_model(spec, 0)
    with torch.no_grad():
        batch = model(images)
        for b in range(images.shape[0]):
            single = model(images[b : b + 1])
            for key, value in single.items():
                assert torch.allclose(batch[key][b : b + 1].float(), value.float(), atol=1e-5), key


def test_outputs_have_the_graph_contract_shapes_and_ranges(spec, images):
    model = random_tiny_model(spec, 0)
    with torch.no_grad():
        out = model(images)
    b, k, h = images.shape[0], spec.slfs.top_k, spec.image_size
    assert out["anomaly_score"].shape == (b,)
    assert out["anomaly_map"].shape == (b, 1, h, h)
    assert out["topk_indices"].shape == (b, k) and out["topk_indices"].dtype == torch.int64
    assert ((out["anomaly_map"] >= 0) & (out["anomaly_map"] <= 1)).all()
    assert torch.allclose(out["image_probs"].sum(-1), torch.ones(b))
    assert torch.allclose(out["layer_maps"].sum(2), torch.ones(1), atol=1e-5)  # bilinear keeps the sum at 1


def test_gaussian_blur_preserves_constants_and_mass_centre():
    flat = torch.full((1, 1, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    spike = torch.zeros(1, 1, 21, 21)
    spike[..., 10, 10] = 1
    blurred = gaussian_blur(spike, 1.5)
    assert blurred.argmax().item() == 10 * 21 + 10
    assert torch.allclose(blurred.sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(blurred, blurred.transpose(-1, -2), atol=1e-7)


@pytest.mark.parametrize("old_grid", [5, 7, 12])
def test_positional_embedding_resize_matches_open_clip(spec, old_grid):
    from open_clip.model import resize_pos_embed

    clip = build_clip(spec)
    pos = torch.randn(old_grid * old_grid + 1, spec.vision.width)
    state = {"visual.positional_embedding": pos.clone()}
    resize_pos_embed(state, clip)
    ours = resize_positional_embedding(pos, spec.grid)
    assert ours.shape == (spec.num_patches + 1, spec.vision.width)
    assert torch.equal(ours, state["visual.positional_embedding"])


def test_a_checkpoint_trained_at_another_grid_loads_resized(spec, tmp_path):
    tensors = DLVPCLIP(spec).state_dict()
    tensors["visual.positional_embedding"] = torch.randn(5 * 5 + 1, spec.vision.width)
    path = tmp_path / "grid5.safetensors"
    checkpoint.save(path, tensors, spec)
    model = from_checkpoint(path)
    expected = resize_positional_embedding(tensors["visual.positional_embedding"], spec.grid)
    assert torch.equal(model.visual.positional_embedding.data, expected)


def test_checkpoint_round_trips_to_identical_outputs(spec, images, tmp_path):
    model = random_tiny_model(spec, 3)
    path = tmp_path / "tiny.safetensors"
    checkpoint.save(path, model.state_dict(), spec)
    again = from_checkpoint(path).eval()
    with torch.no_grad():
        a, b = model(images), again(images)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_loading_a_checkpoint_without_a_dlvp_tensor_names_it(spec, tmp_path):
    tensors = DLVPCLIP(spec).state_dict()
    del tensors["dlvp.mlop.text_static"]
    path = tmp_path / "tiny.safetensors"
    checkpoint.save(path, tensors, spec)
    with pytest.raises(checkpoint.CheckpointError, match="dlvp.mlop.text_static"):
        from_checkpoint(path)


def test_one_training_step_decreases_the_loss(spec):
    torch.manual_seed(0)
    model = DLVPCLIP(spec)
    model.freeze_clip()
    images = torch.randn(2, 3, 56, 56)
    labels = torch.tensor([0, 1])
    masks = torch.zeros(2, 56, 56)
    masks[1, 10:30, 20:40] = 1
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(n.startswith("dlvp.") for n, p in model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.Adam(trainable, lr=1.5e-4)
    model.train()
    before = dlvp_loss(model(images), labels, masks)["loss"]
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = dlvp_loss(model(images), labels, masks)["loss"]
    assert after.item() < before.item()
