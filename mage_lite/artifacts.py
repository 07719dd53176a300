"""Where runs live and how they are written: atomic files, config hashing, reuse of trained models.

Layout: ``runs/<preset>/models/<name>-<hash>/`` holds a trained model (``config.json``,
``checkpoint.pt`` while training, ``model.pt`` when done, ``history.json``);
``runs/<preset>/<notebook>/`` holds a notebook's ``metrics.json`` and figures.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

REPO_ROOT = Path(__file__).resolve().parents[1]
_UMASK = os.umask(0)
os.umask(_UMASK)


def runs_root() -> Path:
    """``$MAGE_LITE_RUNS_DIR`` if set, else ``runs/`` at the repository root."""
    return Path(os.environ.get("MAGE_LITE_RUNS_DIR") or REPO_ROOT / "runs")


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: Path | str) -> None:
    """torch.save to a temp file beside ``path``, then rename: a kill never leaves half a file."""
    _atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def load_state(path: Path | str, device: torch.device | str = "cpu"):
    """Load a checkpoint or state_dict written by this project (plain tensors only)."""
    return torch.load(path, map_location=device, weights_only=True)


def save_json(obj, path: Path | str) -> None:
    """Write JSON atomically (sorted keys, indented, so diffs of metrics files read well)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))


def load_json(path: Path | str):
    return json.loads(Path(path).read_text())


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def config_hash(config: dict) -> str:
    """8 hex digits that change whenever anything in ``config`` changes."""
    text = json.dumps(config, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def get_or_train(
    name: str,
    config: dict,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module, Path], list[dict]],
    root: Path,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, list[dict], Path]:
    """Reuse a model trained earlier with the same ``config``, or train it now.

    ``build()`` makes the untrained model; ``train(model, run_dir)`` trains it (resuming a
    checkpoint left in ``run_dir``) and returns its history. Any notebook may call this for
    any model, so notebooks run in any order. Returns (model in eval mode, history, run_dir).
    """
    run_dir = Path(root) / f"{name}-{config_hash(config)}"
    model = build()
    final = run_dir / "model.pt"
    if final.exists():
        model.load_state_dict(load_state(final, "cpu"))
        history = load_json(run_dir / "history.json")
        print(f"reusing {name} trained earlier: {run_dir}")
    else:
        save_json(config, run_dir / "config.json")
        history = train(model, run_dir)
        # model.pt is written last: its presence means the run is complete.
        save_json(history, run_dir / "history.json")
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, final)
    return model.to(device).eval(), history, run_dir
