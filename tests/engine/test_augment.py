import torch

from mage_lite.augment import BatchSampler, random_resized_crop


def test_full_scale_without_flip_is_identity():
    x = torch.rand(4, 3, 32, 32)
    # scale (1, 1) only fits with aspect ratio 1 -> whole image; ratio (1, 1) makes it exact
    out = random_resized_crop(x, (1.0, 1.0), ratio=(1.0, 1.0), hflip=False)
    assert torch.allclose(out, x, atol=1e-5)


def test_flip_is_mirror_image():
    x = torch.rand(64, 3, 16, 16)
    out = random_resized_crop(x, (1.0, 1.0), ratio=(1.0, 1.0), hflip=True, generator=torch.Generator().manual_seed(0))
    flipped = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    assert torch.all(flipped | same) and 10 < flipped.sum() < 54


def test_crops_zoom_in_and_vary_per_sample():
    # a horizontal ramp: a crop of width w has pixel range about w times the full range
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(256, 3, 32, 32).contiguous()
    out = random_resized_crop(ramp, (0.2, 0.2), ratio=(1.0, 1.0), hflip=False, generator=torch.Generator().manual_seed(1))
    span = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    assert torch.allclose(span, torch.full_like(span, 0.2**0.5), atol=0.05)
    assert out[:, 0, 0, 0].std() > 0.1  # different places per sample


def test_sampler_reproducible_with_generator():
    imgs = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    s = BatchSampler(imgs)
    a = s(8, torch.Generator().manual_seed(3))
    b = s(8, torch.Generator().manual_seed(3))
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.float32 and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
