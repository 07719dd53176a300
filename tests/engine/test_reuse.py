"""Code-aware reuse: a model is reused only while the code that builds and trains it is unchanged;
``retrain=True`` and ``python -m mage_lite run --fresh`` train it anew."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from mage_lite import artifacts
from mage_lite.artifacts import code_fingerprint, get_or_train
from mage_lite.mae import MAE
from mage_lite.mage import MAGE
from mage_lite.mage_c import MAGEC
from mage_lite.mage_continuous import ContinuousMAGE
from mage_lite.mage_family import ContinuousMAGEC
from mage_lite.train import fit

PACKAGE = Path(__file__).resolve().parents[2] / "mage_lite"
TRAIN_MAE = """
import mage_lite
print(mage_lite.__file__)
from mage_lite.session import NotebookRun
run = NotebookRun("reuse_test", "smoke", overrides={"mae_train.steps": 2, "mae_train.warmup_steps": 1})
run.mae()
"""


def _train_in_copy(copy: Path, runs: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(copy), "MAGE_LITE_RUNS_DIR": str(runs), "MAGE_LITE_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", TRAIN_MAE], env=env, cwd=copy, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_an_edited_model_is_trained_again(tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(PACKAGE, copy / "mage_lite", ignore=shutil.ignore_patterns("__pycache__"))
    runs = tmp_path / "runs"
    first = _train_in_copy(copy, runs)
    assert str(copy) in first and "reusing" not in first  # the copy's code ran, and trained
    assert "reusing mae-" in _train_in_copy(copy, runs)  # same code: reused
    mae_py = copy / "mage_lite" / "mae.py"
    mae_py.write_text(mae_py.read_text() + "\n# a comment changes nothing the model does\n")
    assert "reusing mae-" in _train_in_copy(copy, runs)
    mae_py.write_text(mae_py.read_text() + "\nEDITED_CONSTANT = 1\n")
    assert "reusing" not in _train_in_copy(copy, runs)  # edited code: trained again
    assert len(list((runs / "smoke" / "models").glob("mae-*/model.pt"))) == 2


def test_fingerprint_covers_the_modules_a_model_uses():
    mods = artifacts._package_modules([MAGE, fit])
    assert {"mage_lite.mage", "mage_lite.layers", "mage_lite.masking", "mage_lite.train"} <= set(mods)
    assert "mage_lite.artifacts" not in mods and "mage_lite.plots" not in mods
    # a variant's fingerprint covers its own module and the MAGE it builds on
    assert {"mage_lite.mage_c", "mage_lite.contrastive", "mage_lite.mage", "mage_lite.masking"} <= set(artifacts._package_modules([MAGEC]))
    assert {"mage_lite.mage_continuous", "mage_lite.mage", "mage_lite.layers"} <= set(artifacts._package_modules([ContinuousMAGE]))
    assert {"mage_lite.mage_family", "mage_lite.mage_c", "mage_lite.mage_continuous"} <= set(artifacts._package_modules([ContinuousMAGEC]))
    assert len({code_fingerprint(m, fit) for m in (MAE, MAGE, MAGEC, ContinuousMAGE)}) == 4
    assert code_fingerprint(MAE, fit) == code_fingerprint(fit, MAE)


def test_initial_weights_depend_on_the_key_not_on_earlier_draws(tmp_path):
    inits = []

    def train(model, run_dir):
        inits.append(model.weight.detach().clone())
        return [{"step": 1, "loss": 0.0}]

    for earlier_seed in (1, 2):
        torch.manual_seed(earlier_seed)  # a notebook that drew other random numbers first
        get_or_train("lin", {"a": 1}, lambda: nn.Linear(4, 4), train, tmp_path, retrain=True)
    torch.manual_seed(1)
    get_or_train("lin", {"a": 2}, lambda: nn.Linear(4, 4), train, tmp_path)
    assert torch.equal(inits[0], inits[1]) and not torch.equal(inits[0], inits[2])
    torch.manual_seed(5)
    state = torch.get_rng_state()
    get_or_train("lin", {"a": 2}, lambda: nn.Linear(4, 4), train, tmp_path)  # reused: builds under its own seed
    assert torch.equal(torch.get_rng_state(), state)  # and leaves the caller's generator as it was


def test_retrain_and_fresh_train_again_once(tmp_path, monkeypatch):
    calls = []

    def train(model, run_dir):
        calls.append(run_dir)
        return [{"step": 1, "loss": 0.0}]

    def get(**kw):
        return get_or_train("lin", {"a": 1}, lambda: nn.Linear(2, 2), train, tmp_path, **kw)

    get()
    get()
    assert len(calls) == 1
    get(retrain=True)
    assert len(calls) == 2
    monkeypatch.setenv("MAGE_LITE_FRESH_AFTER", str(time.time() + 1))  # a --fresh run that started after that model
    get()
    assert len(calls) == 3
    monkeypatch.setenv("MAGE_LITE_FRESH_AFTER", str(time.time() - 60))
    get()  # made after the fresh run started: reused
    assert len(calls) == 3


def test_notebook_text_bars_do_not_change_a_fingerprint():
    # notebook kernels swap tqdm.auto's bar for progress.TextBar before importing mage_lite: the models they
    # train must be the ones a script trains (and reuses), so progress may not enter the fingerprint
    script = ("{}from mage_lite.artifacts import code_fingerprint\nfrom mage_lite.mage import MAGE\n"
              "from mage_lite.train import fit\nprint(code_fingerprint(MAGE, fit))")
    prints = []
    for setup in ("", "from mage_lite.progress import use_text_bars\nuse_text_bars()\n"):
        done = subprocess.run([sys.executable, "-c", script.format(setup)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        prints.append(done.stdout.strip())
    assert prints[0] == prints[1] and len(prints[0]) == 8
