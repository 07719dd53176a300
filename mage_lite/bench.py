"""Benchmark: how fast a training step runs, against what this machine can do.

    python -m mage_lite.bench                      # MAE training step at the ci and cpu preset sizes
    python -m mage_lite.bench --presets gpu --device cuda

Prints, per preset: images/s, achieved GFLOP/s (FLOPs of one forward + backward counted by
torch.utils.flop_counter) next to the fp32 matmul GFLOP/s measured in the same run, and the
share of step time spent in the input pipeline (sampling + augmentation). Figures only:
nothing here passes or fails.
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .augment import BatchSampler
from .config import load_preset
from .device import autocast, pick_device
from .mae import MAE
from .train import param_groups


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_gflops(device: torch.device, n: int = 1024, repeats: int = 20) -> float:
    """Peak-ish fp32 matmul throughput: n x n @ n x n, best of a few timed bursts."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        _sync(device)
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 * repeats / best / 1e9


def bench_preset(name: str, device: torch.device, steps: int = 10) -> dict:
    cfg = load_preset(name)
    batch = cfg.mae_train.batch_size
    model = MAE(cfg.mae).to(device)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95))
    images = torch.randint(0, 256, (4096, 3, cfg.data.image_size, cfg.data.image_size), dtype=torch.uint8)
    sampler = BatchSampler(images, device, cfg.data.crop_scale)
    gen = torch.Generator(device=device).manual_seed(0)

    def step(imgs):
        with autocast(device):
            loss, _, _ = model(imgs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step(sampler(batch, gen))
    flops = counter.get_total_flops()
    for _ in range(2):
        step(sampler(batch, gen))
    t_input = t_total = 0.0
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        imgs = sampler(batch, gen)
        _sync(device)
        t1 = time.perf_counter()
        step(imgs)
        _sync(device)
        t_input += t1 - t0
        t_total += time.perf_counter() - t0
    return {
        "preset": name,
        "model": f"MAE {cfg.mae.dim}x{cfg.mae.depth} (decoder {cfg.mae.decoder_dim}x{cfg.mae.decoder_depth})",
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": batch,
        "img_per_s": steps * batch / t_total,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops * steps / t_total / 1e9,
        "input_share": t_input / t_total,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="*", default=["ci", "cpu"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per preset")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(0)
    peak = matmul_gflops(device)
    print(f"device {device}, {torch.get_num_threads()} threads | fp32 matmul (1024^3): {peak:.1f} GFLOP/s")
    print(f"{'preset':6s} {'model':34s} {'params':>7s} {'batch':>5s} {'img/s':>7s} {'GFLOP/step':>10s} "
          f"{'GFLOP/s':>8s} {'of peak':>7s} {'input':>6s}")
    for name in args.presets:
        r = bench_preset(name, device, args.steps)
        print(f"{r['preset']:6s} {r['model']:34s} {r['params_M']:6.2f}M {r['batch']:5d} {r['img_per_s']:7.0f} "
              f"{r['gflop_per_step']:10.2f} {r['achieved_gflops']:8.1f} {r['achieved_gflops'] / peak:6.0%} "
              f"{r['input_share']:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
