"""The committed fixtures are exactly what the golden generator writes (never edited by hand)."""
import hashlib

import pytest

from conftest import REPO
from dlvp_reference import golden


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_regenerating_the_fixtures_reproduces_the_committed_files(tmp_path):
    golden.main(["--out", str(tmp_path)])
    fixtures = REPO / "fixtures"
    names = ["tiny/weights.safetensors", "tiny/golden.safetensors", "tokens.json", "preprocess/expected.safetensors",
             "metrics/cases.safetensors"]
    names += [f"preprocess/{golden.preprocess_name(w, h, m)}" for w, h, m in golden.PREPROCESS_IMAGES]
    for name in names:
        committed = fixtures / name
        if not committed.exists():
            pytest.fail(f"{committed} is missing: run `python -m dlvp_reference.golden`")
        assert digest(tmp_path / name) == digest(committed), f"{name} differs from what the generator writes"


def test_fixtures_stay_small():
    total = sum(p.stat().st_size for p in (REPO / "fixtures").rglob("*") if p.is_file())
    assert total < 10_000_000, f"fixtures take {total} bytes"
