"""The decoder position embedding options (mage.decoder_pos) and the [C]-padding trap's diagnostics
(docs/method.md 7.2): mode share and the similarity of the masked decoder inputs."""

import math

import pytest
import torch
import torch.nn.functional as F

from mage_lite.layers import FixedPosEmbed, LearnedPosEmbed, sincos_pos_embed_2d
from mage_lite.mage import DECODER_POS, MAGE, MAGEConfig, mode_counts
from mage_lite.mage_eval import masked_input_similarity, masked_token_accuracy, mode_share, trap_metrics

from test_mage import K, L, TINY, tiny  # the same tiny MAGE: L = 16 tokens, a 4 x 4 grid


def data(B=8, seed=0):
    """ids (B, L) and a 0.75 mask (12 masked, 8 of them dropped) drawn as in training."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, K, (B, L), generator=g)
    masked, dropped = tiny().sample_mask(B, "cpu", ratio=0.75, generator=g)
    return ids, masked, dropped


def sincos_table():
    return sincos_pos_embed_2d(32, 4, cls_token=True)[None]  # (1, 1+L, 32), row 0 zero


# --- the option -----------------------------------------------------------------

def test_default_is_the_official_learned_embedding():
    assert MAGEConfig().decoder_pos == "learned" and DECODER_POS == ("learned", "sincos", "learned_sincos")
    model = tiny()
    assert isinstance(model.decoder_pos_embed, LearnedPosEmbed)
    w = model.decoder_pos_embed.weight
    assert w.requires_grad and 0.01 <= float(w.detach().std()) <= 0.03  # N(0, 0.02^2), 17 x 32 values


@pytest.mark.parametrize("decoder_pos", DECODER_POS)
def test_every_option_gives_the_same_shapes(decoder_pos):
    model = tiny(decoder_pos=decoder_pos)
    assert model.decoder_pos_embed.weight.shape == (1, L + 1, 32)
    ids, masked, dropped = data(3)
    loss, logits, mask = model(ids, masked, dropped)
    assert logits.shape == (3, L, K) and mask.shape == (3, L) and torch.isfinite(loss)
    x = torch.zeros(2, L + 1, 32)
    assert model.decoder_pos_embed(x).shape == (2, L + 1, 32)


def test_sincos_is_a_fixed_buffer_with_a_zero_first_row():
    model = tiny(decoder_pos="sincos").train()
    pe = model.decoder_pos_embed
    assert isinstance(pe, FixedPosEmbed)
    assert torch.equal(pe.weight, sincos_table()) and torch.all(pe.weight[0, 0] == 0)
    assert not pe.weight.requires_grad
    params = dict(model.named_parameters())
    assert "decoder_pos_embed.weight" not in params
    assert "decoder_pos_embed.weight" in dict(model.named_buffers()) and "decoder_pos_embed.weight" in model.state_dict()
    assert "decoder_pos_embed.weight" not in model.no_weight_decay()
    assert all(n in params for n in model.no_weight_decay())
    ids, masked, dropped = data(3)
    model(ids, masked, dropped)[0].backward()
    assert pe.weight.grad is None and torch.equal(pe.weight, sincos_table())
    assert model.decoder_blocks[0].norm1.weight.grad is not None  # the decoder itself still learns


def test_learned_sincos_starts_at_the_table_and_learns():
    model = tiny(decoder_pos="learned_sincos").train()
    pe = model.decoder_pos_embed
    assert isinstance(pe, LearnedPosEmbed) and isinstance(pe.weight, torch.nn.Parameter)
    assert torch.equal(pe.weight.detach(), sincos_table())
    assert "decoder_pos_embed.weight" in dict(model.named_parameters())
    assert "decoder_pos_embed.weight" in model.no_weight_decay()
    ids, masked, dropped = data(3)
    model(ids, masked, dropped)[0].backward()
    assert pe.weight.grad is not None and pe.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("decoder_pos", ["sincos", "learned_sincos"])
def test_scale_multiplies_the_table_and_sets_masked_positions_apart(decoder_pos):
    model = tiny(decoder_pos=decoder_pos, decoder_pos_scale=2.0)
    assert torch.allclose(model.decoder_pos_embed.weight.detach(), 2 * sincos_table())
    # a stronger position signal: masked decoder inputs less alike after the LayerNorm than at scale 1
    ids, masked, dropped = data(8)
    sims = {s: masked_input_similarity(tiny(decoder_pos=decoder_pos, decoder_pos_scale=s), ids, masked, dropped)
            for s in (1.0, 2.0)}
    assert sims[2.0] < sims[1.0] - 0.01, sims
    with pytest.raises(ValueError, match="decoder_pos_scale must be > 0"):
        tiny(decoder_pos=decoder_pos, decoder_pos_scale=0.0)


def test_presets_name_their_decoder_position_embedding():
    from mage_lite.config import load_preset

    assert MAGEConfig().decoder_pos == "learned"  # the class default stays the official choice
    for name in ("ci", "cpu", "report"):  # the design check's choice (README, "Design choices")
        m = load_preset(name).mage
        assert (m.decoder_pos, m.decoder_pos_scale) == ("sincos", 1.0)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="decoder_pos must be one of"):
        MAGEConfig(**TINY, decoder_pos="rope")
    with pytest.raises(ValueError, match="not a square"):  # 12 tokens make no square grid
        MAGEConfig(**{**TINY, "num_tokens": 12}, decoder_pos="sincos")
    assert MAGEConfig(**{**TINY, "num_tokens": 12}).decoder_pos == "learned"  # the learned one needs no grid
    with pytest.raises(ValueError, match="divisible by 4"):  # 2D sin-cos splits the width in four
        MAGEConfig(**{**TINY, "dim": 30}, decoder_pos="learned_sincos")
    with pytest.raises(ValueError, match="position table"):
        LearnedPosEmbed(5, 4, init=torch.zeros(4, 4))


def test_default_state_dict_is_unchanged():
    default, explicit = tiny(), tiny(decoder_pos="learned")
    sd, sd2 = default.state_dict(), explicit.state_dict()
    assert list(sd) == list(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)  # same keys, order, seed -> weights
    assert [n for n, _ in default.named_parameters()] == [n for n, _ in explicit.named_parameters()]
    assert set(tiny(decoder_pos="sincos").state_dict()) == set(sd) == set(tiny(decoder_pos="learned_sincos").state_dict())
    for p in DECODER_POS:  # a checkpoint loads back into a model of its own config
        model = tiny(decoder_pos=p)
        assert not MAGE(model.cfg).load_state_dict(model.state_dict()).missing_keys


# --- the trap's diagnostics -------------------------------------------------------

def test_mode_share_by_hand():
    pred = torch.tensor([[1, 1, 2, 2, 2],    # masked: 1, 1, 2 -> mode 1, 2 of 3 (the visible 2s do not count)
                         [4, 5, 4, 5, 9],    # masked: 4, 5, 4, 5 -> a tie, mode 4 (smallest id), 2 of 4
                         [7, 7, 7, 7, 7]])   # nothing masked: ignored
    mask = torch.tensor([[1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 0],
                         [0, 0, 0, 0, 0]])
    assert mode_counts(pred, mask.bool()).tolist() == [2, 2, 0]
    assert mode_share(pred, mask.bool()) == pytest.approx(4 / 7)
    assert mode_share(pred, mask.float()) == pytest.approx(4 / 7)  # a float mask as forward() returns it
    assert mode_share(torch.full((2, 5), 3), torch.ones(2, 5)) == 1.0  # one code everywhere: the trap
    assert mode_share(torch.arange(10).view(2, 5), torch.ones(2, 5)) == pytest.approx(1 / 5)  # all different
    assert math.isnan(mode_share(pred, torch.zeros(3, 5)))


def test_masked_input_similarity_by_hand():
    model = tiny().train()
    ids, masked, dropped = data(4)
    sim = masked_input_similarity(model, ids, masked, dropped)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        latent, idx = model.forward_encoder(ids, masked, dropped)
        x = model.decoder_input(latent, idx, masked) + model.decoder_pos_embed.weight
        x = model.decoder_blocks[0].norm1(x)[:, 1:]  # (B, L, Dd)
    per_image = []
    for b in range(4):
        v = x[b][masked[b]]  # (12, Dd)
        cos = F.cosine_similarity(v[:, None], v[None], dim=-1)
        n = len(v)
        per_image.append(float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1))))
    assert sim == pytest.approx(sum(per_image) / 4, abs=1e-5)


def test_sincos_tells_the_masked_positions_apart_at_init():
    # [C] has norm about sqrt(Dd); a learned N(0, 0.02^2) embedding moves it by 2 %, so after the
    # LayerNorm every masked position is nearly the same vector. The sin-cos rows are of the
    # order of [C] itself. (At this tiny width and 4 x 4 grid many sin-cos channels are nearly
    # constant over positions, so "apart" means a cosine around 0.95, against about 0.9996.)
    ids, masked, dropped = data(8)
    sim = {p: masked_input_similarity(tiny(decoder_pos=p), ids, masked, dropped) for p in DECODER_POS}
    assert sim["learned"] > 0.99, sim
    assert sim["sincos"] < 0.98 and sim["learned_sincos"] < 0.98, sim
    assert 1 - sim["sincos"] > 10 * (1 - sim["learned"]), sim
    assert sim["learned_sincos"] == pytest.approx(sim["sincos"], abs=1e-5)  # the same table, the same other weights


def test_trap_metrics_use_the_masks_of_masked_token_accuracy():
    model = tiny().train()
    ids = torch.randint(0, K, (10, L), generator=torch.Generator().manual_seed(0))
    res = trap_metrics(model, ids, ratio=0.75, seed=3, batch_size=10)
    assert model.training and set(res) == {"mode_share", "mode_share_true", "masked_similarity"}
    assert 0 <= res["mode_share"] <= 1 and -1 <= res["masked_similarity"] <= 1
    assert trap_metrics(model, ids, 0.75, seed=3, batch_size=10) == res  # the same seed, the same masks
    # by hand: the masks that masked_token_accuracy's generator gives (one draw for the one batch)
    model.eval()
    masked, dropped = model.sample_mask(10, "cpu", 0.75, torch.Generator().manual_seed(3))
    with torch.no_grad():
        _, logits, _ = model(ids, masked, dropped)
        _, logits_acc, mask_acc = model(ids, ratio=0.75, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mask_acc.bool(), masked)  # what masked_token_accuracy sees
    assert res["mode_share"] == pytest.approx(mode_share(logits.argmax(-1), masked))
    assert res["mode_share_true"] == pytest.approx(mode_share(ids, masked))  # a perfect model's share
    assert res["masked_similarity"] == pytest.approx(masked_input_similarity(model, ids, masked, dropped), abs=1e-6)
    acc = masked_token_accuracy(model, ids, 0.75, seed=3, batch_size=10)
    assert acc["positions"] == int(masked.sum())
    # in batches: every masked position is still counted once
    batched = trap_metrics(model, ids, 0.75, seed=3, batch_size=4)
    assert 0 <= batched["mode_share"] <= 1 and -1 <= batched["masked_similarity"] <= 1


@pytest.mark.parametrize("decoder_pos", DECODER_POS)
def test_training_loss_logs_mode_share_without_changing_anything(decoder_pos):
    model = tiny(decoder_pos=decoder_pos).train()  # dropout 0.1: the forward pass draws random numbers
    ids = torch.randint(0, K, (4, L), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    loss, logs = model.training_loss(ids, 0)
    state = torch.get_rng_state()
    assert set(logs) == {"acc", "mask_ratio", "mode_share"}
    assert logs["mode_share"].ndim == 0 and 0 <= float(logs["mode_share"]) <= 1
    torch.manual_seed(5)
    loss2, logits, mask = model(ids)  # the same pass, without the logs
    assert torch.equal(loss, loss2) and torch.equal(torch.get_rng_state(), state)  # no extra random numbers
    assert float(logs["mode_share"]) == pytest.approx(mode_share(logits.argmax(-1), mask))
    loss.backward()  # the log is outside the graph
