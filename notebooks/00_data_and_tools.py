# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Data and tools
#
# Before any model: the data every later notebook trains on, the augmentation MAE and MAGE
# rely on, the presets that size each run to your machine, and the two yardsticks every
# representation in this course is measured against.
#
# **Learning goals**
# - see CIFAR-10 (or the synthetic `shapes` set) as the models will see it: 32 x 32 uint8 tensors;
# - understand RandomResizedCrop with scale (0.2, 1), the augmentation MAE and MAGE use;
# - know the linear probe and its two anchors (raw pixels, a random encoder), measured here
#   so that every later "x % probe accuracy" has a floor to stand on.
#
# **Expected runtime** on 2 CPU cores, as the published runs measured it (the first CIFAR-10
# decode included):
# <!-- runtime -->
# `smoke` seconds · `ci` 0.6 min · `cpu` 1.2 min · `gpu` not measured yet
# <!-- /runtime -->

# %% tags=["parameters"]
preset = "smoke"  # smoke | ci | cpu | gpu
dataset = ""  # empty: the preset's choice; else shapes, cifar10 or a path to an image-folder archive
seed = 0
device = ""  # empty: the preset choice; auto picks cuda, then mps, then cpu
overrides = {}  # config overrides, e.g. probe.epochs: 10

# %%
import matplotlib.pyplot as plt
import torch

from mage_lite.augment import random_resized_crop, to_float
from mage_lite.config import PRESET_NAMES, load_preset
from mage_lite.mae import MAE
from mage_lite.plots import bar_chart, image_rows
from mage_lite.session import NotebookRun

run = NotebookRun("00_data_and_tools", preset, dataset, seed, device, overrides)
data = run.data

# %% [markdown]
# ## 1. The dataset
#
# The whole dataset is one `uint8` tensor of shape `(N, 3, 32, 32)`, held in memory (150 MB
# for CIFAR-10's 50,000 training images). Batches are drawn from it by random index and
# augmented on the training device, so there is no DataLoader and no worker process.
# The offline CIFAR-10 archive is ordered by class, which is why every subset in this
# project is drawn at random, never as "the first N".

# %%
print("train:", tuple(data.train_images.shape), data.train_images.dtype, "| test:", tuple(data.test_images.shape))
per_class = torch.bincount(data.train_labels, minlength=len(data.classes))
print("train images per class:", dict(zip(data.classes, per_class.tolist())))

g = torch.Generator().manual_seed(seed)
rows = []
for c in range(len(data.classes)):
    idx = (data.train_labels == c).nonzero().flatten()
    rows.append(data.train_images[idx[torch.randperm(len(idx), generator=g)[:8]]])
fig = image_rows(rows, row_titles=data.classes)
run.savefig(fig, "dataset_grid")
plt.show()
run.log(n_train=len(data.train_images), n_test=len(data.test_images), n_classes=len(data.classes))

# %% [markdown]
# **What to notice:** 32 x 32 is tiny. A 4 x 4 patch (MAE) or a token (MAGE, notebook 02)
# covers an eighth of the image side; many objects span only a few patches.
#
# ## 2. The augmentation: RandomResizedCrop + flip
#
# For each image a crop of area $s \cdot HW$ with $s \sim U(0.2, 1)$ and aspect ratio
# $r$, $\log r \sim U(\log \tfrac34, \log \tfrac43)$, is cut at a random place, resized back
# to 32 x 32 and flipped with probability 1/2. MAE and MAGE both use scale (0.2, 1); the MAGE
# paper shows weaker crops (0.8, 1) hurt generation, which notebook 04 tests. Here it runs
# batched on the device with `affine_grid` + `grid_sample`.

# %%
originals = data.train_images[torch.randperm(len(data.train_images), generator=g)[:8]]
x = to_float(originals)
views = [random_resized_crop(x, run.cfg.data.crop_scale, generator=torch.Generator().manual_seed(seed + i)) for i in range(3)]
weak = random_resized_crop(x, (0.8, 1.0), generator=torch.Generator().manual_seed(seed))
fig = image_rows([x, *views, weak], row_titles=["original", "view 1", "view 2", "view 3", "scale (0.8, 1)"])
run.savefig(fig, "augmentation")
plt.show()

# %% [markdown]
# ## 3. The presets
#
# Every notebook takes a `preset`. Each names a dataset, model sizes and training lengths
# sized to a machine; any value can be overridden with `overrides={"section.field": value}`
# (or `--set section.field=value` on the command line). Unknown names and values out of
# range are refused with a message naming the valid choices.

# %%
for name in PRESET_NAMES:
    p = load_preset(name)
    print(f"{name:6s} {p.description}\n       data={p.data.dataset}  MAE {p.mae.dim}x{p.mae.depth} "
          f"for {p.mae_train.steps} steps of {p.mae_train.batch_size}  |  VQGAN {p.vqgan.channels}ch, "
          f"{p.vqgan.codebook_size} codes, {p.vqgan_train.steps} steps")
try:
    load_preset(preset, {"mae.mask_ratio": 1.5})
except ValueError as e:
    print("\na value out of range is refused:", e)

# %% [markdown]
# ## 4. The linear probe and its two anchors
#
# A representation is judged by how well a *linear* classifier reads the class from it,
# with the encoder frozen: features $\to$ BatchNorm1d (no affine) $\to$ Linear, trained with
# cross-entropy,
#
# $$\min_{W,b}\; \frac1N \sum_i -\log \operatorname{softmax}\big(W\,\mathrm{BN}(f(x_i)) + b\big)_{y_i}.$$
#
# Two anchors make a probe number meaningful:
# - **raw pixels**: the probe on the 3072 pixel values; an encoder that does not beat it has
#   learned nothing a linear model could not already see;
# - **random encoder**: the same transformer as the pretrained one, untrained. Random
#   features of a deep net are surprisingly linearly separable, so "better than chance" is
#   not the bar: better than this is.

# %%
pixels = run.probe.pixel_anchor()
torch.manual_seed(seed)
random_encoder = MAE(run.cfg.mae).to(run.device).eval()
random_acc = run.probe.evaluate(random_encoder.features, run.device, "random encoder")
anchors = {"chance": 100 / len(data.classes), "raw pixels": pixels, "random encoder (avg)": random_acc["avg"]}
for k, v in anchors.items():
    print(f"{k:22s} {v:5.1f} %")
run.log(probe_pixels=pixels, probe_random_encoder=random_acc["avg"], probe_random_encoder_cls=random_acc["cls"],
        probe_train_size=len(run.probe.train_labels), probe_test_size=len(run.probe.test_labels))
ax = bar_chart(anchors, "test top-1 (%)", title=f"probe anchors, preset {preset}")
run.savefig(ax.figure, "probe_anchors")
plt.show()

# %% [markdown]
# **What to notice**
# - Both anchors are far above chance. On CIFAR-10 a linear model on raw pixels already gets
#   around 40 %; a random transformer is in the same range. A pretrained encoder has to clear
#   these, measured in the same run with the same probe, before we call it a representation.
# - The probe sees a random subset of the training split (`probe.train_size`) and of the test
#   split; the numbers above say how many.
#
# ## Exercises
#
# Worked solutions: [`solutions/00_solutions.ipynb`](solutions/00_solutions.ipynb) (they reuse this
# notebook's models by name). The course's terms are in the [glossary](../docs/glossary.md), the method as
# the official code does it in [`docs/method.md`](../docs/method.md).
#
# 1. Re-run with `overrides={"data.crop_scale": (0.8, 1.0)}` and compare the augmentation grid.
# 2. Change `probe.epochs`: how much does the raw-pixel anchor move? What does that say about
#    how precisely a probe number should be read?
# 3. Probe the random encoder's `cls` feature instead of `avg` (both are in `metrics.json`).
#    Why might average pooling be the better read-out of an untrained network?

# %%
run.summary()
