"""The budget curve: MAE and MAGE trained for the same epochs, measured at each budget."""

import pytest

from mage_lite.lab import budget_curve
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
    from mage_lite.artifacts import REPO_ROOT, load_json
    from mage_lite.lab.readme import read_block

    committed = REPO_ROOT / "reports" / "budget" / "ci.json"
    text = read_block(budget_curve.TABLE_BLOCK)
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


# --- the per-model curve at cpu sizes (issue 27) ---------------------------------------------------------------

def test_the_plan_covers_the_four_models_to_32_epochs_mae_and_mage_to_64_and_second_seeds_to_16():
    pts = budget_curve.plan(budget_curve.preset_epochs("cpu"))
    assert len(pts) == len(set(pts))
    for m in budget_curve.CURVE_MODELS:
        assert {e for mm, e, s in pts if mm == m and s == 0} >= {8, 16, 32}
    assert {(m, e) for m, e, s in pts if e == 64} == {("mae", 64), ("mage", 64)}
    assert {(m, e) for m, e, s in pts if s == 1} == {(m, e) for m in ("mae", "mage") for e in (8, 16)}
    # the preset's own budget (4.1 epochs) is the first point: the shipped models, measured without training
    assert pts[0] == ("mae", pytest.approx(4.096), 0)
    assert budget_curve.budget_overrides("cpu", pts[0][1]) == {
        "mae_train.steps": 3200, "mae_train.warmup_steps": 160, "mage_train.steps": 3200, "mage_train.warmup_steps": 160}


def test_curve_points_are_keyed_by_config_alone_so_a_refactor_does_not_orphan_them(tmp_path, monkeypatch):
    from mage_lite import artifacts
    from mage_lite.session import NotebookRun

    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    run = NotebookRun("budget_curve", "smoke", overrides={"mae_train.steps": 2}, code_in_key=False)
    run.mae()
    first = run.model_dirs["mae-normpix-r0.75"]
    assert (first / "model.pt").exists()

    def changed_code(*objs):  # any edit to the code behind the model
        return "0ther0ne"

    monkeypatch.setattr(artifacts, "code_fingerprint", changed_code)
    again = NotebookRun("budget_curve", "smoke", overrides={"mae_train.steps": 2}, code_in_key=False)
    again.mae()
    assert again.model_dirs["mae-normpix-r0.75"] == first  # reused, not retrained
    fingerprinted = NotebookRun("budget_curve", "smoke", overrides={"mae_train.steps": 2})
    fingerprinted.mae()
    assert fingerprinted.model_dirs["mae-normpix-r0.75"] != first  # notebooks still retrain on a code change


def _model_point(model, epochs, seed, probe, img_per_s=100.0):
    return {"model": model, "epochs": epochs, "seed": seed, "probe": probe, "knn": probe - 5, "img_per_s": img_per_s}


def _curve(points):
    return {"preset": "cpu", "command": "test", "points": {budget_curve.point_key(p["model"], p["epochs"], p["seed"]): p
                                                           for p in points}}


def test_curve_findings_give_the_budget_where_a_model_passes_with_its_interval_or_the_gap_and_trend():
    pts = [_model_point(m, e, s, p) for m, e, s, p in (
        ("mae", 8, 0, 46), ("mae", 8, 1, 46.5), ("mage", 8, 0, 44), ("mage", 8, 1, 44.2),
        ("mae", 16, 0, 47), ("mae", 16, 1, 47.2), ("mage", 16, 0, 48.0), ("mage", 16, 1, 48.3))]
    text = budget_curve.render_curve(_curve(pts))
    assert "MAGE's probe passes MAE's first at 16 epochs (the shortest budget where the paired interval is above 0): " \
           "+1.0 points [+0.4, +1.7], 2 seeds" in text
    assert "| 8 | 46.2 ± 0.4 | 44.1 ± 0.1 |" in text
    pts = [_model_point(m, e, 0, p) for m, e, p in (("mae", 8, 46), ("mage", 8, 40), ("mae", 64, 47), ("mage", 64, 45))]
    text = budget_curve.render_curve(_curve(pts))
    assert "MAGE's probe passes MAE's? one seed so far: the gap at 64 epochs is -2.0 points (no interval yet), " \
           "narrowing from -6.0 at 8 epochs" in text
    pts = [_model_point(m, 8, s, p) for m, s, p in (("mae", 0, 46), ("mage", 0, 40), ("mae", 1, 46), ("mage", 1, 41))]
    assert "MAGE's probe passes MAE's: not within 8 epochs; the gap at 8 epochs is -5.5 points [-11.9, +0.9] " \
           "(inconclusive)" in budget_curve.render_curve(_curve(pts))
    assert "MAGE-C's probe passes MAGE's: not measured yet" in text


def test_status_lists_points_done_and_left_with_hours_from_measured_speed():
    pts = budget_curve.plan(budget_curve.preset_epochs("cpu"))
    done = _curve([_model_point("mae", pts[0][1], 0, 47, img_per_s=500.0)])
    text = budget_curve.status(done, pts)
    assert text.startswith(f"1 of {len(pts)} points done: mae/4.096/0")
    assert "mae 500 img/s" in text  # measured on this curve, not the default
    assert f"  mae/64/0: {64 * 50000 / 500 / 3600:.2f} h" in text


@pytest.mark.slow
def test_smoke_per_model_curve_measures_resumes_and_renders(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "curve.json"
    args = ["--per-model", "--preset", "smoke", "--models", "mae", "mage", "--epochs", "1", "--seeds", "0",
            "--generation", "--out", str(out)]
    assert budget_curve.main(args) == 0
    points = budget_curve.load_json(out)["points"]
    assert sorted(points) == ["mae/1/0", "mage/1/0"]
    mage = points["mage/1/0"]
    assert mage["budget"]["epochs"] == pytest.approx(points["mae/1/0"]["budget"]["epochs"])  # equal budgets
    assert 0 <= mage["mode_share"] <= 1 and mage["generation"]["model"]["fd"] > mage["generation"]["real"]["fd"]
    assert mage["probe_best_other"]["readout"] != "avg" and 0 <= mage["knn"] <= 100
    capsys.readouterr()
    assert budget_curve.main(args) == 0  # a rerun measures nothing again
    assert "budget curve:" not in capsys.readouterr().out


def test_the_readme_cpu_curve_is_the_committed_one():
    from mage_lite.artifacts import REPO_ROOT, load_json
    from mage_lite.lab.readme import read_block

    committed = REPO_ROOT / "reports" / "budget" / "cpu.json"
    text = read_block(budget_curve.CURVE_BLOCK)
    assert text == (budget_curve.render_curve(load_json(committed)).strip() if committed.exists() else "")
