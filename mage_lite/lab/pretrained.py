"""Small pretrained weights of a preset's main models, committed so the notebooks can run without training.

    python -m mage_lite pretrained export --preset cpu      # runs/cpu/models -> reports/cpu/weights/ (fp16, checksummed)
    python -m mage_lite run --preset cpu --pretrained --dataset PATH/TO/cifar10-jpg.tar.gz
    python -m mage_lite pretrained compare --preset cpu     # its probes and generation metrics beside the published ones,
                                                            # kept with its runtimes in reports/cpu/pretrained_check.json
    python -m mage_lite pretrained compare --render reports/cpu/pretrained_check.json   # README's summary from that file

A ``--pretrained`` run loads each model from ``reports/<preset>/weights/`` instead of training it
(one file per model, or the shards ``python -m mage_lite train`` writes; the weights are checked against
``manifest.json``), leaves out the sweeps and ablations whose
models are not shipped, and writes to ``pretrained/`` under the runs folder (``runs/`` or
``$MAGE_LITE_RUNS_DIR``) so it never mixes with trained models. A run the weights cannot stand in
for (another seed, other data, a model's config changed by ``--set``) is refused, not trained,
unless asked with ``--pretrained-or-train``.
The weights are matched by model name and config, not by code: a test loads them into the
current code and checks they reproduce the probe the published run measured.
"""

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import torch

from ..artifacts import (REPO_ROOT, atomic_torch_save, atomic_write_bytes, check_shipped_file, is_tracked, load_json,
                         load_state, published_run, runs_root, save_json, sha256_of, shipped_name)
from ..config import ConfigError, Preset, load_preset
from .cli import check_record, cli
from .readme import render_block
from ..artifacts import flatten_metrics as flatten
from .records import models_used

LIMIT_MB = 20.0  # all shipped weights of a preset together
# The models a --pretrained run needs: the main model of each notebook (run folder names without their hash)
MAIN_MODELS = ("mae-normpix-r0.75", "mae-rawpix-r0.75", "vqgan", "fd-classifier", "mage-truncnorm", "mage-c-clean-w0.1-t0.2", "mage-continuous")
# What a --pretrained run leaves out: the sweeps and ablations, whose models are not shipped
PRETRAINED_OVERRIDES = {"mae_ratio_sweep": [], "mage_c_weight_sweep": [], "mage_c_temperature_sweep": [],
                        "mage_c_input_sweep": [], "ablations.plain_tokenizer": False, "ablations.other_padding": False,
                        "ablations.fixed_ratio": False, "ablations.weak_crop": False}


def weights_dir(preset: str) -> Path:
    return REPO_ROOT / "reports" / preset / "weights"


# The config sections the shipped models' reuse keys are made of (session.NotebookRun.train, fd.feature_net_key)
MODEL_SECTIONS = ("data", "mae", "mae_train", "vqgan", "vqgan_train", "mage", "mage_train", "bank", "fd_classifier",
                  "fd_classifier_train")
DATASET_NAMES = ("shapes", "cifar10")


def config_differences(wanted: dict, shipped: dict) -> list[str]:
    """'section.field=shipped value (this run: value)' for each field of :data:`MODEL_SECTIONS` where the preset
    dicts ``wanted`` and ``shipped`` differ; the dataset is compared by :func:`run_mismatch`."""
    wanted = json.loads(json.dumps(wanted, default=list))  # tuples as the lists the published metrics hold
    return [f"{section}.{key}={json.dumps(shipped.get(section, {}).get(key))} (this run: {json.dumps(value)})"
            for section in MODEL_SECTIONS for key, value in wanted[section].items()
            if (section, key) != ("data", "dataset") and value != shipped.get(section, {}).get(key)]


def run_mismatch(cfg: Preset, seed: int, published: dict) -> str:
    """Why a run of ``cfg`` with ``seed`` cannot load the weights of the ``published`` run, as far as can be told
    before any data is read; "" when nothing tells them apart."""
    if seed != published["seed"]:
        return f"they were trained with seed {published['seed']}, not {seed}"
    ours, theirs = cfg.data.dataset, published["config"]["data"]["dataset"]
    # Two paths may hold the same data (a copy of one archive): the kernels compare the pixels (why_not_shipped).
    if (ours.lower() in DATASET_NAMES or theirs.lower() in DATASET_NAMES) and ours.lower() != theirs.lower():
        shipped_data = theirs if theirs.lower() in DATASET_NAMES else f"the image folder {Path(theirs).name}"
        return f"they were trained on other data ({shipped_data}), not on {ours!r}"
    differences = config_differences(cfg.to_dict(), published["config"])
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        return f"they were trained with {differences[0]}{more}"
    return ""


def check_pretrained_run(preset: str, cfg: Preset, seed: int, refuse_unmatched: bool = True) -> Path:
    """The folder of ``preset``'s shipped weights, for a ``--pretrained`` run of ``cfg`` (the preset with the run's
    overrides and data) and ``seed``. Refused before any kernel starts: a preset without weights, and, with
    ``refuse_unmatched``, a run whose seed, data or model configs differ from the published run's."""
    weights = weights_dir(preset)
    manifest = weights / "manifest.json"
    if not manifest.exists() and is_tracked(manifest):
        raise ConfigError(f"{manifest} is missing; restore it with `git checkout -- {manifest}`")
    if not manifest.exists():
        shipped = sorted(p.parent.parent.name for p in (REPO_ROOT / "reports").glob("*/weights/manifest.json"))
        raise ConfigError(f"preset {preset!r} has no pretrained weights in {weights}; "
                          f"--pretrained works with {', '.join(shipped) or 'no preset yet'}")
    check_shards(weights)
    published = published_run(weights)
    why = run_mismatch(cfg, seed, published) if refuse_unmatched and published is not None else ""
    if why:
        raise ConfigError(f"the {preset} weights cannot stand in for this run's models: {why}; run as they were "
                          "trained, or pass --pretrained-or-train to train the models they do not match")
    return weights


def half(state: dict) -> dict:
    """fp16 copies of the floating tensors that survive it (finite, as before); the rest as they are."""
    out = {}
    for k, v in state.items():
        small = v.half() if v.is_floating_point() else None
        keep = small is not None and bool(torch.isfinite(small).all() == torch.isfinite(v).all())
        out[k] = small if keep else v
    return out


def chosen_runs(preset: str, names: tuple = MAIN_MODELS, used: list[Path] | None = None) -> list[Path]:
    """The run folders of the preset's trained models named in ``names``, one of each: those the preset's executed
    notebooks used (``used``: their run folders, to name them directly)."""
    from ..fd import shared_models_dir

    models = runs_root() / preset / "models"
    used = models_used(preset, [models, shared_models_dir()]) if used is None else used
    runs = [d for d in used if d.name.rsplit("-", 1)[0] in names]
    missing = set(names) - {d.name.rsplit("-", 1)[0] for d in runs}
    if missing:
        raise ValueError(f"the {preset} run used no {', '.join(sorted(missing))}: run its notebooks first "
                         f"(python -m mage_lite run --preset {preset})")
    seen = {}
    for d in runs:
        seen.setdefault(d.name.rsplit("-", 1)[0], []).append(d)
    # a name trained on other crops too (the weak-crop ablation): ship the preset's own crop
    crop = list(load_preset(preset).data.crop_scale)
    for name, ds in seen.items():
        if len(ds) > 1:
            seen[name] = [d for d in ds if load_json(d / "config.json").get("crop_scale") == crop] or ds
    twice = {n: [d.name for d in ds] for n, ds in seen.items() if len(ds) > 1}
    if twice:
        raise ValueError(f"the {preset} run used several models named {', '.join(twice)} ({twice}): "
                         f"run its notebooks again from an empty runs/ (--fresh) so one of each is current")
    return sorted(d for ds in seen.values() for d in ds)


def _entry(d: Path) -> tuple[str, dict]:
    """(file stem, manifest entry without its file) of the trained model in run folder ``d``."""
    stem = shipped_name(d.name.rsplit("-", 1)[0], load_json(d / "config.json"))
    return stem, {"trained_in": d.name, "history": load_json(d / "history.json")}


def _drop_old(dest: Path, keep: set[str]) -> None:
    """Delete the files an earlier export's manifest in ``dest`` lists (its models' files, its shards) that are not
    in ``keep``; nothing else in ``dest`` is touched."""
    try:
        old = load_json(dest / "manifest.json")
    except (FileNotFoundError, ValueError):
        return
    listed = [e["file"] for e in old.get("models", {}).values() if "file" in e] + [s["file"] for s in old.get("shards", [])]
    for name in set(listed) - keep:
        (dest / Path(name).name).unlink(missing_ok=True)


def export(preset: str, names: tuple = MAIN_MODELS, dest: Path | None = None, limit_mb: float = LIMIT_MB,
           used: list[Path] | None = None) -> Path:
    """Write the preset's trained models named in ``names`` (fp16), one file each, and ``manifest.json`` to ``dest``
    (default ``reports/<preset>/weights``); refuses a set larger than ``limit_mb``. The models are
    those the preset's executed notebooks used (``used``: their run folders, to name them directly)."""
    runs = chosen_runs(preset, names, used)
    dest = dest or weights_dir(preset)
    dest.mkdir(parents=True, exist_ok=True)
    entries, total = {}, 0
    for d in runs:
        stem, entry = _entry(d)
        path = dest / f"{stem}.pt"
        atomic_torch_save(half(load_state(d / "model.pt")), path)
        total += path.stat().st_size
        entries[stem] = {"file": path.name, "sha256": sha256_of(path), **entry}
    if total > limit_mb * 2**20:
        raise ValueError(f"the weights come to {total / 2**20:.1f} MB, over the {limit_mb:.0f} MB limit; ship fewer models")
    for old in dest.glob("*.pt"):
        if old.stem not in entries:
            old.unlink()
    save_json({"preset": preset, "megabytes": round(total / 2**20, 2), "models": entries}, dest / "manifest.json")
    return dest


# What one GPU slot can bring back (issue 29): files of at most 16 MiB, at most 8 files (the manifest one of them)
# and 64 MiB in all
SHARD_BYTES, MAX_FILES, MAX_BYTES = 16 * 2**20, 8, 64 * 2**20
SHARD_NAME = "weights-{:02d}.bin"


def half_bytes(state: dict) -> bytes:
    """What a model's state (:func:`half`) takes in a shard: its torch.save, in memory."""
    buffer = io.BytesIO()
    torch.save(half(state), buffer)
    return buffer.getvalue()


def shard_limits_problem(weights_bytes: int, manifest_bytes: int = 0, shard_bytes: int = SHARD_BYTES,
                         max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> str:
    """Why ``weights_bytes`` of weights (plus a manifest of ``manifest_bytes``) cannot be shipped as shards of at most
    ``shard_bytes`` within ``max_files`` files and ``max_bytes`` in all, as a phrase; "" when they can."""
    shards = -(-weights_bytes // shard_bytes)
    if weights_bytes + manifest_bytes > max_bytes:
        return (f"the weights and their manifest come to {(weights_bytes + manifest_bytes) / 2**20:.1f} MiB, over the "
                f"limit of {max_bytes / 2**20:g} MiB in all")
    if shards + 1 > max_files:
        return (f"the weights come to {weights_bytes / 2**20:.1f} MiB, {shards} shards of at most "
                f"{shard_bytes / 2**20:g} MiB plus the manifest, over the limit of {max_files} files")
    return ""


def export_shards(preset: str, dest: Path, used: list[Path], names: tuple = MAIN_MODELS, shard_bytes: int = SHARD_BYTES,
                  max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> Path:
    """Write the trained models of the run folders ``used`` named in ``names`` (fp16, as :func:`export`) to ``dest`` as
    shards: every model's saved state one after the other in one byte stream, cut into files ``weights-NN.bin`` of at
    most ``shard_bytes``; ``manifest.json`` lists each shard with its sha256 and each model's pieces
    ([shard, offset, length], ...), which :func:`mage_lite.artifacts.read_shipped` reads back. Refuses, before writing
    anything, weights that do not fit in ``max_files`` files (the manifest one of them) and ``max_bytes`` in all."""
    stream, entries = bytearray(), {}
    for d in chosen_runs(preset, names, used):
        stem, entry = _entry(d)
        at, data = len(stream), half_bytes(load_state(d / "model.pt"))
        stream += data
        pieces = []
        while at < len(stream):  # the model's bytes, cut where the shards end
            shard = at // shard_bytes
            stop = min(len(stream), (shard + 1) * shard_bytes)
            pieces.append([SHARD_NAME.format(shard), at - shard * shard_bytes, stop - at])
            at = stop
        entries[stem] = {"pieces": pieces, "bytes": len(data), **entry}
    shards = [bytes(stream[i:i + shard_bytes]) for i in range(0, len(stream), shard_bytes)]
    manifest = {"preset": preset, "megabytes": round(len(stream) / 2**20, 2), "models": entries,
                "shards": [{"file": SHARD_NAME.format(i), "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                           for i, b in enumerate(shards)]}
    problem = shard_limits_problem(len(stream), len(json.dumps(manifest, indent=2, sort_keys=True)) + 1, shard_bytes,
                                   max_files, max_bytes)
    if problem:
        raise ValueError(f"cannot export the {preset} weights to {dest}: {problem}; make the preset's models smaller")
    dest.mkdir(parents=True, exist_ok=True)
    for shard, data in zip(manifest["shards"], shards):
        atomic_write_bytes(data, dest / shard["file"])
    _drop_old(dest, {s["file"] for s in manifest["shards"]})
    save_json(manifest, dest / "manifest.json")
    return dest


def check_shards(weights: Path) -> None:
    """Refuse in one sentence naming the file a folder of weights written as shards where one is missing or damaged
    (weights written one file per model are checked as each model loads)."""
    for shard in load_json(weights / "manifest.json").get("shards", []):
        check_shipped_file(weights / shard["file"], shard["sha256"])


COMPARED = ("probe_", "psnr", "masked_acc", "mode_share", "fd_classifier_", "kid_", "precision_", "recall_")


def pretrained_root() -> Path:
    """The runs folder of ``--pretrained`` runs: ``pretrained/`` in the runs folder (``$MAGE_LITE_RUNS_DIR`` or
    ``runs/``), apart from the models trained there."""
    return runs_root() / "pretrained"


def pretrained_runs(preset: str) -> Path:
    """Where a ``--pretrained`` run of ``preset`` writes its notebooks' outputs and timings."""
    return pretrained_root() / preset


def compare(preset: str, runs: Path | None = None, published: Path | None = None) -> list[tuple[str, str, float, float]]:
    """(notebook, metric, published, pretrained) for every probe and generation metric that both the
    published run (``reports/<preset>/``) and the ``--pretrained`` run (``runs``, by default
    :func:`pretrained_runs`) logged."""
    runs = runs or pretrained_runs(preset)
    published = published or REPO_ROOT / "reports" / preset
    rows = []
    for mine in sorted(runs.glob("[0-9][0-9]_*/seed0/metrics.json")):
        theirs = published / mine.parent.parent.name / "seed0" / "metrics.json"
        if not theirs.exists():
            continue
        a, b = flatten(load_json(theirs)), flatten(load_json(mine))
        rows += [(mine.parent.parent.name, k, a[k], b[k]) for k in sorted(set(a) & set(b)) if k.startswith(COMPARED)]
    return rows


BLOCK = "pretrained-check"  # README.md's block (mage_lite.lab.readme)


def record_check(preset: str, rows: list[tuple[str, str, float, float]], runs: Path | None = None) -> dict:
    """The comparison and the ``--pretrained`` run's runtimes (its ``timings.json``), as committed in
    ``reports/<preset>/pretrained_check.json``."""
    runs = runs or pretrained_runs(preset)
    timings = load_json(runs / "timings.json")
    return {"preset": preset, "command": f"python -m mage_lite run --preset {preset} --pretrained",
            "minutes": {stem: round(t["seconds"] / 60, 1) for stem, t in sorted(timings.items())},
            "rows": [{"notebook": stem, "metric": key, "published": a, "pretrained": b} for stem, key, a, b in rows]}


def render_check(check: dict) -> str:
    """One paragraph: how long the ``--pretrained`` run took and how far its numbers are from the published run's."""
    rows = check["rows"]
    probes = [abs(r["pretrained"] - r["published"]) for r in rows if r["metric"].startswith("probe_")]
    total = sum(check["minutes"].values())
    per = ", ".join(f"{stem[:2]} {m:.1f}" for stem, m in check["minutes"].items())
    worst = max(rows, key=lambda r: abs(r["pretrained"] - r["published"]) / max(abs(r["published"]), 1e-9))
    return (f"Measured: `{check['command']}` ran all {len(check['minutes'])} notebooks in **{total:.0f} min** on 2 CPU "
            f"cores ({per} min), against {len(rows)} probe, tokenizer and generation metrics of the "
            f"published run: the {len(probes)} probes differ by at most {max(probes):.2f} points; the largest relative "
            f"difference is {worst['metric']} of notebook {worst['notebook'][:2]} ({worst['published']:.4g} published, "
            f"{worst['pretrained']:.4g} here). Rendered from `reports/{check['preset']}/pretrained_check.json`.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite pretrained", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write a preset's main models as fp16 weights to reports/<preset>/weights/")
    e.add_argument("--preset", default="cpu")
    c = sub.add_parser("compare", help="the --pretrained run's probes and generation metrics beside the published run's")
    c.add_argument("--preset", default="cpu")
    c.add_argument("--render", default="", metavar="JSON", help="only re-render README.md's summary from a committed check")
    c.add_argument("--runs", default="", metavar="DIR",
                   help="the --pretrained run's folder (default: pretrained/<preset> in $MAGE_LITE_RUNS_DIR or runs/)")
    args = ap.parse_args(argv)

    def body() -> int:
        if args.cmd == "compare" and args.render:
            check_record(args.render, "the check `python -m mage_lite pretrained compare` wrote",
                         "reports/cpu/pretrained_check.json", render_check)
            print(f"rendered {render_block(BLOCK, args.render, render_check)}")
            return 0
        if args.cmd == "compare":
            runs = Path(args.runs) if args.runs else pretrained_runs(args.preset)
            rows = compare(args.preset, runs)
            if not rows:
                raise ConfigError(f"nothing to compare in {runs}: run `python -m mage_lite run --preset "
                                  f"{args.preset} --pretrained` first, or pass --runs with the folder its metrics went to")
            print("| notebook | metric | published | pretrained | difference |\n| --- | --- | --- | --- | --- |")
            for stem, key, a, b in rows:
                print(f"| {stem} | {key} | {a:.4g} | {b:.4g} | {b - a:+.3g} |")
            out = REPO_ROOT / "reports" / args.preset / "pretrained_check.json"
            save_json(record_check(args.preset, rows, runs), out)
            print(f"wrote {out}; rendered {render_block(BLOCK, out, render_check)}")
            return 0
        dest = export(args.preset)
        print(f"wrote {load_json(dest / 'manifest.json')['megabytes']} MB of weights to {dest}")
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
