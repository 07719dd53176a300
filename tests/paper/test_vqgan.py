import math

import pytest
import torch
import torch.nn.functional as F

from mage_lite.vqgan import (VQGAN, PatchDiscriminator, VQGANConfig, VectorQuantizer, codebook_stats,
                             encode_dataset, psnr)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny convs on a shared 2-core box: a second OpenMP thread waits on a descheduled peer
    # and steps stall for seconds; one thread is steady (0.06 s vs 0.04-2.3 s per overfit step)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_cfg(**kw):
    base = dict(channels=8, channel_mult=(1, 2), res_blocks=1, norm_groups=4, codebook_size=32, code_dim=4,
                disc_channels=8, disc_layers=2, disc_start=0, kmeans_iters=3)
    base.update(kw)
    return VQGANConfig(**base)


def blobs(n, size=32, seed=0):
    """n smooth images (n, 3, size, size) in [0, 1]: two coloured Gaussian blobs on a flat background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    imgs = torch.rand(n, 3, 1, 1, generator=g) * 0.5
    for _ in range(2):
        cy, cx = torch.rand(2, n, 1, 1, generator=g)
        r = 0.1 + 0.2 * torch.rand(n, 1, 1, generator=g)
        mask = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))  # (n, size, size)
        imgs = imgs + mask[:, None] * torch.rand(n, 3, 1, 1, generator=g) * 0.5
    return imgs.clamp(0, 1)


def min_dist(a, b):
    """For each row of a (M, D), the exact L2 distance to its nearest row of b (N, D)."""
    return (a[:, None] - b[None]).norm(dim=-1).min(1).values  # cdist's matmul path is inexact near 0


def flat(z):
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)


# ----------------------------------------------------------------------------- quantizer

@pytest.mark.parametrize("l2", [False, True])
def test_quantizer_picks_nearest_code(l2):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, l2_normalize=l2)
    with torch.no_grad():
        vq.codebook.normal_()
    z = torch.randn(2, 4, 3, 3)
    z_q, loss, ids = vq(z)
    assert ids.shape == (2, 3, 3) and ids.dtype == torch.int64 and z_q.shape == z.shape
    x, codes = flat(z), vq.codebook.detach()
    if l2:
        x, codes = F.normalize(x, dim=1), F.normalize(codes, dim=1)
    ref = (x[:, None] - codes[None]).norm(dim=-1).argmin(1)  # brute force
    assert torch.equal(ids.flatten(), ref)
    torch.testing.assert_close(flat(z_q), codes[ref], atol=1e-6, rtol=0)


def test_straight_through_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    g = torch.randn_like(z)
    z_q, _, _ = vq(z)
    (z_q * g).sum().backward()
    assert torch.equal(z.grad, g)
    # with l2 norm the straight-through part is the identity onto normalize(z)
    vq2 = VectorQuantizer(16, 4, l2_normalize=True)
    z2 = z.detach().clone().requires_grad_(True)
    (vq2(z2)[0] * g).sum().backward()
    zz = z.detach().clone().requires_grad_(True)
    (F.normalize(zz, dim=1) * g).sum().backward()
    torch.testing.assert_close(z2.grad, zz.grad)


def test_vq_loss_and_gradients_match_hand_formula():
    torch.manual_seed(0)
    beta = 0.25
    vq = VectorQuantizer(8, 3, beta=beta)
    with torch.no_grad():
        vq.codebook.normal_()
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    _, loss, ids = vq(z)
    x, e, idx = flat(z.detach()), vq.codebook.detach()[ids.flatten()], ids.flatten()
    hand = F.mse_loss(e, x) + beta * F.mse_loss(x, e)
    torch.testing.assert_close(loss, hand)
    loss.backward()
    n = x.numel()
    # encoder: commitment term only, weight beta
    dz = beta * 2 * (x - e) / n  # (N, D)
    torch.testing.assert_close(z.grad, dz.view(2, 4, 4, 3).permute(0, 3, 1, 2))
    # codebook: codebook term only, weight 1
    de = torch.zeros_like(vq.codebook).index_add_(0, idx, 2 * (e - x) / n)
    torch.testing.assert_close(vq.codebook.grad, de)


def test_kmeans_init_beats_data_init():
    z = torch.randn(4, 4, 8, 8)
    dist = {}
    for init in ("data", "kmeans"):
        vq = VectorQuantizer(16, 4, init=init, kmeans_iters=5)
        assert not vq.initialized
        torch.manual_seed(0)  # same data sample to start from
        vq.init_codebook(z)
        assert vq.initialized
        dist[init] = torch.cdist(flat(z), vq.codebook.detach()).min(1).values.pow(2).mean().item()
    assert dist["kmeans"] < dist["data"]


# ----------------------------------------------------------------------------- model shapes

@pytest.mark.parametrize("downsample,mult,grid", [(4, (1, 2), 8), (8, (1, 2, 2), 4)])
def test_encode_decode_shapes(downsample, mult, grid):
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(downsample=downsample, channel_mult=mult))
    x = blobs(2)
    ids = m.encode_to_ids(x)
    assert ids.shape == (2, grid, grid) and ids.dtype == torch.int64
    assert 0 <= ids.min() and ids.max() < m.codebook_size
    assert m.num_tokens == grid * grid
    assert set(m.no_weight_decay()) <= {n for n, _ in m.named_parameters()}
    assert m.encode_continuous(x).shape == (2, 4, grid, grid)
    out = m.decode_ids(ids)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    rec, vq_loss, ids2 = m(x)
    assert rec.shape == x.shape and vq_loss.dim() == 0 and torch.equal(ids, ids2)
    assert PatchDiscriminator(8, 2)(x).shape == (2, 1, 6, 6)


def test_encode_dataset_and_psnr():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg())
    imgs = (blobs(5) * 255).round().to(torch.uint8)
    ids = encode_dataset(m, imgs, batch_size=2)
    assert ids.shape == (5, 8, 8) and m.training
    m.eval()
    # ids of batches of 2 against one batch of 5: the encoder's output moves with the batch size (measured up to
    # 3.7e-6, and a code distance by up to 1.2e-5, over batch sizes 1-4 and 1-2 threads on an AMD EPYC), but on
    # these images the nearest code beats the second by at least 2.3e-3, ~190x that, so the ids are exactly equal.
    assert torch.equal(ids, m.encode_to_ids(imgs.float() / 255))
    x = blobs(3) * 0.9
    assert psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-3)


# ----------------------------------------------------------------------------- training_loss

def grads(module):
    return [p.grad for p in module.parameters()]


def test_discriminator_untouched_before_disc_start_and_trained_after():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(disc_start=5, init="random", restart_after=0))
    x = blobs(4)
    bn_before = {k: v.clone() for k, v in m.discriminator.state_dict().items()}
    loss, logs = m.training_loss(x, step=4)
    loss.backward()
    assert all(g is None or not g.any() for g in grads(m.discriminator))
    assert logs["d_loss"] == 0 and logs["g_loss"] == 0 and logs["adaptive_weight"] == 0
    assert all(torch.equal(v, m.discriminator.state_dict()[k]) for k, v in bn_before.items())
    m.zero_grad(set_to_none=True)
    loss, logs = m.training_loss(x, step=5)
    loss.backward()
    assert any(g is not None and g.any() for g in grads(m.discriminator))
    assert logs["d_loss"] > 0 and set(logs) == {"rec_loss", "vq_loss", "g_loss", "d_loss", "adaptive_weight",
                                               "usage", "perplexity"}
    assert all(not v.requires_grad and v.dim() == 0 for v in logs.values())


def test_hinge_loss_reaches_only_discriminator_and_g_loss_only_generator():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(init="random", restart_after=0, disc_weight=0.0))
    x = blobs(4)
    loss, _ = m.training_loss(x, step=0)
    loss.backward()
    got_dec, got_disc = [g.clone() for g in grads(m.decoder)], [g.clone() for g in grads(m.discriminator)]
    m.zero_grad(set_to_none=True)
    # by hand: generator sees rec + vq only (disc_weight 0), D sees its hinge loss only
    rec, vq_loss, _ = m(x)
    d = m.discriminator
    hinge = 0.5 * (F.relu(1 - d(x)).mean() + F.relu(1 + d(rec.detach())).mean())
    ((rec - x).abs().mean() + vq_loss + hinge).backward()
    for a, b in zip(got_dec, grads(m.decoder)):
        torch.testing.assert_close(a, b)
    for a, b in zip(got_disc, grads(m.discriminator)):
        torch.testing.assert_close(a, b)
    # with a GAN weight the decoder grads change but D's do not (g_loss never reaches D)
    m.zero_grad(set_to_none=True)
    m.cfg.disc_weight = 0.5
    loss, logs = m.training_loss(x, step=0)
    loss.backward()
    assert any(not torch.allclose(a, b) for a, b in zip(got_dec, grads(m.decoder)))
    for a, b in zip(got_disc, grads(m.discriminator)):
        torch.testing.assert_close(a, b)


def test_adaptive_weight_matches_formula():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(init="random", restart_after=0))
    x = blobs(4)
    _, logs = m.training_loss(x, step=0)
    w = logs["adaptive_weight"]
    assert torch.isfinite(w) and w > 0
    rec, _, _ = m(x)
    last = m.decoder.conv_out.weight
    g_rec = torch.autograd.grad((rec - x).abs().mean(), last, retain_graph=True)[0]
    g_gan = torch.autograd.grad(-m.discriminator(rec).mean(), last)[0]
    torch.testing.assert_close(w, (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4), rtol=1e-4, atol=1e-6)


def test_training_loss_under_bf16_autocast():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = m.training_loss(blobs(4), step=0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logs["adaptive_weight"]) and logs["adaptive_weight"] > 0


# ----------------------------------------------------------------------------- collapse remedies

def test_data_init_runs_once_from_encoder_outputs():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(init="data", l2_normalize=False, restart_after=0, disc_start=10 ** 9))
    x = blobs(4)
    m.eval()
    m.training_loss(x, step=0)  # eval: no init
    assert not m.quantizer.initialized
    m.train()
    m.training_loss(x, step=0)
    assert m.quantizer.initialized
    z = flat(m.encode_continuous(x).detach())
    assert min_dist(m.quantizer.codebook.detach(), z).max() < 1e-5
    before = m.quantizer.codebook.detach().clone()
    m.training_loss(x, step=1)
    assert torch.equal(before, m.quantizer.codebook.detach())


def test_dead_code_restart():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(init="random", l2_normalize=False, restart_after=2, disc_start=10 ** 9))
    x = blobs(4)
    sd = m.state_dict()
    assert "quantizer.unused_steps" in sd and "quantizer.initialized" in sd
    assert any(b is m.quantizer.unused_steps for b in m.buffers())
    m.training_loss(x, step=0)
    m.training_loss(x, step=1)
    dead = m.quantizer.unused_steps >= 2
    assert dead.any() and not dead.all()
    before = m.quantizer.codebook.detach().clone()
    m.training_loss(x, step=2)
    after = m.quantizer.codebook.detach()
    changed = (after != before).any(1)
    assert torch.equal(changed, dead)
    # restarted codes are encoder outputs of the current batch
    z = flat(m.encode_continuous(x).detach())
    assert min_dist(after[dead], z).max() < 1e-5
    # eval mode never restarts
    m.eval()
    m.training_loss(x, step=3)
    assert torch.equal(after, m.quantizer.codebook.detach())


def test_codebook_stats_exact():
    s = codebook_stats(torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3]]), 8)
    assert s["usage"] == 0.5 and s["perplexity"] == pytest.approx(4.0)
    assert s["counts"].tolist() == [2, 2, 2, 2, 0, 0, 0, 0] and s["counts"].dtype == torch.int64
    s = codebook_stats(torch.tensor([0, 0, 0, 1]), 4)
    assert s["usage"] == 0.5
    assert s["perplexity"] == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


# ----------------------------------------------------------------------------- overfit + config

def test_tiny_overfit():
    torch.manual_seed(0)
    m = VQGAN(tiny_cfg(channels=16, norm_groups=8, codebook_size=64, code_dim=8, disc_start=10 ** 9))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    x = blobs(16)
    hist = []
    for step in range(60):
        loss, logs = m.training_loss(x, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append(logs["rec_loss"].item())
    assert hist[-1] < 0.7 * hist[0], hist


@pytest.mark.parametrize("kw", [
    dict(downsample=3), dict(downsample=8), dict(image_size=30), dict(channel_mult=(1, 0)),
    dict(norm_groups=5), dict(codebook_size=1), dict(code_dim=0), dict(init="zeros"), dict(kmeans_iters=-1),
    dict(restart_after=-1), dict(beta=-0.1), dict(rec_loss="lpips"), dict(disc_layers=0), dict(disc_layers=4),
    dict(disc_start=-1), dict(disc_weight=-1.0), dict(res_blocks=-1),
])
def test_bad_config_raises(kw):
    with pytest.raises(ValueError) as err:
        VQGANConfig(**kw)
    msg = str(err.value)
    assert msg.endswith(".") and ". " not in msg.replace("e.g. ", "")
