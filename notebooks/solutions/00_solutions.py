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
# # 00 · Solutions to the exercises
#
# Each exercise of notebook 00, answered by measuring it with `mage_lite`. Run it in the
# preset you ran notebook 00 in: in `smoke` it only checks that the code runs (its numbers
# are not results); in `ci` or `cpu` the measurements below are the answers.

# %% tags=["parameters"]
preset = "smoke"  # smoke | ci | cpu | gpu
dataset = ""  # empty: the preset's choice; else shapes, cifar10 or a path to an image-folder archive
seed = 0
device = ""  # empty: the preset choice; auto picks cuda, then mps, then cpu
overrides = {}  # config overrides, e.g. probe.epochs: 10

# %%
import dataclasses

import matplotlib.pyplot as plt
import torch

from mage_lite.augment import random_resized_crop, to_float
from mage_lite.mae import MAE
from mage_lite.plots import bar_chart, image_rows
from mage_lite.probe import ProbeData
from mage_lite.session import NotebookRun

run = NotebookRun("solutions/00", preset, dataset, seed, device, overrides)
g = torch.Generator().manual_seed(seed)
x = to_float(run.data.train_images[torch.randperm(len(run.data.train_images), generator=g)[:8]])

# %% [markdown]
# ## 1. Weak crops, scale (0.8, 1)
#
# Three views per scale of the same eight images. With (0.8, 1) every view keeps most of the
# image at nearly its original size, so the views of one image look alike: an objective that
# compares or reconstructs views learns little invariance to scale or position from them.

# %%
rows, titles = [x], ["original"]
for scale in [tuple(run.cfg.data.crop_scale), (0.8, 1.0)]:
    for i in range(2):
        rows.append(random_resized_crop(x, scale, generator=torch.Generator().manual_seed(seed + i)))
        titles.append(f"scale {scale}, view {i + 1}")
image_rows(rows, row_titles=titles)
plt.show()

# %% [markdown]
# ## 2. How much the raw-pixel anchor moves with `probe.epochs`
#
# The same probe data, trained for half, the preset's and twice the epochs. The spread of these
# numbers is a lower bound on how precisely any probe number of this preset can be read: two
# models whose probes differ by less are not distinguished by it.

# %%
epochs = sorted({max(1, run.cfg.probe.epochs // 2), run.cfg.probe.epochs, 2 * run.cfg.probe.epochs})
anchor = {}
for e in epochs:
    probe = ProbeData(run.data, dataclasses.replace(run.cfg.probe, epochs=e), seed)
    anchor[f"{e} epochs"] = probe.pixel_anchor()
for k, v in anchor.items():
    print(f"raw pixels, {k:10s} {v:5.1f} %")
print(f"spread: {max(anchor.values()) - min(anchor.values()):.1f} points")
bar_chart(anchor, "test top-1 (%)", title="raw-pixel anchor vs probe epochs")
plt.show()

# %% [markdown]
# ## 3. `cls` or `avg` for a random encoder
#
# An untrained encoder's CLS output starts from the same learned vector for every image and
# mixes in the patches through random attention, so it carries a diluted, noisy summary. The
# average of the patch outputs keeps one random projection of every patch: close to a random
# linear map of the pixels, which a linear probe reads about as well as the pixels themselves.

# %%
torch.manual_seed(seed)
random_encoder = MAE(run.cfg.mae).to(run.device).eval()
acc = run.probe.evaluate(random_encoder.features, run.device, "random encoder")
readouts = {"avg": acc["avg"], "cls": acc["cls"]}
for k, v in readouts.items():
    print(f"random encoder, {k}: {v:5.1f} %")
bar_chart(readouts, "test top-1 (%)", title="random encoder: read-out")
plt.show()
