"""The solutions to the notebooks' exercises (notebooks/solutions/) are separate from the course
and execute in the smoke preset, reusing the models of the session's smoke run."""

import pytest

from mage_lite.lab import runner


def test_solutions_are_not_course_notebooks_and_cover_every_notebook():
    course, solutions = runner.discover(), runner.discover_solutions()
    assert solutions and not set(course) & set(solutions)
    assert [b.stem for b in runner.select(None)] == [b.stem for b in course]  # the runner's default: course only
    assert [b.stem[:2] for b in solutions] == [b.stem[:2] for b in course]


@pytest.mark.slow
@pytest.mark.parametrize("book", runner.discover_solutions(), ids=lambda p: p.stem)
def test_solutions_execute_in_smoke(book, smoke_runs, monkeypatch):
    # The smoke run's folder: the models its notebooks trained are reused, only the exercises' variants train.
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    out = runner.execute(book, {"preset": "smoke"}, smoke_runs / "solutions", progress=False)
    assert out.with_suffix(".html").stat().st_size > 10_000
    if book.stem.startswith("03"):  # notebook 03 trained the mask-token model: the solution reuses it by its name
        assert "reusing mage-truncnorm-mask_token trained earlier" in out.read_text()


def test_solutions_start_with_their_title():
    import json

    for book in runner.discover_solutions():
        first = json.loads(book.with_suffix(".ipynb").read_text())["cells"][0]
        assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# "), book.name
