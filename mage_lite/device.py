"""Device choice (cuda, then mps, then cpu; overridable), autocast, and the torchrun context."""

import contextlib
import os

import torch
import torch.distributed as dist

VALID_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def concurrent_jobs() -> int:
    """How many processes of this project share the cores: ``$MAGE_LITE_JOBS`` (set by the report
    for its workers) times the processes torchrun starts on this machine when they train on the CPU."""
    jobs = _positive_int_env("MAGE_LITE_JOBS", 1)
    if not torch.cuda.is_available():
        jobs *= _positive_int_env("LOCAL_WORLD_SIZE", 1)
    return jobs


def threads_for(cores: int, jobs: int) -> int:
    """The thread policy: the cores shared evenly among the project's concurrent jobs, at least one each."""
    return max(1, cores // max(1, jobs))


def set_cpu_threads() -> int:
    """Threads for CPU work: ``$MAGE_LITE_THREADS`` if set, else :func:`threads_for` (cores, jobs).

    Why not more threads than cores in all: a busy OpenMP thread without a core of its own
    waits at every barrier for a thread that is not running, so two jobs of two threads each
    on two cores train slower than two jobs of one thread, while one job alone trains faster
    with both cores (``python -m mage_lite.bench_threads`` measures both; the README shows it).
    """
    wanted = _positive_int_env("MAGE_LITE_THREADS", 0)
    torch.set_num_threads(wanted or threads_for(available_cores(), concurrent_jobs()))
    return torch.get_num_threads()


def _positive_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"${name} must be a whole number of at least 1, got {raw!r}; unset it for the default")
    return int(raw)


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
