import pytest
import torch

from mage_lite.layers import patchify
from mage_lite.mae import MAE, MAEConfig, random_masking

TINY = MAEConfig(dim=32, depth=2, heads=2, decoder_dim=16, decoder_depth=1, decoder_heads=2)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_masking_keeps_exactly_int_L_times_1_minus_r(ratio):
    x = torch.randn(5, 64, 8)
    kept, mask, ids_restore, ids_shuffle = random_masking(x, ratio)
    keep = int(64 * (1 - ratio))
    assert kept.shape == (5, keep, 8)
    assert torch.all(mask.sum(1) == 64 - keep)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(64).expand(5, 64))


def test_masking_equals_a_direct_reading_of_the_algorithm():
    x = torch.randn(2, 16, 3)
    noise = torch.rand(2, 16)
    kept, mask, ids_restore, _ = random_masking(x, 0.75, noise)
    for b in range(2):
        order = sorted(range(16), key=lambda i: noise[b, i].item())  # smallest noise first
        keep = order[:4]
        assert torch.equal(kept[b], x[b, keep])
        assert mask[b].tolist() == [0.0 if i in keep else 1.0 for i in range(16)]


def test_unshuffle_puts_every_token_back():
    x = torch.arange(16.0).view(1, 16, 1).expand(3, 16, 1)
    kept, mask, ids_restore, _ = random_masking(x, 0.75)
    filler = torch.full((3, 16 - kept.shape[1], 1), -1.0)
    restored = torch.gather(torch.cat([kept, filler], 1), 1, ids_restore[..., None])
    assert torch.equal(restored[mask == 0], x[mask == 0])
    assert torch.all(restored[mask == 1] == -1)


def test_forward_shapes_and_loss_ignores_visible_patches():
    torch.manual_seed(0)
    m = MAE(TINY)
    imgs = torch.rand(3, 3, 32, 32)
    loss, pred, mask = m(imgs)
    assert pred.shape == (3, 64, 48) and mask.shape == (3, 64) and loss.ndim == 0
    changed = pred.clone()
    changed[mask == 0] += 5.0  # visible patches: must not matter
    assert torch.allclose(m.forward_loss(imgs, changed, mask), loss)
    changed[mask == 1] += 1.0
    assert m.forward_loss(imgs, changed, mask) > loss


def test_norm_pix_target_is_standardised_per_patch():
    m = MAE(TINY)
    t = m.target(torch.rand(2, 3, 32, 32))
    assert torch.allclose(t.mean(-1), torch.zeros(2, 64), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 64), atol=1e-3)
    raw = MAE(MAEConfig(**{**TINY.__dict__, "norm_pix_loss": False}))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(raw.target(x), patchify(raw.normalize(x), 4))


def test_encoder_sees_only_visible_patches_and_features_have_all_blocks():
    m = MAE(TINY).eval()
    latent, mask, _ = m.forward_encoder(torch.rand(2, 3, 32, 32), 0.75)
    assert latent.shape == (2, 1 + 16, 32)
    f = m.features(torch.rand(2, 3, 32, 32))
    assert set(f) == {"avg", "cls", "block_1", "block_2"} and f["avg"].shape == (2, 32)


def test_reconstruction_with_pasted_patches_keeps_visible_pixels():
    torch.manual_seed(0)
    m = MAE(TINY).eval()
    imgs = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        _, pred, mask = m(imgs)
        rec, pasted = m.reconstruct(imgs, pred, mask)
    visible = mask.view(2, 1, 8, 1, 8, 1).expand(2, 3, 8, 4, 8, 4).reshape(2, 3, 32, 32) == 0
    assert torch.allclose(pasted[visible], imgs[visible], atol=1e-5)
    assert rec.shape == imgs.shape


def test_bad_config_refused():
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEConfig(mask_ratio=1.0)
    with pytest.raises(ValueError, match="multiple"):
        MAEConfig(patch_size=5)
