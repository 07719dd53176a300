"""Execute the course notebooks with papermill and write a summary of their metrics.

    python -m mage_lite run --preset ci                 # all notebooks
    python -m mage_lite run --preset smoke --only 00 01 # some of them
    python -m mage_lite run --preset ci --dataset PATH/TO/cifar10-jpg.tar.gz \
        --set mae_train.steps=100 --seed 1
    python -m mage_lite run --preset cpu --pretrained --dataset PATH  # committed weights, no training
    python -m mage_lite run --preset cpu --pretrained-or-train --dataset PATH --seed 1  # train what they do not match
    python -m mage_lite publish --preset cpu            # metrics, figures, notebooks -> reports/cpu/
    python -m mage_lite publish --refresh               # reports/*/: headers from the timings, relative paths
    python -m mage_lite list

The jupytext ``.py`` files in ``notebooks/`` are the source. Executed notebooks and their
HTML land in ``runs/<preset>/notebooks/``; a notebook that fails stops the run with its
name and the failing cell, and the command exits non-zero.
"""

import argparse
import contextlib
import errno
import json
import os
import re
import sys
import time
from pathlib import Path

from ..artifacts import PRETRAINED_ENV, PRETRAINED_ONLY_ENV, REPO_ROOT, load_json, runs_root, save_json
from ..config import PRESET_NAMES, ConfigError, check_seed, load_preset
from ..device import pick_device
from .cli import check_reachable, check_writable, cli, parse_set, resolve_dataset
from ..artifacts import flatten_metrics as flatten
from .records import record_trained_earlier

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL = "python3"  # named explicitly: the kernel of the environment mage_lite is installed in


class NotebookFailed(RuntimeError):
    pass


def discover() -> list[Path]:
    """The course notebooks in order: notebooks/NN_name.py (not the solutions in notebooks/solutions/)."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def discover_solutions() -> list[Path]:
    """The solutions to the notebooks' exercises in order: notebooks/solutions/NN_solutions.py."""
    return sorted((NOTEBOOK_DIR / "solutions").glob("[0-9][0-9]_solutions.py"))


def select(only: list[str] | None) -> list[Path]:
    books = discover()
    if not only:
        return books
    chosen = []
    for key in only:
        match = [b for b in books if b.stem == key or b.stem.split("_")[0] == key or b.name == key]
        if not match:
            names = ", ".join(b.stem for b in books)
            raise ConfigError(f"no notebook {key!r}; choose from {names} (or their numbers)")
        chosen += [m for m in match if m not in chosen]
    return chosen


def parameter_names(nb) -> set[str]:
    """Names assigned in the notebook's cell tagged 'parameters'."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            scope: dict = {}
            exec(cell.source, {}, scope)
            return set(scope)
    raise NotebookFailed("the notebook has no cell tagged 'parameters'")


@contextlib.contextmanager
def kernel_environment(values: dict[str, str]):
    """Set environment variables for the kernels started inside the block (they inherit this process's
    environment), and put the old values back after it."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(book: Path, params: dict, out_dir: Path, progress: bool = True, name: str = "") -> Path:
    """Run one notebook with papermill; return the executed .ipynb (an .html is written beside it).

    The output is ``out_dir/<name or the notebook's stem>.ipynb``."""
    import jupytext
    import papermill
    from nbconvert import HTMLExporter

    from .kernel_setup import KERNEL_ARGUMENTS, RunnerKernelManager

    nb = jupytext.read(book)
    nb.metadata.setdefault("kernelspec", {"name": KERNEL, "display_name": "Python 3", "language": "python"})
    unknown = set(params) - parameter_names(nb)
    if unknown:
        raise ConfigError(f"{book.stem} has no parameter {sorted(unknown)[0]!r}; its parameters are "
                          f"{', '.join(sorted(parameter_names(nb)))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name or book.stem}.ipynb"
    try:
        papermill.execute_notebook(nb, str(out), parameters=params, kernel_name=KERNEL, cwd=str(REPO_ROOT),
                                   progress_bar=progress, log_output=False,
                                   kernel_manager_class=RunnerKernelManager, extra_arguments=KERNEL_ARGUMENTS)
    except papermill.PapermillExecutionError as e:
        full = re.search(r"\[Errno 28\] [^:]*: '(.*)'", str(e.evalue))
        if full:  # the kernel ran out of disk: say so as the runner's own writes do
            raise OSError(errno.ENOSPC, "No space left on device", full.group(1)) from None
        tidy_saved(out)
        raise NotebookFailed(
            f"{book.stem} failed in cell {e.cell_index} (execution count {e.exec_count}): {e.ename}: "
            f"{str(e.evalue).rstrip('.')}; "
            f"the executed notebook with the traceback is {out}") from None
    tidy_saved(out)
    body, _ = HTMLExporter().from_filename(str(out))
    out.with_suffix(".html").write_text(body)
    return out


def tidy_saved(path: Path) -> None:
    """Rewrite an executed notebook with each text progress bar at its last state (see kernel_setup)."""
    import nbformat

    from .kernel_setup import tidy_streams

    nb = nbformat.read(path, as_version=4)
    tidy_streams(nb)
    nbformat.write(nb, path)


def write_summary(preset: str, runs: dict[str, dict]) -> Path:
    """runs/<preset>/summary.md: per notebook, the command that ran it, its runtime and its metrics."""
    root = runs_root() / preset
    lines = [f"# mage-lite run summary: preset `{preset}`", ""]
    for stem, info in sorted(runs.items()):
        lines += [f"## {stem}", "", f"- command: `{info.get('command', '?')}`",
                  f"- runtime: {info['seconds'] / 60:.1f} min", f"- executed notebook: notebooks/{stem}.html"]
        for metrics in sorted((root / stem).glob("seed*/metrics.json")):
            m = load_json(metrics)
            source = m.get("dataset", {}).get("source", "?")
            lines += ["", f"{metrics.parent.name} (data: {source}):", "", "| metric | value |", "| --- | --- |"]
            lines += [f"| {k} | {v if isinstance(v, int) else f'{v:.4g}'} |" for k, v in sorted(flatten(m).items())]
        lines.append("")
    path = root / "summary.md"
    path.write_text("\n".join(lines))
    return path


def publish(preset: str, dest: Path | None = None) -> Path:
    """Copy a preset's finished run, without its models, to ``reports/<preset>/``: the summary,
    each notebook's ``metrics.json`` and figures, ``timings.json`` and the executed notebooks
    (readable with their outputs on the repository page). ``python -m mage_lite results``
    renders the README's Results from these files.

    What the copies show is then made the run's own (:func:`mage_lite.lab.published.refresh`): each
    notebook's runtime header is rendered from the published timings, this preset's included, and the
    machine's absolute paths become repository-relative ones."""
    import shutil

    from .published import refresh, refresh_all

    src = runs_root() / preset
    if not (src / "summary.md").exists():
        raise ConfigError(f"no finished run in {src}; run `python -m mage_lite run --preset {preset}` first")
    dest = dest or REPO_ROOT / "reports" / preset
    dest.mkdir(parents=True, exist_ok=True)
    files = [*src.glob("[0-9][0-9]_*/seed*/*.png"), *src.glob("[0-9][0-9]_*/seed*/metrics.json")]
    for f in sorted(files):
        target = dest / f.parent.parent.name / f.parent.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    for book in sorted((src / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        (dest / "notebooks").mkdir(exist_ok=True)
        shutil.copyfile(book, dest / "notebooks" / book.name)
    record_trained_earlier(preset, src / "timings.json")
    shutil.copyfile(src / "timings.json", dest / "timings.json")
    summary = re.sub(r"executed notebook: notebooks/(\S+)\.html", r"executed notebook: [notebooks/\1.ipynb](notebooks/\1.ipynb)",
                     (src / "summary.md").read_text())
    (dest / "README.md").write_text(summary + "\nFigures and metrics: the folders beside this file, one per notebook and seed.\n")
    refresh(dest)
    if dest.resolve().parent == (REPO_ROOT / "reports").resolve():  # its timings show in every published header
        refresh_all()
    return dest


def run(preset: str, only: list[str] | None = None, dataset: str = "", seed: int = 0, device: str = "",
        overrides: dict | None = None, progress: bool = True, fresh: bool = False,
        pretrained: bool = False, train_unmatched: bool = False) -> dict[str, float]:
    """Execute the chosen notebooks in order; returns {notebook: seconds}.

    ``pretrained``: load the preset's committed weights (:mod:`mage_lite.lab.pretrained`) instead of
    training, leave out the sweeps and ablations, and write to ``pretrained/`` under the runs folder.
    A run the weights do not match (its seed, data or a model's config) is refused, up front where
    that can be told, else when the model is asked for; ``train_unmatched`` trains those models instead.

    ``fresh``: every model (and token bank) the notebooks use is made again in this run, once,
    instead of reused from an earlier one (later notebooks of the same run reuse what earlier
    ones made afresh)."""
    from .pretrained import PRETRAINED_OVERRIDES, check_pretrained_run, pretrained_root  # torch: only when running
    pretrained = pretrained or train_unmatched
    if pretrained:
        overrides = {**PRETRAINED_OVERRIDES, **(overrides or {})}
    if overrides and "data.dataset" in overrides:  # kernels run in the repository root: a relative path would move
        overrides = {**overrides, "data.dataset": resolve_dataset(overrides["data.dataset"])}
    # Refuse bad input before any kernel starts.
    cfg = load_preset(preset, overrides, dataset=dataset, device=device)
    check_seed(seed)
    try:
        pick_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    books = select(only)
    check_reachable(cfg.data.dataset)
    environment = {}  # for the kernels, which inherit it
    if pretrained:
        weights = check_pretrained_run(preset, cfg, seed, refuse_unmatched=not train_unmatched)
        environment = {PRETRAINED_ENV: str(weights), PRETRAINED_ONLY_ENV: "" if train_unmatched else "1",
                       "MAGE_LITE_RUNS_DIR": str(pretrained_root())}  # never beside the trained runs
    if fresh:  # read by mage_lite.artifacts in the kernels
        environment["MAGE_LITE_FRESH_AFTER"] = str(time.time())
    params = {"preset": preset, "seed": seed}
    if dataset:
        params["dataset"] = resolve_dataset(dataset)
    if device:
        params["device"] = device
    if overrides:
        params["overrides"] = overrides
    command = "python -m mage_lite run " + " ".join(
        [f"--preset {preset}", f"--only {' '.join(b.stem[:2] for b in books)}"]
        + ([f"--dataset {dataset}"] if dataset else []) + ([f"--seed {seed}"] if seed else [])
        + ([f"--device {device}"] if device else []) + (["--fresh"] if fresh else [])
        + (["--pretrained-or-train" if train_unmatched else "--pretrained"] if pretrained else [])
        + ([f"--set {' '.join(f'{k}={json.dumps(v)}' for k, v in overrides.items())}"] if overrides else []))
    with kernel_environment(environment):
        # The folder the executed notebooks go to, not only the preset's: a file in the way of either would
        # otherwise be found only after the first notebook ran.
        for folder in (runs_root() / preset, runs_root() / preset / "notebooks"):
            check_writable(folder, "set MAGE_LITE_RUNS_DIR to a folder you can write to")
        timings = runs_root() / preset / "timings.json"
        if timings.exists():
            load_json(timings)  # a damaged record is named now, not after the first notebook
        return _execute_all(preset, books, params, command, progress)


def _execute_all(preset: str, books: list[Path], params: dict, command: str, progress: bool) -> dict[str, float]:
    """Execute ``books`` with ``params``, recording each one's time, then write the preset's summary."""
    out_dir = runs_root() / preset / "notebooks"
    record_path = runs_root() / preset / "timings.json"
    timings = {}
    for book in books:
        print(f"== {book.stem} (preset {preset})", flush=True)
        t0 = time.perf_counter()
        execute(book, params, out_dir, progress)
        timings[book.stem] = round(time.perf_counter() - t0, 1)
        # Re-read before writing: another run of the same preset may have finished meanwhile.
        records = load_json(record_path) if record_path.exists() else {}
        records[book.stem] = {"seconds": timings[book.stem], "command": command}
        save_json(records, record_path)
        print(f"   done in {timings[book.stem] / 60:.1f} min -> {out_dir / book.stem}.html", flush=True)
    # once, after the last notebook: it reads every executed notebook of the preset
    records = record_trained_earlier(preset, record_path)
    summary = write_summary(preset, {k: v if isinstance(v, dict) else {"seconds": v} for k, v in records.items()})
    print(f"summary: {summary}")
    return timings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute notebooks with papermill")
    r.add_argument("--preset", default="smoke", help=f"one of {', '.join(PRESET_NAMES)}")
    r.add_argument("--only", nargs="+", help="notebook numbers or names (default: all)")
    r.add_argument("--dataset", default="", help="'shapes', 'cifar10' or a path to an image-folder dataset")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="", help="auto, cpu, cuda, cuda:N, mps")
    r.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. mae_train.steps=100 (repeatable)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--fresh", action="store_true", help="train every model again instead of reusing earlier runs' models")
    r.add_argument("--pretrained", action="store_true",
                   help="load the committed weights (reports/<preset>/weights) instead of training; sweeps and ablations "
                        "left out; a run they do not match (seed, data, a model's config) is refused")
    r.add_argument("--pretrained-or-train", action="store_true",
                   help="as --pretrained, but train the models the committed weights do not match")
    pub = sub.add_parser("publish", help="copy a finished run's summary and figures to reports/<preset>/")
    pub.add_argument("--preset", default="cpu")
    pub.add_argument("--refresh", action="store_true",
                     help="copy nothing: rewrite every published reports/<preset>/ (runtime headers from the published "
                          "timings, the machine's paths made relative)")
    sub.add_parser("list", help="list the notebooks")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for b in discover():
            print(b.stem)
        return 0
    if args.cmd == "publish" and args.refresh:
        from .published import refresh_all
        return cli(lambda: print(f"refreshed {len(refresh_all())} published files") or 0)
    if args.cmd == "publish":
        return cli(lambda: print(f"published to {publish(args.preset)}") or 0)

    def body() -> int:
        try:
            run(args.preset, args.only, args.dataset, args.seed, args.device, parse_set(args.set), not args.no_progress,
                args.fresh, args.pretrained, train_unmatched=args.pretrained_or_train)
        except NotebookFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
