"""The generation study (issue 28) measures cached models only: the ladder, every decoding setting, the first
decoding step, and the best setting drawn again with other seeds; it resumes and trains nothing."""

import math

import pytest
import torch

from mage_lite.artifacts import load_json
from mage_lite.lab import budget_curve, generation_study


def test_floors_draw_from_the_marginals_they_name():
    ids = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 1]])  # (N=4, L=2), K=3: position 0 always code 0
    code, per_pos = generation_study.token_marginals(ids, 3)
    assert torch.allclose(per_pos[0], torch.tensor([5.0, 1, 1], dtype=torch.float64) / 7)  # add-one smoothed
    assert torch.allclose(code, per_pos.mean(0))
    drawn = generation_study.floor_ids(per_pos, 4000, 2, seed=0)  # (4000, 2)
    assert drawn.shape == (4000, 2) and abs((drawn[:, 0] == 0).float().mean() - 5 / 7) < 0.03
    assert torch.equal(drawn, generation_study.floor_ids(per_pos, 4000, 2, seed=0))


def test_the_real_rows_are_a_random_subset_not_the_first_classes():
    labels = torch.arange(10).repeat_interleave(100)  # (1000,) ordered by class, as the test images are
    images = torch.arange(1000)
    picked, again = generation_study.same_rows(200, labels, images)
    assert torch.equal(labels[again], picked) and len(picked.unique()) == 10  # every class, the same rows in both


def test_first_step_of_a_model_that_predicts_the_marginal_has_no_information_beyond_it():
    from types import SimpleNamespace

    class Marginal(torch.nn.Module):
        def __init__(self, probs):
            super().__init__()
            self.cfg, self.mask_id = SimpleNamespace(num_tokens=probs.shape[0], codebook_size=probs.shape[1]), probs.shape[1]
            self.logp = torch.nn.Parameter(probs.log().float())

        def logits_for(self, ids):
            return self.logp[None].expand(ids.shape[0], -1, -1)

    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    f = generation_study.first_step(Marginal(probs), probs)
    assert abs(f["kl_from_position_marginal"]) < 1e-6 and abs(f["entropy"] - f["entropy_position_marginal"]) < 1e-6
    assert f["distinct_argmax"] == 2 and f["entropy"] < f["uniform"]


@pytest.mark.slow
def test_smoke_study_measures_cached_models_resumes_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MAGE_LITE_PRETRAINED", "")
    out = tmp_path / "study.json"
    args = ["--preset", "smoke", "--points", "mage/1/0", "--samples", "64", "--out", str(out)]
    assert generation_study.main(args) == 2  # nothing is trained yet, and the study trains nothing
    assert "not trained yet" in capsys.readouterr().err

    budget_curve.measure_curve("smoke", "", [("mage", 1.0, 0)], False, str(tmp_path / "curve.json"), "test")
    assert generation_study.main(args) == 0
    r = load_json(out)
    assert set(r["ladder"]) == {"real test images", "tokenizer reconstructions", "codebook marginal, drawn per token",
                                "each position's marginal, drawn per token", "untrained MAGE"}
    entry = r["models"]["mage/1/0"]
    assert set(entry["settings"]) == {generation_study.BASELINE} | {label for label, _ in generation_study.DECODING}
    best = entry["best"]["setting"]
    assert entry["settings"][best]["fd"] == min(m["fd"] for m in entry["settings"].values())
    assert len(generation_study.seeds_of(entry, best)) == 1 + len(generation_study.CONFIRM_SEEDS)
    assert r["ladder"]["real test images"]["fd"] < r["ladder"]["codebook marginal, drawn per token"]["fd"]
    assert entry["first_step"]["entropy"] <= entry["first_step"]["uniform"] + 1e-9
    text = generation_study.render(r)
    assert "mage/1/0" in text and text.count("\n| ") > 10
    assert entry["fully_masked_in_training"]["steps"] > 0 and "every token masked" in text
    assert (tmp_path / "study-samples.png").stat().st_size > 1000  # real, reconstructions, the model, a floor

    def measured_again(*a, **k):
        raise AssertionError("a finished study measured again")

    monkeypatch.setattr(generation_study.Study, "samples_metrics", measured_again)
    assert generation_study.main(args) == 0  # resumes: everything is in the output file


def test_bad_points_and_sample_counts_get_one_line(capsys):
    assert generation_study.main(["--points", "mae/8/0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_the_share_of_fully_masked_training_inputs_follows_the_ratio_distribution():
    from types import SimpleNamespace

    from mage_lite.lab.generation_study import fully_masked_share

    cfg = lambda spec: SimpleNamespace(mask_ratio=spec, num_tokens=64)  # noqa: E731
    assert fully_masked_share(cfg("fixed:1.0")) == 1.0 and fully_masked_share(cfg("fixed:0.75")) == 0.0
    # MAGE's truncated Gaussian N(0.55, 0.25) on [0.5, 1]: all 64 masked when the ratio exceeds 63/64
    phi = lambda x: 0.5 * (1 + math.erf((x - 0.55) / (0.25 * math.sqrt(2))))  # noqa: E731
    exact = (phi(1.0) - phi(63 / 64)) / (phi(1.0) - phi(0.5))
    assert abs(fully_masked_share(cfg("truncnorm")) - exact) < 0.001 and 0.005 < exact < 0.02


def test_the_results_page_shows_the_committed_study():
    from mage_lite.artifacts import REPO_ROOT
    from mage_lite.lab.readme import read_block

    committed = REPO_ROOT / "reports" / "generation" / "cpu.json"
    if not committed.exists():
        pytest.skip("no committed generation study")
    assert read_block(generation_study.BLOCK) == generation_study.render(load_json(committed)).strip(), (
        "docs/results.md's generation study differs from its JSON: run python -m mage_lite generation-study "
        "--render reports/generation/cpu.json")


def test_rendering_a_wrong_record_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"samples": 3}')
    assert generation_study.main(["--render", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a generation study's JSON" in err


def test_notebook_03_shows_the_committed_ladder():
    from mage_lite.artifacts import REPO_ROOT
    from mage_lite.lab.readme import read_block

    committed = REPO_ROOT / "reports" / "generation" / "cpu.json"
    if not committed.exists():
        pytest.skip("no committed generation study")
    text = generation_study.NOTEBOOK.read_text()
    assert read_block(generation_study.BLOCK, text) == generation_study.notebook_text(load_json(committed)).strip()
    assert "| tokenizer reconstructions |" in generation_study.render_ladder(load_json(committed))
