"""Every notebook executed with papermill in the smoke preset; notebooks 00 and 01 in the ci preset on
real CIFAR-10 in CI (CI=true) or when MAGE_LITE_CI_NOTEBOOKS=core (or all)."""

from pathlib import Path

import pytest

from conftest import metrics
from mage_lite.lab import runner
from mage_lite.config import ConfigError

pytestmark = pytest.mark.slow


def test_every_notebook_executes_in_smoke(smoke_runs):
    for book in runner.discover():
        assert (smoke_runs / "notebooks" / f"{book.stem}.ipynb").exists()
        assert (smoke_runs / "notebooks" / f"{book.stem}.html").stat().st_size > 10_000
        assert (smoke_runs / book.stem / "seed0" / "metrics.json").exists()
    assert "00_data_and_tools" in (smoke_runs / "summary.md").read_text()


def test_smoke_00_measures_the_anchors(smoke_runs):
    m = metrics(smoke_runs, "00_data_and_tools")
    assert m["n_classes"] == 10 and m["n_train"] == 2000
    assert 0 < m["probe_pixels"] <= 100 and 0 < m["probe_random_encoder"] <= 100


def test_smoke_01_trains_and_probes(smoke_runs):
    m = metrics(smoke_runs, "01_mae_baseline")
    assert m["loss_last_normpix"] < m["loss_first_normpix"]
    assert set(m["probe_blocks_mae"]) == {"block_1", "block_2"}
    assert (smoke_runs / "01_mae_baseline" / "seed0" / "mae_panel.png").exists()


def test_ci_00_real_cifar10(ci_runs):
    m = metrics(ci_runs, "00_data_and_tools")
    assert m["n_train"] == 50000 and m["n_test"] == 10000 and m["n_classes"] == 10
    assert m["probe_pixels"] > 30  # a linear model on CIFAR-10 pixels reaches about 40 %


def test_ci_01_mae_learns_a_representation(ci_runs):
    m = metrics(ci_runs, "01_mae_baseline")
    assert m["loss_last_normpix"] < 0.9 * m["loss_first_normpix"]
    assert m["loss_last_rawpix"] < 0.9 * m["loss_first_rawpix"]
    assert m["probe_normpix"] >= m["probe_random_encoder"] + 5, m


def test_unknown_notebook_parameter_is_refused():
    with pytest.raises(ConfigError, match="has no parameter 'epochs'"):
        runner.execute(runner.discover()[0], {"epochs": 3}, Path("/nonexistent"), progress=False)


def test_bad_preset_is_refused_before_any_kernel_starts(capsys):
    assert runner.main(["run", "--preset", "huge"]) == 2
    assert "choose one of smoke, ci, cpu, gpu, report" in capsys.readouterr().err


def test_failing_notebook_is_named_with_its_cell(tmp_path, monkeypatch):
    book = tmp_path / "99_broken.py"
    book.write_text('# %% tags=["parameters"]\npreset = "smoke"\nseed = 0\n\n# %%\nx = 1\n\n# %%\nraise ValueError("boom")\n')
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", tmp_path)
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(runner.NotebookFailed, match=r"99_broken failed in cell \d+ .*ValueError: boom"):
        runner.run("smoke", progress=False)


def test_summary_and_publish_carry_commands_metrics_and_figures(smoke_runs, tmp_path, monkeypatch):
    summary = (smoke_runs / "summary.md").read_text()
    assert "command: `python -m mage_lite run --preset smoke" in summary
    assert "| probe_pixels |" in summary
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    dest = runner.publish("smoke", tmp_path / "reports")
    assert (dest / "README.md").read_text().startswith("# mage-lite run summary")
    assert (dest / "01_mae_baseline" / "seed0" / "mae_panel.png").exists()
    assert not list(dest.rglob("*.pt"))  # no models; the executed notebooks, metrics and timings, for mage_lite.lab.results
    assert (dest / "notebooks" / "01_mae_baseline.ipynb").exists() and (dest / "timings.json").exists()
    assert (dest / "01_mae_baseline" / "seed0" / "metrics.json").exists()
    assert "[notebooks/01_mae_baseline.ipynb](notebooks/01_mae_baseline.ipynb)" in (dest / "README.md").read_text()
