"""Device choice (cuda, then mps, then cpu; overridable), autocast, and the torchrun context."""

import contextlib
import os

import torch
import torch.distributed as dist

VALID_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def set_cpu_threads() -> int:
    """Threads for CPU work: ``$MAGE_LITE_THREADS`` if set, else one thread on machines with at
    most two cores, else torch's default.

    Why one: on the 2-vCPU build machines two OpenMP threads ran a training step up to 10x
    slower than one (measured: 40 vs 500 images/s for the ci MAE), spinning at barriers.
    """
    wanted = os.environ.get("MAGE_LITE_THREADS")
    if wanted:
        torch.set_num_threads(int(wanted))
    elif (os.cpu_count() or 1) <= 2:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def pick_device(preference: str = "auto") -> torch.device:
    """The device to train on. 'auto' takes cuda, then mps, then cpu; under torchrun, the local GPU.

    Also sets the CPU thread count (see :func:`set_cpu_threads`).
    """
    set_cpu_threads()
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError:
        raise ValueError(f"unknown device {preference!r}; use {VALID_DEVICES}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} was asked for but this machine has no CUDA GPU; use device='auto' or 'cpu'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {preference!r} was asked for but MPS is not available here; use device='auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {preference!r}; use {VALID_DEVICES}")
    return dev


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full fp32 elsewhere (CPU bf16 is slow and hurts exact resume)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def distributed_context() -> tuple[int, int]:
    """(rank, world size). Under torchrun, joins the process group on first use; else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()
