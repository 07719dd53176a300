"""No silent wrong results: bad input is refused up front in one sentence, damaged run files are
named (and set aside where that is safe), and the command lines stop cleanly."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mage_lite import data
from mage_lite.lab import cli, runner
from mage_lite.lab.report import __main__ as report_cli
from mage_lite.lab.report import claims, grid
from mage_lite.artifacts import DamagedFileError, atomic_torch_save, get_or_train, load_json, load_state, save_json
from mage_lite.config import ConfigError, load_preset
from mage_lite.data import DatasetError, load_image_folder
from mage_lite.train import fit
from test_train import CFG, new_model, sample

REPO = Path(__file__).resolve().parents[2]


def _image_folder(root: Path, classes=("cat", "dog")) -> Path:
    """train/<class>/*.png and test/<class>/*.png, two images per class and split, last changed an hour ago."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for j in range(2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / cls / f"{j}.png")
    for p in [root, *root.rglob("*")]:
        os.utime(p, (time.time() - 3600,) * 2)
    return root


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- case 4: every bad value refused by load_preset, in one sentence --------------------------

@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"mae_ratio_sweep": [0.5, 1.0]}, "mae_ratio_sweep holds 1.0; each of its values must be a number in (0, 1)"),
        ({"mage_c_weight_sweep": [0]}, "mage_c_weight_sweep holds 0; each of its values must be a number > 0"),
        ({"mage_c_temperature_sweep": [-0.1]}, "mage_c_temperature_sweep holds -0.1"),
        ({"mage_c_input_sweep": ["noisy"]}, "must be one of 'masked', 'clean'"),
        ({"generation.temperature_sweep": ["a"]}, "generation.temperature_sweep must hold numbers >= 0, got ['a']"),
        ({"data.crop_scale": [0.5]}, "data.crop_scale must be two numbers"),
        ({"data.image_size": 48}, "use data.image_size=32"),
        ({"mae_train.base_lr": float("nan")}, "'mae_train.base_lr' must be a finite number like 0.0015, not nan"),
        ({"generation.temperature": float("inf")}, "'generation.temperature' must be a finite number"),
        ({"data.crop_scale": [float("nan"), 1.0]}, "'data.crop_scale' takes a value like (0.2, 1.0)"),
        ({"data.dataset": "/no/such/folder"}, "data.dataset '/no/such/folder' is neither 'shapes', 'cifar10' nor an existing path"),
    ],
)
def test_bad_values_are_refused_in_one_sentence(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        load_preset("smoke", overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_image_size_may_change_with_the_models_but_not_for_cifar10():
    cfg = load_preset("smoke", {"data.image_size": 48, "mae.image_size": 48, "vqgan.image_size": 48})
    assert cfg.data.image_size == cfg.mae.image_size == cfg.vqgan.image_size == 48
    with pytest.raises(ConfigError, match="whose images are 32 px"):
        load_preset("ci", {"data.image_size": 48, "mae.image_size": 48, "vqgan.image_size": 48})


# --- cases 3, 4, 6: the command lines ------------------------------------------------------------

@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    """Any notebook execution fails the test: bad input must be refused before a kernel starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("a notebook was executed")

    monkeypatch.setattr(runner, "execute", refuse)
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dataset", "/no/such/data.tar.gz"], "is neither 'shapes', 'cifar10' nor an existing path"),
        (["--seed", "-1"], "seed must be an integer from 0 to 2147483647, got -1"),
        (["--set", "mae_train.base_lr=NaN"], "must be a finite number"),
        (["--set", "mae_train.steps=5", "--set", "mae_train.steps=0"], "given twice"),
        (["--set", "mae_train.steps=5", "--set", "vqgan_train.steps=0"], "at least 1, got 0"),
        (["--set", "data.crop_scale=[0.5]"], "data.crop_scale must be two numbers"),
    ],
)
def test_runner_refuses_bad_input_before_any_kernel(args, fragment, no_kernel, capsys):
    assert runner.main(["run", "--preset", "smoke", "--no-progress", *args]) == 2
    assert fragment in _one_line_error(capsys)
    assert not (Path(os.environ["MAGE_LITE_RUNS_DIR"]) / "smoke").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_runner_refuses_cuda_without_cuda(no_kernel, capsys):
    assert runner.main(["run", "--preset", "smoke", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in _one_line_error(capsys)


def test_repeated_set_is_merged_and_only_needs_a_value(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(runner, "run", lambda preset, only, dataset, seed, device, overrides, progress, fresh, pretrained,
                        train_unmatched: seen.update(overrides))
    assert runner.main(["run", "--set", "mae_train.steps=3", "--set", "vqgan_train.steps=4", "mae.dim=32"]) == 0
    assert seen == {"mae_train.steps": 3, "vqgan_train.steps": 4, "mae.dim": 32}
    with pytest.raises(SystemExit) as e:
        runner.main(["run", "--only"])
    assert e.value.code == 2 and "--only" in capsys.readouterr().err


def test_ctrl_c_and_full_disk_end_in_one_line(monkeypatch, capsys, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/smoke/metrics.json")

    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    for module, command, argv in ((runner, runner, ["run", "--preset", "smoke"]),
                                  (grid, report_cli, ["--preset", "smoke", "--seeds", "1"])):
        target = "run" if module is runner else "run_grid"
        monkeypatch.setattr(module, target, interrupted)
        assert command.main(argv) == 130
        assert capsys.readouterr().err == "interrupted; rerun the same command to resume\n"
        monkeypatch.setattr(module, target, disk_full)
        assert command.main(argv) == 1
        assert "the disk is full while writing /runs/smoke/metrics.json; free space and rerun" in _one_line_error(capsys)


def test_torch_save_on_a_full_disk_names_the_file(monkeypatch, tmp_path):
    def full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(total=100, used=100, free=0))
    with pytest.raises(OSError) as e:
        atomic_torch_save({"x": torch.zeros(1)}, tmp_path / "model.pt")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


# --- case 1: the report never reuses a run made on other data ------------------------------------

BASE = claims.ARMS[0]


def _fake_run(preset: str, seed: int, dataset: str = "", arm=BASE, **changes) -> Path:
    cfg = load_preset(preset, arm.overrides, dataset=dataset).to_dict()
    m = {"complete": True, "overrides": arm.overrides, "config": cfg, "elapsed_s": 1.0, "probe_mage": 1.0, **changes}
    path = arm.run_dir(preset, seed) / "metrics.json"
    save_json(m, path)
    return path


def test_report_reuse_key_covers_the_dataset_and_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    folder = _image_folder(tmp_path / "pets")
    _fake_run("smoke", 0)  # made on the preset's own data (shapes)
    assert grid._complete(BASE, "smoke", 0)
    assert grid._complete(BASE, "smoke", 0, str(folder)) is None  # another dataset: never reused
    assert grid.collect("smoke", 1, str(folder)) == {}

    metrics = _fake_run("smoke", 0, str(folder.resolve()))
    assert grid._complete(BASE, "smoke", 0, str(folder))  # the same data, given relative or not
    monkeypatch.chdir(tmp_path)
    assert grid._complete(BASE, "smoke", 0, "pets")
    assert grid._complete(BASE, "smoke", 0) is None
    (folder / "train" / "cat" / "0.png").touch()  # the data changed after the run started
    assert grid._complete(BASE, "smoke", 0, str(folder)) is None

    _fake_run("smoke", 0)
    cfg = load_json(metrics)
    cfg["config"]["mage_train"]["steps"] += 1  # made with another config
    save_json(cfg, metrics)
    assert grid._complete(BASE, "smoke", 0) is None
    metrics.write_text('{"complete": tr')  # a truncated metrics.json is a run to redo, not a crash
    assert grid._complete(BASE, "smoke", 0) is None


@pytest.mark.slow
def test_real_smoke_run_is_reused_only_on_its_own_data(smoke_runs, tmp_path, monkeypatch):
    # The notebooks the suite already ran (smoke, seed 0): their metrics.json, as a notebook writes it.
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    folder = _image_folder(tmp_path / "pets")
    assert grid._complete(BASE, "smoke", 0)
    assert grid._complete(BASE, "smoke", 0, str(folder)) is None


def test_report_reuses_a_run_on_a_fresh_copy_of_the_same_data(tmp_path, monkeypatch):
    # Shared data can be provisioned anew (new mtimes) each session: the pixels decide, not the clock.
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    folder = _image_folder(tmp_path / "pets")
    size = load_preset("smoke", dataset=str(folder)).data.image_size
    identity = data.load_dataset(str(folder), size, progress=False).identity
    path = _fake_run("smoke", 0, str(folder.resolve()))
    save_json({**load_json(path), "dataset": {"identity": identity}}, path)  # as a notebook logs it
    for p in [folder, *folder.rglob("*")]:
        os.utime(p, (time.time() + 60,) * 2)  # every file newer than the run, the same images
    assert grid._complete(BASE, "smoke", 0, str(folder))
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(folder / "train" / "cat" / "0.png")
    assert grid._complete(BASE, "smoke", 0, str(folder)) is None  # other pixels under the same path


def test_report_reruns_what_was_done_on_other_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    folder = _image_folder(tmp_path / "pets")
    _fake_run("smoke", 0)
    assert grid.run_grid("smoke", 1, arms=(BASE,)) == {"base/0": {"status": "done", "seconds": None, "reused": True}}
    assert "1 already finished, 0 to run" in capsys.readouterr().out
    started = []

    def stand_in(cmd, log, jobs):  # the worker, without a notebook: record what it would run
        started.append(cmd)
        return subprocess.Popen([sys.executable, "-c", "pass"], stdout=log)

    monkeypatch.setattr(grid, "start_worker", stand_in)
    status = grid.run_grid("smoke", 1, dataset=str(folder), arms=(BASE,))
    assert "0 already finished, 1 to run" in capsys.readouterr().out
    assert status["base/0"]["status"] == "done" and len(started) == 1
    assert str(folder.resolve()) in started[0][started[0].index("--params") + 1]


def test_report_reruns_a_finished_arm_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    _fake_run("smoke", 0)
    started = []

    def stand_in(cmd, log, jobs):
        started.append(cmd)
        return subprocess.Popen([sys.executable, "-c", "pass"], stdout=log)

    monkeypatch.setattr(grid, "start_worker", stand_in)
    status = grid.run_grid("smoke", 1, arms=(BASE,), rerun=("base",))
    assert "0 already finished, 1 to run" in capsys.readouterr().out
    assert len(started) == 1 and not status["base/0"].get("reused")
    with pytest.raises(ConfigError, match="--rerun names no arm of the grid: bsae; the arms are base"):
        grid.run_grid("smoke", 1, arms=(BASE,), rerun=("bsae",))


def test_report_refuses_a_missing_dataset_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    argv = ["--preset", "smoke", "--seeds", "1", "--dataset", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path / "out")]
    assert report_cli.main(argv) == 2
    assert "nope.tar.gz' is neither 'shapes', 'cifar10' nor an existing path" in _one_line_error(capsys)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


# --- cases 6, 7: report workers ---------------------------------------------------------------------

def test_worker_gets_the_jobs_variable(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as fh:
        assert grid.start_worker([sys.executable, "-c", "import os; print(os.environ['MAGE_LITE_JOBS'])"], fh, 3).wait() == 0
    assert log.read_text() == "3\n"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_worker_dies_when_the_report_is_killed(tmp_path):
    # The stand-in report starts its worker from a pool thread, as run_grid does, then is killed with SIGKILL.
    script = (
        "import sys\nfrom concurrent.futures import ThreadPoolExecutor\nfrom mage_lite.lab.report.grid import start_worker\n"
        "def launch():\n"
        "    with open(sys.argv[1], 'w') as fh:\n"
        "        p = start_worker([sys.executable, '-c', 'import time; time.sleep(120)'], fh, 1)\n"
        "        print(p.pid, flush=True)\n"
        "        p.wait()\n"
        "ThreadPoolExecutor(1).submit(launch).result()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 10
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived the report"
    finally:
        parent.kill()
        parent.stdout.close()


# --- cases 2, 6: datasets ---------------------------------------------------------------------------

def test_archives_with_dot_slash_members_load(tmp_path):
    folder = _image_folder(tmp_path / "pets")
    ref = load_image_folder(folder, cache_dir=tmp_path / "cache", progress=False)
    tgz = tmp_path / "pets.tar.gz"
    subprocess.run(["tar", "czf", str(tgz), "-C", str(folder), "."], check=True)
    with tarfile.open(tgz) as tf:
        assert any(n.startswith("./train/") for n in tf.getnames())
    zipped = tmp_path / "pets.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.writestr("./" + f.relative_to(folder).as_posix(), f.read_bytes())
    for archive in (tgz, zipped):
        ds = load_image_folder(archive, cache_dir=tmp_path / "cache", progress=False)
        assert ds.classes == ["cat", "dog"] and torch.equal(ds.train_images, ref.train_images)
        assert torch.equal(ds.test_labels, ref.test_labels)


def test_one_class_dataset_is_refused(tmp_path):
    folder = _image_folder(tmp_path / "cats", classes=("cat",))
    with pytest.raises(DatasetError, match=r"one class folder in train/ \(cat\), but a classification dataset needs at least two"):
        load_image_folder(folder, cache_dir=tmp_path / "cache", progress=False)


def test_read_only_data_dir_on_download(tmp_path, monkeypatch):
    def read_only(url, dest, md5, progress):  # what open() says in a folder this user cannot write to
        raise PermissionError(errno.EACCES, "Permission denied", str(dest))

    monkeypatch.setattr(data, "_download", read_only)
    with pytest.raises(DatasetError) as e:
        data.load_cifar10(tmp_path / "ro", progress=False)
    assert str(e.value) == (f"Cannot write to {tmp_path / 'ro'} (Permission denied); set MAGE_LITE_DATA_DIR to a writable folder, "
                            "or pass --dataset PATH/TO/cifar10-jpg.tar.gz (an image-folder archive) to train without downloading.")


# --- case 5: damaged run files ------------------------------------------------------------------------

def _damage(path: Path, how: str) -> None:
    path.write_bytes(b"" if how == "empty" else path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_damaged_files_are_named(tmp_path, how):
    atomic_torch_save({"w": torch.zeros(100)}, tmp_path / "model.pt")
    save_json({"a": list(range(50))}, tmp_path / "history.json")
    _damage(tmp_path / "model.pt", how)
    _damage(tmp_path / "history.json", how)
    for load, name in ((load_state, "model.pt"), (load_json, "history.json")):
        with pytest.raises(DamagedFileError) as e:
            load(tmp_path / name)
        msg = str(e.value)
        assert isinstance(e.value, ValueError) and str(tmp_path / name) in msg and "delete it and rerun" in msg
        assert "\n" not in msg


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_damaged_checkpoint_is_set_aside_and_training_restarts(tmp_path, how, capsys):
    straight = fit(new_model(), sample, CFG, tmp_path / "a", progress=False)
    fit(new_model(), sample, CFG, tmp_path / "b", progress=False)
    _damage(tmp_path / "b" / "checkpoint.pt", how)
    again = fit(new_model(), sample, CFG, tmp_path / "b", progress=False)
    assert "moved it aside to checkpoint.pt.damaged and training train from step 0" in capsys.readouterr().out
    assert (tmp_path / "b" / "checkpoint.pt.damaged").exists()
    assert [h["loss"] for h in again] == [h["loss"] for h in straight]  # trained afresh, the same run


@pytest.mark.parametrize("damage", ["model.pt truncated", "model.pt empty", "history.json truncated", "history.json missing"])
def test_damaged_model_is_set_aside_and_retrained(tmp_path, damage, capsys):
    trained = []

    def train(model, run_dir):
        trained.append(run_dir)
        return fit(model, sample, CFG, run_dir, progress=False)

    m1, h1, run_dir = get_or_train("tiny", {"a": 1}, new_model, train, tmp_path)
    capsys.readouterr()
    name, how = damage.split()
    if how == "missing":
        (run_dir / name).unlink()
    else:
        _damage(run_dir / name, how)
    (run_dir / "checkpoint.pt").unlink()  # no resume point either: trained from scratch
    m2, h2, _ = get_or_train("tiny", {"a": 1}, new_model, train, tmp_path)
    out = capsys.readouterr().out
    assert len(trained) == 2 and "moved model.pt aside to model.pt.damaged and training tiny again" in out
    assert str(run_dir / name) in out and (run_dir / "model.pt.damaged").exists()
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    get_or_train("tiny", {"a": 1}, new_model, train, tmp_path)
    assert len(trained) == 2  # the rebuilt model is reused
