"""The reference metrics behind fixtures/metrics: sanity laws the Rust side is also held to."""
import numpy as np
import pytest

from dlvp_reference import metrics


def test_perfect_maps_and_scores_give_ones():
    masks = np.zeros((2, 8, 8), bool)
    masks[1, 2:5, 3:6] = True
    maps = np.where(masks, 0.9, 0.1).astype(np.float32)
    got = metrics.all_metrics(np.array([0.1, 0.9]), np.array([0, 1]), maps, masks)
    assert got == pytest.approx([1.0] * 6)


def test_a_constant_map_gives_chance_auroc_and_the_diagonal_aupro():
    masks = np.zeros((1, 8, 8), bool)
    masks[0, :2, :2] = True
    maps = np.full((1, 8, 8), 0.5, np.float32)
    # One threshold: the PRO curve jumps from (0, 0) to (1, 1); its area up to 0.3 is 0.045.
    assert metrics.aupro(maps, masks) == pytest.approx(0.15)
    assert metrics.all_metrics(np.array([0.5, 0.5]), np.array([0, 1]), maps, masks)[3] == pytest.approx(0.5)


def test_one_class_is_undefined_not_a_number_made_up():
    got = metrics.all_metrics(np.array([0.2, 0.3]), np.array([0, 0]), np.zeros((1, 4, 4)), np.zeros((1, 4, 4), bool))
    assert all(np.isnan(v) for v in got)
