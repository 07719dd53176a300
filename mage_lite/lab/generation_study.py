"""Why MAGE's samples stand still with training, measured on cached models (issue 28).

Nothing is trained here: the study loads the shipped cpu models and the budget curve's points
(``python -m mage_lite budget-curve --per-model``) and refuses a point that is not trained yet.

- **The ladder**, in one metric space (the shared feature network, the same reference images):
  real test images; the tokenizer's reconstructions of them (the best these tokens allow);
  each MAGE's samples; and floors that know nothing of images beyond token statistics: ids
  drawn independently from the codebook's marginal, and from each position's own marginal,
  decoded by the same tokenizer; the untrained model's samples.
- **The first step.** Generation starts from an all-[MASK] grid, which is the same input for
  every sample: the model's first-step distributions are one prediction per position, and all
  the diversity of the first tokens comes from drawing from them. Their entropy against the
  code marginal's says whether that prediction is the marginal (a model that learnt nothing of
  the fully masked case) or something sharper.
- **Decoding.** Number of steps, choice temperature (0, MAGE's 4.5 and 6), the token draw's
  temperature, a linear mask schedule, top-k and nucleus limits; every setting on the same
  number of samples, and the best one per model drawn again with other sampling seeds.

    python -m mage_lite generation-study --preset cpu --dataset PATH/TO/cifar10-jpg.tar.gz \\
        --out reports/generation/cpu.json
    python -m mage_lite generation-study --render reports/generation/cpu.json

Results are cached per (model, setting) in the output file: a stopped study resumes.
"""

import argparse
import contextlib
import math
import os
import time
from pathlib import Path

import torch

from ..artifacts import REPO_ROOT, load_json, save_json
from ..config import ConfigError, load_preset
from .budget_curve import MAGE_ARMS, budget_overrides, point_key, preset_epochs, shipped_weights
from .cli import check_reachable, check_record, cli, resolve_dataset
from .readme import render_block

BLOCK = "generation-study"  # a rendered block; the file it lives in: mage_lite.lab.readme.HOMES
NOTEBOOK = REPO_ROOT / "notebooks" / "03_mage_variable_masking.py"  # shows the ladder, in a markdown cell of section 8

# (label, settings) for iterative_decode beside the preset's own (steps, choice temperature): one change at a time
DECODING = (
    ("steps 8", {"steps": 8}),
    ("steps 24", {"steps": 24}),
    ("steps 64", {"steps": 64}),
    ("choice temperature 0", {"choice_temperature": 0.0}),
    ("choice temperature 4.5 (MAGE)", {"choice_temperature": 4.5}),
    ("choice temperature 6 (MAGE's FID runs)", {"choice_temperature": 6.0}),
    ("draw temperature 0.8", {"sampling_temperature": 0.8}),
    ("draw temperature 1.2", {"sampling_temperature": 1.2}),
    ("linear schedule", {"schedule": "linear"}),
    ("top-k 64", {"top_k": 64}),
    ("nucleus 0.9", {"top_p": 0.9}),
)
BASELINE = "the preset's decoding"
CONFIRM_SEEDS = (1000, 2000)  # the best setting's extra sampling seeds (the first is the study's own draw)
STUDY_SEED = 0
METRICS = ("fd", "kid", "kid_std", "precision", "recall")
FIGURE_IMAGES = 12  # images per row of the samples figure (<out>-samples.png): the same seed for every model


@contextlib.contextmanager
def _no_training():
    """Any attempt to train inside the study is an error: it measures cached models only."""
    from .. import session

    def refuse(*args, **kwargs):
        raise ConfigError("this budget-curve point is not trained yet: run python -m mage_lite budget-curve --per-model "
                          "first (the study trains nothing)")

    real, session.fit = session.fit, refuse
    try:
        yield
    finally:
        session.fit = real


def _run(preset: str, dataset: str, epochs: float, seed: int):
    from ..session import NotebookRun

    return NotebookRun("generation_study", preset, dataset=dataset, seed=seed,
                       overrides=budget_overrides(preset, epochs, dataset), code_in_key=False)


def token_marginals(ids: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, L) -> (the codebook's marginal (K,), each position's marginal (L, K)), add-one smoothed
    so that every code can be drawn."""
    L = ids.shape[1]
    per_pos = torch.ones(L, K, dtype=torch.float64)
    per_pos.scatter_add_(1, ids.T.long(), torch.ones(L, ids.shape[0], dtype=torch.float64))  # (L, K) counts
    per_pos /= per_pos.sum(1, keepdim=True)
    return per_pos.mean(0), per_pos


def floor_ids(marginal: torch.Tensor, n: int, L: int, seed: int) -> torch.Tensor:
    """n grids (n, L) of ids drawn independently: ``marginal`` (K,) at every position, or (L, K) one per position."""
    g = torch.Generator().manual_seed(seed)
    probs = marginal.expand(L, -1) if marginal.dim() == 1 else marginal  # (L, K)
    return torch.multinomial(probs.float(), n, replacement=True, generator=g).T.contiguous()  # (n, L)


def same_rows(n: int, *sets: torch.Tensor) -> list[torch.Tensor]:
    """The same ``n`` random rows of each of ``sets`` (never the first n: the test images are ordered by class)."""
    from ..probe import random_subset

    keep = random_subset(len(sets[0]), n, STUDY_SEED + 7)
    return [s[keep] for s in sets]


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions p (..., K)."""
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


@torch.no_grad()
def fully_masked_share(mcfg, draws: int = 200_000) -> float:
    """The share of MAGE's training inputs that look like generation's first step, every token masked:
    the probability that a ratio drawn from ``mcfg.mask_ratio`` masks all ``mcfg.num_tokens`` tokens
    (Monte Carlo with a fixed seed; one ratio per batch, or per image with ``per_sample_ratio``)."""
    from ..masking import make_ratio_dist

    ratios = make_ratio_dist(mcfg.mask_ratio).sample(draws, torch.Generator().manual_seed(0))  # float64, CPU
    masked = torch.ceil(mcfg.num_tokens * ratios)  # the count mask_tokens masks
    return float((masked >= mcfg.num_tokens).double().mean())


def first_step(model, per_position: torch.Tensor) -> dict:
    """What the model predicts at the all-[MASK] grid generation starts from, against the code marginals.

    Returns (nats) its mean per-position entropy, the per-position and global marginals' entropies,
    the mean KL from each position's marginal to its prediction, and how many distinct codes are the
    most likely one somewhere (of L positions)."""
    device = next(model.parameters()).device
    L, K = model.cfg.num_tokens, model.cfg.codebook_size
    ids = torch.full((1, L), model.mask_id, dtype=torch.long, device=device)  # (1, L)
    was_training = model.training
    model.eval()
    try:
        p = torch.softmax(model.logits_for(ids).float(), -1)[0].double().cpu()  # (L, K)
    finally:
        model.train(was_training)
    q = per_position  # (L, K)
    kl = (p * (p.clamp_min(1e-12).log() - q.log())).sum(-1)  # (L,)
    return {"entropy": float(entropy(p).mean()), "entropy_position_marginal": float(entropy(q).mean()),
            "entropy_code_marginal": float(entropy(q.mean(0))), "uniform": math.log(K),
            "kl_from_position_marginal": float(kl.mean()), "distinct_argmax": int(p.argmax(-1).unique().numel())}


class Study:
    """One preset's instrument (tokenizer, feature network, reference images) and its cached results."""

    def __init__(self, preset: str, dataset: str, samples: int, out: Path):
        from ..mage_eval import GenerationScorer
        from ..probe import random_subset
        from ..vqgan import encode_dataset

        self.preset, self.dataset, self.out = preset, dataset, out
        self.run = _run(preset, dataset, preset_epochs(preset, dataset), 0)
        with _no_training():
            self.tokenizer = self.run.tokenizer()
        self.scorer = GenerationScorer(self.run, self.tokenizer)
        if not 2 <= samples <= len(self.scorer.real_images):
            raise ConfigError(f"--samples must be between 2 and the preset's generation.samples "
                              f"({len(self.scorer.real_images)}), the real images every row is read beside; got {samples}")
        self.n = samples
        g = self.run.cfg.generation
        self.steps, self.choice_temperature, self.batch_size = g.steps, g.temperature, g.batch_size
        train = self.run.data.train_images
        ids = encode_dataset(self.tokenizer, train[random_subset(len(train), 10000, 6)], device=self.run.device)
        self.code_marginal, self.position_marginal = token_marginals(ids.flatten(1).cpu(), self.tokenizer.codebook_size)
        try:
            self.results = load_json(out)
        except FileNotFoundError:
            self.results = {}
        if self.results.get("preset") != preset or self.results.get("samples") != samples:
            self.results = {"preset": preset, "samples": samples, "ladder": {}, "models": {}}
        self.results["decoding_default"] = {"steps": self.steps, "choice_temperature": self.choice_temperature}
        self.figure_rows: dict[str, torch.Tensor] = {}  # label -> (FIGURE_IMAGES, 3, H, W), for samples_figure

    def save(self) -> None:
        save_json(self.results, self.out)

    def metrics_of_ids(self, ids: torch.Tensor) -> dict:
        from ..fd import decode_ids

        return self.scorer.metrics(decode_ids(self.tokenizer, ids))

    def ladder(self) -> dict:
        """The rungs that do not depend on a trained model."""
        lad = self.results["ladder"]
        L = self.tokenizer.num_tokens
        real, recon = same_rows(self.n, self.scorer.real_images, self.scorer.recon_images)
        todo = {"real test images": lambda: self.scorer.metrics(real),
                "tokenizer reconstructions": lambda: self.scorer.metrics(recon),
                "codebook marginal, drawn per token": lambda: self.metrics_of_ids(
                    floor_ids(self.code_marginal, self.n, L, STUDY_SEED)),
                "each position's marginal, drawn per token": lambda: self.metrics_of_ids(
                    floor_ids(self.position_marginal, self.n, L, STUDY_SEED))}
        for name, measure in todo.items():
            if name not in lad:
                lad[name] = measure()
                self.save()
        from ..fd import decode_ids

        self.figure_rows["real test images"] = real[:FIGURE_IMAGES]
        self.figure_rows["tokenizer reconstructions"] = recon[:FIGURE_IMAGES]
        self.figure_rows["each position's marginal"] = decode_ids(
            self.tokenizer, floor_ids(self.position_marginal, self.n, L, STUDY_SEED)[:FIGURE_IMAGES])
        if "untrained MAGE" not in lad:
            from ..mage_eval import untrained_encoders

            build = lambda: _build_mage(self.run, self.tokenizer)  # noqa: E731
            untrained = untrained_encoders(build, seeds=(0,))[0]
            lad["untrained MAGE"] = self.samples_metrics(untrained, {}, STUDY_SEED)
            self.save()
        return lad

    def samples_metrics(self, model, setting: dict, seed: int) -> dict:
        t0 = time.perf_counter()
        m = self.metrics_of_ids(self.sample_ids(model, setting, self.n, seed))
        return m | {"seconds": round(time.perf_counter() - t0, 1)}

    def sample_ids(self, model, setting: dict, n: int, seed: int) -> torch.Tensor:
        """``n`` token grids sampled with ``setting``, the preset's decoding where it is silent."""
        from ..mage_eval import generate

        kw = dict(setting)
        steps, tau = kw.pop("steps", self.steps), kw.pop("choice_temperature", self.choice_temperature)
        return generate(model, n, steps, tau, seed, self.batch_size, **kw)

    def sample_images(self, model, setting: dict, n: int) -> torch.Tensor:
        """``n`` images sampled with ``setting``, seed STUDY_SEED, decoded by the tokenizer."""
        from ..fd import decode_ids

        return decode_ids(self.tokenizer, self.sample_ids(model, setting, n, STUDY_SEED))

    def samples_figure(self, path: Path) -> Path:
        """One row of images per rung measured in this process (real, reconstructions, each model, a floor)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plots import image_rows

        order = ["real test images", "tokenizer reconstructions"]
        order += [k for k in self.figure_rows if k.startswith("MAGE ")] + ["each position's marginal"]
        labels = [k for k in order if k in self.figure_rows]
        fig = image_rows([self.figure_rows[k].cpu() for k in labels], row_titles=labels)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return path

    def model(self, model_name: str, epochs: float, seed: int) -> dict:
        """Every decoding setting for one cached model of the curve (``mage`` or ``mage_c``)."""
        key = point_key(model_name, epochs, seed)
        entry = self.results["models"].setdefault(key, {"settings": {}})
        run = _run(self.preset, self.dataset, epochs, seed)
        name, changes = MAGE_ARMS[model_name]
        with _no_training():
            model, _ = run.mage(self.tokenizer, name, **changes)
        entry["first_step"] = first_step(model, self.position_marginal)
        # how often training showed the model the input generation starts from
        share = fully_masked_share(model.cfg)
        entry["fully_masked_in_training"] = {"share": share, "steps": run.cfg.mage_train.steps,
                                             "images": round(share * run.cfg.mage_train.steps * run.cfg.mage_train.batch_size)}
        settings = {BASELINE: {}} | dict(DECODING)
        for label, setting in settings.items():
            if label not in entry["settings"]:
                print(f"generation study: {key}, {label} ...", flush=True)
                entry["settings"][label] = self.samples_metrics(model, setting, STUDY_SEED)
                self.save()
        self.figure_rows[f"MAGE {epochs:g} epochs"] = self.sample_images(model, {}, FIGURE_IMAGES)
        best = min(entry["settings"], key=lambda k: entry["settings"][k]["fd"])
        confirm = entry.setdefault("best", {})
        if confirm.get("setting") != best:
            confirm.clear()
            confirm["setting"] = best
        for s in CONFIRM_SEEDS:
            for label in dict.fromkeys((BASELINE, best)):  # in a fixed order: the file reads the same on every run
                tag = f"{label} | seed {s}"
                if tag not in confirm:
                    confirm[tag] = self.samples_metrics(model, settings[label], s)
                    self.save()
        return entry


def _build_mage(run, tokenizer):
    from ..mage_family import build_mage

    return build_mage(run.mage_config(tokenizer)).set_tokenizer(tokenizer).to(run.device)


def seeds_of(entry: dict, label: str) -> list[dict]:
    """The metrics of one setting over the study's sampling seeds (its own draw first)."""
    extra = [v for k, v in entry.get("best", {}).items() if k.startswith(f"{label} | seed ")]
    return [entry["settings"][label]] + extra


def _mean_std(xs: list[float]) -> tuple[float, float]:
    t = torch.tensor(xs, dtype=torch.float64)
    return float(t.mean()), (float(t.std()) if len(xs) > 1 else 0.0)


def notebook_text(results: dict) -> str:
    """:func:`render_ladder` as the lines of a markdown cell in a jupytext ``.py`` notebook."""
    return "\n".join(f"# {line}" if line else "#" for line in render_ladder(results).splitlines())


def render_ladder(results: dict) -> str:
    """The ladder (its sentence and table), as markdown: docs/results.md's first table, and notebook 03's."""
    n = results["samples"]
    d = results["decoding_default"]
    lines = [f"Generation ladder, `{results['preset']}` preset, {n} images per row against the same reference "
             f"(fd_classifier and KID: lower is better; precision, recall: higher is better). Decoding: "
             f"{d['steps']} steps, choice temperature {d['choice_temperature']:g} unless the row says otherwise.", "",
             "| images | fd_classifier | KID | precision | recall |", "| --- | --- | --- | --- | --- |"]

    def row(label, m, fd=None):
        fd = f"{m['fd']:.1f}" if fd is None else fd
        return f"| {label} | {fd} | {m['kid']:.3f} | {m['precision']:.2f} | {m['recall']:.2f} |"

    lad = results["ladder"]
    for name in ("real test images", "tokenizer reconstructions"):
        if name in lad:
            lines.append(row(name, lad[name]))
    for key, entry in results["models"].items():
        if "best" not in entry:
            continue
        for label in dict.fromkeys((BASELINE, entry["best"]["setting"])):
            fds = [m["fd"] for m in seeds_of(entry, label)]
            mean, std = _mean_std(fds)
            fd = f"{mean:.1f} ± {std:.1f} ({len(fds)} seeds)"
            lines.append(row(f"{key} (model/epochs/seed), {label}", seeds_of(entry, label)[0], fd))
    for name in ("untrained MAGE", "each position's marginal, drawn per token", "codebook marginal, drawn per token"):
        if name in lad:
            lines.append(row(name, lad[name]))
    return "\n".join(lines)


def render(results: dict) -> str:
    """The ladder, the decoding table, the first step and the training exposure, as markdown."""
    lines = [render_ladder(results), "",
             "Decoding settings, one change at a time from the preset's (fd_classifier / recall, one sampling seed):", ""]
    keys = list(results["models"])
    lines += ["| setting | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    labels = [BASELINE] + [label for label, _ in DECODING]
    for label in labels:
        cells = []
        for k in keys:
            m = results["models"][k]["settings"].get(label)
            cells.append("-" if m is None else f"{m['fd']:.1f} / {m['recall']:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "First decoding step (the all-[MASK] grid every sample starts from), entropies in nats:", "",
              "| model | prediction entropy | each position's marginal | codebook marginal | uniform | KL from the "
              "position marginal | distinct most-likely codes |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for k, entry in results["models"].items():
        f = entry.get("first_step")
        if f:
            lines.append(f"| {k} | {f['entropy']:.2f} | {f['entropy_position_marginal']:.2f} | "
                         f"{f['entropy_code_marginal']:.2f} | {f['uniform']:.2f} | {f['kl_from_position_marginal']:.2f} | "
                         f"{f['distinct_argmax']} |")
    exposure = {k: e["fully_masked_in_training"] for k, e in results["models"].items() if "fully_masked_in_training" in e}
    if exposure:
        lines += ["", "How often training showed each model generation's first input, every token masked: "
                  + "; ".join(f"{k}: {100 * x['share']:.2f} % of its {x['steps']} batches, about {x['images']:,} images"
                              for k, x in exposure.items()) + "."]
    return "\n".join(lines)


def parse_point(text: str) -> tuple[str, float, int]:
    try:
        model, epochs, seed = text.split("/")
        if model not in ("mage", "mage_c"):
            raise ValueError
        return model, float(epochs), int(seed)
    except ValueError:
        raise ConfigError(f"a point is MODEL/EPOCHS/SEED with MODEL mage or mage_c, e.g. mage/8/0; got {text!r}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite generation-study", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--dataset", default="", help="the image-folder archive the cached models were trained on")
    ap.add_argument("--points", nargs="+", default=None,
                    help="budget-curve points MODEL/EPOCHS/SEED (default: the preset's own MAGE, then mage/8/0)")
    ap.add_argument("--samples", type=int, default=1000, help="images per row (every row the same number)")
    ap.add_argument("--out", default="reports/generation/cpu.json")
    ap.add_argument("--render", metavar="JSON", help="only re-render docs/results.md's tables from a study's JSON")
    args = ap.parse_args(argv)

    def body() -> int:
        if args.render:
            check_record(args.render, "a generation study's JSON", "reports/generation/cpu.json", render)
            print(f"rendered {render_block(BLOCK, args.render, render)} and "
                  f"{render_block(BLOCK, args.render, notebook_text, NOTEBOOK)}")
            return 0
        points = [parse_point(p) for p in args.points] if args.points else [
            ("mage", preset_epochs(args.preset, args.dataset), 0), ("mage", 8.0, 0)]
        check_reachable(resolve_dataset(args.dataset or load_preset(args.preset).data.dataset))
        out = Path(args.out) if Path(args.out).is_absolute() else REPO_ROOT / args.out
        with shipped_weights():
            study = Study(args.preset, args.dataset, args.samples, out)
            study.ladder()
            for model_name, epochs, seed in points:
                study.model(model_name, epochs, seed)
        print(render(study.results))
        figure = study.samples_figure(out.with_name(out.stem + "-samples.png"))
        print(f"samples side by side in {figure}")
        if out.resolve().is_relative_to((REPO_ROOT / "reports").resolve()):  # a committed study: its pages follow
            print(f"rendered {render_block(BLOCK, out, render)} and {render_block(BLOCK, out, notebook_text, NOTEBOOK)}")
        return 0

    return cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
