import math

import pytest
import torch

from mage_lite.masking import Fixed, TruncatedGaussian, Uniform, make_ratio_dist, mask_tokens


@pytest.mark.parametrize("L", [16, 64])
@pytest.mark.parametrize("ratio", [0.5, 0.51, 0.69, 0.75, 0.9, 1.0])
def test_counts_are_exact_and_dropped_is_a_subset_of_masked(L, ratio):
    m = mask_tokens(6, L, Fixed(ratio), drop_ratio=0.5, generator=torch.Generator().manual_seed(0))
    assert m.masked.shape == m.dropped.shape == m.noise.shape == (6, L)
    assert torch.all(m.masked.sum(1) == math.ceil(L * ratio))
    assert torch.all(m.dropped.sum(1) == math.ceil(0.5 * L))
    assert not (m.dropped & ~m.masked).any()
    if ratio == 1.0:
        assert m.masked.all()


def test_masked_and_dropped_are_the_lowest_noise_positions():
    m = mask_tokens(3, 16, Fixed(0.75), drop_ratio=0.5, generator=torch.Generator().manual_seed(1))
    for b in range(3):
        order = sorted(range(16), key=lambda i: m.noise[b, i].item())  # smallest noise first
        assert m.masked[b].tolist() == [i in order[:12] for i in range(16)]
        assert m.dropped[b].tolist() == [i in order[:8] for i in range(16)]


def test_ties_in_the_noise_still_give_exact_counts(monkeypatch):
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.zeros(a[0], a[1]) if len(a) == 2 else torch.zeros(a[0]))
    m = mask_tokens(2, 16, Fixed(0.75), drop_ratio=0.5)
    assert torch.all(m.masked.sum(1) == 12) and torch.all(m.dropped.sum(1) == 8)


def test_one_ratio_per_batch_unless_per_sample():
    g = torch.Generator().manual_seed(0)
    m = mask_tokens(8, 64, "uniform:0.5,1.0", generator=g)
    assert torch.all(m.ratios == m.ratios[0]) and torch.all(m.masked.sum(1) == m.masked.sum(1)[0])
    m = mask_tokens(8, 64, "uniform:0.5,1.0", per_sample=True, generator=g)
    assert len(set(m.ratios.tolist())) == 8
    assert m.masked.sum(1).tolist() == [math.ceil(64 * r) for r in m.ratios.tolist()]
    assert torch.all(m.dropped.sum(1) == 32)


def test_same_generator_seed_same_masks():
    a = mask_tokens(4, 16, "truncnorm", generator=torch.Generator().manual_seed(5))
    b = mask_tokens(4, 16, "truncnorm", generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.masked, b.masked) and torch.equal(a.ratios, b.ratios)


def test_drop_larger_than_mask_is_refused():
    with pytest.raises(ValueError, match="must not exceed the masking ratio"):
        mask_tokens(2, 16, Fixed(0.25), drop_ratio=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mask_tokens(2, 16, Fixed(0.75), drop_ratio=1.5)


def test_truncated_gaussian_closed_form_mean_matches_numerical_integration():
    d = TruncatedGaussian()
    x = torch.linspace(0.5, 1.0, 20001, dtype=torch.float64)
    assert torch.trapezoid(d.pdf(x), x).item() == pytest.approx(1.0, abs=1e-6)
    assert d.mean() == pytest.approx(torch.trapezoid(x * d.pdf(x), x).item(), abs=1e-6)
    assert d.mean() == pytest.approx(0.6936, abs=1e-3)  # "about 0.69" (docs/method.md section 3.3)
    assert d.pdf(torch.tensor([0.4, 1.1])).tolist() == [0.0, 0.0]


def test_truncated_gaussian_samples_match_the_distribution():
    d = make_ratio_dist("truncnorm")
    s = d.sample(20000, torch.Generator().manual_seed(0))
    assert s.shape == (20000,) and s.dtype == torch.float64
    assert s.min() >= 0.5 and s.max() <= 1.0
    assert abs(s.mean().item() - d.mean()) < 0.005
    # Kolmogorov-Smirnov distance to the analytic CDF (99.9% critical value ~ 1.95 / sqrt(n) = 0.0138)
    s = s.sort().values
    n = len(s)
    F = d.cdf(s)
    ks = torch.maximum(torch.arange(1, n + 1) / n - F, F - torch.arange(n) / n).max().item()
    assert ks < 0.0138


def test_truncated_gaussian_far_in_the_right_tail():
    d = TruncatedGaussian(mean=0.1, std=0.1, low=0.5, high=0.9)  # both bounds 4 std above the mean
    s = d.sample(5000, torch.Generator().manual_seed(0))
    assert s.min() >= 0.5 and s.max() <= 0.9
    assert abs(s.mean().item() - d.mean()) < 0.005
    x = torch.linspace(0.5, 0.9, 20001, dtype=torch.float64)
    assert torch.trapezoid(x * d.pdf(x), x).item() == pytest.approx(d.mean(), abs=1e-5)


def test_fixed_and_uniform():
    f = make_ratio_dist("fixed:0.75")
    assert isinstance(f, Fixed) and f.mean() == 0.75 and torch.all(f.sample(5) == 0.75)
    u = make_ratio_dist("uniform:0.5,1.0")
    assert isinstance(u, Uniform) and u.mean() == 0.75
    s = u.sample(20000, torch.Generator().manual_seed(0))
    assert s.min() >= 0.5 and s.max() <= 1.0 and abs(s.mean().item() - 0.75) < 0.005
    assert u.pdf(torch.tensor([0.4, 0.7])).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("spec", ["gauss", "fixed", "fixed:", "fixed:a", "fixed:1.5", "fixed:-0.1", "uniform:0.5",
                                  "uniform:0.9,0.5", "uniform:0.5,1.2", "truncnorm:0.5,0.25", "truncnorm:0.55,0,0.5,1", 3])
def test_bad_specs_are_refused(spec):
    with pytest.raises(ValueError):
        make_ratio_dist(spec)
