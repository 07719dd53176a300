import math

import pytest
import torch
import torch.nn as nn

from mage_lite.artifacts import get_or_train, load_state
from mage_lite.train import TrainConfig, fit, lr_at, param_groups


class TinyRegressor(nn.Module):
    """y = x @ w_true, learned through a dropout MLP, so the RNG matters for exact resume."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.2), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 1))
        self.register_buffer("w_true", torch.linspace(-1, 1, 8)[:, None])

    def training_loss(self, x, step):
        noise = torch.randn(x.shape[0], 1) * 0.01  # model-side randomness, drawn from the global RNG
        loss = ((self.net(x) - (x @ self.w_true + noise)) ** 2).mean()
        return loss, {"mse": loss.detach()}


def sample(batch_size, g):
    return torch.randn(batch_size, 8, generator=g)


CFG = TrainConfig(steps=40, batch_size=16, base_lr=0.2, warmup_steps=5, ckpt_every=7, log_every=5)


def new_model():
    torch.manual_seed(0)
    return TinyRegressor()


def test_loss_goes_down_and_history_is_recorded(tmp_path):
    hist = fit(new_model(), sample, CFG, tmp_path, progress=False)
    assert [h["step"] for h in hist] == list(range(5, 41, 5))
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert {"loss", "lr", "img_per_s", "mse"} <= set(hist[0])


def test_schedule_warmup_then_cosine():
    peak = 1.0
    assert lr_at(0, CFG, peak) == pytest.approx(1 / 5)
    assert lr_at(4, CFG, peak) == pytest.approx(1.0)
    mid = CFG.warmup_steps + (CFG.steps - CFG.warmup_steps) / 2
    assert lr_at(int(mid), CFG, peak) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)), abs=0.05)
    assert lr_at(CFG.steps, CFG, peak) == pytest.approx(0.0, abs=1e-9)


def test_no_weight_decay_on_biases_and_norms():
    m = TinyRegressor()
    decay, no_decay = param_groups(m, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert any(p is m.net[3].weight for p in no_decay["params"])  # LayerNorm weight
    assert any(p is m.net[0].bias for p in no_decay["params"])


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    straight = new_model()
    fit(straight, sample, CFG, tmp_path / "a", seed=3, progress=False)

    calls = {"n": 0}

    def interrupting(batch_size, g):
        calls["n"] += 1
        if calls["n"] == 18:  # Ctrl-C while sampling the batch of step 17
            raise KeyboardInterrupt
        return sample(batch_size, g)

    resumed = new_model()
    with pytest.raises(KeyboardInterrupt):
        fit(resumed, interrupting, CFG, tmp_path / "b", seed=3, progress=False)
    state = load_state(tmp_path / "b" / "checkpoint.pt")
    assert state["step"] == 17
    assert not list((tmp_path / "b").glob("*.tmp"))  # nothing half-written left behind
    resumed = new_model()  # a fresh process: weights come only from the checkpoint
    fit(resumed, sample, CFG, tmp_path / "b", seed=3, progress=False)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_killed_run_resumes_from_periodic_checkpoint(tmp_path):
    straight = new_model()
    fit(straight, sample, CFG, tmp_path / "a", seed=1, progress=False)
    # A kill (no chance to save) leaves the last periodic checkpoint: simulate by training
    # to 21 steps with ckpt_every=7 and dropping what came after step 21.
    short = TrainConfig(**{**CFG.__dict__})
    killed = new_model()

    def dies_after_21(batch_size, g, n={"n": 0}):
        n["n"] += 1
        if n["n"] == 23:
            raise SystemExit("killed")  # not KeyboardInterrupt: nothing is saved on the way out
        return sample(batch_size, g)

    with pytest.raises(SystemExit):
        fit(killed, dies_after_21, short, tmp_path / "b", seed=1, progress=False)
    assert load_state(tmp_path / "b" / "checkpoint.pt")["step"] == 21
    resumed = new_model()
    fit(resumed, sample, CFG, tmp_path / "b", seed=1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_changed_config_is_refused_on_resume(tmp_path):
    fit(new_model(), sample, TrainConfig(steps=10, batch_size=4, ckpt_every=3), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another training config"):
        fit(new_model(), sample, TrainConfig(steps=12, batch_size=4, ckpt_every=3), tmp_path, progress=False)


def test_get_or_train_reuses_finished_model(tmp_path):
    trained = {"n": 0}

    def train(model, run_dir):
        trained["n"] += 1
        return fit(model, sample, CFG, run_dir, progress=False)

    m1, h1, d1 = get_or_train("tiny", {"a": 1}, new_model, train, tmp_path)
    m2, h2, d2 = get_or_train("tiny", {"a": 1}, new_model, train, tmp_path)
    _, _, d3 = get_or_train("tiny", {"a": 2}, new_model, train, tmp_path)
    assert trained["n"] == 2 and d1 == d2 != d3
    assert h1 == h2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    sd = torch.load(d1 / "model.pt", weights_only=True)
    assert set(sd) == set(m1.state_dict())


def test_bad_train_config_is_refused():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
