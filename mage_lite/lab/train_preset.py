"""Train a preset's main models without Jupyter, and export them as the shards one GPU slot can bring back.

    python -m mage_lite train --preset gpu --out reports/gpu/weights --dataset PATH/TO/cifar10-jpg.tar.gz
    python -m mage_lite run --preset gpu --pretrained --dataset PATH   # then, on the CPU: the notebooks from them

Trains, in order, exactly the models a ``--pretrained`` run loads (:data:`pretrained.MAIN_MODELS`): the
tokenizer, the feature network of the generation metrics, MAE (norm-pix, raw-pix), MAGE, MAGE-C and
the continuous-input MAGE, through the calls the notebooks make (``NotebookRun.tokenizer``, ``mae``,
``main_mage``, ``mage`` with budget_curve's ``MAGE_ARMS``; the feature network as ``GenerationScorer``
gets it), so they get the notebooks' names and reuse keys. They go to the runs folder
(``$MAGE_LITE_RUNS_DIR`` or ``runs/``) as a notebook's models do: a stopped command resumes from their
checkpoints and a finished model is reused. Then they are written to ``--out`` as fp16 shards of at
most 16 MiB, at most 8 files and 64 MiB in all, with a sha256 per file (:func:`pretrained.export_shards`);
weights that cannot fit are refused before anything trains.

Speed on CUDA, none of which enters a model's config or reuse key (the training loop itself,
``mage_lite.train``, is fingerprinted and left as it is): its bf16 autocast (``mage_lite.device``),
fused AdamW (:func:`fused_adamw`), and with ``--compile`` torch.compile of each model's training step
(:func:`compiled_step`; the random masks stay the eager ones).
"""

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..artifacts import PRETRAINED_ENV, PRETRAINED_ONLY_ENV, code_fingerprint, config_hash, runs_root
from ..config import PRESET_NAMES
from ..session import NotebookRun
from .budget_curve import MAGE_ARMS
from .cli import check_reachable, check_writable, cli, resolve_dataset
from .pretrained import MAIN_MODELS, export_shards, half_bytes, shard_limits_problem

RUN_NAME = "train_preset"  # its metrics (what trained, how long) go to runs/<preset>/train_preset/seed<seed>/


@contextlib.contextmanager
def fused_adamw(device: torch.device):
    """On CUDA, ``torch.optim.AdamW`` builds fused optimisers (one kernel per step instead of a loop over
    tensors; same update) while the block runs; elsewhere nothing changes. The training loop builds its
    optimiser as ``torch.optim.AdamW(...)`` when it starts."""
    if device.type != "cuda":
        yield
        return
    plain = torch.optim.AdamW

    class FusedAdamW(plain):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **{"fused": True, **kwargs})

    torch.optim.AdamW = FusedAdamW
    try:
        yield
    finally:
        torch.optim.AdamW = plain


def compiled_step(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """``model`` with its ``training_loss`` (the loop's step) compiled by torch.compile with ``backend``, on this
    instance only: its class, state dict and checkpoints stay those of the plain model, so its reuse key does not
    change. Random ops keep the eager generator (inductor's ``fallback_random``): the same masks as without it. A
    step torch.compile cannot trace runs as it is (dynamo's ``suppress_errors``; seen: MAGE-C's masks under dynamic
    shapes), so the flag never stops a run."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    dynamo_config.suppress_errors = True
    model.training_loss = torch.compile(model.training_loss, backend=backend)
    return model


class TrainRun(NotebookRun):
    """A NotebookRun whose models' training steps are compiled when ``compile_backend`` is set."""

    compile_backend = ""

    def train(self, name, build, *args, **kwargs):
        backend = self.compile_backend
        return super().train(name, (lambda: compiled_step(build(), backend)) if backend else build, *args, **kwargs)


def planned_bytes(run: NotebookRun) -> int:
    """The size of the export's shards, from the untrained main models of ``run``'s preset (built, not trained: the
    same tensors in the same file format)."""
    from ..fd import FDClassifier
    from ..mae import MAE
    from ..mage_family import build_mage
    from ..vqgan import VQGAN

    tokenizer = VQGAN(run.cfg.vqgan)
    maes = sum(name.startswith("mae-") for name in MAIN_MODELS)
    mages = [build_mage(run.mage_config(tokenizer, **changes)) for _, changes in MAGE_ARMS.values()]

    def size(model: nn.Module) -> int:
        return len(half_bytes(model.state_dict()))

    return (size(tokenizer) + size(FDClassifier(run.cfg.fd_classifier)) + maes * size(MAE(run.cfg.mae))
            + sum(map(size, mages)))


def feature_network(run: NotebookRun) -> Path:
    """Train or reuse the feature network of the generation metrics as ``GenerationScorer`` does; its run folder."""
    from ..fd import FDClassifier, feature_net_key, get_fd_classifier, shared_models_dir

    cfg = run.cfg
    get_fd_classifier(run.data, cfg.fd_classifier, cfg.fd_classifier_train, shared_models_dir(), run.device)
    key = feature_net_key(run.data, cfg.fd_classifier, cfg.fd_classifier_train)
    # where artifacts.get_or_train keeps it: the key plus the code fingerprint of its class
    return shared_models_dir() / f"fd-classifier-{config_hash({**key, 'code': code_fingerprint(FDClassifier)})}"


def train_models(run: NotebookRun) -> dict[str, Path]:
    """Train (or reuse) the main models in order, one progress line each; {name: run folder}."""
    done: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    todo = len(MAIN_MODELS)

    def step(name: str, train) -> object:
        t0 = time.time()
        out = train()
        folder = run.model_dirs.get(name) if name != "fd-classifier" else out
        done[name], seconds[name] = folder, round(time.time() - t0, 1)
        what = "trained" if (folder / "model.pt").stat().st_mtime >= t0 else "reused (trained earlier)"
        print(f"[{len(done)}/{todo}] {name}: {what} in {seconds[name]:.1f} s -> {folder}", flush=True)
        run.log(train_seconds=seconds)
        return out

    tokenizer = step("vqgan", run.tokenizer)
    step("fd-classifier", lambda: feature_network(run))
    ratio = run.cfg.mae.mask_ratio
    for norm_pix in (True, False):
        name = f"mae-{'normpix' if norm_pix else 'rawpix'}-r{ratio}"
        if norm_pix or name in MAIN_MODELS:
            step(name, lambda: run.mae(norm_pix))
    step(run.mage_name(run.cfg.mage.mask_ratio), lambda: run.main_mage(tokenizer))
    for arm in ("mage_c", "continuous"):
        name, changes = MAGE_ARMS[arm]
        step(name, lambda: run.mage(tokenizer, name, **changes))
    return done


def train_preset(preset: str, out: Path, dataset: str = "", device: str = "", seed: int = 0,
                 compile_backend: str = "") -> Path:
    """Train ``preset``'s main models (or reuse them) and export them to ``out`` as shards; returns ``out``."""
    for name in (PRETRAINED_ENV, PRETRAINED_ONLY_ENV):  # this command trains: no shipped weights stand in
        os.environ.pop(name, None)
    check_writable(out, "pass --out a folder you can write to")
    check_writable(runs_root() / preset, "set MAGE_LITE_RUNS_DIR to a folder you can write to")
    run = TrainRun(RUN_NAME, preset, dataset=dataset, seed=seed, device=device)
    run.compile_backend = compile_backend
    check_reachable(run.cfg.data.dataset)
    problem = shard_limits_problem(planned_bytes(run))
    if problem:
        raise ValueError(f"the {preset} preset's main models cannot be exported from one GPU slot: {problem}; "
                         "make its models smaller")
    t0 = time.time()
    with fused_adamw(run.device):
        folders = train_models(run)
    export_shards(preset, out, list(folders.values()))
    run.log(train_minutes=round((time.time() - t0) / 60, 2), exported_to=str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mage_lite train", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", required=True, help=f"one of {', '.join(PRESET_NAMES)}")
    ap.add_argument("--out", required=True, metavar="DIR", help="where the shards and their manifest.json go")
    ap.add_argument("--dataset", default="", help="'shapes', 'cifar10' or a path to an image-folder dataset")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", nargs="?", const="inductor", default="", metavar="BACKEND",
                    help="torch.compile each model's training step (default backend inductor); keys do not change")
    args = ap.parse_args(argv)

    def body() -> int:
        out = train_preset(args.preset, Path(args.out), resolve_dataset(args.dataset), args.device, args.seed,
                           args.compile)
        print(f"wrote the {args.preset} weights to {out}; load them with `python -m mage_lite run --preset "
              f"{args.preset} --pretrained` (they go in reports/{args.preset}/weights/)")
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
