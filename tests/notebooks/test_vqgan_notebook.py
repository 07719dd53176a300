"""Notebook 02 (VQGAN tokenizer) executed with papermill: in the smoke preset always, in the
ci preset on real CIFAR-10 when MAGE_LITE_CI_NOTEBOOKS=all."""

import math

import pytest

from conftest import metrics

pytestmark = pytest.mark.slow

STEM = "02_vqgan_tokenizer"
FIGURES = ("loss_curves", "reconstructions", "codebook_health", "collapse", "collapse_reconstructions",
           "token_grid", "single_codes")


def test_smoke_02_trains_and_evaluates_the_tokenizer(smoke_runs):
    m = metrics(smoke_runs, STEM)
    assert m["psnr_test"] > 0 and math.isfinite(m["psnr_test"])
    assert 0 < m["codebook_usage_test"] <= 1
    assert 1 <= m["perplexity_test"] <= m["config"]["vqgan"]["codebook_size"]
    assert 0 < m["codebook_usage_test_plain"] <= 1 and m["psnr_test_plain"] > 0
    for key in ("rec_loss_first", "rec_loss_last", "train_img_per_s", "psnr_reconstruction_baseline"):
        assert key in m, key
    for name in FIGURES:
        assert (smoke_runs / STEM / "seed0" / f"{name}.png").stat().st_size > 5_000, name


def test_smoke_02_tokenizer_is_the_artifact_later_notebooks_reuse(smoke_runs):
    # run.tokenizer() stored the default tokenizer under models/vqgan-<hash>/, complete (model.pt)
    done = sorted((smoke_runs / "models").glob("vqgan-*/model.pt"))
    names = {p.parent.name.rsplit("-", 1)[0] for p in done}
    assert names >= {"vqgan", "vqgan-plain"}, names


def test_ci_02_tokenizer_uses_its_codebook_and_reconstructs(ci_runs_all):
    m = metrics(ci_runs_all, STEM)
    assert m["codebook_usage_test"] >= 0.5, m["codebook_usage_test"]
    # the tokens carry more than a blur: above the upsampled 8 x 8 thumbnail's PSNR on the same images
    assert m["psnr_test"] > m["psnr_reconstruction_baseline"] + 0.5, m
    assert m["rec_loss_last"] < m["rec_loss_first"]
    assert "codebook_usage_test_plain" not in m  # ci leaves the plain quantizer out (cpu measures it)
