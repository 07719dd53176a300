import os
import subprocess
import sys
from pathlib import Path

import torch


def test_fit_under_torchrun_keeps_replicas_identical_and_shards_data(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(Path(__file__).parent / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k  # gradients were averaged
    assert r0["seen"] != r1["seen"]  # each process sampled its own shard
    assert (tmp_path / "checkpoint.pt").exists()
