"""Run by tests/engine/test_ddp.py under torchrun: trains the tiny regressor with DDP on CPU (gloo)."""

import sys

import torch
import torch.distributed as dist

from mage_lite.device import distributed_context
from mage_lite.train import TrainConfig, fit
from test_train import TinyRegressor, sample

out = sys.argv[1]
rank, world = distributed_context()
torch.manual_seed(0)
model = TinyRegressor()
seen = []


def sampling(batch_size, g):
    batch = sample(batch_size, g)
    seen.append(batch[0, 0].item())
    return batch


hist = fit(model, sampling, TrainConfig(steps=12, batch_size=8, base_lr=0.2, warmup_steps=2, ckpt_every=5, log_every=4),
           out, seed=0, progress=False)
torch.save({"state": model.state_dict(), "seen": seen, "world": world}, f"{out}/rank{rank}.pt")
dist.destroy_process_group()
