"""The runner's side of "no silent wrong results": the command lines (notebooks, report, pretrained, bench)
refuse, before any kernel or worker starts, what would fail or go wrong later, in one sentence and a
non-zero exit; what they accept, they do right (folders from the environment, shipped weights)."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.nn as nn

from mage_lite import data
from mage_lite.lab import bench, cli, pretrained, runner
from mage_lite.lab.report import __main__ as report_cli
from mage_lite.lab.report import grid
from mage_lite.artifacts import PRETRAINED_ENV, PRETRAINED_ONLY_ENV, get_or_train, load_json, save_json
from mage_lite.config import load_preset
from test_reliability import BASE, _image_folder, _one_line_error, no_kernel  # noqa: F401 (a fixture)

SMOKE = ["run", "--preset", "smoke", "--no-progress"]


@pytest.fixture
def no_worker(monkeypatch):
    """Any report worker fails the test: the report must refuse before its grid starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("a report worker was started")

    monkeypatch.setattr(grid, "start_worker", refuse)


def kernel_stand_in(seen: list):
    """An ``execute`` that does what a kernel would: record the environment it inherits and log a metric where
    it finds the runs folder (kernels run in the repository root, not in the command's folder)."""
    def execute(book, params, out_dir, progress=True, name=""):
        seen.append({k: os.environ.get(k) for k in ("MAGE_LITE_RUNS_DIR", "MAGE_LITE_DATA_DIR", PRETRAINED_ENV,
                                                   PRETRAINED_ONLY_ENV)})
        runs = Path(os.environ["MAGE_LITE_RUNS_DIR"])
        if not runs.is_absolute():
            runs = runner.REPO_ROOT / runs
        save_json({"probe_stand_in": 42.0}, runs / params["preset"] / book.stem / "seed0" / "metrics.json")
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir / f"{book.stem}.ipynb"
    return execute


# --- case 3: folders from the environment are the same for the command and its kernels ---------------

def test_relative_env_folders_are_made_absolute_for_every_kernel(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "execute", kernel_stand_in(seen))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", "my-runs")
    monkeypatch.setenv("MAGE_LITE_DATA_DIR", "my-data")
    assert runner.main([*SMOKE, "--only", "00", "01"]) == 0
    assert seen == [{"MAGE_LITE_RUNS_DIR": str(tmp_path / "my-runs"), "MAGE_LITE_DATA_DIR": str(tmp_path / "my-data"),
                     PRETRAINED_ENV: None, PRETRAINED_ONLY_ENV: None}] * 2
    summary = (tmp_path / "my-runs" / "smoke" / "summary.md").read_text()  # beside the metrics it lists
    assert summary.count("| probe_stand_in | 42 |") == 2
    assert not (runner.REPO_ROOT / "my-runs").exists()


def test_report_workers_get_the_absolute_folders(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(grid, "run_grid", lambda *a, **k: seen.append(os.environ["MAGE_LITE_RUNS_DIR"]) or {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", "my-runs")
    report_cli.main(["--preset", "smoke", "--seeds", "1", "--out", "out"])
    assert seen == [str(tmp_path / "my-runs")]  # what start_worker passes on ({**os.environ})


# --- case 4: --pretrained loads the shipped weights or stops; it never trains quietly -----------------

@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """Shipped smoke weights (an empty manifest) published beside their run: smoke's config, seed 0, shapes."""
    weights = tmp_path / "reports" / "smoke" / "weights"
    save_json({"preset": "smoke", "models": {}}, weights / "manifest.json")
    cfg = load_preset("smoke").to_dict()
    save_json({"seed": 0, "config": cfg, "dataset": {"source": "shapes", "identity": "the shapes' identity"}},
              weights.parent / "00_data_and_tools" / "seed0" / "metrics.json")
    monkeypatch.setattr(pretrained, "weights_dir", lambda preset: weights)
    return weights


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "1"], "they were trained with seed 0, not 1"),
    (["--set", "mae.dim=32"], "they were trained with mae.dim=64 (this run: 32)"),
    (["--set", "mae.dim=32", "mae_train.steps=4"], "mae.dim=64 (this run: 32) (and 1 more)"),
    (["--set", "data.dataset=cifar10"], "they were trained on other data (shapes), not on 'cifar10'"),
])
def test_pretrained_refuses_a_run_the_weights_do_not_match(args, fragment, shipped, no_kernel, capsys, monkeypatch):
    monkeypatch.setattr(cli, "network_problem", lambda url: "")  # cifar10 downloadable: only the weights refuse
    assert runner.main([*SMOKE, "--pretrained", *args]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("error: the smoke weights cannot stand in for this run's models: ") and fragment in err
    assert "--pretrained-or-train" in err


def test_pretrained_writes_apart_and_pretrained_or_train_trains_what_does_not_match(shipped, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "execute", kernel_stand_in(seen))
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    apart = str(tmp_path / "runs" / "pretrained")
    assert runner.main([*SMOKE, "--only", "00", "--pretrained"]) == 0
    assert runner.main([*SMOKE, "--only", "00", "--pretrained-or-train", "--seed", "1"]) == 0
    assert seen == [{"MAGE_LITE_RUNS_DIR": apart, "MAGE_LITE_DATA_DIR": None, PRETRAINED_ENV: str(shipped),
                     PRETRAINED_ONLY_ENV: only} for only in ("1", "")]
    assert (tmp_path / "runs" / "pretrained" / "smoke" / "summary.md").exists() and not (tmp_path / "runs" / "smoke").exists()
    assert os.environ.get(PRETRAINED_ENV) is None and os.environ["MAGE_LITE_RUNS_DIR"] == str(tmp_path / "runs")


def test_a_missing_committed_manifest_is_restored_not_recreated(tmp_path, monkeypatch, no_kernel, capsys):
    manifest = tmp_path / "reports" / "smoke" / "weights" / "manifest.json"
    monkeypatch.setattr(pretrained, "weights_dir", lambda preset: manifest.parent)
    monkeypatch.setattr(pretrained, "is_tracked", lambda path: path == manifest)  # deleted from a checkout
    assert runner.main([*SMOKE, "--pretrained"]) == 2
    assert f"{manifest} is missing; restore it with `git checkout -- {manifest}`" in _one_line_error(capsys)


def _lin_config(identity: str, seed: int = 0) -> dict:
    return {"model": {"width": 4}, "data": identity, "seed": seed}


@pytest.mark.parametrize("config, why", [
    (_lin_config("other pixels"), "the shipped weights were trained on other data (shapes: the shapes' identity) than "
                                  "this run reads (other pixels)"),
    (_lin_config("the shapes' identity", seed=3), "the shipped weights were trained with seed 0, not 3"),
    (_lin_config("the shapes' identity") | {"model": {"width": 5}}, "its config differs from the one the shipped weights"),
])
def test_a_kernel_stops_on_a_model_the_weights_do_not_match(config, why, shipped, tmp_path, monkeypatch):
    # What check_pretrained_run cannot tell before the data is read (data at another path): the kernel says it.
    def trained(model, run_dir):
        return [{"step": 1, "img_per_s": 1.0, "loss": 1.0}]

    _, _, run_dir = get_or_train("lin", _lin_config("the shapes' identity"), lambda: nn.Linear(4, 3), trained, tmp_path / "a")
    pretrained.export("smoke", names=("lin",), dest=shipped, used=[run_dir])
    monkeypatch.setenv(PRETRAINED_ENV, str(shipped))
    monkeypatch.setenv(PRETRAINED_ONLY_ENV, "1")
    with pytest.raises(ValueError) as e:
        get_or_train("lin", config, lambda: nn.Linear(4, 3), trained, tmp_path / "b")
    assert str(e.value).startswith(f"no pretrained weights for lin match this run: {why}") and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="no lin-2 is shipped, only lin"):
        get_or_train("lin-2", config, lambda: nn.Linear(4, 3), trained, tmp_path / "b")
    monkeypatch.setenv(PRETRAINED_ONLY_ENV, "")  # as the budget curve calls it: a model not shipped is trained
    assert get_or_train("lin", config, lambda: nn.Linear(4, 3), trained, tmp_path / "b")[2].exists()


@pytest.fixture
def published_and_pretrained(tmp_path, monkeypatch):
    """A published smoke run and a --pretrained one of it under $MAGE_LITE_RUNS_DIR; README rendering stubbed."""
    monkeypatch.setattr(pretrained, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(pretrained, "render_block", lambda *a: tmp_path / "README.md")
    save_json({"probe_a": 50.0}, tmp_path / "reports" / "smoke" / "01_x" / "seed0" / "metrics.json")
    ran = tmp_path / "elsewhere" / "pretrained" / "smoke"
    save_json({"probe_a": 49.0}, ran / "01_x" / "seed0" / "metrics.json")
    save_json({"01_x": {"seconds": 60.0}}, ran / "timings.json")
    return ran


def test_pretrained_compare_finds_the_run_it_is_pointed_at(published_and_pretrained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert pretrained.main(["compare", "--preset", "smoke"]) == 0
    assert "| 01_x | probe_a | 50 | 49 | -1 |" in capsys.readouterr().out
    monkeypatch.delenv("MAGE_LITE_RUNS_DIR")
    assert pretrained.main(["compare", "--preset", "smoke", "--runs", str(published_and_pretrained)]) == 0
    assert load_json(tmp_path / "reports" / "smoke" / "pretrained_check.json")["minutes"] == {"01_x": 1.0}
    assert pretrained.main(["compare", "--preset", "smoke", "--runs", str(tmp_path / "empty")]) == 2
    assert f"nothing to compare in {tmp_path / 'empty'}" in _one_line_error(capsys)


# --- case 6: one dataset, named once ------------------------------------------------------------------

def test_two_different_datasets_are_refused(no_kernel, capsys, tmp_path, monkeypatch):
    assert runner.main([*SMOKE, "--dataset", "shapes", "--set", "data.dataset=cifar10"]) == 2
    assert "dataset 'shapes' (--dataset) and data.dataset 'cifar10' (--set) name different datasets" in _one_line_error(capsys)
    folder = _image_folder(tmp_path / "pets")
    monkeypatch.chdir(tmp_path)  # the same folder given relative and absolute is one dataset
    assert load_preset("smoke", {"data.dataset": "pets"}, dataset=str(folder)).data.dataset == str(folder)


# --- case 7: a runs or report folder that cannot be written is refused up front -------------------------

def _unwritable(kind: str, tmp_path: Path, monkeypatch, name: str = "runs") -> Path:
    """A folder ``tmp_path / name`` that cannot be written, as ``kind`` says (or one under /proc)."""
    folder = tmp_path / name
    if kind == "read-only":  # root writes through permission bits: stand in for a read-only mount or immutable folder
        writable = cli.tempfile.TemporaryFile

        def read_only(*args, dir, **kwargs):
            if Path(dir).is_relative_to(folder):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return writable(*args, dir=dir, **kwargs)

        monkeypatch.setattr(cli.tempfile, "TemporaryFile", read_only)
        folder.mkdir()
        return folder
    if kind == "file in the way":
        folder.write_text("")
        return folder
    return Path(f"/proc/mage-lite-{name}")  # a folder no process can make


@pytest.mark.parametrize("kind, why", [("read-only", "Read-only file system"), ("file in the way", "Not a directory"),
                                       ("/proc", "")])
def test_an_unwritable_runs_folder_is_refused_up_front(kind, why, tmp_path, monkeypatch, capsys, no_worker):
    monkeypatch.setattr(runner, "execute", lambda *a, **k: pytest.fail("a notebook was executed"))
    runs = _unwritable(kind, tmp_path, monkeypatch)
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(runs))
    for command, argv in ((runner, SMOKE), (report_cli, ["--preset", "smoke", "--seeds", "1", "--out", str(tmp_path / "out")])):
        assert command.main(argv) == 2
        err = _one_line_error(capsys)
        assert f"cannot write to {runs / 'smoke'}: making a file in" in err and why in err
        assert "set MAGE_LITE_RUNS_DIR to a folder you can write to" in err


# --- case 9: the report checks its output folder, its data and the machine before the grid ---------------

def test_report_refuses_an_unwritable_out_before_the_grid(tmp_path, monkeypatch, capsys, no_worker):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    assert report_cli.main(["--preset", "smoke", "--seeds", "1", "--out", "/proc/x"]) == 2
    assert "cannot write to /proc/x: making a file in /proc fails" in _one_line_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_cifar10_offline_without_its_files_is_refused_up_front(tmp_path, monkeypatch, capsys, no_worker):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MAGE_LITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(runner, "execute", lambda *a, **k: pytest.fail("a notebook was executed"))
    monkeypatch.setattr(cli, "network_problem", lambda url: "[Errno -3] Temporary failure in name resolution")
    for command, argv in ((report_cli, ["--preset", "report", "--seeds", "1", "--out", str(tmp_path / "out")]),
                          (runner, ["run", "--preset", "ci"])):
        assert command.main(argv) == 2
        err = _one_line_error(capsys)
        assert f"cifar10, which is not in {tmp_path / 'data'} and cannot be downloaded (" in err
        assert "pass --dataset PATH/TO/cifar10-jpg.tar.gz" in err
    extracted = tmp_path / "data" / data.CIFAR10_FOLDER
    extracted.mkdir(parents=True)
    for name in data.CIFAR10_FILES:
        (extracted / name).write_bytes(b"")
    runner.check_reachable("cifar10")  # extracted earlier: no network needed


def _stand_in_worker(script: str, started: list):
    def start(cmd, log, jobs):
        started.append(jobs)
        return subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT)
    return start


def test_each_failed_run_prints_its_whole_reason_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    reason = "03 failed in cell 7 (execution count 7): ValueError: " + "x" * 400 + "\\nsecond line; see the notebook"
    script = f"import sys; print('warming up'); print('error: {reason}', file=sys.stderr); sys.exit(1)"
    monkeypatch.setattr(grid, "start_worker", _stand_in_worker(script, []))
    status = grid.run_grid("smoke", 1, arms=(BASE,))
    whole = reason.replace("\\n", " ")
    assert f"  failed base seed 0 in 0.0 min: {whole}\n" in capsys.readouterr().out
    assert status["base/0"]["error"].startswith(f"exit code 1: {whole} (full log: ")


def test_jobs_are_capped_at_what_the_machine_holds(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(grid, "_available_memory_gib", lambda: 64.0)
    assert grid.cap_jobs(2) == 2 and capsys.readouterr().out == ""
    assert grid.cap_jobs(100000) == 2
    assert capsys.readouterr().out == "--jobs 100000 capped at 2: this machine has 2 CPU cores\n"
    monkeypatch.setattr(grid, "_available_memory_gib", lambda: 3.0)
    assert grid.cap_jobs(2) == 1
    assert "capped at 1: this machine has 3.0 GiB of available memory, about 2 GiB per notebook run" in capsys.readouterr().out
    # in the grid: the workers are told the capped number
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    started = []
    monkeypatch.setattr(grid, "start_worker", _stand_in_worker("pass", started))
    grid.run_grid("smoke", 1, jobs=100000, arms=(BASE,))
    assert "(1 at a time)" in capsys.readouterr().out and started == [1]


# --- case 10: widths and seeds are refused up front ---------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--set", "mae.dim=63"], "mae.dim (63) and mae.decoder_dim (32) must be multiples of their head counts (2, 2)"),
    (["--set", "mae.heads=3"], "mae.dim (64) and mae.decoder_dim (32) must be multiples of their head counts (3, 2)"),
    (["--set", "mae.decoder_dim=30"], "mae.dim (64) and mae.decoder_dim (30) must be multiples of 4"),
    (["--set", "mae.depth=0"], "mae.depth must be at least 1, got 0"),
    (["--seed", "18446744073709551615"], "seed must be an integer from 0 to 2147483647, got 18446744073709551615"),
    (["--seed", str(2**31)], "seed must be an integer from 0 to 2147483647"),
])
def test_bad_widths_and_seeds_are_refused_before_any_kernel(args, fragment, no_kernel, capsys):
    assert runner.main([*SMOKE, *args]) == 2
    assert fragment in _one_line_error(capsys)


def test_every_preset_has_valid_mae_widths():
    for name in ("smoke", "ci", "cpu", "gpu", "report"):
        load_preset(name)


# --- case 11: bench and pretrained command lines -------------------------------------------------------

@pytest.mark.parametrize("values", [["LOG"], ["LOG", "OUT", "TIMINGS", "MORE"]])
def test_record_ci_with_the_wrong_arity_is_one_sentence(values, capsys):
    assert bench.main(["--record-ci", *values]) == 2
    assert f"--record-ci takes LOG JSON [TIMINGS], got {len(values)} value" in _one_line_error(capsys)


def test_rendering_a_missing_check_is_one_sentence(tmp_path, capsys):
    assert pretrained.main(["compare", "--render", str(tmp_path / "missing.json")]) == 2
    assert f"{tmp_path / 'missing.json'} does not exist" in _one_line_error(capsys)


# --- verification of issue 32 (second pass): what the first fix left ---------------------------------------

def test_a_file_in_the_way_of_the_notebooks_folder_is_refused_up_front(tmp_path, no_kernel, capsys):
    # case 7: runs/<preset>/ is writable but runs/<preset>/notebooks is a file: a raw FileExistsError before
    (tmp_path / "runs" / "smoke").mkdir(parents=True)
    (tmp_path / "runs" / "smoke" / "notebooks").write_text("")
    assert runner.main(SMOKE) == 2
    err = _one_line_error(capsys)
    assert f"cannot write to {tmp_path / 'runs' / 'smoke' / 'notebooks'}: making a file in" in err and "Not a directory" in err


def test_a_damaged_timings_record_is_named_before_any_notebook(tmp_path, no_kernel, capsys):
    # case 7: it used to be found after the first notebook had run
    (tmp_path / "runs" / "smoke").mkdir(parents=True)
    (tmp_path / "runs" / "smoke" / "timings.json").write_text("{")
    assert runner.main(SMOKE) == 2
    assert f"{tmp_path / 'runs' / 'smoke' / 'timings.json'} is not valid JSON" in _one_line_error(capsys)


def test_any_other_file_system_error_ends_in_one_line(tmp_path, monkeypatch, capsys):
    # case 7: whatever the up-front checks could not foresee is one line naming the path, not a traceback
    def in_the_way(*args, **kwargs):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), "/runs/smoke/00_data_and_tools")

    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(runner, "run", in_the_way)
    assert runner.main(SMOKE) == 1
    assert "error: /runs/smoke/00_data_and_tools: File exists; fix that path" in _one_line_error(capsys)


@pytest.mark.parametrize("kind, why", [("read-only", "Read-only file system"), ("file in the way", "Not a directory")])
def test_cifar10_into_an_unwritable_data_folder_is_refused_before_any_kernel(kind, why, tmp_path, monkeypatch, capsys,
                                                                            no_kernel, no_worker):
    # case 8: online, but the download could not be written: it used to fail in every notebook's cell 3
    monkeypatch.setattr(cli, "network_problem", lambda url: "")
    monkeypatch.setenv("MAGE_LITE_DATA_DIR", str(_unwritable(kind, tmp_path, monkeypatch, name="data")))
    for command, argv in ((runner, [*SMOKE, "--dataset", "cifar10"]),
                          (report_cli, ["--preset", "smoke", "--seeds", "1", "--dataset", "cifar10", "--out",
                                        str(tmp_path / "out")])):
        assert command.main(argv) == 2
        err = _one_line_error(capsys)
        assert f"cannot write to {tmp_path / 'data'}: making a file in" in err and why in err
        assert "set MAGE_LITE_DATA_DIR to a folder you can write to" in err


@pytest.mark.parametrize("args, fragment", [
    (["--set", "mae.patch_size=0"], "mae.patch_size must be at least 1, got 0"),  # was a ZeroDivisionError traceback
    (["--dataset", "{broken}"], "is a broken link (it points to"),
])
def test_more_bad_input_is_refused_before_any_kernel(args, fragment, tmp_path, no_kernel, capsys):
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    assert runner.main([*SMOKE, *[a.format(broken=tmp_path / "broken") for a in args]]) == 2
    assert fragment in _one_line_error(capsys)


def test_a_dataset_name_in_another_case_is_the_same_dataset():
    # case 6: load_dataset reads the names whatever their case, so --dataset SHAPES --set data.dataset=shapes agree
    assert load_preset("smoke", {"data.dataset": "shapes"}, dataset="SHAPES").data.dataset == "SHAPES"


@pytest.mark.parametrize("content", ['{"a": 1}', "[1, 2]", "# a README, not JSON\n", b"\x1f\x8b\x08 gzip bytes"])
def test_rendering_a_wrong_record_is_one_sentence_without_delete_advice(content, tmp_path, monkeypatch, capsys):
    # cases 11 and 12: a --render file of the wrong kind was a KeyError traceback, or "it is damaged: delete it"
    record = tmp_path / "record.json"
    record.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setattr(pretrained, "render_block", lambda *a: pytest.fail("a block was written"))
    monkeypatch.setattr(bench, "render_block", lambda *a: pytest.fail("a block was written"))
    for command, argv, what in (
            (pretrained, ["compare", "--render", str(record)], "the check `python -m mage_lite pretrained compare` wrote"),
            (bench, ["--render", str(record)], "the figures `python -m mage_lite bench --out JSON` wrote"),
            (bench, ["--render-ci", str(record)], "the record `python -m mage_lite bench --record-ci` wrote")):
        assert command.main(argv) == 2
        err = _one_line_error(capsys)
        assert f"{record} is not {what}" in err and "delete" not in err and "git checkout" not in err
    assert pretrained.main(["compare", "--render", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder; pass the check" in _one_line_error(capsys)


def test_record_ci_names_a_log_or_timings_it_cannot_read(tmp_path, capsys):
    # case 11: a missing, binary or empty log was "[Errno 2] ..." or a codec error naming no file
    (tmp_path / "bin.log").write_bytes(b"\x1f\x8b\x08\xff")
    (tmp_path / "empty.log").write_text("")
    for log, fragment in (("missing.log", "does not exist"), ("bin.log", "is not a text log"), ("empty.log", "is empty")):
        assert bench.main(["--record-ci", str(tmp_path / log), str(tmp_path / "out.json")]) == 2
        assert f"{tmp_path / log} {fragment}; pass the log of a finished .ci/run" in _one_line_error(capsys)
    log = tmp_path / "run.log"
    log.write_text("2026-12-08\n===== 3 passed in 12.5s =====\nreal\t1m2.5s\n")
    (tmp_path / "timings.json").write_text("{")
    assert bench.main(["--record-ci", str(log), str(tmp_path / "out.json"), str(tmp_path / "timings.json")]) == 2
    err = _one_line_error(capsys)
    assert f"{tmp_path / 'timings.json'} is not the timings.json of the run's ci notebooks" in err and "delete" not in err
    assert not (tmp_path / "out.json").exists()
