"""The lab's command-line helpers, shared by every command (runner, report, pretrained, budget_curve, ...).

Each command's ``main(argv)`` runs its body through :func:`cli`, so bad input ends in one
``error: ...`` line, never in a traceback; the checks here refuse, before anything runs, what
would otherwise fail hours later (a folder that cannot be written, a dataset that cannot be read).
"""

import errno
import json
import os
import socket
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Callable

from ..artifacts import pin_environment_paths
from ..config import ConfigError


def parse_set(items: list[str]) -> dict:
    """['mae_train.steps=100', 'data.crop_scale=[0.8,1]'] -> {...}; values are JSON, else strings.

    Every --set of the command line arrives here (repeated flags are merged); a key given
    twice is refused rather than one value silently winning.
    """
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes key=value (e.g. mae_train.steps=100), got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key in out and out[key] != value:
            raise ConfigError(f"--set {key} is given twice ({out[key]!r} and {value!r}); give each key once")
        out[key] = value
    return out


def cli(body: Callable[[], int]) -> int:
    """Run a command-line ``body`` so that no input error or stop ends in a traceback.

    Bad input (ConfigError, ValueError) prints ``error: ...`` and returns 2; Ctrl-C returns 130
    with one line; a full disk names the file and returns 1. The folders the environment names are
    made absolute first (:func:`~mage_lite.artifacts.pin_environment_paths`), so that the kernels and
    workers the command starts, which run in the repository root, use the same folders as the command.
    """
    pin_environment_paths()
    try:
        return body()
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except ValueError as e:  # ConfigError is one
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(f"error: the disk is full while writing {e.filename or 'a file'}; free space and rerun", file=sys.stderr)
            return 1
        # Any other file-system error the up-front checks could not foresee (a file where a folder is expected, a
        # folder made read-only meanwhile): the path and the reason in one line, not a traceback.
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; fix that path (or choose another) and rerun", file=sys.stderr)
        return 1


def resolve_dataset(dataset: str) -> str:
    """A dataset path made absolute (kernels run in the repository root); names stay as they are."""
    path = Path(dataset).expanduser()
    return str(path.resolve()) if dataset and path.exists() else dataset


def check_writable(folder: Path, remedy: str) -> None:
    """Refuse in one sentence, before anything runs, a ``folder`` that cannot be made or written in
    (permissions, a read-only mount, an immutable folder, a file in the way); ``remedy`` says what to do.
    Nothing is left behind: the test file is made in the nearest folder that exists."""
    nearest = Path(folder).absolute()
    while not nearest.exists():
        nearest = nearest.parent
    try:
        if not nearest.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        tempfile.TemporaryFile(dir=nearest).close()
    except OSError as e:
        raise ConfigError(f"cannot write to {folder}: making a file in {nearest} fails ({e.strerror or e}); {remedy}") from None


def network_problem(url: str, timeout: float = 5.0) -> str:
    """Why ``url``'s host cannot be reached (one phrase), or "" when it takes a connection."""
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout).close()
    except OSError as e:
        return str(e) or type(e).__name__
    return ""


def check_reachable(dataset: str) -> None:
    """Refuse the official cifar10 when it is neither in the data folder nor downloadable, or when it must still be
    downloaded or extracted into a data folder that cannot be written: every notebook would fail on it, one after
    the other (image-folder paths and shapes are checked by load_preset)."""
    from ..data import CIFAR10_ARCHIVE, CIFAR10_FILES, CIFAR10_FOLDER, CIFAR10_URL, default_data_dir

    if dataset.lower() != "cifar10":
        return
    data_dir = default_data_dir()
    if all((data_dir / CIFAR10_FOLDER / f).is_file() for f in CIFAR10_FILES):
        return
    # Downloading and extracting both write to the data folder: one that cannot be written would stop every
    # notebook in its data cell ("failed in cell 3: OSError ... '.part'").
    check_writable(data_dir, "set MAGE_LITE_DATA_DIR to a folder you can write to, or pass --dataset "
                             "PATH/TO/cifar10-jpg.tar.gz (an image-folder archive, read in place)")
    if (data_dir / CIFAR10_ARCHIVE).is_file():
        return
    problem = network_problem(CIFAR10_URL)
    if problem:
        raise ConfigError(f"the dataset is cifar10, which is not in {data_dir} and cannot be downloaded ({problem}); "
                          "pass --dataset PATH/TO/cifar10-jpg.tar.gz, or set MAGE_LITE_DATA_DIR to a folder holding "
                          f"{CIFAR10_FOLDER}/")


def check_record(path: str, what: str, example: str, render: Callable[[dict], str]) -> None:
    """Refuse in one sentence a record passed to a ``--render`` option that is not ``what`` (missing, a folder, not
    JSON, or JSON that ``render`` cannot read). The file is the user's input, not a cache: the advice is to pass the
    right one, never to delete it (or to restore it from git)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path} does not exist; pass {what}, e.g. {example}")
    try:
        record = json.loads(p.read_text())
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; pass {what}, e.g. {example}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not {what}: it is not JSON ({' '.join(str(e).split())}); pass one, "
                          f"e.g. {example}") from None
    try:
        render(record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as e:
        raise ConfigError(f"{path} is not {what}: rendering it fails ({type(e).__name__}: {e}); pass one, "
                          f"e.g. {example}") from None
