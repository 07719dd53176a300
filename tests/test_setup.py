"""The project's own conventions: install files agree, the README and CI run the same test
command, and the paired notebooks are in sync and committed without outputs."""

import re
import tomllib
from pathlib import Path

import jupytext
import pytest
import yaml  # comes with jupytext

from mage_lite.lab import runner

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower()


def test_pyproject_and_environment_yml_agree():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip_reqs = {_name(r) for r in pip_block if not r.startswith("-e")}
    assert pip_reqs == wanted
    assert "-e ." in pip_block


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme)
    assert match, "the README must show its test command after a <!-- test-command --> marker"
    command = match.group(1).strip()
    ci_lines = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ci_lines[-1] == command


@pytest.mark.parametrize("book", runner.discover() + runner.discover_solutions(), ids=lambda p: p.stem)
def test_notebook_pair_in_sync_and_without_outputs(book):
    ipynb = book.with_suffix(".ipynb")
    assert ipynb.exists(), f"{book.name} has no paired {ipynb.name}: run jupytext --sync {book}"
    src, paired = jupytext.read(book), jupytext.read(ipynb)
    assert [c.source for c in src.cells] == [c.source for c in paired.cells], f"out of sync: jupytext --sync {book}"
    raw = jupytext.read(ipynb, fmt="ipynb")
    assert all(not c.get("outputs") for c in raw.cells if c.cell_type == "code"), f"{ipynb.name} has outputs"
    names = runner.parameter_names(src)
    assert {"preset", "dataset", "seed", "device", "overrides"} <= names
