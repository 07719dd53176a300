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
# # 02 · Solutions to the exercises
#
# Each exercise of notebook 02, answered by training the tokenizer variants it asks for with
# `mage_lite` and measuring them on the same test images. The preset's tokenizer is reused
# from notebook 02. In `smoke` this only checks that the code runs (its numbers are not
# results); run it in `ci` or `cpu` for answers.

# %% tags=["parameters"]
preset = "smoke"  # smoke | ci | cpu | gpu
dataset = ""  # empty: the preset's choice; else shapes, cifar10 or a path to an image-folder archive
seed = 0
device = ""  # empty: the preset choice; auto picks cuda, then mps, then cpu
overrides = {}  # config overrides, e.g. vqgan_train.steps: 100

# %%
import dataclasses
import math

import matplotlib.pyplot as plt
import torch

from mage_lite.augment import to_float
from mage_lite.plots import bar_chart, image_rows
from mage_lite.probe import random_subset
from mage_lite.session import NotebookRun
from mage_lite.vqgan import VQGAN, codebook_stats, encode_dataset, psnr

run = NotebookRun("solutions/02", preset, dataset, seed, device, overrides)
cfg = run.cfg.vqgan
test_images = run.data.test_images[random_subset(len(run.data.test_images), 500, seed)]


def tokenizer(name: str, **changes):
    """The preset's tokenizer with ``changes`` to its config, trained now or reused (keyed by its config)."""
    if not changes:
        return run.tokenizer()
    vcfg = dataclasses.replace(cfg, **changes)
    model, _ = run.train(name, lambda: VQGAN(vcfg), run.cfg.vqgan_train, vcfg)
    return model.eval()


@torch.no_grad()
def measure(model) -> dict:
    """PSNR, codebook usage and perplexity on the test images, and their reconstructions."""
    ids = encode_dataset(model, test_images, device=run.device)
    rec = torch.cat([model.decode_ids(ids[i:i + 256].to(run.device)).cpu() for i in range(0, len(ids), 256)])
    stats = codebook_stats(ids, model.codebook_size)
    return {"psnr": psnr(rec, to_float(test_images)), "usage": stats["usage"], "perplexity": stats["perplexity"],
            "rec": rec}


def report(results: dict) -> None:
    for label, r in results.items():
        print(f"{label:28s} PSNR {r['psnr']:6.2f} dB   usage {r['usage']:6.1%}   perplexity {r['perplexity']:7.1f}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for ax, key, label in [(axes[0], "psnr", "PSNR (dB)"), (axes[1], "usage", "codes used (%)"),
                           (axes[2], "perplexity", "perplexity")]:
        scale = 100 if key == "usage" else 1
        bar_chart({k: scale * r[key] for k, r in results.items()}, label, ax=ax)
    fig.tight_layout()
    plt.show()


default = measure(tokenizer("vqgan"))

# %% [markdown]
# ## 1. What dead-code restart buys, and k-means initialisation
#
# Without restart, codes that lose every batch early stay dead for the rest of training; the
# drop in usage from the default to "no restart" is what restart alone bought. With random
# initialisation instead of k-means (restart kept), most codes start far from any encoder
# output and only restart brings them back.

# %%
results = {"default": default,
           "no restart": measure(tokenizer("vqgan-norestart", restart_after=0)),
           "random init": measure(tokenizer("vqgan-randominit", init="random"))}
report(results)

# %% [markdown]
# ## 2. Without the GAN
#
# With `disc_start` past the last step the tokenizer trains on its reconstruction losses
# alone. PSNR rewards the average of the plausible images, so it is usually as high or higher
# without the GAN, while the reconstructions are blurrier. A sharp but slightly wrong texture
# scores worse than a blur: trust the pictures for sharpness and PSNR for fidelity, and neither
# alone.

# %%
no_gan = measure(tokenizer("vqgan-nogan", disc_start=run.cfg.vqgan_train.steps + 1))
report({"default": default, "no GAN": no_gan})
image_rows([to_float(test_images[:8]), default["rec"][:8], no_gan["rec"][:8]],
           row_titles=["original", "default", "no GAN"])
plt.show()

# %% [markdown]
# ## 3. Half and double the codebook
#
# A larger codebook can describe more, so PSNR tends to rise, but a larger share of it tends
# to stay unused and the perplexity grows more slowly than the size. For MAGE the codebook is
# the vocabulary of its cross-entropy: a uniform guess costs log K nats, so losses of models on
# different codebooks are not comparable, and a larger K makes each prediction harder.

# %%
sizes = {f"K = {k}": measure(tokenizer(f"vqgan-k{k}", codebook_size=k)) for k in (cfg.codebook_size // 2,)}
sizes[f"K = {cfg.codebook_size}"] = default
sizes[f"K = {2 * cfg.codebook_size}"] = measure(tokenizer(f"vqgan-k{2 * cfg.codebook_size}", codebook_size=2 * cfg.codebook_size))
report(sizes)
for label in sizes:
    k = int(label.split("= ")[1])
    print(f"{label}: cross-entropy of a uniform guess log K = {math.log(k):.2f} nats")
