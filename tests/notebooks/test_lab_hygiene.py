"""Opening, running and saving a course notebook in JupyterLab leaves the repository as it was.

- Each committed ``.ipynb`` is already what Lab and jupytext write: read through jupytext's contents
  manager (as Lab opens it) and saved back, with the ``language_info`` the kernel reports, both halves
  of the ``ipynb,py:percent`` pair come out byte-identical.
- The save hook (``mage_lite.lab.notebook_hygiene``, installed by ``jupyter-config/``) drops what a run
  adds, so an autosave after Run All writes the committed bytes again; other notebooks keep outputs.
- ``mage_lite.progress.NotebookBar`` leaves no widget in a saved notebook: a closed bar is its last text
  line, or nothing for ``leave=False``.
"""

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from ipykernel.ipkernel import IPythonKernel
from jupyter_server.services.contents.largefilemanager import LargeFileManager
from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class
from traitlets.config.loader import JSONFileConfigLoader

from mage_lite.lab import notebook_hygiene
from mage_lite.lab.notebook_hygiene import course_notebook, pre_save_hook

REPO = Path(__file__).resolve().parents[2]
BOOKS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "notebooks").rglob("*.ipynb")
               if ".ipynb_checkpoints" not in p.parts)
SERVER_CONFIG = REPO / "jupyter-config" / "jupyter_server_config.d" / "mage_lite.json"
JupytextContentsManager = build_sync_jupytext_contents_manager_class(LargeFileManager)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the notebooks and the jupytext config in a folder that looks like a checkout."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(REPO / "jupytext.toml", root / "jupytext.toml")
    (root / "mage_lite").mkdir()
    (root / "mage_lite" / "__init__.py").write_text("")
    return root


class FakeServer:
    def __init__(self, contents_manager):
        self.contents_manager, self.log = contents_manager, contents_manager.log


def manager(root: Path, with_hook: bool) -> JupytextContentsManager:
    """The contents manager `jupyter lab` uses (jupytext over the file manager), with the hook registered
    as the server extension does when ``with_hook``."""
    cm = JupytextContentsManager(root_dir=str(root))
    if with_hook:
        notebook_hygiene._load_jupyter_server_extension(FakeServer(cm))
    return cm


def pair(root: Path, book: str) -> tuple[bytes, bytes]:
    ipynb = root / book
    return ipynb.read_bytes(), ipynb.with_suffix(".py").read_bytes()


def test_there_are_committed_notebooks():
    assert len(BOOKS) >= 12 and all(course_notebook(REPO / b) for b in BOOKS)


@pytest.mark.parametrize("book", BOOKS)
def test_committed_notebook_is_what_lab_writes(book):
    raw = (REPO / book).read_text(encoding="utf-8")
    nb = nbformat.reads(raw, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (nbformat.current_nbformat, nbformat.current_nbformat_minor)
    assert raw == nbformat.writes(nb) + "\n", "not in nbformat's own serialisation"
    assert nb.metadata.get("language_info", {}).get("name") == "python", "no language_info: Lab adds it on open"
    for key in ("codemirror_mode", "file_extension", "mimetype", "nbconvert_exporter", "pygments_lexer"):
        assert nb.metadata.language_info[key] == IPythonKernel.language_info[key], key
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_open_and_save_through_jupytext_changes_nothing(checkout):
    cm = manager(checkout, with_hook=False)
    for book in BOOKS:
        before = pair(checkout, book)
        model = cm.get(book)
        # what the kernel sets on connecting, in the committed Python version (another one is the hook's case)
        language_info = dict(IPythonKernel.language_info, version=model["content"]["metadata"]["language_info"]["version"])
        model["content"]["metadata"]["language_info"] = language_info
        cm.save({"type": "notebook", "format": "json", "content": model["content"]}, book)
        assert pair(checkout, book) == before, f"saving {book} as Lab does rewrites it"


def test_server_config_enables_the_extension_that_registers_the_hook():
    config = JSONFileConfigLoader(SERVER_CONFIG.name, str(SERVER_CONFIG.parent)).load_config()
    assert config.ServerApp.jpserver_extensions == {notebook_hygiene.__name__: True}
    assert notebook_hygiene._jupyter_server_extension_points() == [{"module": notebook_hygiene.__name__}]
    assert pre_save_hook in manager(REPO, with_hook=True)._pre_save_hooks


def ran(content: dict) -> dict:
    """``content`` as Lab holds it after Run All under another Python, with widget state saved."""
    nb = json.loads(json.dumps(content))
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * 1000},
                           {"output_type": "display_data", "metadata": {},
                            "data": {"application/vnd.jupyter.widget-view+json":
                                     {"model_id": "0f" * 16, "version_major": 2, "version_minor": 0},
                                     "text/plain": "  0%|          | 0/10"}}]
        cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00.000Z"}
    nb["metadata"]["language_info"]["version"] = "3.99.0"
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                 "version_minor": 0}}
    return nb


def test_autosave_after_run_all_writes_the_committed_bytes(checkout):
    cm = manager(checkout, with_hook=True)
    for book in BOOKS:
        before = pair(checkout, book)
        model = cm.get(book)
        cm.save({"type": "notebook", "format": "json", "content": ran(model["content"])}, book)
        assert pair(checkout, book) == before, f"an autosave after running {book} changes it"


def test_an_edit_is_saved_and_other_notebooks_keep_their_outputs(checkout):
    cm = manager(checkout, with_hook=True)
    book = BOOKS[0]
    content = ran(cm.get(book)["content"])
    content["cells"][-1]["source"] += "\n# a student's note"
    cm.save({"type": "notebook", "content": content}, book)
    assert "# a student's note" in (checkout / book).with_suffix(".py").read_text()
    saved = nbformat.read(checkout / book, as_version=4)
    assert "# a student's note" in saved.cells[-1].source and not any(c.get("outputs") for c in saved.cells)

    content = ran(cm.get(book)["content"])
    content["metadata"].pop("jupytext")  # an unpaired copy of the notebook
    cm.save({"type": "notebook", "content": content}, "notebooks/my_copy.ipynb")
    copy = nbformat.read(checkout / "notebooks" / "my_copy.ipynb", as_version=4)
    assert any(c.get("outputs") for c in copy.cells) and copy.metadata.language_info.version == "3.99.0"


def test_closed_progress_bars_leave_text_not_widgets(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import mage_lite.progress as progress\n"
        "assert progress.use_notebook_bars()\n"
        "from tqdm.auto import tqdm, trange\n"
        "for _ in tqdm(range(7), desc='kept'): pass\n"
        "for _ in trange(5, desc='short-lived', leave=False): pass\n"
        "for _ in tqdm(range(0), desc='disabled', disable=True): pass")])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                            ).execute()
    outputs = nb.cells[0].outputs
    assert all(o.output_type in ("display_data", "stream") for o in outputs), outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    shown = [o.data["text/plain"] for o in outputs if o.output_type == "display_data"]
    assert len(shown) == 2 and shown[0].startswith("kept: 100%") and "7/7" in shown[0] and shown[1] == "", shown


def test_the_lab_verb_starts_jupyterlab_at_the_root_with_the_hook_enabled(monkeypatch):
    import subprocess

    from mage_lite.lab import notebook_hygiene

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, cwd, env: calls.append((cmd, cwd, env)) or 0)
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "/elsewhere")
    assert notebook_hygiene.main(["--no-browser"]) == 0
    (cmd, cwd, env), = calls
    assert cmd[1:] == ["-m", "jupyter", "lab", "--no-browser"] and Path(cwd) == notebook_hygiene.REPO
    folders = env["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert folders == [str(notebook_hygiene.CONFIG_DIR), "/elsewhere"]
    enabled = json.loads((notebook_hygiene.CONFIG_DIR / "jupyter_server_config.d" / "mage_lite.json").read_text())
    assert enabled["ServerApp"]["jpserver_extensions"] == {"mage_lite.lab.notebook_hygiene": True}
