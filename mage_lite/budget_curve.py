"""MAE and MAGE against their training budget: the question a 32 px reproduction can answer.

    python -m mage_lite.budget_curve --preset ci --epochs 1 2 4 8 --seeds 0 1 --generation \\
        --dataset PATH/TO/cifar10-jpg.tar.gz --out reports/budget/ci.json
    python -m mage_lite.budget_curve --render reports/budget/ci.json   # README table and figure from that file

The paper's models trained for 1600 epochs; ``ci`` trains about one and ``cpu`` two. Each point
here is MAE and MAGE trained from scratch for E epochs of the train split at the preset's sizes,
batch, peak learning rate and schedule shape (warm-up 5 % of the steps, then cosine): only the
number of steps changes (and MAGE's token bank keeps at least one view per epoch), so the two
models always see the same number of images. (A checkpoint halfway
through a longer run is not the same thing: its learning rate has not decayed.) Every point
shares the preset's tokenizer. MAGE is measured as ``design_check`` measures it (probe,
masked-token accuracy against the most-frequent baseline, mode share; ``--generation`` adds KID
and fd_classifier); MAE by its linear probe. Results are written after every point, and a rerun
with the same arguments skips the points already measured.
"""

import argparse
import math
import sys
import time
from pathlib import Path

from .artifacts import load_json, render_readme_block, save_json
from .config import ConfigError, load_preset, train_budget, train_images
from .design_check import code_version, measure_arm
from .notebooks import cli
from .session import NotebookRun

TABLE_START, TABLE_END = "<!-- budget-curve -->", "<!-- /budget-curve -->"
WARMUP_SHARE = 0.05  # the presets' schedule shape


def budget_overrides(preset: str, epochs: float, dataset: str = "") -> dict:
    """The overrides that train MAE and MAGE for ``epochs`` of the train split at the preset's batch sizes.

    MAGE's token bank gets at least one augmented view per epoch, so a longer run does not reuse the
    same crops more often than the preset's own run does (MAE crops afresh every batch)."""
    cfg = load_preset(preset, dataset=dataset)
    out = {}
    for section in ("mae_train", "mage_train"):
        steps = max(1, round(epochs * train_images(cfg) / getattr(cfg, section).batch_size))
        out[f"{section}.steps"] = steps
        out[f"{section}.warmup_steps"] = max(1, round(WARMUP_SHARE * steps))
    if cfg.bank.views and math.ceil(epochs) > cfg.bank.views:
        out["bank.views"] = math.ceil(epochs)
    return out


def measure_point(preset: str, dataset: str, seed: int, epochs: float, generation: bool, tokenizer_cache: dict) -> dict:
    overrides = budget_overrides(preset, epochs, dataset)
    mage = measure_arm(preset, dataset, seed, overrides, generation, tokenizer_cache)
    run = NotebookRun("budget_curve", preset, dataset=dataset, seed=seed, overrides=overrides)
    mae, history = run.mae(norm_pix=True)
    probe = run.probe.evaluate(mae.features, run.device, f"MAE, {epochs:g} epochs")["avg"]
    return {"epochs": epochs, "seed": seed, "overrides": overrides, "mage_result": mage,
            "mae": {"probe": probe, "loss_last": history[-1]["loss"],
                    **train_budget(run.cfg.mae_train, len(run.data.train_images))}}


def measure(preset: str, dataset: str, epochs: list[float], seeds: list[int], generation: bool, out: str,
            command: str) -> dict:
    try:
        results = load_json(out)
    except (FileNotFoundError, ValueError):
        results = {}
    if results.get("preset") != preset:
        results = {"preset": preset, "points": {}}
    results.update(command=command, code=code_version())
    tokenizer_cache: dict = {}
    for seed in seeds:
        for e in epochs:
            key = f"{e:g}/{seed}"
            done = results["points"].get(key)
            if done and (not generation or "generation" in done["mage_result"]):
                print(f"{key}: measured earlier, kept", flush=True)
                continue
            t0 = time.perf_counter()
            results["points"][key] = measure_point(preset, dataset, seed, e, generation, tokenizer_cache)
            results["points"][key]["seconds"] = round(time.perf_counter() - t0, 1)  # training and measuring both models
            save_json(results, out)
            r = results["points"][key]
            print(f"{e:g} epochs, seed {seed}: MAE probe {r['mae']['probe']:.1f} %, MAGE probe "
                  f"{r['mage_result']['probe_mage']:.1f} %, mode share {100 * r['mage_result']['mode_share']:.1f} %", flush=True)
    return results


def _series(results: dict) -> dict[float, list[dict]]:
    """{epochs: [point of each seed]}, epochs ascending."""
    by: dict[float, list[dict]] = {}
    for p in results["points"].values():
        by.setdefault(float(p["epochs"]), []).append(p)
    return dict(sorted(by.items()))


def _stat(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan"))


def _cell(xs: list[float], digits: int = 1) -> str:
    m, s = _stat(xs)
    return f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def render_table(results: dict) -> str:
    """Mean (± std over seeds) per budget: MAE's and MAGE's probes and their gap, the probe on MAGE's flattened
    input code vectors (what MAGE's training must beat), MAGE's masked-token accuracy (baseline), mode share and KID."""
    lines = [f"`{results['preset']}` preset; `{results['command']}`", "",
             "| epochs (each model) | seeds | MAE probe % | MAGE probe % | MAGE − MAE | MAGE's inputs: code vectors % | "
             "untrained MAGE encoder % | masked-token acc % (baseline) | mode share % | KID x 1000 (lower is better) |",
             "| --- " * 10 + "|"]
    for e, points in _series(results).items():
        r = [p["mage_result"] for p in points]
        gap = [x["probe_mage"] - p["mae"]["probe"] for x, p in zip(r, points)]
        kid = [x["generation"]["mage"]["kid"] * 1000 for x in r if "generation" in x]
        lines.append(f"| {e:g} | {len(points)} | {_cell([p['mae']['probe'] for p in points])} | "
                     f"{_cell([x['probe_mage'] for x in r])} | {_cell(gap, 1).replace('-', '−')} | "
                     f"{_cell([x['probe_inputs']['code_vectors'] for x in r])} | {_cell([x['probe_random_encoder'] for x in r])} | {_cell([x['masked_acc'] for x in r], 2)} "
                     f"({_cell([x['masked_acc_baseline'] for x in r], 2)}) | {_cell([100 * x['mode_share'] for x in r])} | "
                     f"{_cell(kid) if kid else '–'} |")
    return "\n".join(lines + ["", findings(results)])


def findings(results: dict) -> str:
    """What the curve says, in words computed from it: how the MAGE-MAE gap moves with the budget, and
    from which budget (if any) MAGE's probe is above the probe on its own flattened inputs."""
    series = _series(results)
    gap = {e: _stat([p["mage_result"]["probe_mage"] - p["mae"]["probe"] for p in ps])[0] for e, ps in series.items()}
    above = [e for e, ps in series.items()
             if _stat([p["mage_result"]["probe_mage"] - p["mage_result"]["probe_inputs"]["code_vectors"] for p in ps])[0] > 0]
    first, last = min(gap), max(gap)
    if len(gap) < 2:
        trend = f"one budget measured ({first:g} epochs): MAGE − MAE {gap[first]:+.1f} points"
    else:
        moved = "narrowed" if abs(gap[last]) < abs(gap[first]) else "did not narrow"
        trend = (f"from {first:g} to {last:g} epochs the MAGE − MAE probe gap {moved}: {gap[first]:+.1f} -> "
                 f"{gap[last]:+.1f} points")
    subject = "MAGE's probe is above the probe on its flattened input code vectors"
    if not above:
        inputs = "MAGE's probe stays below the probe on its flattened input code vectors at every budget measured"
    elif above == [e for e in series if e >= above[0]]:  # every budget from the first one above
        inputs = f"{subject} from {above[0]:g} epochs on"
    else:
        inputs = f"{subject} at {', '.join(f'{e:g}' for e in above)} epochs"
    return f"**What the curve says** (computed from the points above): {trend}; {inputs}."


def figure(results: dict, path: Path) -> Path:
    """Probes, masked-token accuracy, mode share and KID against the epochs each model trained (log2 axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = _series(results)
    x = list(series)

    def line(ax, values, label, **kw):
        stats = [_stat(v) if v else (float("nan"), float("nan")) for v in values]
        ax.errorbar(x, [m for m, _ in stats], yerr=[0 if math.isnan(s) else s for _, s in stats], marker="o",
                    capsize=3, label=label, **kw)

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
    pts = list(series.values())
    line(axes[0], [[p["mae"]["probe"] for p in ps] for ps in pts], "MAE")
    line(axes[0], [[p["mage_result"]["probe_mage"] for p in ps] for ps in pts], "MAGE")
    line(axes[0], [[p["mage_result"]["probe_random_encoder"] for p in ps] for ps in pts], "untrained MAGE encoder", ls=":")
    line(axes[0], [[p["mage_result"]["probe_inputs"]["code_vectors"] for p in ps] for ps in pts], "MAGE's inputs (code vectors)",
         ls="--")
    axes[0].set_ylabel("linear probe top-1 (%)")
    line(axes[1], [[p["mage_result"]["masked_acc"] for p in ps] for ps in pts], "MAGE")
    line(axes[1], [[p["mage_result"]["masked_acc_baseline"] for p in ps] for ps in pts], "most-frequent code", ls="--")
    axes[1].set_ylabel("masked-token accuracy (%)")
    line(axes[2], [[100 * p["mage_result"]["mode_share"] for p in ps] for ps in pts], "MAGE")
    line(axes[2], [[100 * p["mage_result"]["mode_share_true"] for p in ps] for ps in pts], "true tokens", ls="--")
    axes[2].set_ylabel("mode share (% of masked positions)")
    line(axes[3], [[1000 * p["mage_result"]["generation"]["mage"]["kid"] for p in ps if "generation" in p["mage_result"]]
                   for ps in pts], "MAGE")
    line(axes[3], [[1000 * p["mage_result"]["generation"]["recon"]["kid"] for p in ps if "generation" in p["mage_result"]]
                   for ps in pts], "tokenizer reconstructions", ls="--")
    axes[3].set_ylabel("KID x 1000 (lower is better)")
    for ax, title in zip(axes, ("probe", "masked-token accuracy", "the [C]-padding trap", "generation")):
        ax.set_xscale("log", base=2), ax.set_xticks(x, [f"{e:g}" for e in x])
        ax.set_xlabel("epochs each model trained"), ax.set_title(title, fontsize=9), ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite.budget_curve", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="ci")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--epochs", nargs="+", type=float, default=[1, 2, 4, 8])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--generation", action="store_true", help="also score MAGE's unconditional samples (KID, fd_classifier)")
    ap.add_argument("--out", default="reports/budget/ci.json")
    ap.add_argument("--render", default="", metavar="JSON", help="only re-render README.md's budget table and the figure")
    args = ap.parse_args(argv)

    def body() -> int:
        if args.render:
            results = load_json(args.render)
            fig = figure(results, Path(args.render).with_suffix(".png"))
            print(f"rendered {render_readme_block(args.render, TABLE_START, TABLE_END, render_table)} and {fig}")
            return 0
        if any(e <= 0 or not math.isfinite(e) for e in args.epochs) or any(s < 0 for s in args.seeds):
            raise ConfigError("--epochs must be positive numbers and --seeds non-negative integers")
        budget_overrides(args.preset, max(args.epochs), args.dataset)  # refuse a bad preset or dataset up front
        command = "python -m mage_lite.budget_curve " + " ".join(argv if argv is not None else sys.argv[1:])
        results = measure(args.preset, args.dataset, args.epochs, args.seeds, args.generation, args.out, command)
        figure(results, Path(args.out).with_suffix(".png"))
        print(render_table(results))
        return 0

    return cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
