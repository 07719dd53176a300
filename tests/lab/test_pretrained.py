"""Shipped weights: fp16, checksummed, matched by name and config (not code), and used instead of training."""


import pytest
import torch
import torch.nn as nn

from mage_lite import artifacts
from mage_lite.lab import pretrained
from mage_lite.artifacts import PRETRAINED_ENV, get_or_train, load_json

CONFIG = {"model": {"width": 4}, "train": {"batch_size": 8}, "depends_on": {"run": "vqgan-0000abcd"}}


def _train(model, run_dir):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    return [{"step": 1, "img_per_s": 8.0, "loss": 0.5}]


def _refuse(model, run_dir):
    raise AssertionError("a model with shipped weights was trained")


def test_shipped_weights_stand_in_for_training(tmp_path, monkeypatch, capsys):
    trained, _, run_dir = get_or_train("lin", CONFIG, lambda: nn.Linear(4, 3), _train, tmp_path / "runs")
    dest = pretrained.export("cpu", names=("lin",), dest=tmp_path / "weights", used=[run_dir])
    manifest = load_json(dest / "manifest.json")
    (entry,) = manifest["models"].values()
    assert all(v.dtype == torch.float16 for v in torch.load(dest / entry["file"], weights_only=True).values())

    monkeypatch.setenv(PRETRAINED_ENV, str(dest))
    # another code version (the tokenizer's run folder differs) and an empty runs folder: loaded, not trained
    moved = {**CONFIG, "depends_on": {"run": "vqgan-ffff0000"}}
    model, history, _ = get_or_train("lin", moved, lambda: nn.Linear(4, 3), _refuse, tmp_path / "other")
    assert "not trained here" in capsys.readouterr().out
    assert history == [{"step": 1, "img_per_s": 8.0, "loss": 0.5}]
    for a, b in zip(model.parameters(), trained.parameters()):
        assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-3)
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").rglob("model.pt"))

    # another config is not shipped: it trains
    calls = []
    get_or_train("lin", {**CONFIG, "model": {"width": 5}}, lambda: nn.Linear(4, 3),
                 lambda m, d: calls.append(1) or _train(m, d), tmp_path / "other")
    assert calls == [1]


def test_damaged_weights_are_refused_with_what_to_do(tmp_path, monkeypatch):
    _, _, run_dir = get_or_train("lin", CONFIG, lambda: nn.Linear(4, 3), _train, tmp_path / "runs")
    dest = pretrained.export("cpu", names=("lin",), dest=tmp_path / "weights", used=[run_dir])
    (entry,) = load_json(dest / "manifest.json")["models"].values()
    (dest / entry["file"]).write_bytes(b"not weights")
    monkeypatch.setenv(PRETRAINED_ENV, str(dest))
    # weights exported here (git does not track them) are made again; git can restore only what it tracks (issue 32)
    with pytest.raises(ValueError, match=r"checksum.*copy or export the weights again") as e:
        get_or_train("lin", CONFIG, lambda: nn.Linear(4, 3), _refuse, tmp_path / "other")
    assert "git checkout" not in str(e.value)
    monkeypatch.setattr(artifacts, "is_tracked", lambda path: path == dest / entry["file"])  # committed weights
    with pytest.raises(ValueError, match=rf"checksum.*restore it with `git checkout -- {dest / entry['file']}`"):
        get_or_train("lin", CONFIG, lambda: nn.Linear(4, 3), _refuse, tmp_path / "other")


def test_export_refuses_what_it_cannot_ship(tmp_path):
    _, _, run_dir = get_or_train("lin", CONFIG, lambda: nn.Linear(4, 3), _train, tmp_path / "runs")
    with pytest.raises(ValueError, match="over the"):
        pretrained.export("cpu", names=("lin",), dest=tmp_path / "w", used=[run_dir], limit_mb=1e-6)
    with pytest.raises(ValueError, match="used no mae"):
        pretrained.export("cpu", names=("lin", "mae"), dest=tmp_path / "w", used=[run_dir])


def test_half_keeps_what_fp16_cannot_hold():
    state = {"w": torch.randn(3), "count": torch.tensor([1e6]), "ids": torch.arange(3)}
    out = pretrained.half(state)
    assert out["w"].dtype == torch.float16 and out["count"].dtype == torch.float32 and out["ids"].dtype == torch.int64


def test_a_preset_without_weights_is_refused_in_one_sentence(capsys):
    from mage_lite.lab import runner

    assert runner.main(["run", "--preset", "smoke", "--pretrained"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: preset 'smoke' has no pretrained weights") and err.count("\n") == 1


@pytest.mark.realdata
def test_the_committed_cpu_weights_reproduce_the_published_probes(cifar_archive, tmp_path, monkeypatch):
    # The weights load into today's code (matched by config, not code) and measure what the published run measured.
    from mage_lite.artifacts import REPO_ROOT
    from mage_lite.mage_eval import encode_dataset, probe_tokens
    from mage_lite.session import NotebookRun

    weights = pretrained.weights_dir("cpu")
    if not (weights / "manifest.json").exists():
        pytest.skip("no cpu weights are published yet: python -m mage_lite pretrained export --preset cpu")
    manifest = load_json(weights / "manifest.json")
    assert manifest["megabytes"] <= pretrained.LIMIT_MB
    published = load_json(REPO_ROOT / "reports" / "cpu" / "03_mage_variable_masking" / "seed0" / "metrics.json")
    monkeypatch.setenv(PRETRAINED_ENV, str(weights))
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    run = NotebookRun("03_mage_variable_masking", "cpu", dataset=str(cifar_archive), device="cpu")
    untouched = _refuse  # any training would mean the weights were not found
    monkeypatch.setattr("mage_lite.session.fit", lambda *a, **k: untouched(None, None))

    mae, _ = run.mae(norm_pix=True)
    assert abs(run.probe.evaluate(mae.features, run.device, "MAE")["avg"] - published["probe_mae"]) <= 1.0

    tokenizer = run.tokenizer()
    mage, _ = run.main_mage(tokenizer)
    train_ids = encode_dataset(tokenizer, run.probe.train_images, device=run.device).flatten(1)
    test_ids = encode_dataset(tokenizer, run.probe.test_images, device=run.device).flatten(1)
    probe = probe_tokens(run.probe, mage, train_ids, test_ids, keys=["avg"])
    assert abs(probe["avg"] - published["probe_mage"]) <= 1.0


@pytest.mark.slow
def test_a_pretrained_run_trains_nothing_and_measures_what_the_trained_run_did(smoke_runs, tmp_path, monkeypatch):
    from mage_lite.lab import runner

    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    dest = pretrained.export("smoke", dest=tmp_path / "weights")
    assert {e["trained_in"].rsplit("-", 1)[0] for e in load_json(dest / "manifest.json")["models"].values()} == set(
        pretrained.MAIN_MODELS)
    monkeypatch.setattr(pretrained, "weights_dir", lambda preset: dest)
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(PRETRAINED_ENV, "")  # run() sets it for its kernels; restored after the test
    runner.run("smoke", progress=False, pretrained=True)
    ran = tmp_path / "runs" / "pretrained" / "smoke"  # apart from the trained runs in the same runs folder
    assert not list((tmp_path / "runs").rglob("model.pt")), "a --pretrained run trained a model"
    for stem, key in (("01_mae_baseline", "probe_normpix"), ("03_mage_variable_masking", "probe_mage"),
                      ("05_quantization_shortcut", "probe_continuous")):
        trained = load_json(smoke_runs / stem / "seed0" / "metrics.json")[key]
        loaded = load_json(ran / stem / "seed0" / "metrics.json")[key]
        assert abs(loaded - trained) <= 2.0, (stem, key, trained, loaded)  # fp16 weights; the smoke probes are small
    check = pretrained.record_check("smoke", pretrained.compare("smoke", ran, smoke_runs), ran)
    stems = [p.stem for p in runner.discover()]
    assert sorted(check["minutes"]) == stems and len(check["rows"]) > 10
    assert f"ran all {len(stems)} notebooks in" in pretrained.render_check(check)


def test_the_readme_pretrained_line_is_the_committed_check():
    from mage_lite.artifacts import REPO_ROOT
    from mage_lite.lab.readme import read_block

    committed = REPO_ROOT / "reports" / "cpu" / "pretrained_check.json"
    text = read_block(pretrained.BLOCK)
    if not committed.exists():
        assert text.startswith("Not measured yet")
    else:
        assert text == pretrained.render_check(load_json(committed))

