"""The budget curve: MAE and MAGE trained for the same epochs, measured at each budget."""

import pytest

from mage_lite import budget_curve
from mage_lite.config import load_preset


def test_a_budget_is_the_same_epochs_for_both_models_with_the_presets_schedule_shape():
    o = budget_curve.budget_overrides("ci", 2)
    cfg = load_preset("ci", o)
    for t in (cfg.mae_train, cfg.mage_train):
        assert t.steps * t.batch_size == pytest.approx(2 * 50000, rel=0.01)
        assert t.warmup_steps == round(0.05 * t.steps)
    # the token bank keeps at least one augmented view per epoch, and the preset's own views otherwise
    assert load_preset("ci", budget_curve.budget_overrides("ci", 8)).bank.views == 8
    assert "bank.views" not in o and cfg.bank.views == load_preset("ci").bank.views


@pytest.mark.slow
def test_smoke_curve_measures_each_point_and_renders(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "curve.json"
    args = ["--preset", "smoke", "--epochs", "0.5", "1", "--seeds", "0", "--out", str(out)]
    assert budget_curve.main(args) == 0
    results = budget_curve.load_json(out)
    points = results["points"]
    assert sorted(points) == ["0.5/0", "1/0"]
    for p in points.values():
        assert p["mae"]["epochs"] == pytest.approx(p["mage_result"]["mage"]["epochs"], rel=0.02)  # equal budgets
        assert p["mae"]["epochs"] == pytest.approx(p["epochs"], rel=0.05)
        assert 0 <= p["mage_result"]["mode_share"] <= 1 and 0 <= p["mae"]["probe"] <= 100
    table = budget_curve.render_table(results)
    assert table.count("\n| 0.5 |") + table.count("\n| 1 |") == 2
    assert out.with_suffix(".png").stat().st_size > 5_000
    capsys.readouterr()
    assert budget_curve.main(args) == 0  # a rerun measures nothing again
    assert capsys.readouterr().out.count("measured earlier, kept") == 2


def test_bad_budgets_get_one_line(capsys):
    assert budget_curve.main(["--preset", "smoke", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --epochs must be positive")


def test_the_readme_budget_table_is_the_committed_curve():
    from mage_lite.artifacts import REPO_ROOT, block_between, load_json

    committed = REPO_ROOT / "reports" / "budget" / "ci.json"
    text = block_between((REPO_ROOT / "README.md").read_text(), budget_curve.TABLE_START, budget_curve.TABLE_END)
    if not committed.exists():
        assert text.startswith("Not measured yet") and not any(c.isdigit() for c in text.replace("budget/ci", ""))
    else:
        assert text == budget_curve.render_table(load_json(committed)).strip()


def _point(epochs, mae, mage, inputs):
    return {"epochs": epochs, "mae": {"probe": mae},
            "mage_result": {"probe_mage": mage, "probe_inputs": {"code_vectors": inputs}}}


def test_findings_say_how_the_gap_moves_and_when_mage_passes_its_inputs():
    points = {"1/0": _point(1, 40, 30, 38), "2/0": _point(2, 44, 39, 38), "4/0": _point(4, 46, 42, 38)}
    text = budget_curve.findings({"points": points})
    assert "from 1 to 4 epochs the MAGE − MAE probe gap narrowed: -10.0 -> -4.0 points" in text
    assert "above the probe on its flattened input code vectors from 2 epochs on" in text
    points = {"1/0": _point(1, 40, 30, 38), "2/0": _point(2, 41, 29, 38)}
    text = budget_curve.findings({"points": points})
    assert "did not narrow" in text and "stays below" in text
