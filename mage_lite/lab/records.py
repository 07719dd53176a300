"""What a finished run of the notebooks left behind, read back: its models and timings.

Shared by the runner (the timings record) and pretrained (which models to export,
which metrics to compare); neither imports the other for these.
"""

import re
from pathlib import Path

from ..artifacts import load_json, runs_root, save_json




REUSED = re.compile(r"reusing \S+ trained earlier: (\S+)")


def training_seconds(run_dir: Path) -> float:
    """A finished model's training time from its own log: each logged window's images over its img/s
    (evaluation and checkpoint writes left out, so a slight underestimate)."""
    history = load_json(run_dir / "history.json")
    batch = load_json(run_dir / "config.json")["train"]["batch_size"]
    seconds, last = 0.0, 0
    for record in history:
        seconds += (record["step"] - last) * batch / record["img_per_s"]
        last = record["step"]
    return seconds


def _executed(preset: str) -> tuple[list[tuple[float, float]], dict[str, list[Path]]]:
    """The executed notebooks of ``runs/<preset>/notebooks``: when each ran (papermill's start and end
    times) and, per notebook, the run folders of the models it reused."""
    import nbformat
    from datetime import datetime

    windows, reused = [], {}
    for book in sorted((runs_root() / preset / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(book, as_version=4)
        times = nb.metadata.get("papermill", {})
        if times.get("start_time") and times.get("end_time"):
            windows.append((datetime.fromisoformat(times["start_time"]).timestamp(),
                            datetime.fromisoformat(times["end_time"]).timestamp()))
        text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
        reused[book.stem] = [Path(d) for d in dict.fromkeys(REUSED.findall(text))]
    return windows, reused


def _made_during(path: Path, windows: list[tuple[float, float]]) -> bool:
    return path.exists() and any(start <= path.stat().st_mtime <= end for start, end in windows)


def trained_earlier(preset: str) -> dict[str, dict[str, float]]:
    """Per executed notebook of ``runs/<preset>/notebooks``: the models it reused that no notebook of
    the preset trained (a run stopped midway, or another command), with their training time.

    A notebook's time when run from an empty ``runs/`` is its measured time plus these. A model
    reused from an earlier notebook of the course (its ``model.pt`` written while that notebook ran)
    is not counted again, and each model is counted once, by the first notebook that reuses it."""
    windows, reused = _executed(preset)
    out, counted = {}, set()
    for stem, dirs in reused.items():
        for d in dirs:
            if d.name in counted or not (d / "model.pt").exists():
                continue
            counted.add(d.name)
            if not _made_during(d / "model.pt", windows):
                try:
                    out.setdefault(stem, {})[d.name] = round(training_seconds(d), 1)
                except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as e:  # a log we cannot read
                    print(f"warning: no training time for {d.name} from its log ({e!r}); its notebook's runtime leaves it out")
    return {stem: models for stem, models in out.items() if models}


def models_used(preset: str, folders: list[Path]) -> list[Path]:
    """The run folders (among ``folders``' subfolders) of the models the preset's executed notebooks
    trained (``model.pt`` written while one ran) or reused."""
    windows, reused = _executed(preset)
    named = {d.name for dirs in reused.values() for d in dirs}
    return sorted(d for f in folders if f.exists() for d in f.iterdir()
                  if (d / "model.pt").exists() and (d.name in named or _made_during(d / "model.pt", windows)))


def record_trained_earlier(preset: str, record_path: Path) -> dict:
    """Write each notebook's ``trained_earlier`` (see :func:`trained_earlier`) into its timings record."""
    records = load_json(record_path) if record_path.exists() else {}
    earlier = trained_earlier(preset)
    for stem, record in records.items():
        record.pop("trained_earlier", None)
        if earlier.get(stem):
            record["trained_earlier"] = earlier[stem]
    save_json(records, record_path)
    return records
