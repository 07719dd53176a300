"""The thread policy, measured: one notebook alone, and the report's two workers side by side.

    python -m mage_lite bench-threads --dataset PATH --out reports/bench/threads.json
    python -m mage_lite bench-threads --render reports/bench/threads.json   # README's table from that file

Two measurements, each under the old policy (one thread per process on a 2-core machine)
and the current one (the cores shared among the project's concurrent jobs, see
``mage_lite.device.threads_for``):

1. **One notebook alone**: notebook 03 in the ``ci`` preset from an empty runs folder (so
   it trains its tokenizer, the feature classifier, the token bank and two MAGEs), its
   wall time and the median training images/s of each model it trained.
2. **Two workers at once**, as the report runs them: two ``python -m mage_lite bench
   --presets ci`` processes started together, the training images/s of each. A third
   setting, two threads in each process, shows what oversubscribing the cores costs.

Run it on a machine with nothing else running: the figures are only comparable side by side.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..artifacts import REPO_ROOT, load_json, save_json
from .bench import cpu_model
from .readme import render_block
from ..device import available_cores, threads_for

BLOCK = "threads-table"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES
OLD = {"MAGE_LITE_THREADS": "1"}  # the policy before: one thread on machines with at most two cores
TRAINING_ROWS = ("training step", "training step, token bank")


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MAGE_LITE_THREADS", "MAGE_LITE_JOBS")}
    return {**env, **extra}


def lone_notebook(policy: str, extra_env: dict, dataset: str) -> dict:
    """Notebook 03 (ci) from an empty runs folder: wall seconds and each model's median training images/s."""
    with tempfile.TemporaryDirectory(prefix=f"threads-{policy}-") as runs:
        cmd = [sys.executable, "-m", "mage_lite", "run", "--preset", "ci", "--only", "03"]
        cmd += ["--dataset", dataset] if dataset else []
        t0 = time.perf_counter()
        subprocess.run(cmd, env=_env({**extra_env, "MAGE_LITE_RUNS_DIR": runs}), cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        models = {}
        for hist in sorted(Path(runs, "ci", "models").glob("*/history.json")):
            name = hist.parent.name.rsplit("-", 1)[0]
            models[name] = statistics.median(h["img_per_s"] for h in load_json(hist))
    return {"policy": policy, "env": extra_env, "wall_s": round(wall, 1), "img_per_s": models}


def two_workers(policy: str, extra_env: dict, steps: int) -> dict:
    """Two ci benchmarks started together: each process's training images/s, by model."""
    with tempfile.TemporaryDirectory(prefix=f"workers-{policy}-") as tmp:
        outs = [Path(tmp, f"w{i}.json") for i in range(2)]
        procs = [subprocess.Popen([sys.executable, "-m", "mage_lite", "bench", "--presets", "ci", "--steps", str(steps),
                                   "--out", str(o)], env=_env(extra_env), cwd=REPO_ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for o in outs]
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError(f"a benchmark worker failed under policy {policy}")
        per_worker = []
        for o in outs:
            run = load_json(o)["runs"][0]
            per_worker.append({"threads": run["threads"],
                               "img_per_s": {f"{r['model']}: {r['what']}": r["img_per_s"] for r in run["rows"]
                                             if r["what"] in TRAINING_ROWS}})
    return {"policy": policy, "env": extra_env, "workers": per_worker}


def measure(dataset: str, steps: int) -> dict:
    cores = available_cores()
    new_alone, new_two = threads_for(cores, 1), threads_for(cores, 2)
    out = {"machine": {"cpu": cpu_model(), "cores": cores}, "lone_notebook": [], "two_workers": []}
    for policy, env in (("old: 1 thread", OLD), (f"current: {new_alone} threads", {})):
        out["lone_notebook"].append(lone_notebook(policy, env, dataset))
        print(out["lone_notebook"][-1], flush=True)
    for policy, env in (("old: 1 thread each", OLD), (f"current: {new_two} thread(s) each", {"MAGE_LITE_JOBS": "2"}),
                        ("oversubscribed: 2 threads each", {"MAGE_LITE_THREADS": "2"})):
        out["two_workers"].append(two_workers(policy, env, steps))
        print(out["two_workers"][-1], flush=True)
    return out


def render_table(res: dict) -> str:
    m = res["machine"]
    lines = [f"Measured with `python -m mage_lite bench-threads` on {m['cpu']} ({m['cores']} cores), nothing else running.", "",
             "| one notebook alone (03, `ci`, from scratch) | wall time | " +
             " | ".join(f"{k} img/s" for k in res["lone_notebook"][0]["img_per_s"]) + " |",
             "|" + " --- |" * (2 + len(res["lone_notebook"][0]["img_per_s"]))]
    for r in res["lone_notebook"]:
        lines.append(f"| {r['policy']} | {r['wall_s'] / 60:.1f} min | " +
                     " | ".join(f"{v:.0f}" for v in r["img_per_s"].values()) + " |")
    old, new = res["lone_notebook"][0], res["lone_notebook"][-1]
    lines.append(f"| current / old | {old['wall_s'] / new['wall_s']:.2f}x faster | " +
                 " | ".join(f"{new['img_per_s'][k] / v:.2f}x" for k, v in old["img_per_s"].items()) + " |")
    keys = list(res["two_workers"][0]["workers"][0]["img_per_s"])
    lines += ["", "| two workers at once (the report) | " + " | ".join(f"{k}: img/s per worker" for k in keys) + " |",
              "|" + " --- |" * (1 + len(keys))]
    for r in res["two_workers"]:
        cells = [" + ".join(f"{w['img_per_s'][k]:.0f}" for w in r["workers"]) for k in keys]
        lines.append(f"| {r['policy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite bench-threads", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="", help="CIFAR-10 as an image-folder archive (default: the official download)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model in the two-worker benchmark")
    ap.add_argument("--out", default="reports/bench/threads.json")
    ap.add_argument("--render", default="", metavar="JSON", help="only re-render docs/lab.md's table from JSON")
    args = ap.parse_args(argv)
    if args.render:
        print(f"rendered {render_block(BLOCK, args.render, render_table)} from {args.render}")
        return 0
    if args.dataset and not Path(args.dataset).exists():
        print(f"error: --dataset {args.dataset} does not exist; give the path of a CIFAR-10 image-folder archive",
              file=sys.stderr)
        return 2
    res = measure(str(Path(args.dataset).resolve()) if args.dataset else "", args.steps)
    save_json(res, args.out)
    print(render_table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
