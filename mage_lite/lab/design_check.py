"""Design choices measured by what MAGE learns on them: codebook size, decoder position embedding, padding.

    python -m mage_lite design-check --preset ci --dataset PATH --out reports/design/ci.json \\
        --arm K256 --arm K64 vqgan.codebook_size=64 --arm sincos mage.decoder_pos=sincos
    python -m mage_lite design-check --render reports/design/ci.json   # README's table from that file

Every arm is the preset plus its overrides (``--set`` adds overrides to every arm). For each
arm the tokenizer is trained (or reused: arms that share a tokenizer config share the model)
and measured on test images against the thumbnail yardstick; MAGE is trained on its tokens
and measured as notebook 03 measures it: masked-token accuracy at ratio 0.75 against the
most-frequent-code baseline, the [C]-padding trap's mode share and masked decoder-input
similarity, and the linear probe, next to the probes on what the tokens alone carry (bag of
codes, flattened code vectors) and on a random MAGE encoder. ``--generation`` adds KID and
fd_classifier of unconditional samples in the shared feature network.

Results are written after every arm; a rerun with the same arguments skips the arms already
measured (an interrupted check resumes), and trained models are reused from the runs folder.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..artifacts import REPO_ROOT, load_json, save_json
from ..config import ConfigError, load_preset, train_budget
from ..mage import MAGE
from ..mage_eval import GenerationScorer, masked_token_accuracy, probe_inputs, probe_tokens, trap_metrics, untrained_probe
from ..probe import random_subset
from ..session import NotebookRun
from ..tokenizer_eval import reconstruction_quality
from ..vqgan import encode_dataset
from .readme import write_block

EVAL_RATIO = 0.75  # notebook 03's masked-token accuracy ratio
BLOCK = "design-table"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES


def parse_overrides(pairs: list[str]) -> dict:
    """["mage.decoder_pos=sincos", "vqgan.codebook_size=64"] -> {key: value}, values read as JSON when they parse."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not key=value; write e.g. mage.decoder_pos=sincos")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def measure_arm(preset: str, dataset: str, seed: int, overrides: dict, generation: bool, tokenizer_cache: dict) -> dict:
    run = NotebookRun("design_check", preset, dataset=dataset, seed=seed, overrides=overrides)
    t0 = time.perf_counter()
    tokenizer = run.tokenizer()
    tok_dir = run.model_dirs["vqgan"].name
    n_train = len(run.data.train_images)
    g = run.cfg.generation
    if tok_dir not in tokenizer_cache:  # what depends on the tokenizer only: measured once per tokenizer
        # the test images of masked-token accuracy and the trap metrics too: encoded once per tokenizer
        quality = reconstruction_quality(tokenizer, run.data.test_images[random_subset(len(run.data.test_images), g.eval_images, 3)],
                                         device=run.device)
        probe = run.probe
        train_ids = encode_dataset(tokenizer, probe.train_images, device=run.device).flatten(1)
        test_ids = encode_dataset(tokenizer, probe.test_images, device=run.device).flatten(1)
        tokenizer_cache[tok_dir] = {
            "tokenizer": {"dir": tok_dir, "codebook_size": tokenizer.codebook_size, **train_budget(run.cfg.vqgan_train, n_train),
                          **{k: quality[k] for k in ("psnr", "psnr_thumbnail", "usage", "perplexity")},
                          "seconds": round(time.perf_counter() - t0, 1)},
            "probe_inputs": probe_inputs(probe, tokenizer, train_ids, test_ids),
            "probe_random_encoder": untrained_probe(probe, lambda: MAGE(run.mage_config(tokenizer)).set_tokenizer(tokenizer).to(run.device),
                                                    train_ids, test_ids)["avg"],  # as notebook 03: three initialisations
            "ids": (train_ids, test_ids, quality["ids"].flatten(1))}
    cached = tokenizer_cache[tok_dir]
    train_ids, test_ids, eval_ids = cached["ids"]

    t0 = time.perf_counter()
    model, history = run.mage(tokenizer, "mage-design")
    seconds = time.perf_counter() - t0
    acc = masked_token_accuracy(model, eval_ids, EVAL_RATIO, seed=0)
    trap = trap_metrics(model, eval_ids, EVAL_RATIO, seed=0)
    result = {"overrides": overrides, "tokenizer": cached["tokenizer"], "mage": train_budget(run.cfg.mage_train, n_train),
              "decoder_pos": run.cfg.mage.decoder_pos, "decoder_pos_scale": run.cfg.mage.decoder_pos_scale,
              "padding": run.cfg.mage.padding,
              "masked_acc": acc["acc"], "masked_acc_baseline": acc["baseline"], **trap,
              "mode_share_history": [h.get("mode_share") for h in history if "mode_share" in h],
              "probe_mage": probe_tokens(run.probe, model, train_ids, test_ids, keys=("avg",))["avg"],
              "probe_random_encoder": cached["probe_random_encoder"], "probe_inputs": cached["probe_inputs"],
              "mage_seconds": round(seconds, 1)}
    if generation:
        scorer = GenerationScorer(run, tokenizer)
        result["generation"] = {"mage": scorer.metrics(scorer.samples(model)), "real": scorer.real_metrics,
                                "recon": scorer.recon_metrics, "fd_classifier_test_acc": scorer.classifier_acc}
    return result


def code_version() -> str:
    """The git commit of the code that measured (with "+changes" when the work tree differs), or "unknown"."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "mage_lite"], cwd=REPO_ROOT, capture_output=True,
                               text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(preset: str, dataset: str, seed: int, base: dict, arms: list[tuple[str, dict]], generation: bool, out: str,
            command: str) -> dict:
    try:
        results = load_json(out)
    except (FileNotFoundError, ValueError):
        results = {}
    if results.get("preset") != preset or results.get("base") != base or results.get("seed") != seed:
        results = {"preset": preset, "seed": seed, "base": base, "arms": {}}
    results["command"] = command
    results["code"] = code_version()
    tokenizer_cache: dict = {}
    for name, overrides in arms:
        done = results["arms"].get(name)
        if done and done["overrides"] == {**base, **overrides} and ("generation" in done or not generation):
            print(f"{name}: measured earlier, kept", flush=True)
            continue
        results["arms"][name] = measure_arm(preset, dataset, seed, {**base, **overrides}, generation, tokenizer_cache)
        save_json(results, out)
        print(f"{name}: " + render_row(name, results["arms"][name]), flush=True)
    return results


def _pct(x: float) -> str:
    return f"{x:.1f}"


def _position(r: dict) -> str:
    """e.g. "learned", "sincos", "sincos x2" (older result files carry the scale in their overrides only)."""
    scale = r.get("decoder_pos_scale", r["overrides"].get("mage.decoder_pos_scale", 1.0))
    return r["decoder_pos"] + (f" x{scale:g}" if r["decoder_pos"] != "learned" and scale != 1 else "")


def render_row(name: str, r: dict) -> str:
    t = r["tokenizer"]
    gen = r.get("generation", {}).get("mage", {})
    kid = f"{1000 * gen['kid']:.1f}" if gen else "–"
    return (f"| {name} | {t['codebook_size']} | {t['epochs']:.2f} | {t['psnr']:.2f} ({t['psnr_thumbnail']:.2f}) | "
            f"{100 * t['usage']:.0f} % | {r['mage']['epochs']:.2f} | {_position(r)} | {r['padding']} | "
            f"{r['masked_acc']:.2f} ({r['masked_acc_baseline']:.2f}) | {100 * r['mode_share']:.1f} | "
            f"{_pct(r['probe_mage'])} | {_pct(r['probe_random_encoder'])} | {_pct(r['probe_inputs']['bag_of_codes'])} | "
            f"{_pct(r['probe_inputs']['code_vectors'])} | {kid} |")


def render_table(results: dict) -> str:
    lines = [f"`{results['preset']}` preset, seed {results['seed']}; `{results['command']}`", "",
             "| arm | codes | tokenizer epochs | test PSNR dB (thumbnail) | codes used | MAGE epochs | decoder pos | padding | "
             "masked-token acc % (most-frequent baseline) | mode share % | probe MAGE % | random encoder % | bag of codes % | "
             "code vectors % | KID x 1000 |",
             "| --- " * 15 + "|"]
    lines += [render_row(name, r) for name, r in results["arms"].items()]
    return "\n".join(lines)


def render_tables(paths: list[str]) -> str:
    """One table per result file, in the order given."""
    return "\n\n".join(render_table(load_json(p)) for p in paths)


def render_readme(paths: list[str]) -> Path:
    """Write :func:`render_tables` as docs/lab.md's design-table block; returns that file's path."""
    return write_block(BLOCK, render_tables(paths))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite design-check", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="ci")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="overrides for every arm")
    ap.add_argument("--arm", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"),
                    help="an arm: its name, then its overrides (repeat --arm for more arms)")
    ap.add_argument("--generation", action="store_true", help="also score unconditional samples (KID, fd_classifier)")
    ap.add_argument("--out", default="reports/design/ci.json")
    ap.add_argument("--render", nargs="+", default=[], metavar="JSON",
                    help="only re-render docs/lab.md's design tables from these result files (one table each)")
    args = ap.parse_args(argv)
    try:
        if args.render:
            print(f"rendered {render_readme(args.render)} from {', '.join(args.render)}")
            return 0
        if not args.arm:
            raise ConfigError("no arm given; pass e.g. --arm base --arm sincos mage.decoder_pos=sincos")
        base = parse_overrides(args.set)
        arms = [(a[0], parse_overrides(a[1:])) for a in args.arm]
        for _, overrides in arms:  # refuse a bad override before hours of training
            load_preset(args.preset, {**base, **overrides}, dataset=args.dataset)
        command = "python -m mage_lite design-check " + " ".join(argv if argv is not None else sys.argv[1:])
        results = measure(args.preset, args.dataset, args.seed, base, arms, args.generation, args.out, command)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
