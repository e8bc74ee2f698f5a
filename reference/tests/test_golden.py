"""The committed fixtures are what the golden generator writes (never edited by hand).

Data by construction (seeded draws, token ids, images) must come back byte for byte; tensors that
are results of float computations are compared within ``golden.FLOAT_TOLERANCE``, because PyTorch's
and scikit-learn's CPU kernels differ in the last bits between CPU families
(``golden.is_float_result`` says which are which).
"""
import json
import struct

import numpy as np
import pytest
from safetensors import safe_open

from conftest import REPO
from dlvp_reference import golden

SAFETENSORS = ["tiny/weights.safetensors", "tiny/golden.safetensors", "preprocess/expected.safetensors",
               "metrics/cases.safetensors"]
OTHER_FILES = ["tokens.json"] + [f"preprocess/{golden.preprocess_name(w, h, m)}" for w, h, m in golden.PREPROCESS_IMAGES]


def header(path):
    """The safetensors header without the data offsets: metadata, and each tensor's dtype and shape."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        entries = json.loads(f.read(size))
    return {name: {k: v for k, v in entry.items() if k != "data_offsets"} if name != "__metadata__" else entry
            for name, entry in entries.items()}


def tensors(path):
    with safe_open(str(path), framework="numpy") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def differences(fixture, generated, committed):
    """One line per tensor of ``fixture`` that differs more than its comparison allows."""
    if header(generated) != header(committed):
        return [f"names, dtypes, shapes or metadata differ:\n  generated {header(generated)}\n"
                f"  committed {header(committed)}"]
    new, old = tensors(generated), tensors(committed)
    problems = []
    for name in sorted(old):
        a, b = new[name], old[name]
        if golden.is_float_result(fixture, name):
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                problems.append(f"`{name}`: NaN at other positions")
                continue
            finite = ~np.isnan(b)
            diff = float(np.abs(a[finite].astype(np.float64) - b[finite].astype(np.float64)).max(initial=0.0))
            if diff > golden.FLOAT_TOLERANCE:
                problems.append(f"`{name}`: largest difference {diff:.3e} > tolerance {golden.FLOAT_TOLERANCE:g}")
        elif a.tobytes() != b.tobytes():
            where = np.flatnonzero(a.reshape(-1) != b.reshape(-1))
            problems.append(f"`{name}` ({a.dtype}, compared exactly): {where.size} element(s) differ, first at "
                            f"flat index {where[:1].tolist()}")
    return problems


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    golden.main(["--out", str(out)])
    return out


def committed(name):
    path = REPO / "fixtures" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `python -m dlvp_reference.golden`")
    return path


@pytest.mark.parametrize("name", SAFETENSORS)
def test_regenerated_tensors_match_the_committed_ones(regenerated, name):
    problems = differences(name, regenerated / name, committed(name))
    assert not problems, f"{name} differs from what the generator writes:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", OTHER_FILES)
def test_regenerated_data_files_are_byte_identical(regenerated, name):
    assert (regenerated / name).read_bytes() == committed(name).read_bytes(), \
        f"{name} differs from what the generator writes"


def test_the_comparison_tolerates_last_bit_noise_and_nothing_more(tmp_path):
    """The comparison itself: float results within the tolerance pass; beyond it, or in a seeded
    input, an integer, or the metadata, it fails and names the tensor."""
    import torch

    from dlvp_reference import checkpoint

    name = "tiny/golden.safetensors"
    base = {"image": torch.ones(2, 3), "anomaly_map": torch.full((2, 4), 0.5), "topk_indices": torch.arange(4)}

    def write(file, **changes):
        checkpoint.write_safetensors(tmp_path / file, {**base, **changes}, {"seed": "1"})
        return tmp_path / file

    ref = write("ref.safetensors")
    assert differences(name, write("noise.safetensors", anomaly_map=base["anomaly_map"] + 1e-6), ref) == []
    far = differences(name, write("far.safetensors", anomaly_map=base["anomaly_map"] + 1e-4), ref)
    assert len(far) == 1 and "`anomaly_map`: largest difference 1.000e-04" in far[0], far
    drawn = differences(name, write("drawn.safetensors", image=base["image"] + 1e-7), ref)
    assert len(drawn) == 1 and "`image`" in drawn[0] and "compared exactly" in drawn[0], drawn
    ints = differences(name, write("ints.safetensors", topk_indices=torch.tensor([0, 1, 3, 2])), ref)
    assert len(ints) == 1 and "`topk_indices`" in ints[0] and "first at flat index [2]" in ints[0], ints
    checkpoint.write_safetensors(tmp_path / "meta.safetensors", base, {"seed": "2"})
    assert "metadata differ" in differences(name, tmp_path / "meta.safetensors", ref)[0]


def test_fixtures_stay_small():
    total = sum(p.stat().st_size for p in (REPO / "fixtures").rglob("*") if p.is_file())
    assert total < 10_000_000, f"fixtures take {total} bytes"
