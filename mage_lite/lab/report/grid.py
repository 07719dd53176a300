"""The report's grid: every (arm, seed) run as a notebook in its own worker process, reused when finished.

Each arm of the grid is one notebook (03-05) executed by papermill with its parameters and
config overrides, once per seed, two at a time on separate processes (``--jobs``). A run
whose ``metrics.json`` is complete, with the same config and the same, unchanged data, is
reused, so an interrupted report resumes where it stopped (workers die with the report, even
on kill -9); a run that fails is named in the report, with its error, and its rows say so.
"""

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from ...artifacts import REPO_ROOT, DamagedFileError, config_hash, load_json, runs_root, save_json
from ...config import ConfigError, load_preset
from ...data import load_dataset, source_key
from ..cli import check_reachable, check_writable, cli, resolve_dataset
from ..runner import NOTEBOOK_DIR
from .claims import ARMS, Arm


# --- running the grid -----------------------------------------------------------------

def _data_files(path: Path) -> list[Path]:
    """The files of the data at ``path``: the archive itself, or every file under the folder."""
    return [path] if path.is_file() else sorted(Path(d) / f for d, _, fs in os.walk(path) for f in fs)


def _data_mtime(path: Path) -> float:
    """When the data at ``path`` last changed: an archive's mtime, or the newest of a folder's files."""
    return max([path.stat().st_mtime] + [f.stat().st_mtime for f in _data_files(path)])


def _complete(arm: Arm, preset: str, seed: int, dataset: str = "") -> dict | None:
    """The metrics of a finished run made with exactly what this run would use, else None.

    The reuse key is the run's whole config (the preset with the arm's overrides and ``dataset``,
    a path compared resolved; the device left out: the report does not choose it) and the data
    itself: the identity of the pixels and labels the run read (``ImageDataset.identity``), so a
    fresh copy of the same files is the same data. A run that logged no identity is reused only
    if it started after its data files last changed.
    """
    path = arm.run_dir(preset, seed) / "metrics.json"
    if not path.exists():
        return None
    try:
        m = load_json(path)
    except DamagedFileError:
        return None
    # Runs from before the variant became a parameter of the run held it in their overrides and config: the same run.
    overrides = {k: v for k, v in m.get("overrides", {}).items() if k != "variant"}
    if not m.get("complete") or overrides != arm.overrides or m.get("variant", "") != arm.variant:
        return None
    want = load_preset(preset, arm.overrides, dataset=resolve_dataset(dataset)).to_dict()
    made = {k: v for k, v in m.get("config", {}).items() if k != "variant"}
    if config_hash({**made, "device": ""}) != config_hash({**want, "device": ""}):
        return None
    source = want["data"]["dataset"]
    if source.lower() not in ("shapes", "cifar10"):
        made_on = m.get("dataset", {}).get("identity")
        if made_on is not None:  # the pixels and labels it read: a copy of the same data (new mtime) is the same
            if made_on != _data_identity(source, want["data"]["image_size"]):
                return None
        elif _data_mtime(Path(source)) > path.stat().st_mtime - m.get("elapsed_s", 0):
            return None  # a run from before identities were logged: reused only if its data did not change since
    return m


_IDENTITIES: dict = {}


def _data_identity(source: str, image_size: int) -> str:
    """:attr:`ImageDataset.identity` of the image-folder dataset at ``source`` (decoded once per report)."""
    key = (source, image_size, source_key(source))
    if key not in _IDENTITIES:
        _IDENTITIES[key] = load_dataset(source, image_size, progress=False).identity
    return _IDENTITIES[key]


def _task_command(arm: Arm, preset: str, seed: int, dataset: str) -> list[str]:
    params = {"preset": preset, "seed": seed}
    if arm.overrides:
        params["overrides"] = arm.overrides
    if arm.variant:
        params["variant"] = arm.variant
    if dataset:
        params["dataset"] = dataset
    return [sys.executable, "-m", "mage_lite.lab.report", "task", "--notebook", arm.stem, "--name", f"{arm.stem}--{arm.name}-seed{seed}",
            "--params", json.dumps(params), "--preset", preset]


def _find_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
PR_SET_PDEATHSIG = 1


def start_worker(cmd: list[str], log, jobs: int) -> subprocess.Popen:
    """Start one worker process that dies with the process that started it, even on kill -9.

    On Linux the kernel sends the worker SIGKILL when the starting thread exits
    (PR_SET_PDEATHSIG, set between fork and exec); the notebook kernel the worker starts
    exits too, as ipykernel polls its parent (jupyter_client's JPY_PARENT_PID). Elsewhere
    workers are started plainly. ``MAGE_LITE_JOBS`` tells the worker how many run at once.
    """
    parent = os.getpid()

    def die_with_parent() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)

    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, preexec_fn=die_with_parent,
                            env={**os.environ, "MAGE_LITE_JOBS": str(jobs)})


# What one notebook run of the report preset holds at once (CIFAR-10 decoded, its models, the probes' features,
# the kernel and its worker): an estimate, not a measurement, erring high so that --jobs never swaps.
JOB_MEMORY_GIB = 2.0


def _available_memory_gib() -> float | None:
    """The memory available to new processes (Linux's MemAvailable), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def cap_jobs(jobs: int) -> int:
    """``jobs``, or fewer where this machine holds fewer notebook runs at once (one per core, and
    :data:`JOB_MEMORY_GIB` of available memory each), saying so."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limits = [(cores, f"{cores} CPU cores")]
    memory = _available_memory_gib()
    if memory is not None:
        limits.append((max(1, int(memory // JOB_MEMORY_GIB)),
                       f"{memory:.1f} GiB of available memory, about {JOB_MEMORY_GIB:.0f} GiB per notebook run"))
    most, why = min(limits)
    if jobs <= most:
        return jobs
    print(f"--jobs {jobs} capped at {most}: this machine has {why}", flush=True)
    return most


def failure_reason(log: Path) -> str:
    """A failed worker's reason in one line, whole: its last ``error: ...`` message (a notebook's error may span
    lines), else the last line of its log (an uncaught traceback ends with the exception)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    errors = list(re.finditer(r"^error: ", text, re.M))
    if errors:
        return " ".join(text[errors[-1].end():].split())
    return ([line.strip() for line in text.splitlines() if line.strip()][-1:] or ["(no output)"])[0]


def run_grid(preset: str, seeds: int, dataset: str = "", jobs: int = 2, arms: tuple = ARMS, rerun: tuple = ()) -> dict:
    """Run every (arm, seed) not finished yet, and the arms named in ``rerun`` again (e.g. after their
    notebook learned to log more; the models they trained are still reused); returns
    {"arm/seed": {"status", "seconds", "error"}}."""
    unknown = sorted(set(rerun) - {a.name for a in arms})
    if unknown:
        raise ConfigError(f"--rerun names no arm of the grid: {', '.join(unknown)}; "
                          f"the arms are {', '.join(a.name for a in arms)}")
    # Refuse a bad preset or dataset, data that cannot be read and a folder that cannot be written before starting anything.
    check_reachable(load_preset(preset, dataset=dataset).data.dataset)
    check_writable(runs_root() / preset, "set MAGE_LITE_RUNS_DIR to a folder you can write to")
    dataset = resolve_dataset(dataset)
    jobs = cap_jobs(jobs)
    log_dir = runs_root() / preset / "report"
    log_dir.mkdir(parents=True, exist_ok=True)
    status_path = log_dir / "status.json"
    try:
        status = load_json(status_path) if status_path.exists() else {}
    except DamagedFileError:  # rebuilt from the runs' own metrics below
        status = {}
    pending = [(a, s) for s in range(seeds) for a in arms]
    pending.sort(key=lambda t: (t[0].after != "", t[1]))  # every seed's base first: it trains what the others reuse
    todo = []
    for a, s in pending:
        if a.name not in rerun and _complete(a, preset, s, dataset):
            status.setdefault(f"{a.name}/{s}", {"status": "done", "seconds": None})
            status[f"{a.name}/{s}"].update(status="done", reused=True)  # its seconds, if any, are an earlier invocation's
        else:  # forget what an earlier invocation said (done on other data, failed): it runs again
            status.pop(f"{a.name}/{s}", None)
            todo.append((a, s))
    print(f"report {preset}: {len(pending)} runs in the grid, {len(pending) - len(todo)} already finished, {len(todo)} to run "
          f"({jobs} at a time)", flush=True)
    procs: dict = {}  # (arm, seed) -> the worker process, to stop them on Ctrl-C

    def launch(a: Arm, s: int):
        log = log_dir / f"{a.name}-seed{s}.log"
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            procs[a.name, s] = start_worker(_task_command(a, preset, s, dataset), fh, jobs)
            rc = procs.pop((a.name, s)).wait()
        return rc, round(time.perf_counter() - t0, 1), log

    def state(a: Arm, s: int) -> str:
        return status.get(f"{a.name}/{s}", {}).get("status", "")

    by_name = {a.name: a for a in arms}
    running: dict = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while todo or running:
            for a, s in list(todo):
                if len(running) >= jobs:
                    break
                dep = by_name.get(a.after)
                if dep is not None and state(dep, s) in ("failed", "skipped"):
                    status[f"{a.name}/{s}"] = {"status": "skipped", "seconds": None, "error": f"needs {dep.name} (seed {s}), which failed"}
                    todo.remove((a, s))
                    continue
                if dep is not None and state(dep, s) != "done":
                    continue
                todo.remove((a, s))
                print(f"  start {a.name} seed {s} ({a.stem})", flush=True)
                running[pool.submit(launch, a, s)] = (a, s)
            save_json(status, status_path)
            if not running:  # nothing runs and nothing could start: what is left waits on runs that will not finish
                for a, s in todo:
                    status[f"{a.name}/{s}"] = {"status": "skipped", "seconds": None, "error": f"needs {a.after} (seed {s}), not run"}
                save_json(status, status_path)
                break
            try:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # stop the workers too (their runs resume on the next invocation)
                for proc in list(procs.values()):
                    proc.terminate()
                raise
            for fut in finished:
                a, s = running.pop(fut)
                rc, secs, log = fut.result()
                entry = {"status": "done" if rc == 0 else "failed", "seconds": secs, "token_banks_built": _banks_built(a, preset, s)}
                reason = failure_reason(log) if rc else ""
                if rc:
                    entry["error"] = f"exit code {rc}: {reason} (full log: {log})"
                status[f"{a.name}/{s}"] = entry
                print(f"  {entry['status']} {a.name} seed {s} in {secs / 60:.1f} min" + (f": {reason}" if reason else ""),
                      flush=True)
            save_json(status, status_path)
    built = sum(e.get("token_banks_built", 0) for e in status.values())
    print(f"token banks built by the runs of this report: {built}", flush=True)
    return status


def _banks_built(arm: Arm, preset: str, seed: int) -> int:
    """How many token banks a finished run built (rather than reused), from its metrics.json."""
    try:
        m = load_json(arm.run_dir(preset, seed) / "metrics.json")
    except (DamagedFileError, FileNotFoundError):
        return 0
    return sum(bool(b.get("built")) for b in m.get("token_banks", {}).values())


def collect(preset: str, seeds: int, dataset: str = "", arms: tuple = ARMS) -> dict[str, dict[int, dict]]:
    """metrics[arm][seed] of every complete run on ``dataset`` (the config left out)."""
    out: dict[str, dict[int, dict]] = {}
    for a in arms:
        for s in range(seeds):
            m = _complete(a, preset, s, dataset)
            if m:
                out.setdefault(a.name, {})[s] = {k: v for k, v in m.items() if k != "config"}
    return out


def task(args) -> int:
    """One notebook run in its own worker process (``python -m mage_lite.lab.report task ...``, started by run_grid)."""
    from ..runner import NotebookFailed, execute

    book = NOTEBOOK_DIR / f"{args.notebook}.py"
    out_dir = runs_root() / args.preset / "report" / "notebooks"

    def body() -> int:
        try:
            execute(book, json.loads(args.params), out_dir, progress=False, name=args.name)
        except NotebookFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0

    return cli(body)
