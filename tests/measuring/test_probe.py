import torch

from mage_lite.probe import ProbeConfig, linear_probe, linear_probes, random_subset


def test_probe_reads_linearly_separable_features():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 3
    y = torch.randint(0, 4, (800,), generator=g)
    x = centers[y] + torch.randn(800, 16, generator=g)
    cfg = ProbeConfig(epochs=20, batch_size=64, lr=1e-2)
    acc = linear_probe(x[:600], y[:600], x[600:], y[600:], cfg)
    noise = linear_probe(torch.randn(600, 16, generator=g), y[:600], torch.randn(200, 16, generator=g), y[600:], cfg)
    assert acc > 95 and noise < 45


def test_random_subset_is_random_not_first_n():
    idx = random_subset(1000, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert idx.max() > 500  # "the first 100" would end at 99
    assert torch.equal(idx, random_subset(1000, 100, seed=0))
    assert len(random_subset(50, 0, seed=0)) == 50


def test_heads_trained_together_score_exactly_as_each_trained_alone():
    # the reference is the lone probe: sharing the backward and the optimizer step must change no number
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 5, (700,), generator=g)
    centers = torch.randn(5, 24, generator=g)
    features = {"close": centers[y] + 2.0 * torch.randn(700, 24, generator=g),  # three different accuracies and widths
                "far": centers[y, :8] * 3 + torch.randn(700, 8, generator=g),
                "noise": torch.randn(700, 40, generator=g)}
    cfg = ProbeConfig(epochs=3, batch_size=64, lr=1e-2)
    train, test = {k: v[:500] for k, v in features.items()}, {k: v[500:] for k, v in features.items()}
    together = linear_probes(train, y[:500], test, y[500:], cfg, seed=3)
    alone = {k: linear_probe(train[k], y[:500], test[k], y[500:], cfg, seed=3) for k in features}
    assert together == alone
    assert len(set(alone.values())) == 3  # the heads really differ, so equality is not one number three times
