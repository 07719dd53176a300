"""Generation metrics: the Fréchet distance formula, the FD classifier, the FID gate (never a download)."""

import pytest
import torch

from mage_lite import fd, gen_metrics
from mage_lite.data import make_shapes
from mage_lite.train import TrainConfig
from mage_lite.vqgan import VQGAN, VQGANConfig


def random_spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_identical_sets_are_at_distance_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert fd.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fd.frechet_distance(x, x.float()) == pytest.approx(0.0, abs=1e-6)


def test_diagonal_gaussians_closed_form():
    # commuting covariances: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = float((mu1 - mu2).pow(2).sum() + (s1.sqrt() - s2.sqrt()).pow(2).sum())
    assert fd.frechet_from_stats(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_general_gaussians_match_an_independent_route():
    # Tr((S1 S2)^(1/2)) = sum sqrt(eigenvalues of S1 S2), computed here with a general eig solver
    d = 6
    s1, s2 = random_spd(d, 1), random_spd(d, 2)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.full((d,), 0.5, dtype=torch.float64)
    tr_sqrt = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    expected = float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)
    got = fd.frechet_from_stats(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-9)
    assert fd.frechet_from_stats(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)  # symmetric


def test_samples_converge_to_the_closed_form():
    d, n = 4, 40000
    g = torch.Generator().manual_seed(3)
    s1, s2 = random_spd(d, 4), random_spd(d, 5)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=torch.float64)
    a = mu1 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    b = mu2 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    exact = fd.frechet_from_stats(mu1, s1, mu2, s2)
    assert fd.frechet_distance(a, b) == pytest.approx(exact, rel=0.03)


def test_bad_feature_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, D\) with N >= 2"):
        fd.frechet_distance(torch.zeros(1, 4), torch.zeros(5, 4))


# --- the FID gate --------------------------------------------------------------------------

def test_fid_is_skipped_without_torch_fidelity(monkeypatch, capsys):
    real_find_spec = fd.importlib.util.find_spec
    monkeypatch.setattr(fd.importlib.util, "find_spec", lambda name, *a: None if name == "torch_fidelity" else real_find_spec(name, *a))

    def no_download(*a, **k):
        raise AssertionError("the FID gate tried to download something")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    ok, message = fd.fid_status()
    assert not ok and "torch-fidelity is not installed" in message and "pip install torch-fidelity" in message
    imgs = torch.rand(4, 3, 32, 32)
    assert fd.fid(imgs, imgs) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("FID skipped")


def test_fid_is_skipped_when_the_weights_are_not_on_disk(monkeypatch, tmp_path):
    real_find_spec = fd.importlib.util.find_spec
    monkeypatch.setattr(fd.importlib.util, "find_spec", lambda name, *a: object() if name == "torch_fidelity" else real_find_spec(name, *a))
    monkeypatch.setenv(fd.FID_ENV, str(tmp_path / "missing.pth"))
    ok, message = fd.fid_status()
    assert not ok and "not on disk" in message and "never downloaded" in message
    assert fd.fid(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), verbose=False) is None


# --- the classifier and the helpers ------------------------------------------------------------

def test_classifier_trains_with_the_shared_loop_and_is_reused(tmp_path, capsys):
    data = make_shapes(256, 64, 32, seed=0)
    cfg = fd.FDClassifierConfig(width=4, feature_dim=16)
    train = TrainConfig(steps=4, batch_size=16, base_lr=1e-3, warmup_steps=1, ckpt_every=2, log_every=2)
    model, acc = fd.get_fd_classifier(data, cfg, train, tmp_path, progress=False)
    assert 0.0 <= acc <= 100.0 and not model.training
    assert all(not p.requires_grad for p in model.parameters())
    feats = fd.classifier_features(model, data.test_images[:10])
    assert feats.shape == (10, 16) and feats.dtype == torch.float64
    capsys.readouterr()
    again, acc2 = fd.get_fd_classifier(data, cfg, train, tmp_path, progress=False)
    assert "reusing fd-classifier" in capsys.readouterr().out and acc2 == pytest.approx(acc, abs=1e-3)
    assert torch.allclose(fd.classifier_features(again, data.test_images[:10]), feats)


def test_labeled_sampler_returns_augmented_pairs():
    data = make_shapes(64, 16, 32, seed=0)
    sampler = fd.LabeledSampler(data.train_images, data.train_labels, crop_scale=(0.6, 1.0))
    imgs, labels = sampler(8, torch.Generator().manual_seed(0))
    assert imgs.shape == (8, 3, 32, 32) and imgs.dtype == torch.float32 and 0 <= imgs.min() and imgs.max() <= 1
    assert labels.shape == (8,) and labels.dtype == torch.long


def test_fd_reference_scores_real_images_near_zero():
    data = make_shapes(400, 400, 32, seed=1)
    torch.manual_seed(0)
    clf = fd.FDClassifier(fd.FDClassifierConfig(width=4, feature_dim=8), num_classes=len(data.classes)).eval()
    ref = fd.FDReference(clf, data.train_images)
    assert ref.score(data.train_images) == pytest.approx(0.0, abs=1e-6)
    noise = torch.rand(400, 3, 32, 32)
    assert ref.score(noise) > ref.score(data.test_images)


def test_decode_ids_in_batches_matches_one_call():
    torch.manual_seed(0)
    vq = VQGAN(VQGANConfig(channels=16, norm_groups=8, codebook_size=16, code_dim=8, init="random")).eval()
    ids = torch.randint(0, 16, (5, 8, 8))
    out = fd.decode_ids(vq, ids.flatten(1), batch_size=2)
    with torch.no_grad():
        # Convolution kernels differ by batch size: the largest difference measured over 5 models, batch sizes
        # 1-4 and 1-2 threads was 3.6e-6 on an AMD EPYC (Zen 4, AVX-512) and under 1e-6 on Intel (AMX).
        # 1e-4 is ~30x that and still 40x below one 8-bit grey level (1/255): a wrong row would miss it by far.
        assert torch.allclose(out, vq.decode_ids(ids), atol=1e-4, rtol=0)
    assert out.shape == (5, 3, 32, 32) and 0 <= out.min() and out.max() <= 1 and not out.requires_grad


# --- the shared feature network ----------------------------------------------------------------

def test_feature_network_is_a_resnet_of_the_configured_size():
    cfg = fd.FDClassifierConfig(width=4, blocks=2, feature_dim=12)
    net = fd.FDClassifier(cfg, num_classes=10).eval()
    blocks = [m for m in net.modules() if isinstance(m, fd.ResidualBlock)]
    assert len(blocks) == 3 * 2 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) >= 13
    for side in (32, 48):  # global average pooling: any size works
        x = torch.rand(3, 3, side, side)
        assert net.features(x).shape == (3, 12) and net(x).shape == (3, 10)
    with pytest.raises(ValueError, match="blocks"):
        fd.FDClassifierConfig(blocks=0)


def test_the_cache_key_ignores_the_run_seed_and_one_network_is_shared(tmp_path, monkeypatch):
    data = make_shapes(128, 32, 32, seed=0)
    cfg = fd.FDClassifierConfig(width=4, feature_dim=8)
    train = TrainConfig(steps=2, batch_size=8, base_lr=1e-3, warmup_steps=1, ckpt_every=2, log_every=1)
    key = fd.feature_net_key(data, cfg, train)
    assert "seed" not in key and key["train_seed"] == fd.FEATURE_NET_SEED  # a constant, never the run's seed
    assert {"model", "train", "data", "image_size", "classes"} <= set(key)
    assert "seed" not in fd.get_fd_classifier.__code__.co_varnames[:fd.get_fd_classifier.__code__.co_argcount]
    # the default cache is the runs root's shared folder, not a preset's
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    assert fd.shared_models_dir() == tmp_path / "shared" / "models"
    torch.manual_seed(123)  # a run's global seed must not change the network either
    a, _ = fd.get_fd_classifier(data, cfg, train, progress=False)
    torch.manual_seed(456)
    b, _ = fd.get_fd_classifier(data, cfg, train, progress=False)
    assert len(list((tmp_path / "shared" / "models").glob("fd-classifier-*"))) == 1
    assert torch.equal(fd.classifier_features(a, data.test_images), fd.classifier_features(b, data.test_images))
    # trained again elsewhere: the fixed seed gives the same weights (exact on CPU)
    c, _ = fd.get_fd_classifier(data, cfg, train, tmp_path / "elsewhere", progress=False)
    assert torch.allclose(fd.classifier_features(c, data.test_images), fd.classifier_features(a, data.test_images))


def test_fd_reference_metrics_of_the_reference_itself():
    data = make_shapes(300, 300, 32, seed=1)
    torch.manual_seed(0)
    clf = fd.FDClassifier(fd.FDClassifierConfig(width=4, feature_dim=8), num_classes=len(data.classes)).eval()
    ref = fd.FDReference(clf, data.train_images, kid_subsets=10, kid_subset_size=100)
    assert ref.ref_features.shape == (300, 8)
    own = ref.metrics(data.train_images)
    assert set(own) == {"fd", "kid", "kid_std", "precision", "recall"}
    assert own["fd"] == pytest.approx(0.0, abs=1e-6) and own["precision"] == own["recall"] == 1.0
    noise = ref.metrics(torch.rand(300, 3, 32, 32))
    test = ref.metrics(data.test_images)
    assert noise["fd"] > test["fd"]
    assert ref.metrics(data.test_images) == test  # fixed subsets: the same images give the same numbers
    feats = ref.features(data.test_images)  # KID and P/R are gen_metrics' (tested there), on these features
    assert test["kid"] == gen_metrics.kid(feats, ref.ref_features, subsets=10, subset_size=100, seed=0).mean
    assert test["precision"] == gen_metrics.precision_recall(feats, ref.ref_features, k=3).precision  # 300 of 300


def test_concurrent_callers_train_the_shared_network_once(tmp_path, monkeypatch):
    import threading

    data = make_shapes(64, 16, 32, seed=0)
    cfg = fd.FDClassifierConfig(width=4, feature_dim=8)
    train = TrainConfig(steps=3, batch_size=8, base_lr=1e-3, warmup_steps=1, ckpt_every=3, log_every=1)
    calls = []
    real_fit = fd.fit
    monkeypatch.setattr(fd, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    threads = [threading.Thread(target=fd.get_fd_classifier, args=(data, cfg, train, tmp_path), kwargs={"progress": False})
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(list(tmp_path.glob("fd-classifier-*"))) == 1  # the second caller reused it
