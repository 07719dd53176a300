"""Where runs live and how they are written: atomic files, config hashing, reuse of trained models.

Layout: ``runs/<preset>/models/<name>-<hash>/`` holds a trained model (``config.json``,
``checkpoint.pt`` while training, ``model.pt`` when done, ``history.json``);
``runs/<preset>/<notebook>/`` holds a notebook's ``metrics.json`` and figures.
"""

import ast
import errno
import hashlib
import inspect
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

REPO_ROOT = Path(__file__).resolve().parents[1]
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_tracked(path: Path | str) -> bool:
    """Whether git tracks ``path``: a file committed to a repository (a manifest, shipped weights) is the
    user's to restore with ``git checkout``, not a cache to delete. False wherever git cannot tell
    (no git, not inside a repository), so the advice falls back to "delete it and rerun"."""
    path = Path(path).absolute()
    try:
        return subprocess.run(
            ["git", "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name],
            capture_output=True, timeout=10,
        ).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def redo_advice(path: Path | str) -> str:
    """What to do about the damaged file ``path``: restore it from git if it is tracked, else delete it and rerun."""
    return f"restore it with `git checkout -- {path}`" if is_tracked(path) else "delete it and rerun"


class DamagedFileError(ValueError):
    """A run file (checkpoint, model, history) that cannot be read; the message names it and says what to do."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path} {problem}; it is damaged: {redo_advice(path)}")
        self.path, self.problem = Path(path), problem


def runs_root() -> Path:
    """``$MAGE_LITE_RUNS_DIR`` if set, else ``runs/`` at the repository root."""
    return Path(os.environ.get("MAGE_LITE_RUNS_DIR") or REPO_ROOT / "runs")


# Folders named by the environment. Kernels and workers run in the repository root, so a relative one would
# name another folder there than in the command that started them.
PATH_VARIABLES = ("MAGE_LITE_RUNS_DIR", "MAGE_LITE_DATA_DIR", "MAGE_LITE_PRETRAINED")


def pin_environment_paths() -> None:
    """Make the folders named by :data:`PATH_VARIABLES` absolute (against the current folder) in this process's
    environment, which every kernel and worker it starts inherits."""
    for name in PATH_VARIABLES:
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().absolute())


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
    """torch.save to a temp file beside ``path``, then rename: a kill never leaves half a file.

    A full disk is raised as OSError(ENOSPC) naming ``path`` (torch reports it as a RuntimeError).
    """
    path = Path(path)
    try:
        _atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except RuntimeError:
        if shutil.disk_usage(path.parent).free >= 1 << 20:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None


def atomic_write_bytes(data: bytes, path: Path | str) -> None:
    """Write ``data`` to ``path`` through a temp file beside it, as :func:`atomic_torch_save`."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def load_state(path: Path | str, device: torch.device | str = "cpu"):
    """Load a checkpoint or state_dict written by this project (plain tensors only).

    Raises :class:`DamagedFileError` for a truncated, empty or otherwise unreadable file.
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except EOFError:
        raise DamagedFileError(path, "is empty or cut short") from None
    except (RuntimeError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        if isinstance(e, RuntimeError) and "PytorchStreamReader" not in str(e) or isinstance(e, OSError) and e.errno != errno.EINVAL:
            raise  # a CUDA tensor on a machine without CUDA, a missing file: not damage (EINVAL: a zip cut short)
        raise DamagedFileError(path, f"cannot be read ({str(e).split('. ')[0][:150]})") from None


def save_json(obj, path: Path | str) -> None:
    """Write JSON atomically (sorted keys, indented, so diffs of metrics files read well)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))


def load_json(path: Path | str):
    """Read a JSON file; :class:`DamagedFileError` if it is truncated or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedFileError(path, f"is not valid JSON ({e})") from None


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


# Modules that cannot change what a model learns: this one only reads and writes files, and progress only draws
# bars. A notebook kernel swaps tqdm for progress.TextBar, which would otherwise put progress into every
# fingerprint computed there and none computed from a script, so the same model would train twice.
_NOT_BEHAVIOUR = {__name__, "mage_lite.progress"}


def _package_modules(objs) -> list[str]:
    """The mage_lite modules that define ``objs`` and, transitively, every mage_lite module they use."""
    todo = [o.__name__ if inspect.ismodule(o) else o.__module__ for o in objs]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith("mage_lite.") or name in _NOT_BEHAVIOUR:
            continue
        seen.add(name)
        for v in vars(sys.modules[name]).values():
            used = v.__name__ if inspect.ismodule(v) else getattr(v, "__module__", None)
            if isinstance(used, str):
                todo.append(used)
    return sorted(seen)


def code_fingerprint(*objs) -> str:
    """8 hex digits that change whenever the code behind ``objs`` changes: the source of the mage_lite
    modules that define them and of every mage_lite module those use, transitively. Comments and
    layout do not count (the source is compared as its syntax tree)."""
    h = hashlib.sha256()
    for name in _package_modules(objs):
        h.update(name.encode() + ast.dump(ast.parse(inspect.getsource(sys.modules[name]))).encode())
    return h.hexdigest()[:8]


def fresh_after() -> float:
    """``$MAGE_LITE_FRESH_AFTER`` (seconds since the epoch; ``python -m mage_lite run --fresh`` sets it): models
    and banks finished before then are made again. 0 when unset."""
    raw = os.environ.get("MAGE_LITE_FRESH_AFTER", "")
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        raise ValueError(f"$MAGE_LITE_FRESH_AFTER must be a time in seconds since the epoch, got {raw!r}") from None


def is_stale(path: Path, after: float | None = None) -> bool:
    """Whether the finished file ``path`` was written before a fresh start asked at ``after``
    (default :func:`fresh_after`) and must therefore be made again."""
    after = fresh_after() if after is None else after
    return after > 0 and path.stat().st_mtime < after


PRETRAINED_ENV = "MAGE_LITE_PRETRAINED"  # a folder of shipped weights (mage_lite.lab.pretrained); `python -m mage_lite run --pretrained` sets it
# "1": a model the shipped weights do not match is an error instead of being trained (`python -m mage_lite run --pretrained`
# sets it, `--pretrained-or-train` does not); unset, such models are trained, as the budget curve relies on
PRETRAINED_ONLY_ENV = "MAGE_LITE_PRETRAINED_ONLY"


def _portable(config):
    """``config`` without what names code: the fingerprint ("code") and other models' run folders ("run")."""
    if isinstance(config, dict):
        return {k: _portable(v) for k, v in config.items() if k not in ("code", "run")}
    return config


def shipped_name(name: str, config: dict) -> str:
    """The file stem of a model's shipped weights: its name and the hash of its config without the code
    fingerprints, so the weights load into edited code (a test checks they still reproduce their probe)."""
    return f"{name}-{config_hash(_portable(config))}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def published_run(weights: Path) -> dict | None:
    """A notebook's metrics from the published run the weights in ``weights`` were exported from (the report
    folder holds both): the config, seed and data they were trained with. None where no run is published beside them."""
    found = sorted(weights.parent.glob("[0-9][0-9]_*/seed*/metrics.json"))
    return load_json(found[0]) if found else None


def why_not_shipped(name: str, config: dict, weights: Path) -> str:
    """Why the weights in ``weights`` hold none for model ``name`` with ``config`` (its reuse key), in a phrase:
    what a kernel says when a run got past the runner's check (mage_lite.lab.pretrained.check_pretrained_run) (data at another path, a model not shipped)."""
    names = sorted({stem.rsplit("-", 1)[0] for stem in load_json(weights / "manifest.json")["models"]})
    if name not in names:
        return f"no {name} is shipped, only {', '.join(names)}"
    published = published_run(weights)
    data = (published or {}).get("dataset", {})
    if data.get("identity") and config.get("data") not in (None, data["identity"]):
        return (f"the shipped weights were trained on other data ({data.get('source')}: {data['identity']}) "
                f"than this run reads ({config['data']})")
    if published is not None and config.get("seed") not in (None, published["seed"]):
        return f"the shipped weights were trained with seed {published['seed']}, not {config['seed']}"
    return ("its config differs from the one the shipped weights were trained with (a --set override, or the preset "
            "changed since they were exported)")


def check_shipped_file(path: Path, sha256: str) -> None:
    """Refuse in one sentence a shipped weights file (one model's, or a shard) that is missing or fails its checksum."""
    if not path.exists() or sha256_of(path) != sha256:
        # git can restore only a file it tracks; weights exported here (pretrained export) are made again instead
        fix = (f"restore it with `git checkout -- {path}`" if is_tracked(path)
               else "copy or export the weights again (python -m mage_lite pretrained export)")
        raise ValueError(f"{path} is missing or does not match its checksum in {path.parent / 'manifest.json'}; "
                         f"{fix}, or run without --pretrained")


def read_shipped(folder: Path, entry: dict) -> tuple[dict, Path]:
    """(state dict, file it came from) of one model of the manifest in ``folder``: its own file (``entry["file"]``)
    or, in weights written as shards (mage_lite.lab.pretrained.export_shards), the byte ranges ``entry["pieces"]``
    ([shard, offset, length], ...) of the shards the manifest lists with their checksums; the first shard is named."""
    if "file" in entry:
        path = folder / entry["file"]
        check_shipped_file(path, entry["sha256"])
        return load_state(path, "cpu"), path
    sums = {s["file"]: s["sha256"] for s in load_json(folder / "manifest.json")["shards"]}
    data = bytearray()
    for name, offset, length in entry["pieces"]:
        check_shipped_file(folder / name, sums[name])
        with open(folder / name, "rb") as f:
            f.seek(offset)
            data += f.read(length)
    return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True), folder / entry["pieces"][0][0]


def load_shipped(name: str, config: dict, model: nn.Module) -> tuple[list[dict], Path] | None:
    """Load ``model``'s shipped weights into it if ``$MAGE_LITE_PRETRAINED`` names a folder holding them;
    returns (history, weights file), or None when not asked or not shipped. A file that fails its
    checksum is refused with a sentence saying how to restore it."""
    folder = os.environ.get(PRETRAINED_ENV)
    if not folder:
        return None
    manifest = Path(folder) / "manifest.json"
    if not manifest.exists():
        raise ValueError(f"{manifest} is missing: there are no pretrained weights there; run without --pretrained")
    entry = load_json(manifest)["models"].get(shipped_name(name, config))
    if entry is None and os.environ.get(PRETRAINED_ONLY_ENV) == "1":
        raise ValueError(f"no pretrained weights for {name} match this run: {why_not_shipped(name, config, Path(folder))}; "
                         "pass --pretrained-or-train to train what they do not match, or run without --pretrained")
    if entry is None:
        print(f"no pretrained weights for {name} with this config in {folder}: training it")
        return None
    state, path = read_shipped(Path(folder), entry)
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()})
    return entry["history"], path


def get_or_train(
    name: str,
    config: dict,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module, Path], list[dict]],
    root: Path,
    device: torch.device | str = "cpu",
    code: tuple = (),
    retrain: bool = False,
    code_in_key: bool = True,
) -> tuple[nn.Module, list[dict], Path]:
    """Reuse a model trained earlier with the same ``config`` and code, or train it now.

    ``build()`` makes the untrained model; ``train(model, run_dir)`` trains it (resuming a
    checkpoint left in ``run_dir``) and returns its history. The reuse key is ``config`` plus
    the :func:`code_fingerprint` of the model's class and of ``code`` (e.g. the training loop
    and the sampler), so an edit to the code that builds or trains a model trains it again.
    ``retrain=True`` (or a model finished before ``$MAGE_LITE_FRESH_AFTER``) trains it anew.
    Any notebook may call this for any model, so notebooks run in any order. Returns
    (model in eval mode, history, run_dir).

    ``code_in_key=False`` keys the run by ``config`` alone, as shipped weights are keyed
    (:func:`shipped_name`): for runs that span days (the budget curve), where a refactor must
    not orphan a half-trained checkpoint; the caller records the code version with its results.
    """
    def seeded_build() -> nn.Module:
        # The initial weights come from the key alone, not from whatever the caller drew before:
        # the same model is the same whichever notebook trains it first.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config_hash(config), 16))
            return build()

    model = seeded_build()
    if code_in_key:
        key = {**config, "code": code_fingerprint(type(model), *code)}
        run_dir = Path(root) / f"{name}-{config_hash(key)}"
    else:
        key = _portable(config)
        run_dir = Path(root) / shipped_name(name, config)
    final = run_dir / "model.pt"
    if final.exists() and (retrain or is_stale(final)):
        print(f"training {name} afresh, as asked: {run_dir}")
        final.unlink()
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    if final.exists():
        try:
            model.load_state_dict(load_state(final, "cpu"))
            history = load_json(run_dir / "history.json")
            print(f"reusing {name} trained earlier: {run_dir}")
        except (DamagedFileError, FileNotFoundError) as e:
            # model.pt marks a run complete: set it aside and the run is redone (from its last checkpoint, if any).
            what = f"{e.path} {e.problem}" if isinstance(e, DamagedFileError) else f"{run_dir / 'history.json'} is missing"
            final.replace(final.with_name("model.pt.damaged"))
            model = seeded_build()  # the weights may have loaded already: start again from an untrained model
            print(f"warning: {what}; moved {final.name} aside to model.pt.damaged and training {name} again")
    # Shipped weights are loaded each time and never written as model.pt, which means "trained here".
    shipped = None if final.exists() else load_shipped(name, config, model)
    if shipped is not None:
        history, source = shipped
        print(f"loaded {name} from the pretrained weights {source.name} (fp16): not trained here")
    if not final.exists() and shipped is None:
        save_json(key, run_dir / "config.json")
        history = train(model, run_dir)
        # model.pt is written last: its presence means the run is complete.
        save_json(history, run_dir / "history.json")
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, final)
    return model.to(device).eval(), history, run_dir


def flatten_metrics(m: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a run's metrics.json, one level of nesting spelled out (probe_by_mask_ratio.0.5); the
    config, dataset, seed and flags left out."""
    out = {}
    for k, v in m.items():
        if isinstance(v, bool) or k in ("config", "dataset", "seed"):
            continue
        if isinstance(v, (int, float)):
            out[prefix + k] = v
        elif isinstance(v, dict) and not prefix:
            out.update(flatten_metrics(v, f"{k}."))
    return out
