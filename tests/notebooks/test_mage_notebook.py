"""Notebook 03 (MAGE) executed with papermill: in smoke always, in ci on real CIFAR-10 with MAGE_LITE_CI_NOTEBOOKS=all."""

import pytest

from conftest import metrics

pytestmark = pytest.mark.slow

NB = "03_mage_variable_masking"
KEYS = ["masked_acc", "masked_acc_baseline", "loss_first", "loss_last", "fd_classifier_mage", "fd_classifier_untrained",
        "fd_classifier_real", "fd_classifier_recon", "fd_classifier_fixed075", "probe_mage", "probe_mae", "probe_pixels",
        "probe_random_encoder", "probe_mage_fixed075", "probe_blocks_mage", "probe_blocks_mae",
        "fd_classifier_test_acc", "train_img_per_s",
        # KID and precision/recall in the same (shared) feature network, and the measured sampling noise
        "kid_mage", "kid_mage_std", "kid_untrained", "kid_real", "kid_recon", "kid_fixed075",
        "precision_mage", "recall_mage", "precision_untrained", "recall_untrained", "precision_recon", "recall_recon",
        "precision_real", "recall_real", "fd_classifier_mage_seeds", "kid_mage_seeds", "generation_noise",
        # the [C]-padding trap (docs/method.md 7.2)
        "mode_share", "masked_similarity", "mode_share_untrained", "masked_similarity_untrained"]
FIGURES = ["mask_ratio", "sequences", "training", "reconstructions", "samples", "decoding_steps", "inpainting",
           "precision_recall", "probe", "ablation", "generation_scores", "trap"]


def test_smoke_03_logs_every_key_and_figure(smoke_runs):
    m = metrics(smoke_runs, NB)
    missing = [k for k in KEYS if k not in m]
    assert not missing, missing
    assert set(m["probe_blocks_mage"]) == {"block_1", "block_2"} and set(m["probe_blocks_mae"]) == {"block_1", "block_2"}
    assert 0.67 < m["mask_ratio_mean"] < 0.72  # the truncated Gaussian's mean, about 0.69
    assert m["fd_classifier_real"] >= 0 and m["masked_acc_eval_ratio"] == 0.75
    noise = m["generation_noise"]
    assert len(m["fd_classifier_mage_seeds"]) == len(m["kid_mage_seeds"]) == len(noise["seeds"]) == 3
    assert m["fd_classifier_mage_seeds"][0] == m["fd_classifier_mage"]  # the run's own samples are the first seed
    assert all(0 <= m[f"{k}_{s}"] <= 1 for k in ("precision", "recall") for s in ("mage", "untrained", "recon", "real"))
    assert 0 <= m["mode_share"] <= 1 and 0 <= m["mode_share_untrained"] <= 1  # the [C]-padding trap's diagnostic
    # the other padding was trained and measured at the same budget
    assert m["other_padding"] == "mask_token" and 0 <= m["mode_share_other_padding"] <= 1, m
    # ... and probed and scored like the main model: the report's padding rows read these from the base run
    assert 0 <= m["probe_mage_other_padding"] <= 100 and m["fd_classifier_other_padding"] >= 0 and m["kid_other_padding"] > -1, m
    for name in FIGURES:
        assert (smoke_runs / NB / "seed0" / f"{name}.png").stat().st_size > 5_000, name


def test_ci_03_mage_reconstructs_and_generates(ci_runs_all):
    m = metrics(ci_runs_all, NB)
    # Issue 11's bar for a MAGE that learns (ci: a one-epoch tokenizer, MAGE at the preset's budget, the
    # preset's decoder position embedding): clearly above the most-frequent-code baseline on the same
    # masked test positions, out of the [C]-padding trap, and a probe above the random encoder's on the
    # same tokens (the untrained model's probe varies by about +-1 point with its initialisation).
    assert m["masked_acc"] > 2 * m["masked_acc_baseline"], m
    assert m["mode_share"] < 0.5 and m["mode_share"] > m["mode_share_true"], m
    assert m["probe_mage"] >= m["probe_random_encoder"] + 3, m
    assert m["budget_mismatches"] == [] and m["budgets"]["mae"]["images"] == m["budgets"]["mage"]["images"], m
    # ci leaves out the ablation models (the report measures them): none was trained or logged
    assert "mode_share_other_padding" not in m and "probe_mage_fixed075" not in m, m
    assert m["fd_classifier_mage"] < m["fd_classifier_untrained"], m
    assert m["fd_classifier_real"] < m["fd_classifier_recon"] and m["fd_classifier_real"] < m["fd_classifier_mage"], m
    assert m["fd_classifier_test_acc"] >= 60, m  # issue 12's bar for the shared feature network in ci (chance: 10 %)
    assert m["kid_real"] < m["kid_mage"] < m["kid_untrained"], m
    # real test images lie on the real manifold far more than samples do. (MAGE vs the untrained model is
    # not ordered at this budget: measured in ci, precision 0.794 vs 0.861 and recall 0.015 vs 0.013, both
    # near-mode generators; that is what notebook 03's precision/recall figure is for.)
    assert m["precision_real"] > m["precision_mage"] and m["recall_real"] > m["recall_mage"] + 0.5, m
    # ci's sample sizes are the report's: one model's sampling spread must stay within a fifth of the
    # untrained-to-real gap, or between-arm differences of that size are noise
    noise = m["generation_noise"]
    assert noise["fd_ratio"] <= 0.2 and noise["kid_ratio"] <= 0.2, noise
    assert m["loss_last"] < m["loss_first"], m
