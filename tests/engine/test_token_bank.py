"""The token bank: the same ids the on-the-fly path computes, compact, reused, never half-written;
its sampler; MAGE and MAGE-C trained from it; the thread policy."""

from pathlib import Path

import pytest
import torch

from mage_lite import token_bank
from mage_lite.augment import random_resized_crop, to_float
from mage_lite.device import set_cpu_threads, threads_for
from mage_lite.mage_c import MAGEC, MAGECConfig
from mage_lite.token_bank import BankConfig, BankSampler, build_bank, get_or_build_bank
from mage_lite.vqgan import VQGAN, VQGANConfig

K = 32


def _tokenizer() -> VQGAN:
    torch.manual_seed(0)
    return VQGAN(VQGANConfig(channels=8, norm_groups=4, codebook_size=K, code_dim=4, init="random")).eval()


def _images(n=12, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_bank_holds_the_ids_of_the_crops_drawn_as_in_training():
    vq, imgs = _tokenizer(), _images(10)
    bank = build_bank(vq, imgs, views=3, crop_scale=(0.2, 1.0), seed=5, batch_size=4, progress=False)
    assert bank.shape == (10, 3, vq.num_tokens) and bank.dtype == torch.int16
    assert int(bank.min()) >= 0 and int(bank.max()) < K
    # view 1 of the chunk starting at image 4: the crop drawn from that chunk's generator
    g = torch.Generator().manual_seed(5 * 1_000_003 + 1 * 7919 + 4)
    crops = random_resized_crop(to_float(imgs[4:8]), (0.2, 1.0), hflip=True, generator=g)
    with torch.no_grad():
        expected = vq.encode_to_ids(crops).flatten(1)
    torch.testing.assert_close(bank[4:8, 1].long(), expected)
    assert not torch.equal(bank[:, 0], bank[:, 1])  # the views are different crops
    again = build_bank(vq, imgs, views=3, crop_scale=(0.2, 1.0), seed=5, batch_size=4, progress=False)
    assert torch.equal(bank, again)  # deterministic


def test_bank_is_reused_rebuilt_when_damaged_and_never_left_half_written(tmp_path, monkeypatch):
    vq, imgs = _tokenizer(), _images(8)
    cfg = BankConfig(views=2, batch_size=4)
    ids, path, built = get_or_build_bank(vq, "vqgan-abc", imgs, cfg, (0.2, 1.0), True, tmp_path)
    assert built and path.exists() and ids.shape == (8, 2, 64)

    def no_build(*a, **k):
        raise AssertionError("the bank was built again")

    monkeypatch.setattr(token_bank, "build_bank", no_build)
    reused, _, built = get_or_build_bank(vq, "vqgan-abc", imgs, cfg, (0.2, 1.0), True, tmp_path)
    assert not built and torch.equal(reused, ids)
    monkeypatch.undo()

    # another tokenizer, crop, flip or V is another bank
    _, other, _ = get_or_build_bank(vq, "vqgan-abc", imgs, cfg, (0.8, 1.0), True, tmp_path)
    assert other != path

    path.write_bytes(path.read_bytes()[:100])  # truncated on disk: rebuilt, not a raw error
    rebuilt, _, built = get_or_build_bank(vq, "vqgan-abc", imgs, cfg, (0.2, 1.0), True, tmp_path)
    assert built and torch.equal(rebuilt, ids)

    # an interrupted build leaves no file behind
    calls = {"n": 0}
    real = vq.encode_to_ids

    def interrupted(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(x)

    monkeypatch.setattr(vq, "encode_to_ids", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get_or_build_bank(vq, "vqgan-xyz", imgs, cfg, (0.2, 1.0), True, tmp_path)
    assert not any(p.name.endswith(".tmp") for p in Path(tmp_path).rglob("*"))
    assert len(list(Path(tmp_path).rglob("bank.pt"))) == 2  # the two finished banks only


def test_bank_sampler_draws_images_and_two_different_views():
    N, V, L = 50, 4, 6
    bank = (torch.arange(N)[:, None, None] * 100 + torch.arange(V)[None, :, None]).expand(N, V, L).to(torch.int16)
    g = torch.Generator().manual_seed(0)
    one = BankSampler(bank)(32, g)
    assert one.shape == (32, L) and one.dtype == torch.long
    two = BankSampler(bank, views=2)(200, g)
    assert two.shape == (200, 2, L)
    image, view = two[:, :, 0] // 100, two[:, :, 0] % 100  # (B, 2)
    assert torch.equal(image[:, 0], image[:, 1])  # two views of the same image
    assert (view[:, 0] != view[:, 1]).all()  # never the same view twice
    assert set(view.flatten().tolist()) == set(range(V))
    with pytest.raises(ValueError, match="bank.views"):
        BankSampler(bank[:, :1], views=2)


def test_mage_c_on_bank_ids_equals_mage_c_on_the_images_they_tokenize():
    vq = _tokenizer()
    cfg = MAGECConfig(codebook_size=K, num_tokens=64, dim=32, depth=1, heads=2, decoder_depth=1, dropout=0.0,
                      contrastive_weight=0.1)
    torch.manual_seed(0)
    model = MAGEC(cfg).set_tokenizer(vq).train()
    views = torch.rand(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ids = vq.encode_to_ids(views.flatten(0, 1)).view(4, 2, -1)  # (B, 2, L)
    torch.manual_seed(3)
    from_images, _ = model.training_loss(views, 0)
    torch.manual_seed(3)
    from_ids, logs = model.training_loss(ids, 0)
    torch.testing.assert_close(from_images, from_ids)
    assert "contrastive_loss" in logs
    with pytest.raises(ValueError, match="two views"):
        model.training_loss(ids[:, 0], 0)


def test_thread_policy_shares_the_cores_among_the_projects_jobs(monkeypatch):
    assert threads_for(2, 1) == 2 and threads_for(2, 2) == 1 and threads_for(2, 3) == 1 and threads_for(16, 3) == 5
    n = torch.get_num_threads()
    try:
        monkeypatch.delenv("MAGE_LITE_THREADS", raising=False)
        monkeypatch.setattr("mage_lite.device.available_cores", lambda: 4)
        monkeypatch.setenv("MAGE_LITE_JOBS", "2")
        assert set_cpu_threads() == 2
        monkeypatch.setenv("MAGE_LITE_THREADS", "1")  # the override wins
        assert set_cpu_threads() == 1
        monkeypatch.setenv("MAGE_LITE_THREADS", "two")
        with pytest.raises(ValueError, match="MAGE_LITE_THREADS"):
            set_cpu_threads()
    finally:
        torch.set_num_threads(n)
