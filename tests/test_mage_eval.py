"""Measuring a MAGE model: masked-token accuracy vs the most-frequent-code baseline, token probes, generation."""

import math

import torch

from mage_lite.mage import MAGE, MAGEConfig
from mage_lite.mage_eval import generate, masked_token_accuracy, probe_tokens, token_features
from mage_lite.probe import ProbeConfig

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


def test_token_features_and_probe():
    model = tiny()
    ids = torch.randint(0, K, (40, L), generator=torch.Generator().manual_seed(0))
    feats = token_features(model, ids, batch_size=16)
    assert set(feats) == {"avg", "c0", "block_1", "block_2"} and feats["avg"].shape == (40, 32)
    assert set(token_features(model, ids, keys=("avg",))) == {"avg"}

    class Probe:  # what probe_tokens reads from a ProbeData
        train_labels = torch.arange(30) % 3
        test_labels = torch.arange(10) % 3
        cfg = ProbeConfig(epochs=2, batch_size=8)
        seed = 0

    acc = probe_tokens(Probe(), model, ids[:30], ids[30:], keys=("avg", "block_1"))
    assert set(acc) == {"avg", "block_1"} and all(0 <= v <= 100 for v in acc.values())


def test_generate_in_batches():
    model = tiny()
    ids = generate(model, 5, steps=3, temperature=1.0, seed=0, batch_size=2)
    assert ids.shape == (5, L) and ids.min() >= 0 and ids.max() < K
    assert torch.equal(generate(model, 5, steps=3, temperature=1.0, seed=0, batch_size=2), ids)
