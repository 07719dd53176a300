"""The decoding study's settings (issue 28): the token draw's temperature, top-k and nucleus limits, and a
linear mask schedule. Their defaults must be MAGE's decoding, random draws included."""

import math

import pytest
import torch

from mage_lite.generate import cosine_schedule, draw_distribution, iterative_decode
from mage_lite.mage import MAGE, MAGEConfig

K, L = 16, 16
P = torch.tensor([0.5, 0.3, 0.15, 0.05])


def tiny() -> MAGE:
    torch.manual_seed(0)
    return MAGE(MAGEConfig(codebook_size=K, num_tokens=L, dim=32, depth=1, heads=2, decoder_depth=1))


def test_defaults_draw_from_the_model_itself():
    assert torch.equal(draw_distribution(P.log()), P.log().exp())


def test_top_k_and_nucleus_keep_the_most_likely_tokens_renormalised():
    kept_two = torch.tensor([0.625, 0.375, 0.0, 0.0])
    assert torch.allclose(draw_distribution(P.log(), top_k=2), kept_two)
    assert torch.allclose(draw_distribution(P.log(), top_p=0.7), kept_two)  # 0.5 + 0.3 is the first to reach 0.7
    assert torch.allclose(draw_distribution(P.log(), top_p=0.5), torch.tensor([1.0, 0, 0, 0]))  # 0.5 reaches 0.5
    assert torch.allclose(draw_distribution(P.log(), top_p=0.81), torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95)


def test_temperature_sharpens_or_flattens_and_zero_is_the_most_likely_token():
    assert torch.allclose(draw_distribution(P.log(), temperature=2.0), P.sqrt() / P.sqrt().sum())
    assert torch.equal(draw_distribution(P.log(), temperature=0.0), torch.tensor([1.0, 0, 0, 0]))
    batch = torch.log_softmax(torch.randn(3, 5, K), -1)  # (B, L, K): each position on its own
    assert torch.allclose(draw_distribution(batch, top_k=3).sum(-1), torch.ones(3, 5))
    assert ((draw_distribution(batch, top_k=3) > 0).sum(-1) == 3).all()


def test_linear_schedule_unmasks_a_constant_number_per_step():
    assert cosine_schedule(64, 8, "linear") == [56, 48, 40, 32, 24, 16, 8, 0]
    assert cosine_schedule(64, 8, "cosine") == cosine_schedule(64, 8)
    assert [math.floor(64 * math.cos(math.pi / 2 * (t + 1) / 8)) for t in range(7)] == cosine_schedule(64, 8)[:7]


def test_default_settings_reproduce_mages_decoding_draw_for_draw():
    model = tiny()
    plain, _ = iterative_decode(model, 4, steps=5, generator=torch.Generator().manual_seed(3))
    spelled, _ = iterative_decode(model, 4, steps=5, generator=torch.Generator().manual_seed(3), sampling_temperature=1.0,
                                  top_k=0, top_p=1.0, schedule="cosine")
    assert torch.equal(plain, spelled)


def test_a_greedy_draw_gives_the_models_most_likely_token_at_every_step():
    model = tiny()
    ids, history = iterative_decode(model, 2, steps=4, choice_temperature=0.0, generator=torch.Generator().manual_seed(0),
                                    sampling_temperature=0.0, schedule="linear")
    assert [int((h == -1).sum(1)[0]) for h in history] == cosine_schedule(L, 4, "linear")
    again, _ = iterative_decode(model, 2, steps=4, choice_temperature=0.0, generator=torch.Generator().manual_seed(9),
                                sampling_temperature=0.0, schedule="linear")
    assert torch.equal(ids, again)  # nothing random is left: another seed gives the same grids


@pytest.mark.parametrize("bad", [dict(schedule="square"), dict(top_p=0.0), dict(top_k=-1), dict(sampling_temperature=-1)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        iterative_decode(tiny(), 1, steps=2, **bad)
