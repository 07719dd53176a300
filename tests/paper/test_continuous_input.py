"""Notebook 05's switch (mage.input): MAGE fed with the tokenizer's unquantized features instead of token ids."""

import pytest
import torch

from mage_lite.augment import BatchSampler
from mage_lite.mage import MAGE
from mage_lite.mage_c import MAGEC
from mage_lite.mage_continuous import ContinuousMAGE, ContinuousMAGEConfig
from mage_lite.mage_family import MAGEFamilyConfig, build_mage
from mage_lite.mage_eval import masked_token_accuracy, token_features
from mage_lite.vqgan import VQGAN, VQGANConfig


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return VQGAN(VQGANConfig(channels=8, norm_groups=4, codebook_size=16, code_dim=4, disc_channels=4)).eval()


def _model(tok, **kw):
    """Built as the presets build it: mage.input="continuous" through build_mage."""
    cfg = MAGEFamilyConfig(codebook_size=16, num_tokens=tok.num_tokens, dim=32, depth=2, heads=2, decoder_depth=1,
                           dropout=0.0, input="continuous", feature_dim=tok.cfg.code_dim, **kw)
    return build_mage(cfg).set_tokenizer(tok)


def test_features_are_what_the_ids_quantize(tokenizer):
    imgs = torch.rand(3, 3, 32, 32)
    feats, ids = tokenizer.encode_features(imgs)
    assert feats.shape == (3, tokenizer.num_tokens, 4) and ids.shape == (3, tokenizer.num_tokens)
    assert torch.equal(ids, tokenizer.encode_to_ids(imgs).flatten(1))
    assert torch.allclose(feats.norm(dim=-1), torch.ones(3, tokenizer.num_tokens), atol=1e-5)  # l2-normalised codes


def test_masked_positions_carry_no_feature_information(tokenizer):
    torch.manual_seed(0)
    model = _model(tokenizer).eval()
    feats, ids = tokenizer.encode_features(torch.rand(2, 3, 32, 32))
    masked = torch.zeros_like(ids, dtype=torch.bool)
    masked[:, :40] = True
    changed = feats.clone()
    changed[:, :40] = torch.randn_like(changed[:, :40])  # only the masked positions differ
    with torch.no_grad():
        a = model(ids, masked=masked, features=feats)[1]
        b = model(ids, masked=masked, features=changed)[1]
        c = model(ids, masked=~masked, features=changed)[1]  # now the changed positions are visible
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)


def test_continuous_model_trains_on_images_and_predicts_token_ids(tokenizer):
    torch.manual_seed(0)
    model = _model(tokenizer)
    imgs = torch.rand(8, 3, 32, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss, logs = model.training_loss(imgs, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.1  # it learns (one fixed batch, masks vary)
    assert model.feature_proj.weight.grad is not None
    feats, ids = tokenizer.encode_features(imgs)
    out = token_features(model, feats, keys=("avg",))
    assert out["avg"].shape == (8, 32)
    acc = masked_token_accuracy(model, ids, features=feats)
    assert 0 <= acc["acc"] <= 100 and acc["positions"] > 0


def test_continuous_model_refuses_ids_and_generation(tokenizer):
    model = _model(tokenizer)
    ids = torch.zeros(2, tokenizer.num_tokens, dtype=torch.long)
    with pytest.raises(ValueError, match="features"):
        model(ids)
    with pytest.raises(ValueError, match="cannot generate"):
        model.logits_for(ids)


def test_continuous_needs_the_feature_width():
    with pytest.raises(ValueError, match="feature_dim"):
        build_mage(MAGEFamilyConfig(input="continuous"))
    with pytest.raises(ValueError, match="feature_dim"):
        ContinuousMAGE(ContinuousMAGEConfig())
    with pytest.raises(ValueError, match="feature_dim"):
        ContinuousMAGEConfig(feature_dim=-1)
    with pytest.raises(ValueError, match="input"):
        MAGEFamilyConfig(input="pixels")


def test_the_switches_pick_the_model_and_combine(tokenizer):
    assert type(_model(tokenizer)) is ContinuousMAGE
    torch.manual_seed(0)
    model = _model(tokenizer, contrastive_weight=0.1, contrastive_hidden=32, contrastive_out=16)
    assert isinstance(model, MAGEC) and isinstance(model, ContinuousMAGE)  # MAGE-C reading features
    views = BatchSampler((torch.rand(4, 3, 32, 32) * 255).to(torch.uint8), views=2)(4, torch.Generator().manual_seed(0))
    loss, logs = model.training_loss(views, 0)
    loss.backward()
    assert "contrastive_loss" in logs and model.feature_proj.weight.grad is not None


def test_code_vectors_learn_through_the_head(tokenizer):
    # MAGE's head reads the detached token embedding, which continuous input never trains: the
    # continuous arm's code rows must get their gradient from the head, or they stay random.
    model = _model(tokenizer).train()
    imgs = torch.rand(4, 3, 32, 32)
    loss, _ = model.training_loss(imgs, step=0)
    loss.backward()
    K = model.cfg.codebook_size
    assert model.token_emb.weight.grad[:K].abs().sum(1).gt(0).all()  # every code row: each is in the softmax
    # the same vectors as MAGE's tied head scores against; only where the gradient goes differs
    assert torch.equal(model.code_vectors(), MAGE.code_vectors(model))
    assert model.code_vectors().requires_grad and not MAGE.code_vectors(model).requires_grad
