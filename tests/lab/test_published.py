"""A published run (reports/<preset>/) shows what its own records say: each executed notebook's runtime header is
the one the course map renders, and no file carries the absolute paths of the machine that ran it."""

import json
import re
import shutil
from pathlib import Path

import pytest

from mage_lite.artifacts import REPO_ROOT
from mage_lite.lab import published, results
from mage_lite.lab.readme import read_block

REPORTS = REPO_ROOT / "reports"
BOOKS = sorted(REPORTS.glob("*/notebooks/*.ipynb"))
TEXT = (".md", ".ipynb", ".json", ".csv", ".txt")
# An absolute path of a machine: a home, work or temporary folder, or a Windows drive; not inside a URL
# (nothing but a quote, space, bracket, '=' or the like just before it; "\n" in a JSON file's text counts as one).
MACHINE = re.compile(r"(?:^|(?<=[\s\"'`(\[=,;:])|(?<=\\n)|(?<=\\t))"
                     r"(?:/(?:work|home|tmp|Users|root|mnt|srv|private|var/folders)/|[A-Z]:\\\\?(?:Users|home|tmp))")


def opening_markdown(book) -> str:
    nb = json.loads(book.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    return "".join(cell["source"])


def test_there_are_published_notebooks():
    assert {b.parent.parent.name for b in BOOKS} >= set(results.published()), "a published preset has no notebooks"


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: f"{b.parent.parent.name}/{b.stem}")
def test_each_published_notebook_states_the_runtimes_of_the_course_map(book):
    # the same line the source notebook carries (tests/lab/test_results.py), from the same timings as the course map
    assert read_block(results.RUNTIME_BLOCK, opening_markdown(book)) == published.runtime_line(book.stem), (
        f"{book} states other runtimes than reports/*/timings.json: run python -m mage_lite publish --refresh")
    source = (REPO_ROOT / "notebooks" / f"{book.stem}.py").read_text()
    assert "# " + published.runtime_line(book.stem) == read_block(results.RUNTIME_BLOCK, source)


def published_text_files() -> list:
    """Every committed text file under reports/: the published runs and every other command's records."""
    return sorted(f for f in REPORTS.rglob("*") if f.is_file() and f.suffix in TEXT)


def test_no_published_file_names_a_path_of_the_machine_that_ran_it():
    found = {f"{f.relative_to(REPO_ROOT)}: {m.group(0)}" for f in published_text_files()
             for m in MACHINE.finditer(f.read_text())}
    assert not found, (f"absolute paths in files under reports/ (a published run: python -m mage_lite publish --refresh; "
                       f"another record: mage_lite.lab.published.without_machine_paths where it is written): {sorted(found)[:5]}")


def test_records_written_for_reports_lose_the_machine_paths():
    record = {"source": f"image folder {Path.home()}/data/c.tar.gz", "out": [str(REPO_ROOT / "runs" / "x")],
              "elsewhere": "/work/shared/data/cifar10-jpg.tar.gz", "url": "https://example.org/tmp/x", "n": 3}
    assert published.without_machine_paths(record) == {
        "source": "image folder ~/data/c.tar.gz", "out": ["runs/x"], "elsewhere": "PATH/TO/cifar10-jpg.tar.gz",
        "url": "https://example.org/tmp/x", "n": 3}


def test_the_machine_path_pattern_leaves_urls_alone():
    assert MACHINE.search('"/work/x"') and MACHINE.search("in /tmp/a") and MACHINE.search("a\\n/home/u")
    assert MACHINE.search('"C:\\\\Users\\\\me"') and MACHINE.search("dataset=/root/x")
    assert not MACHINE.search("https://example.org/home/x") and not MACHINE.search("see runs/tmp/x")


def test_a_second_refresh_of_the_published_runs_changes_nothing(tmp_path):
    for preset, folder in results.published().items():
        copy = tmp_path / preset
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.png", "weights"))
        assert published.refresh(copy) == [], f"reports/{preset} is not refreshed: python -m mage_lite publish --refresh"


def fake_run(folder, runs, data):
    """A published run as publish copies it, before its refresh: one executed notebook, its metrics and timings."""
    stem = "01_mae_baseline"
    command = f"python -m mage_lite run --preset cpu --only 01 --dataset {data}/cifar10-jpg.tar.gz"
    nb = {"cells": [
        {"cell_type": "markdown", "id": "a", "metadata": {},
         "source": ["# 01 · MAE\n", "\n", "**Expected runtime**\n", "<!-- runtime -->\n",
                    "`smoke` seconds · `ci` not measured yet · `cpu` 13.8 min · `gpu` not measured yet\n",
                    "<!-- /runtime -->\n", "\n", "More text.\n"]},
        {"cell_type": "code", "execution_count": 1, "id": "b", "metadata": {}, "source": ["run = Run()"],
         "outputs": [{"name": "stdout", "output_type": "stream",
                      "text": [f"01_mae_baseline | preset cpu | outputs in {runs}/cpu/01_mae_baseline/seed0\n",
                               f"data: image folder {data}/cifar10-jpg.tar.gz: 50000 train\n",
                               f"reusing vqgan trained earlier: {runs}/shared/models/vqgan-1\n",
                               f"the code is {REPO_ROOT}/mage_lite/mae.py; see https://example.org/tmp/x\n",
                               "put the weights in /home/tester/.cache/torch/hub/checkpoints\n",
                               "or in /root/.cache/torch/hub/checkpoints\n",
                               "an image: /tmp/elsewhere/picture.png\n"]},
                     {"data": {"text/plain": ["0.4375"]}, "execution_count": 1, "metadata": {},
                      "output_type": "execute_result"}]}],
        "metadata": {"papermill": {"input_path": {"cells": [], "metadata": {}},
                                   "output_path": f"{runs}/cpu/notebooks/{stem}.ipynb",
                                   "parameters": {"dataset": f"{data}/cifar10-jpg.tar.gz", "preset": "cpu"}}},
        "nbformat": 4, "nbformat_minor": 5}
    (folder / "notebooks").mkdir(parents=True)
    (folder / "notebooks" / f"{stem}.ipynb").write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    (folder / stem / "seed0").mkdir(parents=True)
    metrics = {"dataset": {"source": f"image folder {data}/cifar10-jpg.tar.gz"}, "probe_mae": 31.234567891234}
    (folder / stem / "seed0" / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    (folder / "timings.json").write_text(json.dumps({stem: {"command": command, "seconds": 1849.3}}, indent=2) + "\n")
    (folder / "README.md").write_text(f"- command: `{command}`\n- executed notebook: [x](notebooks/{stem}.ipynb)\n")
    (folder / "weights").mkdir()
    (folder / "weights" / "manifest.json").write_text(f'{{"source": "{runs}"}}\n')  # not publish's: left alone
    return folder / "notebooks" / f"{stem}.ipynb"


def test_refresh_rewrites_the_header_and_the_paths_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/tester")
    monkeypatch.delenv("MAGE_LITE_DATA_DIR", raising=False)
    monkeypatch.delenv("MAGE_LITE_RUNS_DIR", raising=False)
    runs, data = "/tmp/pytest-of-someone/runs7", "/home/someone/datasets"
    book = fake_run(tmp_path / "cpu", runs, data)
    changed = published.refresh(tmp_path / "cpu")
    assert {p.name for p in changed} == {"01_mae_baseline.ipynb", "metrics.json", "timings.json", "README.md"}
    nb = json.loads(book.read_text())
    head = "".join(nb["cells"][0]["source"])
    assert read_block(results.RUNTIME_BLOCK, head) == published.runtime_line("01_mae_baseline")
    assert head.startswith("# 01 · MAE\n") and head.endswith("<!-- /runtime -->\n\nMore text.\n")
    assert "".join(nb["cells"][1]["outputs"][0]["text"]) == (
        "01_mae_baseline | preset cpu | outputs in runs/cpu/01_mae_baseline/seed0\n"
        "data: image folder PATH/TO/cifar10-jpg.tar.gz: 50000 train\n"
        "reusing vqgan trained earlier: runs/shared/models/vqgan-1\n"
        "the code is mage_lite/mae.py; see https://example.org/tmp/x\n"
        "put the weights in ~/.cache/torch/hub/checkpoints\n"
        "or in PATH/TO/checkpoints\n"  # /root is not this test's home: an unknown machine path, its last part kept
        "an image: PATH/TO/picture.png\n")
    assert nb["cells"][1]["outputs"][1]["data"] == {"text/plain": ["0.4375"]}
    assert nb["metadata"]["papermill"] == {"input_path": "notebooks/01_mae_baseline.py",
                                           "output_path": "runs/cpu/notebooks/01_mae_baseline.ipynb",
                                           "parameters": {"dataset": "PATH/TO/cifar10-jpg.tar.gz", "preset": "cpu"}}
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] == 5
    metrics = json.loads((tmp_path / "cpu" / "01_mae_baseline" / "seed0" / "metrics.json").read_text())
    assert metrics == {"dataset": {"source": "image folder PATH/TO/cifar10-jpg.tar.gz"}, "probe_mae": 31.234567891234}
    assert "--dataset PATH/TO/cifar10-jpg.tar.gz`" in (tmp_path / "cpu" / "README.md").read_text()
    assert runs in (tmp_path / "cpu" / "weights" / "manifest.json").read_text()
    files = {p: p.read_bytes() for p in published.published_files(tmp_path / "cpu")}
    assert published.refresh(tmp_path / "cpu") == []  # idempotent
    assert {p: p.read_bytes() for p in published.published_files(tmp_path / "cpu")} == files


def test_a_home_folder_becomes_a_tilde_and_the_repository_root_relative():
    folders = {"/home/me": "~", str(REPO_ROOT): "", "/home/me/runs-x": "runs"}
    text = f"{REPO_ROOT}/notebooks/a.py, {REPO_ROOT} and /home/me/.cache/x and /home/me/runs-x/cpu and /home/meg/y"
    assert published.relative_paths(text, folders) == (
        "notebooks/a.py, . and ~/.cache/x and runs/cpu and PATH/TO/y")


def test_publish_refreshes_what_it_copies(tmp_path, monkeypatch):
    from mage_lite.lab import runner

    runs = tmp_path / "runs"
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(runs))
    monkeypatch.delenv("MAGE_LITE_DATA_DIR", raising=False)
    fake_run(runs / "cpu", str(runs), "/home/someone/datasets")  # a finished run's folder holds the same files
    (runs / "cpu" / "summary.md").write_text((runs / "cpu" / "README.md").read_text())
    dest = runner.publish("cpu", tmp_path / "reports" / "cpu")
    book = dest / "notebooks" / "01_mae_baseline.ipynb"
    assert read_block(results.RUNTIME_BLOCK, opening_markdown(book)) == published.runtime_line("01_mae_baseline")
    assert not [f for f in published.published_files(dest) if MACHINE.search(f.read_text())]
    assert "outputs in runs/cpu/01_mae_baseline/seed0" in book.read_text()
    assert published.refresh(dest) == []
