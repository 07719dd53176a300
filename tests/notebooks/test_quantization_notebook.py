"""Notebook 05 (quantization shortcut) executed with papermill: in smoke always, in ci on real CIFAR-10 with MAGE_LITE_CI_NOTEBOOKS=all (CI runs ci only for 00-03).

The direction of the comparison is reported by the notebook, not forced here: these tests check
that both variants trained and that both quantities were measured."""

import math

import pytest

from conftest import metrics

pytestmark = pytest.mark.slow

NB = "05_quantization_shortcut"
SHORTCUT = ["neighbour_r2_continuous", "neighbour_r2_quantized", "neighbour_id_from_continuous",
            "neighbour_id_from_quantized", "neighbour_id_majority"]
MODELS = ["loss_first_tokens", "loss_last_tokens", "loss_first_continuous", "loss_last_continuous", "masked_acc_tokens",
          "masked_acc_continuous", "probe_tokens", "probe_continuous"] + [
          f"masked_{k}_{arm}" for k in ("nll", "p_true", "entropy") for arm in ("tokens", "continuous")]


def _check(m):
    missing = [k for k in SHORTCUT + MODELS if k not in m]
    assert not missing, missing
    assert all(math.isfinite(m[k]) for k in SHORTCUT + MODELS)
    assert all(0 <= m[k] <= 100 for k in SHORTCUT if "id_" in k)
    assert m["neighbour_r2_continuous"] <= 1 and m["neighbour_r2_quantized"] <= 1
    for arm in ("tokens", "continuous"):  # a probability, and a cross-entropy at least as large as -log of it
        assert 0 < m[f"masked_p_true_{arm}"] < 1 and m[f"masked_nll_{arm}"] >= -math.log(m[f"masked_p_true_{arm}"]) - 1e-6


def test_smoke_05_measures_both_models_and_the_shortcut(smoke_runs):
    m = metrics(smoke_runs, NB)
    _check(m)
    for name in ("shortcut", "training", "comparison"):
        assert (smoke_runs / NB / "seed0" / f"{name}.png").stat().st_size > 5_000, name
    models = [p.name for p in (smoke_runs / "models").iterdir()]
    assert any(n.startswith("mage-continuous-") for n in models), models


def test_ci_05_both_variants_trained_and_measured(ci_runs_all):
    m = metrics(ci_runs_all, NB)
    _check(m)
    for variant in ("tokens", "continuous"):  # both trained: their loss fell
        assert m[f"loss_last_{variant}"] < m[f"loss_first_{variant}"], (variant, m)
    assert m["probe_tokens"] > 10 and m["probe_continuous"] > 10  # above chance: the probes ran on real features
