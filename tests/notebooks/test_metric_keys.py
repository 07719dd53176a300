"""The metric keys the lab reads are a contract the import graph cannot see: each key mage_lite.names declares
(every key the ablation report or the README's Results reads) is written literally in a run.log(...) call of
the notebook that owns it, so a search for the key finds where it is logged, and a renamed key fails here."""

import ast
import inspect
from pathlib import Path

import pytest

from mage_lite import names
from mage_lite.lab import results, runner
from mage_lite.lab.report import claims

REPO = Path(__file__).resolve().parents[2]


def logged_keys(stem: str) -> set[str]:
    """The keyword names of every ``run.log(...)`` call in the notebook's source (``**{...}`` spreads have none)."""
    tree = ast.parse((REPO / "notebooks" / f"{stem}.py").read_text())
    return {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "log" and isinstance(node.func.value, ast.Name) and node.func.value.id == "run"
            for kw in node.keywords if kw.arg}


@pytest.mark.parametrize("notebook", names.NOTEBOOKS, ids=lambda nb: nb.stem)
def test_every_key_the_lab_reads_is_logged_literally_by_its_notebook(notebook):
    missing = sorted(set(notebook.keys()) - logged_keys(notebook.stem))
    assert not missing, f"{notebook.stem} logs no literal {missing} (mage_lite.names declares them: the lab reads them)"


def test_each_declared_key_is_named_by_its_value():
    for notebook in names.NOTEBOOKS:
        assert all(getattr(notebook, key) == key for key in notebook.keys()), notebook.stem


def test_the_stems_are_the_course_notebooks():
    assert [nb.stem for nb in names.NOTEBOOKS] == [b.stem for b in runner.discover()]
    assert results.NB == names.STEMS
    assert {arm.stem for arm in claims.ARMS} <= {nb.stem for nb in names.NOTEBOOKS}


def test_report_and_results_spell_no_metric_key_of_their_own():
    # the keys they read come from mage_lite.names: no quoted key of a notebook in their source
    declared = {key for nb in names.NOTEBOOKS for key in nb.keys()}
    for module in (claims, results):
        quoted = {c.value for c in ast.walk(ast.parse(inspect.getsource(module))) if isinstance(c, ast.Constant)}
        assert not declared & quoted, f"{module.__name__} spells {sorted(declared & quoted)}: import them from mage_lite.names"
