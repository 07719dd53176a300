"""The train command: a preset's main models trained without Jupyter, exported as checked shards, loaded by --pretrained."""

import shutil

import pytest
import torch
import torch.nn as nn

from mage_lite.artifacts import PRETRAINED_ENV, get_or_train, load_json
from mage_lite.lab import pretrained, train_preset

CONFIG = {"model": {"width": 4}, "train": {"batch_size": 8}}


def _train(model, run_dir):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    return [{"step": 1, "loss": 0.5}]


def _refuse(model, run_dir):
    raise AssertionError("a model with shipped weights was trained")


def _two_models(tmp_path):
    """Two small trained models ("lin", "big") and their run folders."""
    made = [get_or_train(name, CONFIG, lambda: nn.Linear(n, 30), _train, tmp_path / "runs")
            for name, n in (("lin", 4), ("big", 40))]
    return [m for m, _, _ in made], [d for _, _, d in made]


def test_shards_cut_the_models_anywhere_and_load_as_one_file_per_model_does(tmp_path, monkeypatch, capsys):
    models, used = _two_models(tmp_path)
    dest = pretrained.export_shards("cpu", tmp_path / "weights", used, names=("lin", "big"), shard_bytes=1000)
    manifest = load_json(dest / "manifest.json")
    shards = sorted(p.name for p in dest.glob("*.bin"))
    assert shards == [s["file"] for s in manifest["shards"]] and len(shards) > 2  # the big model spans shards
    assert all((dest / s).stat().st_size <= 1000 for s in shards)
    assert max(len(e["pieces"]) for e in manifest["models"].values()) > 1

    monkeypatch.setenv(PRETRAINED_ENV, str(dest))
    for (name, n), trained in zip((("lin", 4), ("big", 40)), models):
        model, history, _ = get_or_train(name, CONFIG, lambda: nn.Linear(n, 30), _refuse, tmp_path / "other")
        assert history == [{"step": 1, "loss": 0.5}]
        for a, b in zip(model.parameters(), trained.parameters()):
            assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-3)
    assert capsys.readouterr().out.count("not trained here") == 2

    # exported again with bigger shards: the shards it no longer writes are deleted
    pretrained.export_shards("cpu", dest, used, names=("lin", "big"))
    assert sorted(p.name for p in dest.iterdir()) == ["manifest.json", "weights-00.bin"]


def test_weights_over_the_limits_are_refused_in_one_sentence(tmp_path):
    _, used = _two_models(tmp_path)
    for limits, why in (({"shard_bytes": 1000, "max_files": 3}, "over the limit of 3 files"),
                        ({"max_bytes": 5000}, "over the limit of 0.0047")):
        with pytest.raises(ValueError, match=why) as e:
            pretrained.export_shards("cpu", tmp_path / "w", used, names=("lin", "big"), **limits)
        assert str(e.value).count(". ") == 0 and "\n" not in str(e.value)
    assert not (tmp_path / "w").exists()  # refused before writing anything
    assert pretrained.shard_limits_problem(48 * 2**20, 2**20) == ""
    assert "over the limit of 64 MiB in all" in pretrained.shard_limits_problem(113 * 2**20)
    assert "over the limit of 64 MiB in all" in pretrained.shard_limits_problem(64 * 2**20 - 10, 100)
    assert "over the limit of 8 files" in pretrained.shard_limits_problem(60 * 2**20, shard_bytes=2**23)


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_a_missing_or_damaged_shard_is_refused_naming_it(tmp_path, monkeypatch, damage):
    _, used = _two_models(tmp_path)
    dest = pretrained.export_shards("cpu", tmp_path / "weights", used, names=("lin", "big"), shard_bytes=1000)
    shard = dest / "weights-01.bin"
    shard.unlink() if damage == "missing" else shard.write_bytes(b"not weights")
    with pytest.raises(ValueError, match=r"weights-01\.bin is missing or does not match its checksum") as e:
        pretrained.check_shards(dest)
    assert "\n" not in str(e.value)
    monkeypatch.setenv(PRETRAINED_ENV, str(dest))
    with pytest.raises(ValueError, match=r"weights-01\.bin is missing or does not match its checksum"):
        get_or_train("big", CONFIG, lambda: nn.Linear(40, 30), _refuse, tmp_path / "other")


def test_the_committed_cpu_weights_are_one_file_per_model_and_pass_the_shard_check():
    weights = pretrained.weights_dir("cpu")
    if not (weights / "manifest.json").exists():
        pytest.skip("no cpu weights are published")
    assert "shards" not in load_json(weights / "manifest.json")
    pretrained.check_shards(weights)  # nothing to check: each model's file is checked as it loads


@pytest.mark.parametrize("argv, start", [
    (["--preset", "nosuch", "--out", "OUT"], "error: unknown preset"),
    (["--preset", "smoke", "--out", "/proc/nope/weights"], "error: cannot write to /proc/nope/weights"),
    (["--preset", "smoke", "--out", "OUT", "--device", "tpu"], "error: unknown device"),
])
def test_bad_input_gets_one_sentence_and_exit_code_2(tmp_path, monkeypatch, capsys, argv, start):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert train_preset.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(start) and err.count("\n") == 1, err
    assert not list((tmp_path / "runs").rglob("model.pt"))


def test_fused_adamw_only_on_cuda_and_only_inside_the_block():
    plain = torch.optim.AdamW
    params = [nn.Parameter(torch.ones(3))]
    with train_preset.fused_adamw(torch.device("cpu")):
        assert torch.optim.AdamW is plain
    with train_preset.fused_adamw(torch.device("cuda")):
        opt = torch.optim.AdamW(params, lr=0.1, betas=(0.9, 0.95))
        assert isinstance(opt, plain) and opt.defaults["fused"] is True
    assert torch.optim.AdamW is plain


def test_a_compiled_step_keeps_the_model_its_state_and_its_loss():
    class Tiny(nn.Linear):
        def training_loss(self, batch, step):
            return self(batch).pow(2).mean(), {}

    torch.manual_seed(0)
    model, x = Tiny(4, 2), torch.randn(8, 4)
    want = model.training_loss(x, 0)[0]
    keys = list(model.state_dict())
    compiled = train_preset.compiled_step(model, backend="eager")
    assert compiled is model and type(model) is Tiny and list(model.state_dict()) == keys
    assert torch.allclose(model.training_loss(x, 0)[0], want)


@pytest.mark.slow
def test_the_train_command_trains_the_notebooks_models_and_a_pretrained_run_loads_its_shards(
        smoke_runs, tmp_path, monkeypatch, capsys):
    from mage_lite.lab import runner

    runs, out = tmp_path / "runs", tmp_path / "weights"
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(runs))
    assert train_preset.main(["--preset", "smoke", "--out", str(out), "--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == len(pretrained.MAIN_MODELS) and all(": trained in " in line for line in lines)
    trained = sorted(p.parent.name for p in runs.rglob("model.pt"))
    assert sorted(name.rsplit("-", 1)[0] for name in trained) == sorted(pretrained.MAIN_MODELS)
    # the very models (names and reuse keys) the notebooks trained
    assert set(trained) <= {p.parent.name for p in smoke_runs.parent.rglob("model.pt")}
    manifest = load_json(out / "manifest.json")
    files = [*out.iterdir()]
    assert len(files) <= 8 and sum(f.stat().st_size for f in files) <= 64 * 2**20
    assert all(f.stat().st_size <= 16 * 2**20 for f in files) and len(manifest["shards"]) == len(files) - 1

    before = {p: p.stat().st_mtime for p in runs.rglob("model.pt")}
    assert train_preset.main(["--preset", "smoke", "--out", str(out), "--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert all("reused" in line for line in lines) and len(lines) == len(pretrained.MAIN_MODELS)
    assert {p: p.stat().st_mtime for p in runs.rglob("model.pt")} == before

    shutil.rmtree(runs)
    monkeypatch.setattr(pretrained, "weights_dir", lambda preset: out)
    monkeypatch.setenv(PRETRAINED_ENV, "")  # run() sets it for its kernels; restored after the test
    runner.run("smoke", only=["03"], progress=False, pretrained=True)
    assert not list(runs.rglob("model.pt")), "a --pretrained run trained a model"
    stem = "03_mage_variable_masking"
    loaded = load_json(runs / "pretrained" / "smoke" / stem / "seed0" / "metrics.json")["probe_mage"]
    assert abs(loaded - load_json(smoke_runs / stem / "seed0" / "metrics.json")["probe_mage"]) <= 2.0
