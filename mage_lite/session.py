"""What every notebook does in its setup cell: resolve the preset, pick the device, load
the data, and give the notebook a place for its metrics, figures and models."""

import dataclasses
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from .artifacts import flatten_metrics, get_or_train, runs_root, save_json
from .augment import BatchSampler
from .banner import print_preset_banner
from .config import check_seed, check_variant, load_preset
from .data import load_dataset
from .device import pick_device
from .mae import MAE
from .mage_family import MAGEFamilyConfig, build_mage
from .probe import ProbeData
from .token_bank import BankConfig, BankSampler, get_or_build_bank
from .train import TrainConfig, fit
from .vqgan import VQGAN


class NotebookRun:
    """One execution of one notebook: config, device, data, and its output folder.

    Outputs go to ``runs/<preset>/<notebook>/seed<seed>/`` (``metrics.json``, figures), or
    ``runs/<preset>/<notebook>--<variant>/...`` for a named ``variant`` of the run (the ablation
    report runs the same notebook with different overrides and names each such run; a parameter of
    the run, not of the preset); trained models go to ``runs/<preset>/models/`` where any notebook
    can reuse them.
    """

    def __init__(self, notebook: str, preset: str, dataset: str = "", seed: int = 0, device: str = "",
                 overrides: dict | None = None, code_in_key: bool = True, variant: str = ""):
        self.cfg = load_preset(preset, overrides, dataset=dataset, device=device)
        check_seed(seed)
        self.notebook, self.preset, self.seed, self.variant = notebook, preset, seed, check_variant(variant)
        self.device = pick_device(self.cfg.device)
        self.dir = runs_root() / preset / (f"{notebook}--{variant}" if variant else notebook) / f"seed{seed}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.models_dir = runs_root() / preset / "models"
        self.code_in_key = code_in_key  # False: models keyed by config alone (artifacts.get_or_train), for multi-day runs
        self.model_dirs: dict[str, Path] = {}  # name -> folder of each model this run trained or reused
        self.started = time.perf_counter()
        torch.manual_seed(seed)
        self.metrics: dict = {"notebook": notebook, "preset": preset, "seed": seed, "device": str(self.device),
                              "variant": variant, "overrides": dict(overrides or {}), "complete": False,
                              "config": self.cfg.to_dict()}
        print(f"{notebook} | preset {preset} | seed {seed} | device {self.device} | outputs in {self.dir}")
        print_preset_banner(preset)

    @cached_property
    def data(self):
        d = self.cfg.data
        if d.dataset == "shapes":
            from .data import make_shapes

            ds = make_shapes(d.shapes_train, d.shapes_test, d.image_size, seed=0)
        else:
            ds = load_dataset(d.dataset, d.image_size)
        self.metrics["dataset"] = {"source": ds.source, "train": len(ds.train_images), "test": len(ds.test_images),
                                   "identity": ds.identity}  # what the report's reuse check compares
        print(f"data: {ds.source}: {len(ds.train_images)} train / {len(ds.test_images)} test images, {len(ds.classes)} classes")
        return ds

    def sampler(self, crop_scale: tuple | None = None, views: int = 1) -> BatchSampler:
        """Augmented training batches on the device (the preset's crop scale unless given; two views for MAGE-C)."""
        d = self.cfg.data
        return BatchSampler(self.data.train_images, self.device, crop_scale or d.crop_scale, d.hflip, views=views)

    @cached_property
    def probe(self) -> ProbeData:
        return ProbeData(self.data, self.cfg.probe, self.seed)

    def train(self, name: str, build: Callable[[], nn.Module], train_cfg: TrainConfig, model_config,
              crop_scale: tuple | None = None, depends_on: dict | None = None, views: int = 1,
              make_sampler: Callable[[], Callable] | None = None, retrain: bool = False) -> tuple[nn.Module, list[dict]]:
        """Train ``build()`` with the shared loop, or reuse the same model trained earlier.

        The reuse key covers the model and training configs, the data, the crop, the seed,
        ``depends_on`` (anything else the weights depend on, e.g. :meth:`tokenizer_key`) and the
        source code of the model, the training loop and the samplers, so an edit retrains;
        ``retrain=True`` (or ``python -m mage_lite run --fresh``) trains it anew anyway. Batches come
        from ``make_sampler()`` (called only if the model has to be trained), by default
        augmented images (:meth:`sampler`).
        """
        crop = tuple(crop_scale or self.cfg.data.crop_scale)
        key = {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train_cfg),
               "data": self.data.identity, "image_size": self.cfg.data.image_size, "crop_scale": crop,
               "hflip": self.cfg.data.hflip, "seed": self.seed, **({"depends_on": depends_on} if depends_on else {}),
               **({"views": views} if views != 1 else {})}

        def run(model, run_dir):
            sampler = make_sampler() if make_sampler else self.sampler(crop, views)
            return fit(model, sampler, train_cfg, run_dir, seed=self.seed, device=self.device, desc=name)

        model, history, self.model_dirs[name] = get_or_train(name, key, build, run, self.models_dir, self.device,
                                                             code=(fit, BankSampler if make_sampler else BatchSampler),
                                                             retrain=retrain, code_in_key=self.code_in_key)
        return model, history

    def tokenizer_key(self) -> dict:
        """What identifies the preset's tokenizer; pass it as ``depends_on`` for models trained on its tokens.

        Once :meth:`tokenizer` has run, this includes its run folder, whose name covers its code too."""
        key = {"vqgan": dataclasses.asdict(self.cfg.vqgan), "vqgan_train": dataclasses.asdict(self.cfg.vqgan_train)}
        return {**key, "run": self.model_dirs["vqgan"].name} if "vqgan" in self.model_dirs else key

    def tokenizer(self) -> "VQGAN":
        """The preset's VQGAN tokenizer (frozen, eval mode), trained now or reused from an earlier run.

        Notebook 02 trains it and notebooks 03-05 reuse the very same model: the reuse key is
        the preset's ``vqgan`` and ``vqgan_train`` configs, the data and the seed. Its training
        history is kept in ``self.tokenizer_history``.
        """
        model, self.tokenizer_history = self.train("vqgan", lambda: VQGAN(self.cfg.vqgan), self.cfg.vqgan_train,
                                                   self.cfg.vqgan)
        return model.requires_grad_(False).eval()

    def token_bank(self, tokenizer: nn.Module, crop_scale: tuple | None = None) -> torch.Tensor:
        """The preset's token bank for ``tokenizer`` (:meth:`tokenizer`'s): ids (N, V, L) of V augmented
        views of every training image, built once and shared by every MAGE-family run that uses
        this tokenizer and crop (see :mod:`mage_lite.token_bank`)."""
        if "vqgan" not in self.model_dirs:
            raise RuntimeError("the token bank is built from the preset's tokenizer: call run.tokenizer() first")
        crop = tuple(crop_scale or self.cfg.data.crop_scale)
        t0 = time.perf_counter()
        ids, path, built = get_or_build_bank(tokenizer, self.model_dirs["vqgan"].name, self.data.train_images, self.cfg.bank,
                                      crop, self.cfg.data.hflip, self.models_dir, self.device)
        banks = self.metrics.setdefault("token_banks", {})
        earlier = banks.get(path.parent.name, {})  # a later model of the same run reuses what an earlier one built
        banks[path.parent.name] = {"views": self.cfg.bank.views, "crop_scale": crop, "built": built or earlier.get("built", False),
                                   "seconds": round(earlier.get("seconds", 0.0) + time.perf_counter() - t0, 1)}
        return ids

    def mage_config(self, tokenizer: nn.Module, **changes) -> MAGEFamilyConfig:
        """The preset's MAGE config sized to ``tokenizer`` (codebook, sequence length, feature width), plus ``changes``."""
        return dataclasses.replace(self.cfg.mage, codebook_size=tokenizer.codebook_size, num_tokens=tokenizer.num_tokens,
                                   feature_dim=tokenizer.cfg.code_dim, **changes)

    def mage(self, tokenizer: nn.Module, name: str, crop_scale: tuple | None = None, train_cfg: TrainConfig | None = None,
             **changes) -> tuple[nn.Module, list[dict]]:
        """A MAGE-family model (:func:`mage_family.build_mage`) on ``tokenizer``'s tokens with the preset's
        config plus ``changes``, trained now or reused.

        Any notebook asking for the same name, config, crop and tokenizer gets the same model
        (notebooks 04 and 05 reuse notebook 03's). MAGE-C (``contrastive_weight > 0``) trains on
        two views per image. Its batches are token ids from the preset's token bank
        (``bank.views > 0``), or images tokenized on the fly (``bank.views = 0``, and always for
        the continuous-input arm).
        """
        cfg = self.mage_config(tokenizer, **changes)
        views = 2 if cfg.contrastive else 1
        # The continuous-input arm reads unquantized features, which the bank does not hold.
        bank = self.cfg.bank if cfg.input == "tokens" else BankConfig(views=0)
        if views == 2 and bank.views == 1:
            raise ValueError("MAGE-C needs two different views per image but bank.views is 1; "
                             "set bank.views to at least 2, or 0 to tokenize on the fly")
        make_sampler = (lambda: BankSampler(self.token_bank(tokenizer, crop_scale), self.device, views)) if bank.views else None
        return self.train(name, lambda: build_mage(cfg).set_tokenizer(tokenizer), train_cfg or self.cfg.mage_train, cfg,
                          crop_scale=crop_scale, depends_on={**self.tokenizer_key(), "bank_views": bank.views},
                          views=views, make_sampler=make_sampler)

    @staticmethod
    def mage_name(mask_ratio: str, padding: str = "") -> str:
        """The name of a MAGE trained with ``mask_ratio`` (and, when given, the non-default ``padding``), e.g.
        "mage-truncnorm", "mage-fixed0.75", "mage-truncnorm-mask_token": one place, so that notebooks 03-05 and
        their solutions name (and so reuse) the same model alike."""
        return f"mage-{mask_ratio.replace(':', '')}" + (f"-{padding}" if padding else "")

    def main_mage(self, tokenizer: nn.Module, crop_scale: tuple | None = None) -> tuple[nn.Module, list[dict]]:
        """Notebook 03's MAGE, the preset's config as it stands (trained now or reused): what notebooks
        04 and 05 compare against. ``crop_scale`` trains the same model on other crops."""
        return self.mage(tokenizer, self.mage_name(self.cfg.mage.mask_ratio), crop_scale=crop_scale)

    def mae(self, norm_pix: bool = True, mask_ratio: float | None = None) -> tuple[nn.Module, list[dict]]:
        """The preset's MAE with this target and mask ratio, trained now or reused (notebooks 01, 03)."""
        ratio = self.cfg.mae.mask_ratio if mask_ratio is None else mask_ratio
        mcfg = dataclasses.replace(self.cfg.mae, norm_pix_loss=norm_pix, mask_ratio=ratio)
        name = f"mae-{'normpix' if norm_pix else 'rawpix'}-r{ratio}"
        return self.train(name, lambda: MAE(mcfg), self.cfg.mae_train, mcfg)

    def log(self, **values) -> None:
        """Record values in ``metrics.json`` (written at once, so a crash loses nothing logged)."""
        self.metrics.update(values)
        self.metrics["elapsed_s"] = round(time.perf_counter() - self.started, 1)
        save_json(self.metrics, self.dir / "metrics.json")

    def savefig(self, fig, name: str) -> Path:
        path = self.dir / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return path

    def summary(self, limit: int = 25) -> None:
        """Mark the run complete and print what it measured: one line per logged number, in the order logged
        (the config, per-step lists and timings left out), at most ``limit`` lines; all of it is in metrics.json."""
        self.log(complete=True)
        rows = [(k, v) for k, v in flatten_metrics(self.metrics).items() if not k.endswith(("elapsed_s", "_seconds"))]
        print(f"{len(rows)} numbers measured, all in {self.dir / 'metrics.json'}:")
        width = max((len(k) for k, _ in rows[:limit]), default=0)
        for key, value in rows[:limit]:
            print(f"  {key:<{width}}  {value:.4g}")
        if len(rows) > limit:
            print(f"  ... and {len(rows) - limit} more")
