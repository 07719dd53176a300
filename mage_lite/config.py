"""Named presets, from seconds (smoke) to a GPU reproduction, and their validation.

A preset bundles every config a notebook needs. Notebooks take a preset name plus
``overrides`` such as ``{"mae_train.steps": 500}``; anything unknown or out of range is
refused with one sentence naming the valid choices.
"""

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .fd import FDClassifierConfig
from .mae import MAEConfig
from .mage_c import CONTRASTIVE_INPUTS
from .mage_family import MAGEFamilyConfig
from .probe import ProbeConfig
from .token_bank import BankConfig
from .train import TrainConfig
from .vqgan import VQGANConfig


class ConfigError(ValueError):
    """A bad preset name, parameter name or value; the message says what is valid."""


def _is_number(x) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class DataConfig:
    dataset: str = "shapes"  # "shapes" (synthetic), "cifar10" (official download) or a path to an image-folder dir/.zip/.tar.gz
    image_size: int = 32  # images are decoded (centre crop + resize) to this side
    crop_scale: tuple = (0.2, 1.0)  # RandomResizedCrop area range; the paper ablates (0.2, 1) vs (0.8, 1)
    hflip: bool = True  # random horizontal flip
    shapes_train: int = 5000  # size of the synthetic train split (dataset "shapes" only)
    shapes_test: int = 1000  # size of the synthetic test split

    def __post_init__(self):
        if len(self.crop_scale) != 2 or not all(_is_number(c) for c in self.crop_scale):
            raise ValueError(f"data.crop_scale must be two numbers (low, high) with 0 < low <= high <= 1, got {self.crop_scale!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"data.crop_scale must satisfy 0 < low <= high <= 1, got {tuple(self.crop_scale)}")
        if self.image_size < 8:
            raise ValueError(f"data.image_size must be at least 8, got {self.image_size}")


@dataclass
class GenerationConfig:
    steps: int = 12  # iterative decoding steps T (MAGE: 12; 20 for its FID runs)
    temperature: float = 4.5  # choice temperature tau, annealed linearly to 0 (MAGE: 4.5; 6 for its FID runs)
    temperature_sweep: tuple = ()  # extra choice temperatures notebook 03 also scores (beside temperature)
    samples: int = 1000  # images generated per model for fd_classifier, KID, precision/recall (the real-image reference points use as many)
    reference: int = 5000  # train images whose classifier features every generation metric is measured against
    eval_images: int = 2000  # test images for the masked-token accuracy
    batch_size: int = 250  # images decoded at once
    noise_seeds: int = 3  # sampling seeds notebook 03 scores its MAGE with (the run's own samples are the first) to measure the metrics' sampling spread
    kid_subsets: int = 100  # KID: random subsets the unbiased MMD^2 is averaged over (torch-fidelity: 100)
    kid_subset_size: int = 1000  # KID: points per subset, capped by the set sizes (torch-fidelity: 1000)
    pr_k: int = 3  # precision/recall: the k of the k-NN radii (Kynkaanniemi et al. 2019: 3)

    def __post_init__(self):
        self.temperature_sweep = tuple(self.temperature_sweep)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"generation.steps and generation.batch_size must be at least 1, got {self.steps} and {self.batch_size}")
        if not all(_is_number(t) for t in self.temperature_sweep):
            raise ValueError(f"generation.temperature_sweep must hold numbers >= 0, got {list(self.temperature_sweep)!r}")
        if self.temperature < 0 or any(t < 0 for t in self.temperature_sweep):
            raise ValueError("generation.temperature and generation.temperature_sweep must be >= 0")
        if self.samples < 2 or self.reference < 2 or self.eval_images < 1:
            raise ValueError("generation.samples and generation.reference must be >= 2 (a covariance needs two points), eval_images >= 1")
        if self.noise_seeds < 1 or self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise ValueError(f"generation.noise_seeds and kid_subsets must be >= 1 and kid_subset_size >= 2, got "
                             f"{self.noise_seeds}, {self.kid_subsets} and {self.kid_subset_size}")
        if not 1 <= self.pr_k < min(self.samples, self.reference):
            raise ValueError(f"generation.pr_k must be in [1, min(samples, reference) - 1], got {self.pr_k}")


@dataclass
class AblationsConfig:
    """Comparison models a notebook trains beside its main ones, each one more model at the preset's budget."""
    plain_tokenizer: bool = True  # notebook 02: a plain quantizer (wide codes, random init, no restart) beside the default
    other_padding: bool = True  # notebook 03, section 4: MAGE with the other padding ([C] or the mask token)
    fixed_ratio: bool = True  # notebook 03, section 7: MAGE with a fixed 0.75 mask ratio beside the variable ratio
    weak_crop: bool = True  # notebook 04, section 5: MAGE trained again with weak crops, scale (0.8, 1)


VARIANT_CHARS = "letters, digits, '-' or '_'"


def check_variant(variant: str) -> str:
    """``variant`` if it can name a run's folder (``runs/<preset>/<notebook>--<variant>/``); a ConfigError otherwise.

    A variant is a parameter of the run, not of the preset: the ablation report names the runs of its arms
    with it (notebooks 03-05 take it as the parameter ``variant``); a plain run has none."""
    if not isinstance(variant, str) or (variant and not variant.replace("-", "").replace("_", "").isalnum()):
        raise ConfigError(f"variant must be {VARIANT_CHARS}, got {variant!r}")
    return variant


@dataclass
class Preset:
    name: str
    description: str
    data: DataConfig = field(default_factory=DataConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    mae_train: TrainConfig = field(default_factory=TrainConfig)
    mae_ratio_sweep: tuple = ()  # extra mask ratios notebook 01 trains (beside mae.mask_ratio)
    vqgan: VQGANConfig = field(default_factory=VQGANConfig)
    vqgan_train: TrainConfig = field(default_factory=TrainConfig)
    mage: MAGEFamilyConfig = field(default_factory=MAGEFamilyConfig)  # built by mage_family.build_mage; codebook_size is taken from the tokenizer
    mage_train: TrainConfig = field(default_factory=TrainConfig)
    bank: BankConfig = field(default_factory=BankConfig)  # MAGE's token bank: V augmented views per image, tokenized once
    mage_c_weight_sweep: tuple = ()  # extra contrastive weights (lambda) notebook 04 trains MAGE-C with
    mage_c_temperature_sweep: tuple = ()  # extra InfoNCE temperatures notebook 04 trains MAGE-C with
    mage_c_input_sweep: tuple = ()  # other encoder passes for InfoNCE notebook 04 trains MAGE-C with ("masked", "clean")
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    ablations: AblationsConfig = field(default_factory=AblationsConfig)
    fd_classifier: FDClassifierConfig = field(default_factory=FDClassifierConfig)  # the feature space of fd_classifier
    fd_classifier_train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "auto"  # "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N", "mps"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BUDGET_MODELS = ("mae", "mage", "mage_c")  # the models notebooks compare with each other: equal images, same schedule shape


def train_images(p: Preset) -> int:
    """Images in the train split of the preset's own data: synthetic shapes or CIFAR-10's 50,000 (an
    image folder's size is known only once loaded: pass it to :func:`budgets` as ``n_train``)."""
    return p.data.shapes_train if p.data.dataset == "shapes" else 50000


def train_budget(t: TrainConfig, n_train: int) -> dict:
    """One training run's budget: steps, images per step, images seen, epochs of a train split of
    ``n_train`` images and the warm-up's share of the schedule."""
    images = t.steps * t.batch_size
    return {"steps": t.steps, "batch_size": t.batch_size, "images": images, "epochs": images / n_train,
            "warmup_share": t.warmup_steps / t.steps}


def budgets(p: Preset, n_train: int | None = None) -> dict[str, dict]:
    """Each model's :func:`train_budget`, over ``n_train`` training images (default :func:`train_images`).
    MAGE-C reads ``mage_train``'s images, two views of each."""
    n = n_train or train_images(p)
    return {model: train_budget(t, n) for model, t in (
        ("mae", p.mae_train), ("vqgan", p.vqgan_train), ("mage", p.mage_train), ("mage_c", p.mage_train),
        ("fd_classifier", p.fd_classifier_train))}


def budget_mismatches(p: Preset) -> list[str]:
    """Why the models the notebooks compare (MAE, MAGE, MAGE-C) were not trained at equal budgets: one
    sentence per difference in images seen or in warm-up share (empty when they match)."""
    b = budgets(p)
    ref = b["mage"]
    problems = []
    for model in BUDGET_MODELS:
        m = b[model]
        if m["images"] != ref["images"]:
            problems.append(f"{model} sees {m['images']:,} training images but mage {ref['images']:,}")
        if abs(m["warmup_share"] - ref["warmup_share"]) > 0.01:
            problems.append(f"{model} warms up over {m['warmup_share']:.0%} of its steps but mage over {ref['warmup_share']:.0%}")
    return problems


def describe_budget(p: Preset, model: str, n_train: int | None = None) -> str:
    """e.g. "0.51 epochs (400 steps x 64 images)", for printing beside a comparison (``n_train`` as in :func:`budgets`)."""
    m = budgets(p, n_train)[model]
    views = " x 2 views" if model == "mage_c" else ""
    return f"{m['epochs']:.2f} epochs ({m['steps']} steps x {m['batch_size']} images{views})"


def _presets() -> dict[str, Preset]:
    smoke = Preset(
        name="smoke",
        description="synthetic shapes, tiny models: seconds per notebook, checks that everything runs",
        data=DataConfig(dataset="shapes", shapes_train=2000, shapes_test=500),
        probe=ProbeConfig(train_size=1000, test_size=500, epochs=10),
        mae=MAEConfig(dim=64, depth=2, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2),
        mae_train=TrainConfig(steps=30, batch_size=64, base_lr=1.5e-3, warmup_steps=5, ckpt_every=10, log_every=5),
        vqgan=VQGANConfig(channels=16, norm_groups=8, codebook_size=64, code_dim=8, disc_channels=8, disc_start=25, restart_after=5),
        vqgan_train=TrainConfig(steps=40, batch_size=32, base_lr=5e-3, warmup_steps=5, ckpt_every=10, log_every=5),
        mage=MAGEFamilyConfig(codebook_size=64, dim=64, depth=2, heads=2, decoder_depth=1, dropout=0.0,
                               decoder_pos="sincos", decoder_pos_scale=1.0),
        mage_train=TrainConfig(steps=30, batch_size=64, base_lr=6e-3, warmup_steps=5, ckpt_every=10, log_every=5),
        bank=BankConfig(views=2),
        generation=GenerationConfig(steps=4, temperature=2.0, samples=64, reference=200, eval_images=200, batch_size=64),
        fd_classifier=FDClassifierConfig(width=8, feature_dim=32),
        fd_classifier_train=TrainConfig(steps=30, batch_size=64, base_lr=2e-3, warmup_steps=5, ckpt_every=10, log_every=5),
    )
    ci = Preset(
        name="ci",
        description="real CIFAR-10, small models: a few minutes per notebook on 2 CPU cores",
        data=DataConfig(dataset="cifar10"),
        probe=ProbeConfig(train_size=10000, test_size=5000, epochs=30),
        mae=MAEConfig(dim=128, depth=4, heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=4),
        # MAE, MAGE and MAGE-C: the same 51,200 images (1.02 epochs), warm-up 5 % of the steps. At half that (measured
        # in CI) MAE's probe stayed below the random encoder's and MAGE's gain over it was under 3 points. MAE takes
        # MAGE's 800 x 64 at the same peak lr (7.5e-4) as 400 x 128 had: measured, seeds 0 and 1, probe 43.9 and 44.3 %
        # (random encoder 34.0, 35.0) against 38.9-40.5 % for 400 x 128 (36.7 in one CI run)
        mae_train=TrainConfig(steps=800, batch_size=64, base_lr=3e-3, warmup_steps=40, log_every=10),
        # 1.02 epochs at ~190 img/s on 2 threads (measured): ~4.5 min per tokenizer; the GAN from 65 % of the steps
        vqgan=VQGANConfig(channels=32, norm_groups=16, codebook_size=256, code_dim=16, disc_channels=16, disc_start=520, restart_after=20),
        vqgan_train=TrainConfig(steps=800, batch_size=64, base_lr=3e-3, warmup_steps=40, log_every=10),
        # MAGE ~400 img/s on 2 threads from the token bank (bench). The decoder position embedding: the design check's
        # choice at this budget (docs/lab.md, "Design choices"): MAE's fixed 2D sin-cos table. At one epoch, one tokenizer,
        # the untrained anchor averaged over 3 inits (29.2 %): probe 35.7 % at scale 1, 33.2 learned_sincos, 32.3 scale 2
        mage=MAGEFamilyConfig(codebook_size=256, dim=128, depth=4, heads=4, decoder_depth=2, dropout=0.0,
                               decoder_pos="sincos", decoder_pos_scale=1.0),
        mage_train=TrainConfig(steps=800, batch_size=64, base_lr=6e-3, warmup_steps=40, log_every=10),
        bank=BankConfig(views=2),
        # CI runs every ci notebook, so ci trains the main models only: the ablation models are left out, about 13 of
        # CI's 44 minutes (measured). The report measures the padding, fixed-ratio and weak-crop MAGE over 3 seeds at
        # these budgets; the plain tokenizer is measured in cpu
        ablations=AblationsConfig(plain_tokenizer=False, other_padding=False, fixed_ratio=False, weak_crop=False),
        # 1000 samples (was 500): KID's standard subset size, P/R at 1000 vs 1000; generating 250 at 8 steps took
        # 6.3 s with decoding (one niced thread on a loaded machine): about +60 s in notebook 03 (proposed, to measure)
        generation=GenerationConfig(steps=8, temperature=2.0, samples=1000, reference=5000, eval_images=2000),
        # ResNet 32/64/128 wide, 1 block a stage: ~700 img/s on one niced thread (20-step timing; 0.70x the old
        # 16-wide convnet in the same loop), so 1200 x 128 images (~3 epochs) is ~2-3 min at 1.7x; >= 60 % expected, to measure
        fd_classifier=FDClassifierConfig(width=32, blocks=1, feature_dim=128),
        fd_classifier_train=TrainConfig(steps=1200, batch_size=128, base_lr=4e-3, warmup_steps=50, log_every=20),
    )
    cpu = Preset(
        name="cpu",
        description="real CIFAR-10, a small reproduction: about 4 epochs per model on 2 CPU cores (runtimes: README course map)",
        data=DataConfig(dataset="cifar10"),
        probe=ProbeConfig(train_size=20000, test_size=0, epochs=40),
        mae=MAEConfig(dim=128, depth=4, heads=4, decoder_dim=96, decoder_depth=2, decoder_heads=4),
        # MAE, MAGE and MAGE-C: the same 204,800 images (4.10 epochs), warm-up 5 % of the steps. At half that (2.05
        # epochs, measured, seed 0) MAGE's probe stayed 3.2 points below the flattened code vectors it reads
        mae_train=TrainConfig(steps=3200, batch_size=64, base_lr=3e-3, warmup_steps=160, log_every=20),  # ci's shape (see there)
        mae_ratio_sweep=(0.5, 0.9),
        # one MAGE-C variant beside the default: the clean-pass model measured 86 img/s on 2 threads, ~41 min at 4.10 epochs
        mage_c_input_sweep=("masked",),
        # 3.07 epochs at ~100 img/s on 2 threads (measured at 32 px): ~26 min per tokenizer; the GAN from 65 % of the steps
        vqgan=VQGANConfig(channels=48, norm_groups=16, codebook_size=512, code_dim=32, disc_channels=32, disc_start=1560, restart_after=50),
        vqgan_train=TrainConfig(steps=2400, batch_size=64, base_lr=3e-3, warmup_steps=80, log_every=20),
        # MAGE ~390 img/s on 2 threads from the token bank (bench): ~9 min per model at 4.10 epochs. The decoder position embedding is
        # ci's choice, not yet measured at this size
        mage=MAGEFamilyConfig(codebook_size=512, dim=128, depth=4, heads=4, decoder_depth=2, dropout=0.0,
                               decoder_pos="sincos", decoder_pos_scale=1.0),
        mage_train=TrainConfig(steps=3200, batch_size=64, base_lr=6e-3, warmup_steps=160, log_every=20),
        bank=BankConfig(views=4),
        # 2000 samples (was 800) against 10,000: 250 samples at 12 steps took 10.8 s with decoding (one niced thread,
        # loaded machine); 7 sample sets in notebook 03, a few minutes more (proposed, to measure)
        generation=GenerationConfig(steps=12, temperature=2.0, temperature_sweep=(1.0, 4.5), samples=2000, reference=10000),
        # the ci network trained ~2.2x as long (~6.7 epochs): ~4-6 min at 1.7x one thread; >= 75 % expected, to measure
        fd_classifier=FDClassifierConfig(width=32, blocks=1, feature_dim=128),
        fd_classifier_train=TrainConfig(steps=2600, batch_size=128, base_lr=4e-3, warmup_steps=100, log_every=20),
    )
    gpu = Preset(
        name="gpu",
        description="real CIFAR-10 on one GPU: minutes per notebook",
        data=DataConfig(dataset="cifar10"),
        probe=ProbeConfig(train_size=0, test_size=0, epochs=60, batch_size=1024),
        mae=MAEConfig(dim=256, depth=8, heads=4, decoder_dim=256, decoder_depth=4, decoder_heads=8),
        mae_train=TrainConfig(steps=8000, batch_size=512, base_lr=1.5e-4 * 10, warmup_steps=400, ckpt_every=1000, log_every=50),
        mae_ratio_sweep=(0.5, 0.9),
        mage_c_weight_sweep=(0.03, 0.3), mage_c_temperature_sweep=(0.1, 0.5), mage_c_input_sweep=("masked",),
        # 14.6 GFLOP per training image: 640k images is a few minutes per tokenizer on one GPU (estimated)
        vqgan=VQGANConfig(channels=128, codebook_size=1024, code_dim=32, disc_channels=64, disc_start=3000, restart_after=100),
        vqgan_train=TrainConfig(steps=5000, batch_size=128, base_lr=1e-3, warmup_steps=200, ckpt_every=1000, log_every=50),
        # the official learned decoder position embedding: not measured at this size (82 epochs may train out of the trap)
        mage=MAGEFamilyConfig(codebook_size=1024, dim=256, depth=8, heads=8, decoder_depth=4, dropout=0.1),
        mage_train=TrainConfig(steps=8000, batch_size=512, base_lr=1.5e-4 * 10, warmup_steps=400, ckpt_every=1000, log_every=50),
        bank=BankConfig(views=16, batch_size=2000),
        generation=GenerationConfig(steps=12, temperature=4.5, temperature_sweep=(2.0, 6.0), samples=10000, reference=10000,
                                    eval_images=10000, batch_size=1000),
        fd_classifier=FDClassifierConfig(width=64, blocks=2, feature_dim=256),  # ~20 epochs of a ResNet-14 (not measured)
        fd_classifier_train=TrainConfig(steps=4000, batch_size=256, base_lr=2e-3, warmup_steps=200, ckpt_every=1000, log_every=50),
    )
    # The ablation report (python -m mage_lite report): ci's models and budgets (1.02 epochs each), over the grid
    # of notebook variants and 3 seeds, two notebooks at a time. Sized for about 2 h: four notebook runs per seed
    # (the padding measured inside the base run), estimated from the ci notebooks' measured times (03 9.1, 04 9.5,
    # 05 3.3 min at 2 threads) plus the ablation models and each seed's tokenizer and MAE: ~49 min a seed at 2
    # threads, ~2.1 h for 3 seeds with two 1-thread jobs (2x one thread against 1.7x); the report states the measured time.
    report = dataclasses.replace(
        ci, name="report",
        description="the ablation report's size: ci's models and budgets; the grid x 3 seeds on 2 CPU cores",
        ablations=AblationsConfig())
    return {p.name: p for p in (smoke, ci, cpu, gpu, report)}


PRESET_NAMES = tuple(_presets())


def _coerce(value, default, key: str):
    """Check ``value`` against the type of the default it replaces (ints may stand for floats).

    Numbers must be finite; a tuple's items must be numbers or strings (of the default's kind
    when it has items).
    """
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"parameter {key!r} must be a finite number like {default!r}, not {value!r}")
        if isinstance(default, float) or float(value).is_integer():
            return type(default)(value)
    elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
        numeric = {_is_number(d) for d in default} or {True, False}  # what the default's items are: numbers, strings
        if all((_is_number(v) or isinstance(v, str)) and _is_number(v) in numeric for v in value):
            return tuple(value)
    elif isinstance(default, str) and isinstance(value, str):
        return value
    like = "a list of numbers or strings" if default == () else f"a value like {default!r}"
    raise ConfigError(f"parameter {key!r} takes {like}, not {value!r}")


def load_preset(name: str, overrides: dict | None = None, **top_level) -> Preset:
    """The named preset with ``overrides`` applied ({"section.field": value}, or {"section": {...}}).

    ``top_level`` accepts the notebooks' common parameters: ``dataset`` and ``device`` (an
    empty string keeps the preset's choice).
    """
    presets = _presets()
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
    preset = presets[name]
    flat: dict = {}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    if top_level.get("dataset"):
        dataset = top_level.pop("dataset")
        if "data.dataset" in flat and not _same_dataset(flat["data.dataset"], dataset):
            raise ConfigError(f"dataset {dataset!r} (--dataset) and data.dataset {flat['data.dataset']!r} (--set) name "
                              "different datasets; give only one of them")
        flat["data.dataset"] = dataset
    if top_level.get("device"):
        flat["device"] = top_level.pop("device")
    unknown_top = [k for k, v in top_level.items() if v not in ("", None)]
    if unknown_top:
        raise ConfigError(f"unknown parameter {unknown_top[0]!r}; load_preset takes overrides, dataset and device")

    sections = {f.name for f in dataclasses.fields(preset) if dataclasses.is_dataclass(getattr(preset, f.name))}
    changes: dict[str, dict] = {}
    for key, value in flat.items():
        section, _, fname = key.partition(".")
        if not fname:
            if section in sections or section not in {f.name for f in dataclasses.fields(preset)} or section in ("name", "description"):
                valid = sorted(sections) + ["device", "mae_ratio_sweep", "mage_c_weight_sweep", "mage_c_temperature_sweep",
                                            "mage_c_input_sweep"]
                raise ConfigError(f"unknown parameter {key!r}; use 'section.field' with a section from {', '.join(valid)}, or device")
            changes.setdefault("", {})[section] = _coerce(value, getattr(preset, section), key)
            continue
        if section not in sections:
            raise ConfigError(f"unknown parameter section {section!r} in {key!r}; choose one of {', '.join(sorted(sections))}")
        cfg = getattr(preset, section)
        names = [f.name for f in dataclasses.fields(cfg)]
        if fname not in names:
            raise ConfigError(f"unknown parameter {key!r}; {section} has {', '.join(names)}")
        changes.setdefault(section, {})[fname] = _coerce(value, getattr(cfg, fname), key)

    try:
        for section, fields in changes.items():
            if section:
                preset = dataclasses.replace(preset, **{section: dataclasses.replace(getattr(preset, section), **fields)})
            else:
                preset = dataclasses.replace(preset, **fields)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    except ArithmeticError:  # a config's own check divided by a size given as 0 (mae.patch_size=0)
        zero = next((f"{section}.{k}" for section, fields in changes.items() for k, v in fields.items()
                     if _is_number(v) and not isinstance(v, bool) and v <= 0), "a size")
        raise ConfigError(f"{zero} must be at least 1, got {flat.get(zero, 0)}") from None
    _check_preset(preset)
    return preset


def _same_dataset(a, b) -> bool:
    """Whether two dataset names or paths name the same data (a path given relative or not is the same path)."""
    if a == b:
        return True
    if str(a).lower() in ("shapes", "cifar10"):  # the names are read whatever their case (data.load_dataset)
        return str(a).lower() == str(b).lower()
    paths = [Path(str(x)).expanduser() for x in (a, b)]
    return all(p.exists() for p in paths) and paths[0].resolve() == paths[1].resolve()


# Seeds are mixed into per-step and per-view seeds (train.step_seed, token_bank) and numpy's and torch's
# generators; below 2**31 every such sum stays in their range.
MAX_SEED = 2**31 - 1


def check_seed(seed) -> int:
    """``seed`` if it is a usable run seed; a ConfigError saying the range otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def _check_preset(p: Preset) -> None:
    """What no single section can check: the sweeps, the data source and the image size the models take."""
    sweeps = (("mae_ratio_sweep", lambda r: _is_number(r) and 0 < r < 1, "a number in (0, 1)"),
              ("mage_c_weight_sweep", lambda w: _is_number(w) and w > 0, "a number > 0"),
              ("mage_c_temperature_sweep", lambda t: _is_number(t) and t > 0, "a number > 0"),
              ("mage_c_input_sweep", lambda s: s in CONTRASTIVE_INPUTS, f"one of {', '.join(map(repr, CONTRASTIVE_INPUTS))}"))
    for key, ok, valid in sweeps:
        bad = [v for v in getattr(p, key) if not ok(v)]
        if bad:
            raise ConfigError(f"{key} holds {bad[0]!r}; each of its values must be {valid}")
    d = p.data
    if d.dataset.lower() not in ("shapes", "cifar10") and d.dataset and Path(d.dataset).expanduser().is_symlink() \
            and not Path(d.dataset).expanduser().exists():
        raise ConfigError(f"data.dataset {d.dataset!r} is a broken link (it points to "
                          f"{os.readlink(Path(d.dataset).expanduser())}, which does not exist); fix the link or pass "
                          "the dataset's own path")
    if d.dataset.lower() not in ("shapes", "cifar10") and not (d.dataset and Path(d.dataset).expanduser().exists()):
        raise ConfigError(f"data.dataset {d.dataset!r} is neither 'shapes', 'cifar10' nor an existing path; pass one of "
                          "those, or the path of an image-folder directory, .zip or .tar.gz")
    if d.dataset.lower() == "cifar10" and d.image_size != 32:
        raise ConfigError(f"data.image_size {d.image_size} cannot be used with data.dataset 'cifar10', whose images are "
                          "32 px; use 32, or pass the path of an image-folder copy to have it resized")
    _check_mae_widths(p.mae)
    if not d.image_size == p.mae.image_size == p.vqgan.image_size:
        raise ConfigError(f"data.image_size {d.image_size} does not match the models' input size (mae.image_size "
                          f"{p.mae.image_size}, vqgan.image_size {p.vqgan.image_size}); use data.image_size="
                          f"{p.mae.image_size}, or set all three to one size")


def _check_mae_widths(m) -> None:
    """MAE's widths as its layers need them, checked with the preset so that ``--set mae.dim=63`` is refused before
    any notebook starts (MAGEConfig checks its own). Here rather than in MAEConfig: mae.py's source is part of every
    cached MAE's reuse key, and a check that changes no model must not make them train again."""
    for name in ("patch_size", "dim", "depth", "heads", "decoder_dim", "decoder_depth", "decoder_heads"):
        if getattr(m, name) < 1:
            raise ConfigError(f"mae.{name} must be at least 1, got {getattr(m, name)}")
    if m.dim % m.heads or m.decoder_dim % m.decoder_heads:
        raise ConfigError(f"mae.dim ({m.dim}) and mae.decoder_dim ({m.decoder_dim}) must be multiples of their head "
                          f"counts ({m.heads}, {m.decoder_heads})")
    if m.dim % 4 or m.decoder_dim % 4:
        raise ConfigError(f"mae.dim ({m.dim}) and mae.decoder_dim ({m.decoder_dim}) must be multiples of 4: the 2D "
                          "sin-cos position embedding splits each width into row and column, sin and cos")
    if m.mlp_ratio <= 0:
        raise ConfigError(f"mae.mlp_ratio must be > 0, got {m.mlp_ratio}")


def render_budget_table() -> str:
    """The README's table of every preset's training budgets, in epochs of its train split."""
    lines = ["| preset | train images | MAE = MAGE = MAGE-C | tokenizer | feature network (generation metrics) |",
             "| --- | --- | --- | --- | --- |"]
    for name in PRESET_NAMES:
        p = load_preset(name)
        b = budgets(p)
        cell = lambda m: f"{b[m]['epochs']:.2f} epochs ({b[m]['steps']} x {b[m]['batch_size']})"  # noqa: E731
        mae, mage, problems = b["mae"], b["mage"], budget_mismatches(p)
        same = (f"{mage['epochs']:.2f} epochs ({mae['steps']} x {mae['batch_size']} / {mage['steps']} x {mage['batch_size']})"
                if not problems else "NOT EQUAL: " + "; ".join(problems))
        lines.append(f"| `{name}` | {train_images(p):,} | {same} | {cell('vqgan')} | {cell('fd_classifier')} |")
    return "\n".join(lines)
