"""MAE and MAGE against their training budget: the question a 32 px reproduction can answer.

    python -m mage_lite budget-curve --preset ci --epochs 1 2 4 8 --seeds 0 1 --generation \\
        --dataset PATH/TO/cifar10-jpg.tar.gz --out reports/budget/ci.json
    python -m mage_lite budget-curve --render reports/budget/ci.json   # README table and figure from that file

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
import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch

from ..artifacts import load_json, save_json
from ..config import ConfigError, load_preset, train_budget, train_images
from .design_check import EVAL_RATIO, code_version, measure_arm
from .cli import cli
from .readme import render_block
from ..session import NotebookRun

TABLE_BLOCK = "budget-curve"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES
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
    views = max(1, round(epochs))  # round, not ceil: the preset's own 4.1 epochs keep its 4 views (and its shipped models)
    if cfg.bank.views and views > cfg.bank.views:
        out["bank.views"] = views
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



# ---------------------------------------------------------------------------------------------------------------
# The per-model curve (issue 27): MAE, MAGE, MAGE-C and the continuous-input MAGE at the cpu preset's sizes and
# tokenizer, one JSON entry per (model, epochs, seed). Points train from the shipped cpu tokenizer and feature network
# (reports/cpu/weights, loaded, never retrained) and are keyed by their config alone (``code_in_key=False``), so a
# refactor does not orphan a half-trained run; each point records the code version that measured it.

CURVE_MODELS = ("mae", "mage", "mage_c", "continuous")
SHIPPED_WEIGHTS = "reports/cpu/weights"
# MAGE-C as notebook 04 trains it, the continuous arm as notebook 05 does: same names, so the preset's own budget
# loads the shipped 4.1-epoch models instead of training them again.
MAGE_ARMS = {"mage": ("mage-truncnorm", {}),
             "mage_c": ("mage-c-clean-w0.1-t0.2", {"contrastive_weight": 0.1, "contrastive_temperature": 0.2,
                                                  "contrastive_input": "clean"}),
             "continuous": ("mage-continuous", {"input": "continuous"})}
# img/s on 2 threads, from the measurements, until this curve has measured its own
DEFAULT_IMG_PER_S = {"mae": 840, "mage": 400, "mage_c": 200, "continuous": 300}


def plan(preset_epochs: float) -> list[tuple[str, float, int]]:
    """The points of the cpu curve, cheapest and most informative first: (model, epochs, seed)."""
    four, two = CURVE_MODELS, ("mae", "mage")
    pts = [(m, preset_epochs, 0) for m in four] + [(m, 8.0, 0) for m in four] + [(m, 8.0, 1) for m in two]
    pts += [(m, 16.0, 0) for m in four] + [(m, 16.0, 1) for m in two] + [(m, 32.0, 0) for m in four]
    return pts + [(m, 64.0, 0) for m in two]


def point_key(model: str, epochs: float, seed: int) -> str:
    return f"{model}/{epochs:g}/{seed}"


def preset_epochs(preset: str, dataset: str = "") -> float:
    cfg = load_preset(preset, dataset=dataset)
    return train_budget(cfg.mage_train, train_images(cfg))["epochs"]


class _Instruments:
    """What every point of one tokenizer shares, made once per process: the probe's token ids (and continuous
    features), the probe on MAGE's own inputs, the generation scorer and the masked-token test ids."""

    def __init__(self, run: NotebookRun, tokenizer, generation: bool):
        from ..mage_eval import GenerationScorer, probe_inputs
        from ..probe import random_subset
        from ..vqgan import encode_dataset_features

        probe = run.probe
        self.train_feats, self.train_ids = encode_dataset_features(tokenizer, probe.train_images, device=run.device)
        self.test_feats, self.test_ids = encode_dataset_features(tokenizer, probe.test_images, device=run.device)
        g = run.cfg.generation
        eval_images = run.data.test_images[random_subset(len(run.data.test_images), g.eval_images, 3)]
        self.eval_feats, self.eval_ids = encode_dataset_features(tokenizer, eval_images, device=run.device)
        self.code_vectors = probe_inputs(probe, tokenizer, self.train_ids.flatten(1), self.test_ids.flatten(1))
        self.scorer = GenerationScorer(run, tokenizer) if generation else None


def _read_outs(probe, train: dict, test: dict) -> dict:
    """Linear probes on every read-out (mean-pooled "avg" and the best other one) and the 20-NN on "avg"."""
    from ..probe import knn_accuracy

    probes = probe.fit(train, test)
    best = max((k for k in probes if k != "avg"), key=probes.get)
    return {"probe": probes["avg"], "probe_best_other": {"readout": best, "probe": probes[best]}, "probes": probes,
            "knn": knn_accuracy(train["avg"], probe.train_labels, test["avg"], probe.test_labels)}


def measure_model_point(model_name: str, epochs: float, seed: int, preset: str, dataset: str, generation: bool,
                        instruments: dict) -> dict:
    """Train (or reuse) one model of the curve for ``epochs`` and measure it."""
    from ..mage_eval import masked_token_accuracy, token_features, trap_metrics
    from ..probe import extract_features

    overrides = budget_overrides(preset, epochs, dataset)
    run = NotebookRun("budget_curve", preset, dataset=dataset, seed=seed, overrides=overrides, code_in_key=False)
    tokenizer = run.tokenizer()
    tok = run.model_dirs["vqgan"].name
    if tok not in instruments:
        instruments[tok] = _Instruments(run, tokenizer, generation)
    ins = instruments[tok]
    t0 = time.perf_counter()
    if model_name == "mae":
        model, history = run.mae(norm_pix=True)
        seconds = time.perf_counter() - t0
        probe = run.probe
        train = extract_features(model.features, probe.train_images, device=run.device, desc="MAE: train features")
        test = extract_features(model.features, probe.test_images, device=run.device, desc="MAE: test features")
        result = _read_outs(probe, train, test)
        budget = train_budget(run.cfg.mae_train, len(run.data.train_images))
    else:
        name, changes = MAGE_ARMS[model_name]
        model, history = run.mage(tokenizer, name, **changes)
        seconds = time.perf_counter() - t0
        continuous = model_name == "continuous"
        tr_in, te_in, ev_in = ((ins.train_feats, ins.test_feats, ins.eval_feats) if continuous
                               else (ins.train_ids.flatten(1), ins.test_ids.flatten(1), ins.eval_ids.flatten(1)))
        result = _read_outs(run.probe, token_features(model, tr_in), token_features(model, te_in))
        feats = {"features": ins.eval_feats} if continuous else {}
        acc = masked_token_accuracy(model, ins.eval_ids.flatten(1), EVAL_RATIO, seed=0, **feats)
        trap = trap_metrics(model, ins.eval_ids.flatten(1), EVAL_RATIO, seed=0, **feats)
        result |= {"masked_acc": acc["acc"], "masked_acc_baseline": acc["baseline"], "masked_nll": acc["nll"],
                   "mode_share": trap["mode_share"], "mode_share_true": trap["mode_share_true"],
                   "probe_code_vectors": ins.code_vectors["code_vectors"]}
        if ins.scorer is not None and not continuous:  # the continuous arm reads features, not ids: no sampler
            result["generation"] = {"model": ins.scorer.metrics(ins.scorer.samples(model)),
                                    "recon": ins.scorer.recon_metrics, "real": ins.scorer.real_metrics}
        budget = train_budget(run.cfg.mage_train, len(run.data.train_images))
    speeds = [h["img_per_s"] for h in history if "img_per_s" in h]
    return {"model": model_name, "epochs": epochs, "seed": seed, "overrides": overrides, "budget": budget,
            "loss_last": history[-1]["loss"], "train_seconds": round(seconds, 1),
            "run": list(run.model_dirs.values())[-1].name,  # the model just trained or reused (the tokenizer came first)
            "img_per_s": sorted(speeds)[len(speeds) // 2] if speeds else None, "threads": torch.get_num_threads(),
            "code": code_version(), **result}


@contextlib.contextmanager
def shipped_weights():
    """Load the shipped cpu tokenizer, feature network and 4.1-epoch models instead of training them (only the cpu
    preset's configs match them), unless the environment already names other weights; as it was afterwards."""
    from ..artifacts import PRETRAINED_ENV, REPO_ROOT

    had = os.environ.get(PRETRAINED_ENV)
    if had is None:
        os.environ[PRETRAINED_ENV] = str(REPO_ROOT / SHIPPED_WEIGHTS)
    try:
        yield
    finally:
        if had is None:
            os.environ.pop(PRETRAINED_ENV, None)


def measure_curve(preset: str, dataset: str, points: list[tuple[str, float, int]], generation: bool, out: str,
                  command: str) -> dict:
    with shipped_weights():
        return _measure_curve(preset, dataset, points, generation, out, command)


def _measure_curve(preset: str, dataset: str, points: list[tuple[str, float, int]], generation: bool, out: str,
                   command: str) -> dict:
    try:
        results = load_json(out)
    except FileNotFoundError:
        results = {}
    if results.get("preset") != preset:
        results = {"preset": preset, "kind": "per-model", "points": {}}
    results["command"] = command
    instruments: dict = {}
    for model_name, epochs, seed in points:
        key = point_key(model_name, epochs, seed)
        if key in results["points"]:
            continue
        print(f"budget curve: {key} (model/epochs/seed) ...", flush=True)
        t0 = time.perf_counter()
        r = measure_model_point(model_name, epochs, seed, preset, dataset, generation, instruments)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        results["points"][key] = r
        save_json(results, out)
        print(f"{key}: probe {r['probe']:.1f} %, k-NN {r['knn']:.1f} %, {r['seconds'] / 60:.1f} min", flush=True)
    return results


def status(results: dict, points: list[tuple[str, float, int]], dataset: str = "") -> str:
    """Points done and left, with the hours left from the img/s each model measured on this curve (2 threads)."""
    preset = results.get("preset", "cpu")
    n = train_images(load_preset(preset, dataset=dataset))
    speed = dict(DEFAULT_IMG_PER_S)
    for m in CURVE_MODELS:  # the speed of the points trained here (as this curve runs) before the shipped models'
        mine = [p for p in results.get("points", {}).values() if p["model"] == m and p.get("img_per_s")]
        trained_here = [p["img_per_s"] for p in mine if p.get("train_seconds", 0) > 60]
        seen = trained_here or [p["img_per_s"] for p in mine]
        if seen:
            speed[m] = sorted(seen)[len(seen) // 2]
    done = [k for k in map(lambda p: point_key(*p), points) if k in results.get("points", {})]
    left = [p for p in points if point_key(*p) not in results.get("points", {})]
    own = preset_epochs(preset, dataset)

    def hours(m: str, e: float, s: int) -> float:  # the preset's own budget, seed 0: the shipped models, no training
        return 0.0 if (e, s) == (own, 0) else e * n / speed[m] / 3600
    lines = [f"{len(done)} of {len(points)} points done: {', '.join(done) or 'none'}",
             f"{len(left)} left, about {sum(hours(*p) for p in left):.1f} h of training at " +
             ", ".join(f"{m} {speed[m]:.0f} img/s" for m in CURVE_MODELS) + ":"]
    lines += [f"  {point_key(*p)}: {hours(*p):.2f} h" for p in left]
    return "\n".join(lines)



CURVE_BLOCK = "budget-curve-cpu"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES
MODEL_LABELS = {"mae": "MAE", "mage": "MAGE", "mage_c": "MAGE-C", "continuous": "continuous-input MAGE"}
# The three claims the curve follows: (model that should win, model it should beat, what the claim says)
CURVE_CLAIMS = (("mage", "mae", "MAGE's probe passes MAE's"),
                ("mage", "continuous", "quantized tokens probe above continuous input"),
                ("mage_c", "mage", "MAGE-C's probe passes MAGE's"))


def _by_model(results: dict) -> dict[str, dict[float, dict[int, dict]]]:
    """{model: {epochs: {seed: point}}}, epochs ascending."""
    out: dict = {}
    for p in results["points"].values():
        out.setdefault(p["model"], {}).setdefault(float(p["epochs"]), {})[int(p["seed"])] = p
    return {m: dict(sorted(e.items())) for m, e in out.items()}


def paired_gaps(results: dict, a: str, b: str, key: str = "probe") -> dict[float, list[float]]:
    """{epochs: [a - b for every seed where both were measured]}, epochs ascending."""
    by = _by_model(results)
    out = {}
    for e in sorted(set(by.get(a, {})) & set(by.get(b, {}))):
        seeds = sorted(set(by[a][e]) & set(by[b][e]))
        if seeds:
            out[e] = [by[a][e][s][key] - by[b][e][s][key] for s in seeds]
    return out


def _ep(e: float) -> str:
    """Epochs as the curve names them: 4.1, 8, 16."""
    return f"{e:.3g}"


def claim_finding(results: dict, a: str, b: str, claim: str) -> str:
    """The budget at which ``a`` passes ``b`` with the paired 95 % interval above 0, or the gap at the longest
    budget and its trend; computed from the points, never written by hand."""
    from .report.claims import verdict

    gaps = paired_gaps(results, a, b)
    if not gaps:
        return f"{claim}: not measured yet"
    for e, d in gaps.items():
        v, ci = verdict(d)
        if v == "reproduced":
            return (f"{claim} first at {_ep(e)} epochs (the shortest budget where the paired interval is above 0): "
                    f"{_stat(d)[0]:+.1f} points [{ci[0]:+.1f}, {ci[1]:+.1f}], {len(d)} seeds")
    first, last = min(gaps), max(gaps)
    m_first, m_last = _stat(gaps[first])[0], _stat(gaps[last])[0]
    v, ci = verdict(gaps[last])
    trend = "" if len(gaps) < 2 else (f", {'narrowing' if abs(m_last) < abs(m_first) else 'not narrowing'} from "
                                      f"{m_first:+.1f} at {_ep(first)} epochs")
    if ci is None:
        return f"{claim}? one seed so far: the gap at {_ep(last)} epochs is {m_last:+.1f} points (no interval yet){trend}"
    return (f"{claim}: not within {_ep(last)} epochs; the gap at {_ep(last)} epochs is {m_last:+.1f} points "
            f"[{ci[0]:+.1f}, {ci[1]:+.1f}] ({v}){trend}")


def render_curve(results: dict) -> str:
    """The per-model curve as a table (mean ± std over seeds) and its computed findings."""
    by = _by_model(results)
    epochs = sorted({e for m in by.values() for e in m})
    models = [m for m in CURVE_MODELS if m in by]

    def cell(m, e, key, scale=1.0, digits=1):
        pts = by.get(m, {}).get(e, {})
        xs = [scale * p[key] for p in pts.values() if p.get(key) is not None]
        return _cell(xs, digits) if xs else "–"

    def gen(m, e):
        pts = [p["generation"]["model"] for p in by.get(m, {}).get(e, {}).values() if "generation" in p]
        return _cell([g["fd"] for g in pts]) if pts else "–"

    head = ["epochs"] + [f"{MODEL_LABELS[m]} probe %" for m in models] + [f"{MODEL_LABELS[m]} k-NN %" for m in models]
    head += ["MAGE masked-token acc % (baseline)", "MAGE mode share %", "MAGE fd_classifier", "MAGE-C fd_classifier"]
    lines = [f"`{results['preset']}` preset, the shipped cpu tokenizer; `{results['command']}`", "",
             "| " + " | ".join(head) + " |", "| --- " * len(head) + "|"]
    for e in epochs:
        row = [_ep(e)] + [cell(m, e, "probe") for m in models] + [cell(m, e, "knn") for m in models]
        row += [f"{cell('mage', e, 'masked_acc', digits=2)} ({cell('mage', e, 'masked_acc_baseline', digits=2)})",
                cell("mage", e, "mode_share", 100), gen("mage", e), gen("mage_c", e)]
        lines.append("| " + " | ".join(row) + " |")
    findings = [claim_finding(results, a, b, claim) for a, b, claim in CURVE_CLAIMS]
    return "\n".join(lines + ["", "**What the curve says** (computed from the points above):", ""] +
                     [f"- {f}." for f in findings])


def curve_figure(results: dict, path: Path) -> Path:
    """The four models' probes against epochs (log axis), mean over seeds with a band of ± one std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m, series in _by_model(results).items():
        xs = list(series)
        stats = [_stat([p["probe"] for p in pts.values()]) for pts in series.values()]
        mean = [s[0] for s in stats]
        std = [0.0 if math.isnan(s[1]) else s[1] for s in stats]
        ax.plot(xs, mean, marker="o", label=MODEL_LABELS[m])
        ax.fill_between(xs, [a - b for a, b in zip(mean, std)], [a + b for a, b in zip(mean, std)], alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epochs each model trained"), ax.set_ylabel("linear probe top-1 (%)"), ax.legend(fontsize=8)
    ax.set_title("the probe against the training budget (cpu sizes)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite budget-curve", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="ci")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--epochs", nargs="+", type=float, default=None,
                    help="the budgets (default: 1 2 4 8; with --per-model, the whole plan)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--generation", action="store_true", help="also score MAGE's unconditional samples (KID, fd_classifier)")
    ap.add_argument("--out", default="reports/budget/ci.json")
    ap.add_argument("--render", default="", metavar="JSON", help="only re-render docs/results.md's budget-curve table and the figure")
    ap.add_argument("--per-model", action="store_true",
                    help="the per-model curve (MAE, MAGE, MAGE-C, continuous input) at the preset's sizes and shipped "
                         "tokenizer; without --epochs, the whole plan (issue 27)")
    ap.add_argument("--models", nargs="+", choices=CURVE_MODELS, default=list(CURVE_MODELS))
    ap.add_argument("--status", action="store_true", help="with --per-model: list the points done and left, with hours")
    args = ap.parse_args(argv)
    given_epochs = args.epochs is not None
    args.epochs = args.epochs or [1.0, 2.0, 4.0, 8.0]

    def body() -> int:
        if args.render:
            results = load_json(args.render)
            per_model = results.get("kind") == "per-model"
            fig = (curve_figure if per_model else figure)(results, Path(args.render).with_suffix(".png"))
            block = (CURVE_BLOCK, args.render, render_curve) if per_model else (TABLE_BLOCK, args.render, render_table)
            print(f"rendered {render_block(*block)} and {fig}")
            return 0
        if any(e <= 0 or not math.isfinite(e) for e in args.epochs) or any(s < 0 for s in args.seeds):
            raise ConfigError("--epochs must be positive numbers and --seeds non-negative integers")
        if args.per_model:
            points = (plan(preset_epochs(args.preset, args.dataset)) if not given_epochs else
                      [(m, e, s) for e in args.epochs for s in args.seeds for m in args.models])
            points = [p for p in points if p[0] in args.models]
            if args.status:
                try:
                    results = load_json(args.out)
                except FileNotFoundError:
                    results = {"preset": args.preset, "points": {}}
                print(status(results, points, args.dataset))
                return 0
            budget_overrides(args.preset, max(e for _, e, _ in points), args.dataset)  # a bad preset or dataset, up front
            command = "python -m mage_lite budget-curve " + " ".join(argv if argv is not None else sys.argv[1:])
            measure_curve(args.preset, args.dataset, points, args.generation, args.out, command)
            return 0
        budget_overrides(args.preset, max(args.epochs), args.dataset)  # refuse a bad preset or dataset up front
        command = "python -m mage_lite budget-curve " + " ".join(argv if argv is not None else sys.argv[1:])
        results = measure(args.preset, args.dataset, args.epochs, args.seeds, args.generation, args.out, command)
        figure(results, Path(args.out).with_suffix(".png"))
        print(render_table(results))
        return 0

    return cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
