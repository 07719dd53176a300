"""The README's Results section is rendered from committed metrics files, never copied by hand."""

import pytest

from mage_lite import notebooks, results
from mage_lite.artifacts import REPO_ROOT, block_between


def test_readme_results_are_the_published_metrics():
    readme = (REPO_ROOT / "README.md").read_text()
    assert block_between(readme, results.RESULTS_START, results.RESULTS_END) == results.render().strip(), (
        "README.md's Results differ from reports/*/: run python -m mage_lite.results")
    assert block_between(readme, results.COURSE_START, results.COURSE_END) == results.render_course_map().strip()


@pytest.mark.slow
def test_every_cell_is_logged_by_the_notebooks(smoke_runs, tmp_path, monkeypatch):
    # A renamed metric would turn a cell into "not measured": the smoke run logs every key the tables read.
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    notebooks.publish("smoke", tmp_path / "reports" / "smoke")
    text = results.render(tmp_path, presets=("smoke",))
    assert "not measured" not in text and "not run" not in text, text
    rows = sum(len(r) for r in results.TABLES.values()) + len(results.NB)
    assert text.count("\n| ") >= rows


def test_each_notebook_states_the_runtimes_its_published_runs_measured():
    for stem in results.NB.values():
        text = (REPO_ROOT / "notebooks" / f"{stem}.py").read_text()
        assert block_between(text, results.RUNTIME_START, results.RUNTIME_END) == results.render_runtime(stem).strip(), (
            f"{stem}'s expected runtime differs from reports/*/timings.json: run python -m mage_lite.results")
