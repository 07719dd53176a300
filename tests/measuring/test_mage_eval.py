"""Measuring a MAGE model: masked-token accuracy vs the most-frequent-code baseline, token probes, generation."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mage_lite.config import load_preset
from mage_lite.data import make_shapes
from mage_lite.fd import classifier_features
from mage_lite.mage import MAGE, MAGEConfig
from mage_lite.mage_eval import (GenerationScorer, generate, masked_token_accuracy, probe_tokens, token_features,
                                 untrained_encoders)
from mage_lite.probe import ProbeConfig, ProbeData
from mage_lite.vqgan import VQGAN, VQGANConfig

K, L = 16, 16


def tiny(**kw) -> MAGE:
    torch.manual_seed(0)
    return MAGE(MAGEConfig(codebook_size=K, num_tokens=L, dim=32, depth=2, heads=2, decoder_depth=1, **kw))


def test_masked_accuracy_counts_and_baseline():
    model = tiny().train()
    ids = torch.randint(0, K, (10, L), generator=torch.Generator().manual_seed(0))
    ids[:, :4] = 3  # code 3 is the most frequent
    res = masked_token_accuracy(model, ids, ratio=0.75, seed=1, batch_size=4)
    assert model.training  # mode restored
    assert res["positions"] == 10 * math.ceil(0.75 * L) and res["mode"] == 3
    assert 0 <= res["acc"] <= 100 and 0 <= res["baseline"] <= 100
    # the same seed gives the same masks, hence the same numbers
    assert masked_token_accuracy(model, ids, 0.75, seed=1, batch_size=4) == res
    constant = torch.full((4, L), 7)
    assert masked_token_accuracy(model, constant, 0.5, seed=0)["baseline"] == 100.0


def test_masked_accuracy_probabilities_match_a_direct_computation():
    model = tiny().eval()
    ids = torch.randint(0, K, (6, L), generator=torch.Generator().manual_seed(1))
    res = masked_token_accuracy(model, ids, 0.75, seed=2, batch_size=6)  # one batch: one mask draw
    with torch.no_grad():
        _, logits, mask = model(ids, ratio=0.75, generator=torch.Generator().manual_seed(2))
    m = mask.bool()
    p = logits[m].float().softmax(-1)  # (masked positions, K)
    assert res["nll"] == pytest.approx(float(F.cross_entropy(logits[m].float(), ids[m])), rel=1e-5)
    assert res["p_true"] == pytest.approx(float(p.gather(1, ids[m][:, None]).mean()), rel=1e-5)
    assert res["entropy"] == pytest.approx(float(-(p * p.log()).sum(-1).mean()), rel=1e-5)
    assert 0 < res["entropy"] <= math.log(K) + 1e-5 and 0 < res["p_true"] < 1


def test_token_features_and_probe():
    model = tiny()
    ids = torch.randint(0, K, (40, L), generator=torch.Generator().manual_seed(0))
    feats = token_features(model, ids, batch_size=16)
    assert set(feats) == {"avg", "c0", "block_1", "block_2"} and feats["avg"].shape == (40, 32)
    assert set(token_features(model, ids, keys=("avg",))) == {"avg"}

    images = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)  # never read: the probe reads the ids' features
    data = SimpleNamespace(train_images=images[:30], train_labels=torch.arange(30) % 3,
                           test_images=images[30:], test_labels=torch.arange(10) % 3)
    probe = ProbeData(data, ProbeConfig(train_size=0, test_size=0, epochs=2, batch_size=8))
    acc = probe_tokens(probe, model, ids[:30], ids[30:], keys=("avg", "block_1"))
    assert set(acc) == {"avg", "block_1"} and all(0 <= v <= 100 for v in acc.values())


def test_generate_in_batches():
    model = tiny()
    ids = generate(model, 5, steps=3, temperature=1.0, seed=0, batch_size=2)
    assert ids.shape == (5, L) and ids.min() >= 0 and ids.max() < K
    assert torch.equal(generate(model, 5, steps=3, temperature=1.0, seed=0, batch_size=2), ids)


def test_two_seeds_score_in_the_same_space(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    cfg = load_preset("smoke", {"fd_classifier": {"width": 4, "feature_dim": 8},
                                "fd_classifier_train": {"steps": 2, "batch_size": 8, "warmup_steps": 1},
                                "generation": {"samples": 24, "reference": 60, "noise_seeds": 2, "kid_subsets": 3,
                                               "steps": 2, "batch_size": 12}})
    data = make_shapes(120, 40, 32, seed=0)
    torch.manual_seed(0)
    vq = VQGAN(VQGANConfig(channels=16, norm_groups=8, codebook_size=K, code_dim=8, init="random")).eval()
    model = MAGE(MAGEConfig(codebook_size=K, num_tokens=64, dim=32, depth=1, heads=2, decoder_depth=1)).eval()
    scorers = [GenerationScorer(SimpleNamespace(cfg=cfg, seed=s, data=data, device="cpu"), vq) for s in (0, 3)]
    a, b = scorers
    assert len(list((tmp_path / "shared" / "models").glob("fd-classifier-*"))) == 1  # one network, not one per seed
    imgs = data.test_images[:10]
    assert torch.equal(classifier_features(a.classifier, imgs), classifier_features(b.classifier, imgs))
    assert torch.equal(a.ref.ref_features, b.ref.ref_features) and torch.equal(a.real_images, b.real_images)
    assert a.real_metrics == b.real_metrics and a.real == a.real_metrics["fd"]
    assert set(a.metrics(imgs)) == {"fd", "kid", "kid_std", "precision", "recall"}
    # only the samples follow the run's seed
    assert not torch.equal(a.samples(model), b.samples(model)) and torch.equal(a.samples(model), b.samples(model, seed=0))
    noise = a.sampling_noise(model, a.metrics(a.samples(untrained := model)))
    assert noise["seeds"] == [0, 1000] and len(noise["fd"]) == len(noise["kid"]) == 2
    assert noise["fd_std"] >= 0 and noise["fd_gap"] == a.metrics(a.samples(untrained))["fd"] - a.real
    first = a.metrics(a.samples(model))
    assert a.sampling_noise(model, first, first=first)["fd"][0] == first["fd"]
    # the training views' own score: fixed by its seed, and it moves with the crop strength
    weak = a.views_score((0.8, 1.0))
    assert weak == a.views_score((0.8, 1.0)) == b.views_score((0.8, 1.0)) and weak >= 0
    assert a.views_score((0.2, 1.0)) != weak


def test_untrained_anchor_is_seeded_and_averaged():
    # Three fixed initialisations, whatever the caller drew before, and the caller's random state untouched.
    build = lambda: torch.nn.Linear(4, 3)  # noqa: E731
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = untrained_encoders(build)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.rand(5)  # the caller draws: the anchors stay the same
    again = untrained_encoders(build)
    assert len(first) == 3 and all(torch.equal(a.weight, b.weight) for a, b in zip(first, again))
    assert not torch.equal(first[0].weight, first[1].weight)
