import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mage_lite.generate import cosine_schedule, inpaint, iterative_decode, token_region_from_pixels
from mage_lite.mage import MAGE, MAGEConfig

K, L = 16, 16


def tiny() -> MAGE:
    torch.manual_seed(0)
    return MAGE(MAGEConfig(codebook_size=K, num_tokens=L, dim=32, depth=1, heads=2, decoder_depth=1))


def schedule_by_hand(L, T):
    counts, unknown = [], L
    for t in range(T):
        n = 0 if t == T - 1 else max(1, min(unknown - 1, math.floor(L * math.cos(math.pi / 2 * (t + 1) / T))))
        counts.append(n)
        unknown = n
    return counts


def test_cosine_schedule():
    assert cosine_schedule(64, 12) == schedule_by_hand(64, 12)
    assert cosine_schedule(64, 12)[:3] == [63, 61, 59] and cosine_schedule(64, 12)[-1] == 0
    assert cosine_schedule(4, 12) == [3, 2] + [1] * 9 + [0]  # the clamp to [1, unknown - 1]
    assert cosine_schedule(16, 1) == [0]


def test_generation_follows_the_schedule_and_unmasks_everything():
    model = tiny().train()
    steps = 6
    ids, history = iterative_decode(model, 3, steps=steps, generator=torch.Generator().manual_seed(0))
    assert model.training  # mode restored
    assert ids.shape == (3, L) and ids.dtype == torch.long
    assert ids.min() >= 0 and ids.max() < K  # no [MASK] remains, only codebook ids
    assert len(history) == steps and torch.equal(history[-1], ids)
    expected = cosine_schedule(L, steps)
    for t, grid in enumerate(history):
        assert (grid == -1).sum(1).tolist() == [expected[t]] * 3
        if t:  # a token, once revealed, never changes
            prev = history[t - 1]
            assert torch.equal(grid[prev != -1], prev[prev != -1])
    again, _ = iterative_decode(model, 3, steps=steps, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, ids)


class ConfidenceStub(nn.Module):
    """Token 0 is near-certain everywhere, more so at higher positions: log p(0) = -log(1 + e^-(20 + j))."""

    def __init__(self, L=8):
        super().__init__()
        self.cfg = SimpleNamespace(num_tokens=L, codebook_size=2)
        self.mask_id = 2
        self.dummy = nn.Parameter(torch.zeros(1))

    def logits_for(self, ids):
        B, n = ids.shape
        logits = torch.zeros(B, n, 2)
        logits[..., 0] = 20.0 + torch.arange(n)
        return logits


def test_lowest_confidence_positions_are_remasked():
    stub, steps = ConfidenceStub(), 4
    _, history = iterative_decode(stub, 2, steps=steps, choice_temperature=0.0)
    for t, n in enumerate(cosine_schedule(8, steps)):  # the n least confident = the first n positions
        assert (history[t] == -1).tolist() == [[j < n for j in range(8)]] * 2


def test_known_tokens_are_never_remasked_or_changed():
    stub = ConfidenceStub()
    known = torch.ones(2, 8, dtype=torch.long)  # token 1: very improbable under the stub
    known_mask = torch.zeros(2, 8, dtype=torch.bool)
    known_mask[:, :2] = True  # at the least confident positions
    ids, history = iterative_decode(stub, 2, steps=4, choice_temperature=0.0, known=known, known_mask=known_mask)
    assert torch.all(ids[:, :2] == 1) and torch.all(ids[:, 2:] == 0)
    for grid in history:
        assert torch.all(grid[:, :2] == 1)
    # the schedule runs on the 6 unknown tokens
    assert [int((g[0] == -1).sum()) for g in history] == cosine_schedule(6, 4)


def test_inpaint_keeps_the_tokens_outside_the_region():
    model = tiny()
    ids = torch.randint(0, K, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    region = token_region_from_pixels((0, 0, 8, 8), downsample=4, image_size=16)  # top-left 2 x 2 tokens
    assert region.shape == (4, 4) and region.sum() == 4 and region[:2, :2].all()
    out, history = inpaint(model, ids, region, steps=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == ids.shape
    assert torch.equal(out[:, ~region], ids[:, ~region])
    assert out.min() >= 0 and out.max() < K
    assert [int((g[0] == -1).sum()) for g in history] == cosine_schedule(4, 4)


def test_token_region_from_pixels():
    px = torch.zeros(32, 32, dtype=torch.bool)
    px[5, 30] = True
    tok = token_region_from_pixels(px)
    assert tok.shape == (8, 8) and tok.sum() == 1 and tok[1, 7]
    box = token_region_from_pixels((8, 8, 17, 16))  # rows 8..16, cols 8..15
    assert box.nonzero().tolist() == [[r, c] for r in (2, 3, 4) for c in (2, 3)]
    assert token_region_from_pixels(px[None].expand(3, -1, -1)).shape == (3, 8, 8)
    with pytest.raises(ValueError):
        token_region_from_pixels(torch.zeros(30, 30, dtype=torch.bool))
