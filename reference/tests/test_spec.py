"""The Python spec reader against the Rust one: same defaults, same resolved values."""
import json
import subprocess

import pytest

from conftest import SHIPPED_SPECS, SPEC_DIR
from dlvp_reference import spec as spec_mod


@pytest.mark.parametrize("name", SHIPPED_SPECS)
def test_python_and_rust_resolve_shipped_specs_identically(name, dlvp_bin):
    out = subprocess.run([dlvp_bin, "spec", "show", "--format", "json", SPEC_DIR / name],
                         check=True, capture_output=True, text=True)
    assert spec_mod.load(SPEC_DIR / name).to_dict() == json.loads(out.stdout)


def test_python_and_rust_defaults_agree(dlvp_bin, tmp_path):
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("name: dlvp-clip\n")
    out = subprocess.run([dlvp_bin, "spec", "show", "--format", "json", minimal],
                         check=True, capture_output=True, text=True)
    assert spec_mod.Spec().to_dict() == json.loads(out.stdout)


def test_the_resolved_yaml_reads_back():
    spec = spec_mod.load(SPEC_DIR / "tiny.yaml")
    assert spec_mod.from_yaml(spec.to_yaml()) == spec
    assert spec.grid == 7 and spec.num_patches == 49


@pytest.mark.parametrize("text, message", [
    ("vision:\n  widht: 3\n", "vision.widht: unknown field"),
    ("image_size: big\n", "image_size: expected a non-negative integer"),
    ("text:\n  act: relu\n", "text.act: expected one of gelu, quick_gelu"),
    ("preprocess:\n  mean: [0.5]\n", "preprocess.mean: expected a list of 3 numbers"),
    ("", "the spec is empty"),
    ("vision: [1\n", "bad.yaml: while parsing"),
])
def test_bad_specs_name_the_field(text, message):
    with pytest.raises(spec_mod.SpecError, match=message.replace("[", r"\[")):
        spec_mod.from_yaml(text, "bad.yaml")
