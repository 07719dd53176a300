"""MAGE-C's pieces: the InfoNCE loss against its formula, the projection head, two-view training."""

import math

import pytest
import torch

from mage_lite.augment import BatchSampler
from mage_lite.contrastive import ProjectionHead, info_nce, positive_rank_accuracy
from mage_lite.mage import MAGE
from mage_lite.mage_c import MAGEC, MAGECConfig
from mage_lite.mage_family import MAGEFamilyConfig, build_mage
from mage_lite.vqgan import VQGAN, VQGANConfig


def test_identical_pairs_give_the_lowest_loss_of_any_pairing():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    same = info_nce(z, z.clone(), 0.2)
    for k in range(5):
        shuffled = z[torch.randperm(16, generator=torch.Generator().manual_seed(k))]
        assert info_nce(z, shuffled, 0.2) > same + 0.5
    assert positive_rank_accuracy(z, z) == 1.0


def test_minimum_is_reached_by_identical_orthogonal_pairs():
    # Identical pairs of orthonormal vectors: positive similarity 1, every negative 0. The loss is then
    # -log(e^(1/t) / (e^(1/t) + 2B - 2)) for every anchor, the lowest any (2B - 1)-way split can give here.
    B, t = 4, 0.5
    z = torch.eye(B)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * B - 2))
    assert info_nce(z, z, t).item() == pytest.approx(expected, rel=1e-6)
    noisy = z + 0.3 * torch.randn(B, B, generator=torch.Generator().manual_seed(1))
    assert info_nce(z, noisy, t).item() > expected


def test_matches_the_formula_on_a_hand_made_case():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[3.0, 3.0], [-1.0, 0.0]])
    t = 0.2
    u = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).tolist()  # 4 unit vectors
    cos = lambda a, b: sum(x * y for x, y in zip(u[a], u[b]))  # noqa: E731
    partner = {0: 2, 1: 3, 2: 0, 3: 1}
    terms = []
    for i in range(4):
        denom = sum(math.exp(cos(i, k) / t) for k in range(4) if k != i)
        terms.append(-math.log(math.exp(cos(i, partner[i]) / t) / denom))
    assert info_nce(z1, z2, t).item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_info_nce_refuses_mismatched_views():
    with pytest.raises(ValueError, match="two"):
        info_nce(torch.randn(4, 8), torch.randn(3, 8), 0.2)


def test_projection_head_shape():
    assert ProjectionHead(32, 64, 16)(torch.randn(5, 32)).shape == (5, 16)


def _tiny(**kw):
    """Built as the presets build it: the family config, the model build_mage picks."""
    tok = VQGAN(VQGANConfig(channels=8, norm_groups=4, codebook_size=16, code_dim=4, disc_channels=4)).eval()
    cfg = MAGEFamilyConfig(codebook_size=16, num_tokens=tok.num_tokens, dim=32, depth=2, heads=2, decoder_depth=1,
                           dropout=0.0, contrastive_hidden=32, contrastive_out=16, **kw)
    return build_mage(cfg).set_tokenizer(tok)


def test_two_view_sampler_returns_different_crops_of_the_same_images():
    imgs = (torch.rand(10, 3, 32, 32) * 255).to(torch.uint8)
    batch = BatchSampler(imgs, views=2)(6, torch.Generator().manual_seed(0))
    assert batch.shape == (6, 2, 3, 32, 32)
    assert not torch.allclose(batch[:, 0], batch[:, 1])


def test_mage_c_adds_the_weighted_contrastive_term():
    torch.manual_seed(0)
    model = _tiny(contrastive_weight=0.1)
    assert type(model) is MAGEC
    views = BatchSampler((torch.rand(8, 3, 32, 32) * 255).to(torch.uint8), views=2)(8, torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    loss, logs = model.training_loss(views, 0)
    assert loss.item() == pytest.approx(logs["rec_loss"].item() + 0.1 * logs["contrastive_loss"].item(), rel=1e-5)
    assert logs["contrastive_loss"] > 0 and 0 <= logs["view_match"] <= 1
    loss.backward()
    assert model.projection.net[0].weight.grad.abs().sum() > 0  # the head is trained
    with pytest.raises(ValueError, match="two views"):
        model.training_loss(views[:, 0], 0)


def test_plain_mage_has_no_head_and_one_view():
    model = _tiny()
    assert type(model) is MAGE and not hasattr(model, "projection") and not model.cfg.contrastive
    loss, logs = model.training_loss(torch.rand(4, 3, 32, 32), 0)
    assert "contrastive_loss" not in logs and loss.dim() == 0


def test_contrastive_config_is_validated():
    with pytest.raises(ValueError, match="contrastive_temperature"):
        MAGECConfig(contrastive_temperature=0.0)
    with pytest.raises(ValueError, match="contrastive_weight"):
        MAGEFamilyConfig(contrastive_weight=-1.0)
    with pytest.raises(ValueError, match="contrastive_hidden"):
        MAGECConfig(contrastive_hidden=0)
    with pytest.raises(ValueError, match="padding"):  # MAGE's own fields are checked too
        MAGECConfig(padding="zeros")
    # MAGE-C's config alone is MAGE-C (lambda 0.1); the presets' family config is plain MAGE until lambda > 0
    assert MAGECConfig().contrastive and not MAGEFamilyConfig().contrastive


def test_clean_contrastive_pass_reads_the_unmasked_sequence():
    torch.manual_seed(0)
    model = _tiny(contrastive_weight=0.1, contrastive_input="clean").eval()
    views = BatchSampler((torch.rand(6, 3, 32, 32) * 255).to(torch.uint8), views=2)(6, torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    _, logs_a = model.training_loss(views, 0)
    torch.manual_seed(2)  # other masks: the reconstruction term changes, the clean InfoNCE term does not
    _, logs_b = model.training_loss(views, 0)
    assert logs_a["contrastive_loss"].item() == pytest.approx(logs_b["contrastive_loss"].item(), rel=1e-5)
    assert logs_a["rec_loss"].item() != pytest.approx(logs_b["rec_loss"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="contrastive_input"):
        MAGECConfig(contrastive_input="both")
