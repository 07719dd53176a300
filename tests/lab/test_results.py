"""The README's Results section is rendered from committed metrics files, never copied by hand."""

import pytest

from mage_lite.artifacts import REPO_ROOT
from mage_lite.lab import records, results, runner
from mage_lite.lab.readme import read_block


def test_readme_results_are_the_published_metrics():
    assert read_block(results.RESULTS_BLOCK) == results.render().strip(), (
        "docs/results.md's Results differ from reports/*/: run python -m mage_lite results")
    assert read_block(results.COURSE_BLOCK) == results.render_course_map().strip()
    assert read_block(results.HEADLINE_BLOCK) == results.render_headline().strip(), (
        "README.md's headline differs from reports/*/: run python -m mage_lite results")


def test_the_headline_is_rows_of_the_results_tables():
    headline, full = results.render_headline(), results.render()
    for line in headline.splitlines()[3:]:  # past the header, the rule and the budget row
        cells = line.split(" | ")[1:]
        assert any(" | ".join(cells) in row for row in full.splitlines()), line
    assert headline.count("\n") == 2 + len(results.HEADLINE)


@pytest.mark.slow
def test_every_cell_is_logged_by_the_notebooks(smoke_runs, tmp_path, monkeypatch):
    # A renamed metric would turn a cell into "not measured": the smoke run logs every key the tables read.
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    runner.publish("smoke", tmp_path / "reports" / "smoke")
    text = results.render(tmp_path, presets=("smoke",))
    assert "not measured" not in text and "not run" not in text, text
    rows = sum(len(r) for r in results.TABLES.values()) + len(results.NB)
    assert text.count("\n| ") >= rows


def test_each_notebook_states_the_runtimes_its_published_runs_measured():
    for stem in results.NB.values():
        text = (REPO_ROOT / "notebooks" / f"{stem}.py").read_text()
        assert read_block(results.RUNTIME_BLOCK, text) == results.render_runtime(stem).strip(), (
            f"{stem}'s expected runtime differs from reports/*/timings.json: run python -m mage_lite results")


def _executed(path, start: str, end: str, text: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("pass")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb.cells = [cell]
    nb.metadata["papermill"] = {"start_time": start, "end_time": end}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _model(folder, written: str, steps_and_rates) -> None:
    import os
    from datetime import datetime

    from mage_lite.artifacts import save_json

    folder.mkdir(parents=True)
    save_json({"train": {"batch_size": 64}}, folder / "config.json")
    save_json([{"step": s, "img_per_s": r} for s, r in steps_and_rates], folder / "history.json")
    (folder / "model.pt").write_bytes(b"")
    t = datetime.fromisoformat(written).timestamp()
    os.utime(folder / "model.pt", (t, t))


def test_a_runtime_counts_models_a_stopped_run_trained_but_not_those_of_earlier_notebooks(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    models, books = tmp_path / "cpu" / "models", tmp_path / "cpu" / "notebooks"
    # trained by notebook 01 (inside its window); trained by a run that was stopped (no executed notebook covers it)
    _model(models / "mae-1", "2026-01-01T10:30:00+00:00", [(10, 64.0), (20, 32.0)])  # 10 s + 20 s
    _model(models / "vqgan-2", "2026-01-01T08:00:00+00:00", [(100, 64.0), (150, 32.0)])  # 100 s + 100 s
    _executed(books / "01_mae.ipynb", "2026-01-01T10:00:00+00:00", "2026-01-01T11:00:00+00:00", "trained it\n")
    _executed(books / "02_tok.ipynb", "2026-01-01T12:00:00+00:00", "2026-01-01T12:10:00+00:00",
              f"reusing vqgan trained earlier: {models / 'vqgan-2'}\nreusing mae trained earlier: {models / 'mae-1'}\n")
    _executed(books / "03_mage.ipynb", "2026-01-01T12:10:00+00:00", "2026-01-01T13:00:00+00:00",
              f"reusing vqgan trained earlier: {models / 'vqgan-2'}\n")
    assert records.trained_earlier("cpu") == {"02_tok": {"vqgan-2": 200.0}}  # once, by the first notebook to reuse it
    assert results.minutes({"seconds": 60.0, "trained_earlier": {"vqgan-2": 200.0}}) == pytest.approx(260 / 60)
    assert records.training_seconds(models / "mae-1") == pytest.approx(30.0)
