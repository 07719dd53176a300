"""Does training MAGE from a token bank change what it learns? Bank vs on-the-fly tokenization, over seeds.

    python -m mage_lite bank-check --preset ci --views 0 2 --seeds 3 --dataset PATH --out reports/bank/bank_check.json
    python -m mage_lite bank-check --render reports/bank/bank_check.json   # README's table from that file

Every arm shares the preset's tokenizer (seed 0) and trains MAGE with the preset's config
for each seed, once per ``bank.views`` value (0 = tokenizing every batch on the fly, the
official behaviour). Each model is measured as notebook 03 measures it: masked-token
accuracy at ratio 0.75 on test images and the linear probe on the mean-pooled encoder
output. Speeds are the benchmark's business (``python -m mage_lite bench``): the wall times
recorded here depend on whatever else the machine was doing.
"""

import argparse
import dataclasses
import statistics
import sys
import time

from ..artifacts import save_json
from ..config import ConfigError
from ..mage_eval import masked_token_accuracy, probe_tokens
from ..probe import random_subset
from ..session import NotebookRun
from ..vqgan import encode_dataset
from .published import without_machine_paths
from .readme import render_block

BLOCK = "bank-table"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES


def measure(preset: str, views: list[int], seeds: int, dataset: str = "") -> dict:
    base = NotebookRun("bank_check", preset, dataset=dataset, seed=0)
    tokenizer = base.tokenizer()
    g = base.cfg.generation
    test_ids = encode_dataset(tokenizer, base.data.test_images[random_subset(len(base.data.test_images), g.eval_images, 3)],
                              device=base.device).flatten(1)
    results = {"preset": preset, "dataset": base.data.source, "mage_train": dataclasses.asdict(base.cfg.mage_train),
               "train_images": len(base.data.train_images), "arms": {}}
    for v in views:
        arm = results["arms"].setdefault(str(v), {"views": v, "seeds": {}})
        for s in range(seeds):
            run = NotebookRun("bank_check", preset, dataset=dataset, seed=s, overrides={"bank.views": v})
            run.model_dirs["vqgan"] = base.model_dirs["vqgan"]  # every arm and seed reads the same tokenizer
            t0 = time.perf_counter()
            model, history = run.mage(tokenizer, f"mage-bankcheck-v{v}")
            seconds = time.perf_counter() - t0
            probe = run.probe
            tr = encode_dataset(tokenizer, probe.train_images, device=run.device).flatten(1)
            te = encode_dataset(tokenizer, probe.test_images, device=run.device).flatten(1)
            arm["seeds"][str(s)] = {
                "masked_acc": masked_token_accuracy(model, test_ids, 0.75, seed=0)["acc"],
                "probe": probe_tokens(probe, model, tr, te, keys=("avg",))["avg"],
                "train_img_per_s": statistics.median(h["img_per_s"] for h in history),
                "seconds": round(seconds, 1), "bank": run.metrics.get("token_banks", {})}
            print(f"views {v} seed {s}: {arm['seeds'][str(s)]}", flush=True)
    return results


def render_table(results: dict) -> str:
    """Mean +- std over seeds per arm, and each bank arm's difference from on-the-fly tokenization."""
    t = results["mage_train"]
    images = t["steps"] * t["batch_size"]
    lines = [f"`{results['preset']}` preset, MAGE {t['steps']} steps x {t['batch_size']} images "
             f"({images / results['train_images']:.2f} epochs), seeds "
             f"{', '.join(next(iter(results['arms'].values()))['seeds'])}, one shared tokenizer:", "",
             "| token input | masked-token acc (%) | linear probe (%) |",
             "| --- | --- | --- |"]

    def stat(arm, key):
        vals = [r[key] for r in arm["seeds"].values()]
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    for arm in results["arms"].values():
        name = "tokenized on the fly" if arm["views"] == 0 else f"token bank, V = {arm['views']}"
        cells = [f"{m:.2f} ± {sd:.2f}" for m, sd in (stat(arm, "masked_acc"), stat(arm, "probe"))]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite bank-check", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="ci")
    ap.add_argument("--views", nargs="+", type=int, default=[0, 2])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--dataset", default="")
    ap.add_argument("--out", default="reports/bank/bank_check.json")
    ap.add_argument("--render", default="", metavar="JSON", help="only re-render docs/lab.md's table from JSON")
    args = ap.parse_args(argv)
    try:
        if args.render:
            print(f"rendered {render_block(BLOCK, args.render, render_table)} from {args.render}")
            return 0
        if args.seeds < 1 or any(v < 0 for v in args.views):
            raise ConfigError(f"--seeds must be at least 1 and --views at least 0, got {args.seeds} and {args.views}")
        results = measure(args.preset, args.views, args.seeds, args.dataset)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_json(without_machine_paths({**results, "command": "python -m mage_lite bank-check " + " ".join(argv or sys.argv[1:])}),
              args.out)
    print(render_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
