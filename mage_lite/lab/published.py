"""A published run (``reports/<preset>/``) made to show only what its records say, on any machine.

    python -m mage_lite publish --preset cpu   # copies runs/cpu and refreshes every published run
    python -m mage_lite publish --refresh      # refreshes every published run, copying nothing

:func:`refresh` rewrites the files ``publish`` writes (README.md, timings.json, each notebook's
metrics.json and executed notebook) so that:

- each executed notebook's runtime block (its opening markdown cell, :data:`results.RUNTIME_BLOCK`) is
  what :func:`results.render_runtime` renders for the source notebook from the published timings, the
  line the README's course map agrees with (the block in the run's copy was the source's at run time);
- no absolute path of the machine that ran it is left: the repository root becomes repository-relative,
  the run's runs folder ``runs`` (where a default run writes), the data folder ``PATH/TO`` (as the
  README's commands write it), the home folder ``~``, and any other machine path ``PATH/TO/<its name>``.

papermill's copy of the input notebook (``metadata.papermill.input_path``, the source with its old
header) becomes the source's path. Nothing else changes: outputs, metrics and JSON layout stay as they
are, a file already right is not written, and a second refresh changes nothing.
"""

import json
import re
from pathlib import Path, PurePosixPath

from ..artifacts import REPO_ROOT, load_json, runs_root
from .readme import read_block, replace_block
from .results import PRESETS, RUNTIME_BLOCK, published, render_runtime

RUNS, DATA, HOME = "runs", "PATH/TO", "~"  # what the runs folder, the data folder and the home folder become
# A path of the machine that is left after the known folders are replaced (not inside a URL: no word, dot,
# colon or slash just before it); it becomes PATH/TO/<its last part>.
MACHINE_PATH = re.compile(r"(?<![\w.~/:-])(?:/(?:work|home|tmp|Users|root|mnt|private|var/folders)/|[A-Z]:\\)"
                          r"[^\s\"'`()\[\]<>,;]*")


def runtime_line(stem: str) -> str:
    """The runtime block's content in a notebook's markdown (the source's ``.py`` has it behind ``# ``)."""
    return render_runtime(stem).strip().removeprefix("# ")


def _absolute(path: str) -> bool:
    return isinstance(path, str) and path.startswith("/") and path.rstrip("/") != ""


def machine_folders(folder: Path) -> dict[str, str]:
    """{absolute folder: what it becomes} for the published run in ``folder``: the runs folder each executed
    notebook was written to (papermill's ``output_path``: ``<runs>/<preset>/notebooks/<stem>.ipynb``) and
    this process's one, the folder of each dataset the run read (its parameters, its commands) and the
    data folder (when outside the repository: one inside it stays repository-relative), the repository
    root and the home folder."""
    runs, datasets = [str(runs_root().absolute())], []
    timings = folder / "timings.json"
    if timings.exists():
        commands = [record.get("command", "") for record in load_json(timings).values()]
        datasets += [c.split("--dataset ")[1].split()[0] for c in commands if "--dataset " in c]
    for book in sorted(folder.glob("notebooks/*.ipynb")):
        paper = json.loads(book.read_text()).get("metadata", {}).get("papermill", {})
        written = paper.get("output_path")
        if _absolute(written) and PurePosixPath(written).parent.name == "notebooks":
            runs.append(str(PurePosixPath(written).parents[2]))
        datasets.append((paper.get("parameters") or {}).get("dataset"))
    from ..data import default_data_dir

    data = [str(default_data_dir().absolute())]
    data += [str(PurePosixPath(d).parent) for d in filter(_absolute, datasets)]
    out = {str(Path.home()): HOME, str(REPO_ROOT): ""}
    out.update({d: DATA for d in data if not _inside(d, str(REPO_ROOT))})
    out.update({r: RUNS for r in runs})
    return {root: new for root, new in out.items() if _absolute(root)}


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def relative_paths(text: str, folders: dict[str, str]) -> str:
    """``text`` with every path under one of ``folders`` written from that folder's replacement (the most
    specific folder first; "" means repository-relative), and any other machine path as ``PATH/TO/<name>``."""
    for root in sorted(folders, key=len, reverse=True):
        new = folders[root]
        pattern = re.compile(r"(?<![\w.~/:-])" + re.escape(root.rstrip("/")) + r"(/|(?![\w.-]))")
        text = pattern.sub(lambda m: (new + m.group(1)) if new else ("" if m.group(1) else "."), text)
    return MACHINE_PATH.sub(lambda m: DATA + "/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], text)


def without_machine_paths(record, folders: dict[str, str] | None = None):
    """A JSON-like ``record`` (a report's metrics, a check's results) with its machine paths written as
    :func:`relative_paths` writes them: the repository root relative, the home folder ``~``, any other
    ``PATH/TO/<name>``. For every record a command commits under reports/."""
    folders = {str(Path.home()): HOME, str(REPO_ROOT): ""} if folders is None else folders
    return _map_strings(record, lambda text: relative_paths(text, folders))


def _map_strings(obj, fix):
    if isinstance(obj, str):
        return fix(obj)
    if isinstance(obj, list):
        return [_map_strings(v, fix) for v in obj]
    if isinstance(obj, dict):
        return {fix(k): _map_strings(v, fix) for k, v in obj.items()}
    return obj


def _header(nb: dict, stem: str) -> None:
    """Rewrite the runtime block of ``nb``'s opening markdown cell (if it has one) from the published timings."""
    cell = next((c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"), None)
    if cell is None:
        return
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    try:
        read_block(RUNTIME_BLOCK, source)
    except ValueError:  # no runtime block: not one of the course's notebooks
        return
    new = replace_block(source, RUNTIME_BLOCK, runtime_line(stem))
    cell["source"] = new if isinstance(cell["source"], str) else new.splitlines(keepends=True)


def published_files(folder: Path) -> list[Path]:
    """The files ``publish`` writes in ``folder``: README.md, timings.json, metrics and executed notebooks
    (not the weights or the pretrained check, which their own commands write)."""
    files = [folder / "README.md", folder / "timings.json", *folder.glob("[0-9][0-9]_*/seed*/*.json"),
             *folder.glob("notebooks/*.ipynb")]
    return sorted(f for f in files if f.is_file())


def refresh(folder: Path, folders: dict[str, str] | None = None) -> list[Path]:
    """Rewrite the published run in ``folder`` as the module says (headers from the published timings,
    machine paths made relative); returns the files that changed."""
    folder = Path(folder)
    folders = machine_folders(folder) if folders is None else folders
    fix = lambda text: relative_paths(text, folders)  # noqa: E731
    changed = []
    for path in published_files(folder):
        old = path.read_text()
        if path.suffix == ".md":
            new = fix(old)
        else:
            data = json.loads(old)
            if path.suffix == ".ipynb":
                _header(data, path.stem)
                paper = data.get("metadata", {}).get("papermill", {})
                if isinstance(paper.get("input_path"), dict):  # papermill's copy of the source, old header and all
                    paper["input_path"] = f"notebooks/{path.stem}.py"
            fixed = _map_strings(data, fix)
            if fixed == json.loads(old):
                continue
            new = (json.dumps(fixed, indent=1, sort_keys=True, ensure_ascii=False) if path.suffix == ".ipynb"
                   else json.dumps(fixed, indent=2, sort_keys=True)) + "\n"  # nbformat's layout; save_json's
        if new != old:
            path.write_text(new)
            changed.append(path)
    return changed


def refresh_all(root: Path | None = None, presets: tuple = PRESETS) -> list[Path]:
    """:func:`refresh` of every published preset (a preset's timings show in every notebook's header)."""
    return [f for folder in published(root, presets).values() for f in refresh(folder)]

