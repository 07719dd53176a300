"""Training budgets: every preset compares MAE, MAGE and MAGE-C at the same number of training
images and the same schedule shape, and a preset that does not is flagged."""

import pytest

from mage_lite.config import PRESET_NAMES, budget_mismatches, budgets, describe_budget, load_preset


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_compares_models_at_equal_budgets(name):
    p = load_preset(name)
    assert budget_mismatches(p) == []
    b = budgets(p)
    assert b["mae"]["images"] == b["mage"]["images"] == b["mage_c"]["images"] > 0


@pytest.mark.parametrize("name", ["ci", "cpu"])
def test_real_data_tokenizers_train_at_least_one_epoch(name):
    assert budgets(load_preset(name))["vqgan"]["epochs"] >= 1  # issue 11: a tokenizer worth its tokens


def test_unequal_budgets_are_flagged():
    p = load_preset("ci", {"mae_train.steps": 2 * load_preset("ci").mae_train.steps})
    problems = budget_mismatches(p)
    assert len(problems) == 2 and "mae sees" in problems[0] and "warms up" in problems[1]
    p = load_preset("ci", {"mage_train.warmup_steps": 0})
    assert any("but mage over 0%" in m for m in budget_mismatches(p))


def test_budget_is_stated_in_epochs():
    p = load_preset("ci", {"mage_train.steps": 100, "mage_train.batch_size": 50})
    assert budgets(p)["mage"]["epochs"] == pytest.approx(0.1)
    assert budgets(p, n_train=10000)["mage"]["epochs"] == pytest.approx(0.5)  # an image folder's own size
    assert describe_budget(p, "mage") == "0.10 epochs (100 steps x 50 images)"
    assert describe_budget(p, "mage_c") == "0.10 epochs (100 steps x 50 images x 2 views)"


def test_readme_budget_table_is_rendered_from_the_presets():
    from mage_lite.config import render_budget_table
    from mage_lite.lab.budget_table import BLOCK
    from mage_lite.lab.readme import read_block

    assert read_block(BLOCK) == render_budget_table().strip(), \
        "README's budget table is stale: run python -m mage_lite config"
