"""Notebook 04 (MAGE-C) executed with papermill: in smoke always, in ci on real CIFAR-10 with MAGE_LITE_CI_NOTEBOOKS=all (CI runs ci only for 00-03)."""

import json
import math

import pytest

from conftest import metrics

pytestmark = pytest.mark.slow

NB = "04_contrastive_cotraining"
KEYS = ["contrastive_loss_first", "contrastive_loss_last", "view_match_first", "view_match_last", "probe_mage", "probe_mage_c",
        "probe_random_encoder", "knn_mage", "knn_mage_c", "knn_random_encoder", "fd_classifier_mage", "fd_classifier_mage_c",
        "fd_classifier_real", "probe_mage_crop08", "fd_classifier_mage_crop08", "fd_classifier_views", "fd_classifier_views_crop08",
        "sweep_weight", "sweep_temperature"]
FIGURES = ["views", "training", "probe", "retrieval", "samples", "sweeps", "crop_ablation"]


def test_smoke_04_logs_every_key_and_figure(smoke_runs):
    m = metrics(smoke_runs, NB)
    missing = [k for k in KEYS if k not in m]
    assert not missing, missing
    assert m["complete"] is True
    assert all(math.isfinite(m[k]) for k in KEYS if not k.startswith("sweep"))
    assert set(m["sweep_weight"]) == {"0.1"} and set(m["sweep_temperature"]) == {"0.2"}  # smoke sweeps nothing
    for name in FIGURES:
        assert (smoke_runs / NB / "seed0" / f"{name}.png").stat().st_size > 5_000, name


def test_smoke_04_reuses_notebook_03s_mage(smoke_runs):
    # exactly one default MAGE at the default crop: 04 reused 03's instead of training its own
    configs = [json.loads((p / "config.json").read_text()) for p in (smoke_runs / "models").glob("mage-truncnorm-*")]
    default = [c for c in configs if c["crop_scale"] == [0.2, 1.0] and c["model"]["padding"] == "cls"
               and c["model"]["loss_on"] == "masked" and c["model"]["input"] == "tokens"]
    assert len(default) == 1, configs


def test_ci_04_contrastive_loss_falls_and_mage_c_beats_the_random_encoder(ci_runs_all):
    m = metrics(ci_runs_all, NB)
    assert m["contrastive_loss_last"] < m["contrastive_loss_first"] - 0.3, m
    assert m["view_match_last"] > m["view_match_first"], m
    assert m["probe_mage_c"] > m["probe_random_encoder"], m
    assert m["fd_classifier_mage_c"] > m["fd_classifier_real"] and m["fd_classifier_mage"] > m["fd_classifier_real"], m
