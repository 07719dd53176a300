"""Benchmark: how fast every model's work runs, against what this machine can do.

    python -m mage_lite bench                            # ci and cpu sizes, the thread policy's count
    python -m mage_lite bench --threads 1 2              # the same at 1 and at 2 threads, side by side
    python -m mage_lite bench --out reports/bench.json   # also write the figures (and the machine) as JSON
    python -m mage_lite bench --render reports/bench.json  # README's benchmark table from that file
    python -m mage_lite bench --presets gpu --device cuda

At each preset's sizes it times: the MAE, VQGAN and MAGE training steps (MAGE three ways:
tokenizing augmented images on the fly, reading a token bank, and reading pre-tokenized ids,
which is the transformer alone), the MAGE-C step (bank and pre-tokenized), building the
token bank, iterative decoding to images, and probe feature extraction. For each it prints
images/s, the achieved GFLOP/s (FLOPs of one call counted by torch.utils.flop_counter) and
their share of the matmul GFLOP/s measured in the same process with the same thread count
and in the training precision (fp32 on the CPU, bf16 on a GPU), and for training steps the share of step time spent producing the batch. Figures
only: nothing here passes or fails.
"""

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..artifacts import load_json, save_json
from ..augment import BatchSampler, random_resized_crop, to_float
from ..config import PRESET_NAMES, ConfigError, load_preset
from ..device import available_cores, autocast, pick_device
from ..fd import decode_ids
from ..generate import iterative_decode
from ..mae import MAE
from ..mage import MAGE
from ..mage_c import MAGEC
from ..token_bank import BankSampler, build_bank
from ..train import param_groups
from ..vqgan import VQGAN
from .cli import check_record
from .readme import render_block

TABLE_BLOCK, GPU_BLOCK, CI_BLOCK = "bench-table", "bench-gpu-table", "ci-time"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES
N_IMAGES = 2048  # stand-in training images (random pixels: speed does not depend on content)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_dtype(device: torch.device) -> torch.dtype:
    """The precision training runs its matmuls in: bf16 under autocast on CUDA, fp32 elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def matmul_gflops(device: torch.device, n: int = 1024, repeats: int = 20) -> float:
    """Peak-ish matmul throughput in the training precision (:func:`matmul_dtype`): n x n @ n x n,
    best of a few timed bursts (n = 4096 on a GPU, where 1024 is too small to fill it)."""
    n = 4096 if device.type == "cuda" else n
    a, b = (torch.randn(n, n, device=device, dtype=matmul_dtype(device)) for _ in range(2))
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


def cpu_model() -> str:
    """The processor's name as the OS reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(fn: Callable[[], None], device: torch.device, steps: int, warmup: int = 2,
          on_start: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """(FLOPs of one call, seconds per call, averaged over ``steps`` calls after ``warmup``).

    ``on_start()`` is called just before the timed calls (e.g. to zero a counter)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    for _ in range(warmup):
        fn()
    _sync(device)
    on_start()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return counter.get_total_flops(), (time.perf_counter() - t0) / steps


def _train_step(model, sample: Callable[[], torch.Tensor], device: torch.device):
    """One optimiser step of ``model.training_loss`` on ``sample()``; the time spent in ``sample`` is accumulated."""
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-5, betas=(0.9, 0.95))
    model.train()
    spent = {"input": 0.0}

    def step():
        _sync(device)
        t0 = time.perf_counter()
        batch = sample()
        _sync(device)
        spent["input"] += time.perf_counter() - t0
        with autocast(device):
            loss, _ = model.training_loss(batch, 10**6)  # a late step: every loss term is on (e.g. the VQGAN's GAN)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, spent


def bench_preset(name: str, device: torch.device, steps: int = 10) -> list[dict]:
    """Every model's figures at preset ``name``'s sizes: a list of rows (see the module doc)."""
    cfg = load_preset(name)
    S = cfg.data.image_size
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (N_IMAGES, 3, S, S), dtype=torch.uint8)
    rows = []

    def record(model: str, what: str, batch: int, fn, spent: dict | None = None, n_steps: int = steps):
        flops, sec = _time(fn, device, n_steps, on_start=lambda: spent and spent.update(input=0.0))
        rows.append({"preset": name, "model": model, "what": what, "batch": batch, "img_per_s": batch / sec,
                     "gflop_per_call": flops / 1e9, "achieved_gflops": flops / sec / 1e9,
                     "input_share": None if spent is None else spent["input"] / (sec * n_steps)})

    # MAE
    mae = MAE(cfg.mae).to(device)
    sampler = BatchSampler(images, device, cfg.data.crop_scale)
    b = cfg.mae_train.batch_size
    step, spent = _train_step(mae, lambda: sampler(b, gen), device)
    record(f"MAE {cfg.mae.dim}x{cfg.mae.depth}", "training step", b, step, spent)

    # VQGAN (with its discriminator on, as after disc_start)
    vq = VQGAN(cfg.vqgan).to(device)
    b = cfg.vqgan_train.batch_size
    step, spent = _train_step(vq, lambda: sampler(b, gen), device)
    record(f"VQGAN {cfg.vqgan.channels} ch, {cfg.vqgan.codebook_size} codes", "training step (GAN on)", b, step, spent)
    vq.eval().requires_grad_(False)

    # MAGE: on the fly, bank, pre-tokenized
    mcfg = dataclasses.replace(cfg.mage, codebook_size=vq.codebook_size, num_tokens=vq.num_tokens)
    tag = f"MAGE {mcfg.dim}x{mcfg.depth}"
    b = cfg.mage_train.batch_size
    views = max(2, cfg.bank.views)
    bank = build_bank(vq, images, views, cfg.data.crop_scale, cfg.data.hflip, batch_size=cfg.bank.batch_size,
                      device=device, progress=False)
    ids = bank[:, 0].long().to(device)  # (N, L): stands for ids tokenized once

    def pretokenized(n: int, v: int = 1):
        idx = torch.randint(len(ids), (n * v,), device=device, generator=gen)
        return ids[idx] if v == 1 else ids[idx].view(n, v, -1)  # (B, L) or (B, 2, L)

    mage = MAGE(mcfg).set_tokenizer(vq).to(device)
    step, spent = _train_step(mage, lambda: sampler(b, gen), device)
    record(tag, "training step, tokenizing on the fly", b, step, spent)
    bank_sampler = BankSampler(bank, device)
    step, spent = _train_step(mage, lambda: bank_sampler(b, gen), device)
    record(tag, "training step, token bank", b, step, spent)
    step, spent = _train_step(mage, lambda: pretokenized(b), device)
    record(tag, "training step, pre-tokenized ids", b, step, spent)

    # MAGE-C: two views per image; half the images per step, as the notebooks train it
    ccfg = dataclasses.replace(mcfg, contrastive_weight=0.1)
    mage_c = MAGEC(ccfg).set_tokenizer(vq).to(device)
    bank2 = BankSampler(bank, device, views=2)
    step, spent = _train_step(mage_c, lambda: bank2(b // 2, gen), device)
    record(f"MAGE-C {mcfg.dim}x{mcfg.depth}", "training step, token bank (2 views)", b // 2, step, spent)
    step, spent = _train_step(mage_c, lambda: pretokenized(b // 2, 2), device)
    record(f"MAGE-C {mcfg.dim}x{mcfg.depth}", "training step, pre-tokenized ids (2 views)", b // 2, step, spent)
    # InfoNCE on the reconstruction pass instead of an extra clean pass: two MAGE passes' worth of work
    mage_cm = MAGEC(dataclasses.replace(ccfg, contrastive_input="masked")).set_tokenizer(vq).to(device)
    step, spent = _train_step(mage_cm, lambda: bank2(b // 2, gen), device)
    record(f"MAGE-C {mcfg.dim}x{mcfg.depth}", "training step, token bank (2 views), InfoNCE on the masked pass",
           b // 2, step, spent)

    # Building the token bank: augment + tokenize, per image-view
    nb = cfg.bank.batch_size

    def bank_chunk():
        with torch.no_grad():
            vq.encode_to_ids(random_resized_crop(to_float(images[:nb].to(device)), cfg.data.crop_scale, generator=gen))

    record(f"VQGAN {cfg.vqgan.channels} ch", "token bank build", nb, bank_chunk, n_steps=max(2, steps // 3))

    # Iterative decoding to images
    mage.eval()
    g = cfg.generation
    nd = min(g.batch_size, 250)

    def decode():
        out, _ = iterative_decode(mage, nd, g.steps, g.temperature, gen, return_history=False)
        decode_ids(vq, out, device=device)

    record(tag, f"generation: {g.steps} decoding steps + tokenizer decoder", nd, decode, n_steps=max(2, steps // 3))

    # Probe feature extraction
    mae.eval()
    npb = 500

    def mae_feats():
        with torch.no_grad():
            mae.features(to_float(images[:npb].to(device)))

    def mage_feats():
        mage.features(ids[:npb])

    record(f"MAE {cfg.mae.dim}x{cfg.mae.depth}", "probe features (images)", npb, mae_feats, n_steps=max(2, steps // 3))
    record(tag, "probe features (token ids)", npb, mage_feats, n_steps=max(2, steps // 3))
    return rows


def run(presets: list[str], threads: list[int], device: torch.device, steps: int) -> dict:
    """The benchmark at every thread count: {"machine": ..., "runs": [{"threads", "matmul_gflops", "rows"}]}."""
    machine = {"cpu": cpu_model(), "cores": available_cores(), "device": str(device), "torch": torch.__version__,
               "python": platform.python_version(), "date": date.today().isoformat(),
               "MAGE_LITE_JOBS": os.environ.get("MAGE_LITE_JOBS", "")}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    out = {"machine": machine, "runs": []}
    print(f"{machine['cpu']} | {machine['cores']} cores | device {device} | torch {machine['torch']}")
    for n in threads:
        if device.type == "cpu":
            torch.set_num_threads(n)
        torch.manual_seed(0)
        peak = matmul_gflops(device)
        print(f"\n{torch.get_num_threads()} threads | {str(matmul_dtype(device)).split('.')[-1]} matmul: {peak:.1f} GFLOP/s")
        print(f"{'preset':6s} {'model':30s} {'what':46s} {'batch':>5s} {'img/s':>8s} {'GFLOP/call':>10s} "
              f"{'GFLOP/s':>8s} {'of peak':>7s} {'input':>6s}")
        rows = []
        for name in presets:
            for r in bench_preset(name, device, steps):
                rows.append(r)
                inp = "" if r["input_share"] is None else f"{r['input_share']:6.1%}"
                print(f"{r['preset']:6s} {r['model']:30s} {r['what']:46s} {r['batch']:5d} {r['img_per_s']:8.0f} "
                      f"{r['gflop_per_call']:10.2f} {r['achieved_gflops']:8.1f} {r['achieved_gflops'] / peak:7.0%} {inp}",
                      flush=True)
        out["runs"].append({"threads": torch.get_num_threads(), "matmul_gflops": peak, "rows": rows})
    return out


def render_table(bench: dict) -> str:
    """The README's benchmark table: one row per (preset, model, what), one images/s column per thread count."""
    runs = bench["runs"]
    m = bench["machine"]
    command = bench.get("command") or f"python -m mage_lite bench --threads {' '.join(str(r['threads']) for r in runs)}"
    where = f"an {m['gpu']}" if m.get("gpu") else f"{m['cpu']} ({m['cores']} cores, {m['device']}"
    where += f", torch {m['torch']})" if not m.get("gpu") else f" ({m['device']}, torch {m['torch']})"
    precision = "bf16" if m["device"].startswith("cuda") else "fp32"
    head = (f"Measured {m['date']} with `{command}` on {where}, nothing else running. "
            + "; ".join(f"{precision} matmul {r['matmul_gflops']:.0f} GFLOP/s at {r['threads']} thread(s)" for r in runs) + ".")
    cols = [f"img/s, {r['threads']} thr" for r in runs]
    last = runs[-1]
    lines = [head, "", "| preset | model | what | batch | " + " | ".join(cols) + f" | GFLOP/call | GFLOP/s ({last['threads']} thr) "
             f"| of matmul peak | batch production |", "|" + " --- |" * (8 + len(cols))]
    for i, r in enumerate(last["rows"]):
        speeds = " | ".join(f"{run['rows'][i]['img_per_s']:.0f}" for run in runs)
        inp = "" if r["input_share"] is None else f"{100 * r['input_share']:.1f} %"
        lines.append(f"| `{r['preset']}` | {r['model']} | {r['what']} | {r['batch']} | {speeds} | {r['gflop_per_call']:.2f} | "
                     f"{r['achieved_gflops']:.1f} | {100 * r['achieved_gflops'] / last['matmul_gflops']:.0f} % | {inp} |")
    lines += ["", f"Ratios of images/s from the same runs ({last['threads']} threads unless named):", ""]
    lines += [f"- {k}: {v:.2f}x" for k, v in ratios(bench).items()]
    return "\n".join(lines)


def ratios(bench: dict) -> dict[str, float]:
    """The ratios the README states, from the last thread count's rows: bank vs pre-tokenized, 2 vs 1 thread."""
    out = {}
    rows = bench["runs"][-1]["rows"]
    by = {(r["preset"], r["what"]): r["img_per_s"] for r in rows}
    for preset in dict.fromkeys(r["preset"] for r in rows):
        pre, bank = by.get((preset, "training step, pre-tokenized ids")), by.get((preset, "training step, token bank"))
        fly = by.get((preset, "training step, tokenizing on the fly"))
        if pre and bank:
            out[f"{preset}: MAGE pre-tokenized / bank"] = pre / bank
            out[f"{preset}: MAGE bank / on the fly"] = bank / fly
        pre_c, bank_c = (by.get((preset, f"training step, {k} (2 views)")) for k in ("pre-tokenized ids", "token bank"))
        if pre_c and bank_c:
            out[f"{preset}: MAGE-C pre-tokenized / bank"] = pre_c / bank_c
        masked_c = by.get((preset, "training step, token bank (2 views), InfoNCE on the masked pass"))
        if pre and bank_c and masked_c:  # time per image of MAGE-C over that of two MAGE passes on pre-tokenized ids
            out[f"{preset}: MAGE-C bank step / two MAGE pre-tokenized passes"] = pre / (2 * bank_c)
            out[f"{preset}: MAGE-C bank step, InfoNCE on the masked pass / two MAGE pre-tokenized passes"] = pre / (2 * masked_c)
    if len(bench["runs"]) > 1:
        first, last = bench["runs"][0], bench["runs"][-1]
        for a, b in zip(first["rows"], last["rows"]):
            if a["what"].startswith("training step"):
                out[f"{a['preset']}: {a['model']} {a['what']}: {last['threads']} / {first['threads']} threads"] = \
                    b["img_per_s"] / a["img_per_s"]
    return out


def record_ci(log_path: str, out: str, timings: str = "") -> dict:
    """Read a clean-clone ``.ci/run`` log made with ``date``, then ``time bash .ci/run``, and write its figures to ``out``.

    The log's first line is the date the run started (``date -u +%F``); pytest's closing line
    gives the tests and pytest's own time; ``real XmY.Zs`` (bash's ``time``) the whole script.
    ``timings``: the ``runs/ci/timings.json`` the run's ci notebooks wrote, to keep their times.
    """
    try:
        text = Path(log_path).read_text()
    except FileNotFoundError:
        raise ValueError(f"{log_path} does not exist; pass the log of a finished .ci/run") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise ValueError(f"{log_path} is not a text log; pass the log of a finished .ci/run") from None
    if not text.strip():
        raise ValueError(f"{log_path} is empty; pass the log of a finished .ci/run")
    day = text.splitlines()[0].strip()
    closing = re.findall(r"=+ (.*?) in ([\d.]+)s", text)
    if not closing:
        raise ValueError(f"{log_path} has no pytest closing line; record a finished .ci/run")
    counts, pytest_s = closing[-1]
    real = re.findall(r"real\s+(\d+)m([\d.]+)s", text)
    if not real:
        raise ValueError(f"{log_path} has no 'real' line; run the script under bash's time")
    failed = sorted(set(re.findall(r"^FAILED (\S+)", text, flags=re.M)))
    record = {"date": day, "cpu": cpu_model(), "cores": available_cores(), "tests": counts, "failed": failed,
              "pytest_s": float(pytest_s), "script_s": int(real[-1][0]) * 60 + float(real[-1][1])}
    if timings:
        try:
            record["ci_notebooks_s"] = {k: v["seconds"] for k, v in sorted(json.loads(Path(timings).read_text()).items())}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError) as e:
            raise ValueError(f"{timings} is not the timings.json of the run's ci notebooks ({type(e).__name__}: "
                             f"{' '.join(str(e).split())}); pass runs/ci/timings.json, or leave TIMINGS out") from None
    save_json(record, out)
    return record


def render_ci(record: dict) -> str:
    """The README's sentence on how long CI takes (and which tests failed in that run, if any)."""
    failed = record.get("failed", [])
    why = ""
    if failed and all("ci_run.json" in f for f in failed):
        why = " (the failure is the check of this very sentence, which cannot pass before the run it reports is recorded)"
    elif failed:
        why = f" (failed: {', '.join(f'`{f}`' for f in failed)})"
    return (f"A clean-clone `CI=true bash .ci/run` on an otherwise idle {record['cores']}-core machine "
            f"({record['cpu']}), measured {record['date']}: {record['tests']}{why} in {record['pytest_s'] / 60:.1f} "
            f"min of pytest, {record['script_s'] / 60:.1f} min for the whole script including the install."
            + ("" if "ci_notebooks_s" not in record else " Inside it the `ci` notebooks took " +
               ", ".join(f"{k[:2]} {v / 60:.1f}" for k, v in record["ci_notebooks_s"].items()) + " min."))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite bench", description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["ci", "cpu"], help=f"preset sizes to time ({', '.join(PRESET_NAMES)})")
    ap.add_argument("--threads", nargs="+", type=int, default=None,
                    help="torch thread counts to time, one after the other (default: the project's thread policy)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10, help="timed calls per training step (a third of that for the rest)")
    ap.add_argument("--out", default="", help="write the figures and the machine to this JSON file")
    ap.add_argument("--render", default="", metavar="JSON", help="only re-render docs/lab.md's benchmark table from JSON")
    ap.add_argument("--record-ci", nargs="+", metavar="LOG JSON [TIMINGS]",
                    help="write a .ci/run log's figures (and its ci notebooks' timings.json) to JSON")
    ap.add_argument("--render-ci", default="", metavar="JSON", help="only re-render docs/lab.md's CI time from JSON")
    args = ap.parse_args(argv)
    try:
        if args.render:  # a GPU run's JSON goes to the GPU table
            check_record(args.render, "the figures `python -m mage_lite bench --out JSON` wrote",
                         "reports/bench/bench.json", lambda r: render_table(r) + str(r["machine"].get("gpu")))
            gpu = load_json(args.render)["machine"].get("gpu")
            block = GPU_BLOCK if gpu else TABLE_BLOCK
            print(f"rendered {render_block(block, args.render, render_table)} from {args.render}")
            return 0
        if args.record_ci:
            if len(args.record_ci) not in (2, 3):  # nargs="+" cannot say "two or three"
                raise ConfigError(f"--record-ci takes LOG JSON [TIMINGS], got {len(args.record_ci)} value"
                                  f"{'s' if len(args.record_ci) > 1 else ''}: {' '.join(args.record_ci)}")
            print(render_ci(record_ci(*args.record_ci)))
            return 0
        if args.render_ci:
            check_record(args.render_ci, "the record `python -m mage_lite bench --record-ci` wrote",
                         "reports/bench/ci_run.json", render_ci)
            print(f"rendered {render_block(CI_BLOCK, args.render_ci, render_ci)} from {args.render_ci}")
            return 0
        for p in args.presets:
            load_preset(p)
        if args.steps < 1 or any(t < 1 for t in args.threads or [1]):
            raise ConfigError(f"--steps and --threads must be at least 1, got {args.steps} and {args.threads}")
        device = pick_device(args.device)
    except (ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bench = run(args.presets, args.threads or [torch.get_num_threads()], device, args.steps)
    if device.type != "cpu":
        bench["command"] = f"python -m mage_lite bench --presets {' '.join(args.presets)} --device {args.device}"
    for k, v in ratios(bench).items():
        print(f"{k}: {v:.2f}x")
    if args.out:
        save_json(bench, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
