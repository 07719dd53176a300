"""Neighbour predictability (notebook 05) and the k-NN read-out (notebook 04), on constructed data."""

import pytest
import torch

from mage_lite.probe import knn_accuracy, nearest_neighbours
from mage_lite.shortcut import neighbour_predictability


def _smooth_field(n=200, side=8, c=4, seed=0):
    """Features that vary smoothly over the grid: each position nearly the mean of its neighbours."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, c, 3, 3, generator=g)
    f = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=True)  # (n, c, h, w)
    return f.permute(0, 2, 3, 1).reshape(n, side * side, c)  # (n, L, c)


def test_a_smooth_field_is_predicted_from_its_neighbours_and_quantizing_it_loses_that():
    feats = _smooth_field()
    codebook = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    ids = torch.cdist(feats, codebook).argmin(-1)  # (n, L) nearest codes
    out = neighbour_predictability(feats, ids, codebook)
    assert out["r2_continuous"] > 0.95  # bilinear: the centre is close to a linear function of its neighbours
    assert out["r2_quantized"] < out["r2_continuous"]
    assert out["id_from_continuous"] > out["id_from_quantized"] - 5  # recovered at least as well from features
    assert set(out) == {"r2_continuous", "r2_quantized", "id_from_continuous", "id_from_quantized", "id_majority"}


def test_independent_positions_are_not_predictable():
    feats = torch.randn(300, 64, 4, generator=torch.Generator().manual_seed(2))
    codebook = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    out = neighbour_predictability(feats, torch.cdist(feats, codebook).argmin(-1), codebook)
    assert abs(out["r2_continuous"]) < 0.05


def test_grid_must_be_square():
    with pytest.raises(ValueError, match="square"):
        neighbour_predictability(torch.randn(4, 10, 2), torch.zeros(4, 10, dtype=torch.long), torch.randn(3, 2))


def test_knn_accuracy_on_separable_and_shuffled_labels():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 5
    y = torch.arange(500) % 5
    x = centres[y] + torch.randn(500, 16, generator=g)
    assert knn_accuracy(x[:400], y[:400], x[400:], y[400:]) > 95
    shuffled = y[:400][torch.randperm(400, generator=g)]
    assert knn_accuracy(x[:400], shuffled, x[400:], y[400:]) < 45  # chance: 20 %
    sims, idx = nearest_neighbours(x[:3], x, k=1)
    assert idx[:, 0].tolist() == [0, 1, 2] and torch.allclose(sims[:, 0], torch.ones(3))
