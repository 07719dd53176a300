"""Jupyter's save hook for the course's committed notebooks: a save keeps their inputs, never their run.

JupyterLab autosaves an open notebook every two minutes once it is dirty, and running a cell makes it
dirty, so without this hook a Run All writes every output (megabytes of figures) into the tracked
``notebooks/*.ipynb``. This module is a Jupyter server extension, enabled by
``jupyter-config/jupyter_server_config.d/mage_lite.json``. ``python -m mage_lite lab`` starts JupyterLab
at the repository's root with that folder on ``JUPYTER_CONFIG_PATH`` (Jupyter reads no config from the
folder it is started in, an editable install puts no config in the environment, and a ``.d`` file can
only enable extensions); a plain ``jupyter lab`` works as well, without the hook. Loaded after jupytext's extension (extensions load in
alphabetical order), it registers :func:`pre_save_hook` with the server's contents manager, which
runs it on every save. For a course notebook the hook drops what running it added:

- each code cell's outputs and execution count, and Lab's timing metadata (``execution``);
- saved widget state (``metadata.widgets``);
- a ``language_info`` other than the committed one: the kernel reports its own Python version, so
  a save under another Python would otherwise change the file.

jupytext's contents manager (``ipynb,py:percent`` pairs) calls the hook for the ``.ipynb`` it writes;
the paired ``.py`` holds no outputs. What a student types in a cell is saved as usual.
A course notebook is an ``.ipynb`` with its paired ``.py`` beside it, in ``notebooks/`` or below, in a
checkout (a folder that holds ``mage_lite/__init__.py``); every other notebook is saved untouched.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "jupyter-config"  # holds jupyter_server_config.d/mage_lite.json, which enables this extension


def course_notebook(os_path: str | Path) -> bool:
    """Whether the file at ``os_path`` is one of the course's committed notebooks."""
    path = Path(os_path).resolve()
    if path.suffix != ".ipynb" or not path.with_suffix(".py").is_file():
        return False
    return any(d.name == "notebooks" and (d.parent / "mage_lite" / "__init__.py").is_file()
               for d in path.parents)


def strip_run(nb: dict, committed: dict | None = None) -> None:
    """Remove in place what running ``nb`` added; ``committed`` is the notebook as it is on disk, if any."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    meta = nb.setdefault("metadata", {})
    meta.pop("widgets", None)
    kept = (committed or {}).get("metadata", {}).get("language_info")
    if kept is not None:
        meta["language_info"] = kept


def pre_save_hook(model: dict, path: str, contents_manager, **kwargs) -> None:
    """``ContentsManager.pre_save_hook``: strip a course notebook's run before it is written."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    os_path = Path(contents_manager._get_os_path(path))
    if not course_notebook(os_path):
        return
    try:
        committed = json.loads(os_path.read_text(encoding="utf-8")) if os_path.is_file() else None
    except (OSError, ValueError):
        committed = None
    strip_run(model["content"], committed)


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp) -> None:
    serverapp.contents_manager.register_pre_save_hook(pre_save_hook)
    serverapp.log.info("mage_lite: course notebooks are saved without outputs (%s)", __name__)


def main(argv: list[str] | None = None) -> int:
    """``python -m mage_lite lab [jupyter lab options]``: JupyterLab at the repository's root, this hook enabled."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print("usage: python -m mage_lite lab [any `jupyter lab` option]\n\n" + __doc__.split("\n")[0])
        return 0
    if shutil.which("jupyter") is None and not (Path(sys.executable).parent / "jupyter").exists():
        print("error: JupyterLab is not installed in this environment; run pip install -e \".[dev]\" first", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (str(CONFIG_DIR), env.get("JUPYTER_CONFIG_PATH", "")) if p)
    try:
        return subprocess.call([sys.executable, "-m", "jupyter", "lab", *argv], cwd=REPO, env=env)
    except KeyboardInterrupt:
        return 130
