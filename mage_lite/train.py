"""The one training loop every model in the project uses.

A model plugs in by defining ``training_loss(batch, step) -> (loss, logs)``. The loop owns
the optimiser (AdamW, no weight decay on biases, norms and embedding tokens), the
schedule (linear warm-up + half-cycle cosine), gradient clipping, bf16 autocast on GPU,
progress, the metrics history, and checkpoint + resume.

Resume is exact on CPU: the RNG is re-seeded from (seed, step, rank) at every step, so a
run that is interrupted and started again draws the same batches and masks as one that
was not, and ends with the same weights.
"""

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm.auto import tqdm

from .artifacts import DamagedFileError, atomic_torch_save, load_state
from .device import autocast, distributed_context


@dataclass
class TrainConfig:
    steps: int = 1000  # optimiser steps in the whole run
    batch_size: int = 128  # images per step in each process
    base_lr: float = 1.5e-4  # lr for 256 images; actual lr = base_lr * global batch / 256 (MAE's rule)
    min_lr: float = 0.0  # floor of the cosine schedule
    warmup_steps: int = 100  # linear warm-up from 0 to the peak lr
    weight_decay: float = 0.05  # AdamW decay, never on biases, norms or embedding tokens
    beta1: float = 0.9
    beta2: float = 0.95  # MAE/MAGE use 0.95, not 0.999
    grad_clip: float = 3.0  # max global gradient norm (MAGE: 3.0); 0 disables
    ckpt_every: int = 100  # steps between checkpoints (a killed run loses at most this many)
    log_every: int = 10  # steps between entries of the metrics history

    def __post_init__(self):
        for name in ("steps", "batch_size", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.base_lr <= 0:
            raise ValueError("train.warmup_steps must be >= 0 and train.base_lr > 0")


def lr_at(step: int, cfg: TrainConfig, peak_lr: float) -> float:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps``, then half-cycle cosine to ``min_lr``."""
    if step < cfg.warmup_steps:
        return peak_lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + (peak_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weight matrices, and the rest (biases, norms, tokens) undecayed."""
    skip = set(getattr(model, "no_weight_decay", lambda: ())())
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def step_seed(seed: int, step: int, rank: int) -> int:
    """A distinct, reproducible seed for every (run seed, step, process)."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class _LossModule(nn.Module):
    """Wraps ``model.training_loss`` as ``forward`` so DDP sees (and syncs) the call."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, step: int):
        return self.model.training_loss(batch, step)


def fit(
    model: nn.Module,
    sample_batch: Callable[[int, torch.Generator], torch.Tensor],
    cfg: TrainConfig,
    run_dir: Path | str,
    seed: int = 0,
    device: torch.device | str = "cpu",
    desc: str = "train",
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` for ``cfg.steps`` steps, resuming from ``run_dir/checkpoint.pt`` if present.

    sample_batch(batch_size, generator) returns a batch on ``device``. Returns the metrics
    history: a list of dicts with step, loss, lr, img_per_s and the model's own logs,
    averaged over each ``log_every`` window. Ctrl-C saves a checkpoint before stopping.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    device = torch.device(device)
    rank, world = distributed_context()
    model.to(device)
    loss_module = _LossModule(model)
    if world > 1:
        # find_unused_parameters: e.g. a GAN discriminator gets no gradient before it switches on.
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    peak_lr = cfg.base_lr * cfg.batch_size * world / 256
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=peak_lr, betas=(cfg.beta1, cfg.beta2))

    start, history = 0, []
    state = None
    if ckpt_path.exists():
        try:
            state = load_state(ckpt_path, device)
        except DamagedFileError as e:
            # A checkpoint is only a resume point: set it aside and train from the start.
            if rank == 0:
                ckpt_path.replace(ckpt_path.with_name("checkpoint.pt.damaged"))
            print(f"warning: {e.path} {e.problem}; moved it aside to checkpoint.pt.damaged and training {desc} from step 0")
    if state is not None:
        if state.get("train_config") != asdict(cfg):
            raise ValueError(
                f"{ckpt_path} was written with another training config; delete {run_dir} to start this run afresh"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]

    def save(step: int) -> None:
        if rank == 0:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "history": history, "train_config": asdict(cfg)}
            atomic_torch_save(state, ckpt_path)

    gen = torch.Generator(device=device)
    window: dict[str, float] = {}
    n_window, t_window = 0, time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps,
               disable=not progress or rank != 0, dynamic_ncols=True)
    done = start  # steps fully applied to the weights
    updating = False
    model.train()
    try:
        for step in bar:
            torch.manual_seed(step_seed(seed, step, rank))
            gen.manual_seed(step_seed(seed, step, rank) + 1)
            lr = lr_at(step, cfg, peak_lr)
            for group in opt.param_groups:
                group["lr"] = lr
            batch = sample_batch(cfg.batch_size, gen)
            with autocast(device):
                loss, logs = loss_module(batch, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: the loss became {loss.item()} at step {step}; lower the learning rate or check the input data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            updating = True
            opt.step()
            updating, done = False, step + 1

            for k, v in {"loss": loss.detach(), **logs}.items():
                window[k] = window.get(k, 0.0) + float(v)
            n_window += 1
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                elapsed = time.perf_counter() - t_window
                record = {"step": step + 1, "lr": lr, "img_per_s": n_window * cfg.batch_size * world / elapsed}
                record.update({k: v / n_window for k, v in window.items()})
                history.append(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['img_per_s']:.0f}")
                window, n_window, t_window = {}, 0, time.perf_counter()
            if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
                save(step + 1)
    except KeyboardInterrupt:
        # Weights caught half-way through an optimiser update are not saved: the last
        # periodic checkpoint stays the resume point.
        if not updating:
            save(done)
        bar.close()
        raise
    bar.close()
    save(cfg.steps)
    if world > 1:
        dist.barrier()
    model.eval()
    return history
