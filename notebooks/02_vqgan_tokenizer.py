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
# # 02 · VQGAN: from pixels to tokens
#
# MAGE does not mask pixels, it masks *tokens*: each image is first turned into a grid of
# integers by a VQGAN tokenizer, and the MAGE transformer is trained with a cross-entropy
# over those integers. This notebook trains that tokenizer (`mage_lite/vqgan.py`, a
# taming-style VQGAN without attention, as MAGE uses) on CIFAR-10 and looks hard at what it
# produces. The trained model is the artifact notebooks 03-05 reuse through
# `run.tokenizer()`.
#
# **Learning goals**
# - what quantization buys (a finite vocabulary to classify over) and what it costs
#   (information, and a non-differentiable step);
# - the VQGAN objective: reconstruction + VQ loss + an adaptively weighted GAN term;
# - codebook collapse, and how low-dimensional l2-normalised codes, k-means init and
#   dead-code restart avoid it;
# - reading tokens: id grids, code frequencies, and what a single code decodes to.
#
# **Expected runtime** on 2 CPU cores, as the published runs measured it (two tokenizers are
# trained: the default and a plain quantizer for comparison; `ci` trains the default only):
# <!-- runtime -->
# `smoke` seconds · `ci` 4.4 min · `cpu` 68.0 min · `gpu` not measured yet
# <!-- /runtime -->
#
# **At 32 px** the tokenizer downsamples by 4, not 16: a 32 x 32 image becomes 8 x 8 = 64
# tokens, the same sequence length as MAE's 4-pixel patches in notebook 01.

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
from mage_lite.config import budgets
from mage_lite.plots import code_gallery, codebook_collapse, codebook_health, image_rows, images_and_tokens, vqgan_loss_curves
from mage_lite.probe import random_subset
from mage_lite.session import NotebookRun
from mage_lite.tokenizer_eval import reconstruction_quality, thumbnail
from mage_lite.vqgan import VQGAN

run = NotebookRun("02_vqgan_tokenizer", preset, dataset, seed, device, overrides)
cfg = run.cfg.vqgan
K, side = cfg.codebook_size, cfg.image_size // cfg.downsample
# evaluation images: a seeded random subset of the test split (the split is ordered by class)
EVAL_IMAGES = 2000
test_images = run.data.test_images[random_subset(len(run.data.test_images), EVAL_IMAGES, seed)]
examples = to_float(test_images[torch.randperm(len(test_images), generator=torch.Generator().manual_seed(seed))[:8]])
print(f"tokenizer: {cfg.image_size} px -> {side} x {side} tokens, codebook {K} x {cfg.code_dim}; "
      f"evaluated on {len(test_images)} test images")

# %% [markdown]
# ## 1. Why tokens
#
# MAGE's objective is "predict the missing *token*", a classification over a vocabulary of
# $K$ codes. That needs a discrete vocabulary, and the tokenizer provides it. The encoder
# maps an image to a grid of vectors $z$; the quantizer replaces each vector by its nearest
# codebook entry $e_k$ and keeps only the index $k$.
#
# **What it buys.** A finite target: cross-entropy instead of a pixel regression, so the
# model can express "this could be a wheel *or* a hoof" as a distribution, where a squared
# error (notebook 01) averages the options into a blur. The same tokens serve generation
# and representation learning, which is MAGE's point.
#
# **What it costs.** Information: each token carries at most $\log_2 K$ bits, and a
# non-differentiable `argmin`. Gradients pass it *straight through* (the decoder's gradient
# on $e$ is copied onto $z$), and two extra terms pull codes and encoder outputs together:
#
# $$\mathcal{L}_{VQ} = \lVert \mathrm{sg}[z] - e \rVert^2 + \beta\, \lVert z - \mathrm{sg}[e] \rVert^2, \qquad \beta = 0.25,$$
#
# where $\mathrm{sg}$ stops gradients: the first term moves the code towards the encoder
# output, the second (the *commitment* term) keeps the encoder close to its code.

# %%
raw_bits = cfg.image_size ** 2 * 3 * 8
token_bits = side * side * math.log2(K)
print(f"one image: {raw_bits} bits of pixels -> {side * side} tokens x log2({K}) = {token_bits:.0f} bits "
      f"({raw_bits / token_bits:.0f}x smaller)")
run.log(bits_per_image_tokens=token_bits, bits_per_image_pixels=raw_bits)

# %% [markdown]
# ## 2. Training the tokenizer
#
# The generator (encoder, quantizer, decoder) minimises
#
# $$\mathcal{L} = \lVert x - \hat x \rVert_1 + \mathcal{L}_{VQ} + \lambda\, w\, \mathcal{L}_G,
# \qquad \mathcal{L}_G = -\mathbb{E}[D(\hat x)], \qquad
# w = \frac{\lVert \nabla_{\theta_L} \mathcal{L}_{rec} \rVert}{\lVert \nabla_{\theta_L} \mathcal{L}_G \rVert + 10^{-4}},$$
#
# where $\theta_L$ is the decoder's last layer: the adaptive weight $w$ scales the GAN
# gradient to the size of the reconstruction gradient, so neither swamps the other. A
# PatchGAN discriminator $D$ judges overlapping patches with a hinge loss. The GAN terms
# switch on only at step `disc_start`, once reconstructions are roughly right (taming's
# recipe). Training runs in the shared loop; `run.tokenizer()` trains the preset's
# tokenizer, or reuses it if an earlier notebook already did, and returns it frozen.

# %%
tokenizer = run.tokenizer()
history = run.tokenizer_history
disc_start = cfg.disc_start

fig = vqgan_loss_curves(history, disc_start, run.cfg.vqgan_train.steps)
run.savefig(fig, "loss_curves")
plt.show()

run.log(rec_loss_first=history[0]["rec_loss"], rec_loss_last=history[-1]["rec_loss"],
        vq_loss_last=history[-1]["vq_loss"],
        train_img_per_s=sum(h["img_per_s"] for h in history) / len(history))
print(f"L1 reconstruction {history[0]['rec_loss']:.4f} -> {history[-1]['rec_loss']:.4f}; "
      f"{run.metrics['train_img_per_s']:.0f} images/s")

# %% [markdown]
# **What to notice:** the reconstruction loss falls fast and then slowly; when the GAN
# switches on it may tick up a little, because the decoder now also trades pixel accuracy
# for texture that fools $D$. The hinge loss of $D$ starts at 1 ($D$ outputs 0 for
# everything) and falls only as $D$ learns to tell real from reconstructed; the generator
# term $-\mathbb{E}[D(\hat x)]$ rises as $D$ learns to score reconstructions low. Both
# should hover rather than run away: a discriminator loss stuck at 0 would mean $D$ has won
# and its gradient carries no information.
#
# ## 3. Reconstructions and PSNR
#
# Encode to ids, decode the ids: everything the next notebooks know about an image is in
# those 64 integers. We measure the peak signal-to-noise ratio,
# $\mathrm{PSNR} = 10 \log_{10}(1 / \mathrm{MSE})$ for pixels in $[0, 1]$, averaged over
# test images. As a yardstick, an 8 x 8 thumbnail (average pooling, bilinear upsampling)
# keeps the same 64 positions but with 3 continuous colours each: $64 \cdot 3 \cdot 8 = 1536$
# bits, three times the tokens' budget.

# %%
def evaluate(model):
    """reconstruction_quality on the evaluation images: PSNR (and the thumbnail's), codebook stats, ids, reconstructions."""
    return reconstruction_quality(model, test_images, device=run.device)


default = evaluate(tokenizer)
psnr_thumb = default["psnr_thumbnail"]
budget = budgets(run.cfg, len(run.data.train_images))["vqgan"]
run.log(psnr_test=default["psnr"], codebook_usage_test=default["usage"], perplexity_test=default["perplexity"],
        psnr_reconstruction_baseline=psnr_thumb, eval_images=len(test_images), budget_vqgan=budget)
print(f"tokenizer trained for {budget['epochs']:.2f} epochs; PSNR on {len(test_images)} test images: "
      f"tokenizer {default['psnr']:.2f} dB, {side}x{side} thumbnail {psnr_thumb:.2f} dB "
      f"({default['psnr'] - psnr_thumb:+.2f} dB)")

with torch.no_grad():
    rec = tokenizer.decode_ids(tokenizer.encode_to_ids(examples.to(run.device))).cpu()
err = (rec - examples).abs().mean(1, keepdim=True).expand(-1, 3, -1, -1) * 4  # |error| x 4, grey
fig = image_rows([examples, rec, err, thumbnail(examples, cfg.downsample)],
                 row_titles=["original", "tokens -> image", "|error| x 4", f"{side}x{side} thumbnail"])
run.savefig(fig, "reconstructions")
plt.show()

# %% [markdown]
# **What to notice:** outlines and layout survive; fine texture and small details (eyes,
# legs, wheels) are lost, and with a short budget colours can drift. The error concentrates
# on edges. The thumbnail is a hard yardstick: it has three times the bits and PSNR rewards
# its kind of blur. A tokenizer trained for a fraction of an epoch stays below it; the real-data
# presets train it for at least one epoch (`ci`) or several (`cpu`), so that the tokens carry
# more than the thumbnail does: compare the two numbers printed above.
#
# ## 4. Codebook health
#
# A codebook is only as large as the part of it that is used. Two numbers summarise use:
# the **usage**, the fraction of the $K$ codes that appear at least once, and the
# **perplexity** $\exp(-\sum_k p_k \log p_k)$ of the code frequencies $p_k$: the number of
# equally used codes that would give the same entropy (1 if one code does everything, $K$ at
# best). Both depend on how many ids they are counted over: during training on one batch,
# here on all 64 tokens of every evaluation image.

# %%
fig = codebook_health(history, default["counts"], default["usage"], default["perplexity"])
run.savefig(fig, "codebook_health")
plt.show()
print(f"test split: {default['usage']:.1%} of {K} codes used, perplexity {default['perplexity']:.1f}")

# %% [markdown]
# ### Codebook collapse, made visible
#
# The remedies used above are switches on the config. To see what they prevent, train a
# *plain* quantizer with the same preset and budget: codes as wide as the encoder
# (`code_dim` = encoder width), no l2 normalisation, taming's tiny random init, no dead-code
# restart. A code that is never picked gets no gradient from the VQ loss, so once the
# encoder's outputs cluster near a few codes the others are dead for good. Low-dimensional,
# l2-normalised codes make nearest-neighbour search a comparison of *directions* in a small
# space, where codes stay close to the data; k-means init starts every code on the data;
# restart moves codes unused for `restart_after` steps onto random encoder outputs.

# %%
if run.cfg.ablations.plain_tokenizer:  # off in ci, which keeps CI to its main models; cpu and gpu train it
    plain_cfg = dataclasses.replace(cfg, l2_normalize=False, code_dim=cfg.encoder_width, init="random", restart_after=0)
    plain_model, plain_history = run.train("vqgan-plain", lambda: VQGAN(plain_cfg), run.cfg.vqgan_train, plain_cfg)
    plain = evaluate(plain_model)
    run.log(psnr_test_plain=plain["psnr"], codebook_usage_test_plain=plain["usage"],
            perplexity_test_plain=plain["perplexity"],
            rec_loss_last_plain=plain_history[-1]["rec_loss"])
    for label, r in [("default", default), ("plain", plain)]:
        print(f"{label:8s} PSNR {r['psnr']:.2f} dB, usage {r['usage']:.1%}, perplexity {r['perplexity']:.1f}")

    labels = {"default": "default (l2, low-dim, k-means, restart)", "plain": f"plain (dim {plain_cfg.code_dim}, random init)"}
    fig = codebook_collapse({"default": default, "plain": plain}, {"default": history, "plain": plain_history}, labels)
    run.savefig(fig, "collapse")
    plt.show()

    with torch.no_grad():
        rec_plain = plain_model.decode_ids(plain_model.encode_to_ids(examples.to(run.device))).cpu()
    fig = image_rows([examples, rec, rec_plain], row_titles=["original", "default", "plain"])
    run.savefig(fig, "collapse_reconstructions")
    plt.show()

# %% [markdown]
# **What to notice:** the plain quantizer ends up using a small fraction of its codebook:
# its sorted frequency curve drops to zero after a few ranks, where the default one declines
# slowly across most of $K$; its usage collapses within the first few dozen steps and never
# recovers. Its reconstructions are still recognisable, since a few codes plus a good
# decoder go a long way, but they lose colour: a handful of codes must cover every hue. A
# MAGE model trained on such tokens would face a vocabulary of a few dozen words. The ViT-VQGAN and LlamaGen papers
# report the same effect at ImageNet scale (usage 37 % -> 100 % with low-dim, l2-normalised
# codes).
#
# ## 5. The tokens themselves
#
# Below, an image next to its 8 x 8 grid of ids. Each cell is one token, the integer MAGE
# will mask and predict.

# %%
with torch.no_grad():
    ex_ids = tokenizer.encode_to_ids(examples[:2].to(run.device)).cpu()
fig = images_and_tokens(examples[:2], rec[:2], ex_ids, K)
run.savefig(fig, "token_grid")
plt.show()

# %% [markdown]
# What does one code mean on its own? Fill the whole grid with a single id and decode it:
# the result is the pattern that code stands for, as the decoder sees it in a uniform
# neighbourhood. Shown for the 16 codes used most often on the test images.

# %%
top = default["counts"].argsort(descending=True)[:16]
with torch.no_grad():
    singles = tokenizer.decode_ids(top[:, None, None].expand(-1, side, side).to(run.device)).cpu()
share = 100 * default["counts"][top].float() / default["counts"].sum()
fig = code_gallery(singles, top, share)
run.savefig(fig, "single_codes")
plt.show()
run.log(top16_codes_share=float(share.sum()))
print(f"the 16 most used codes cover {share.sum():.1f} % of test tokens")

# %% [markdown]
# **What to notice:** flat regions (sky, water, walls) repeat the same id across the grid,
# and the most frequent codes decode to flat colours: dark, sky blue, sand. Tokens carry
# local colour and structure, not objects; whatever MAGE learns about objects it must
# learn from how tokens co-occur. A token's appearance in an image also depends on its
# neighbours, since the decoder's convolutions mix them: a single code repeated everywhere
# is not the same as that code inside an image.
#
# ## 6. What this tokenizer leaves out
#
# **No LPIPS.** Taming's VQGAN, and MAGE's, add a perceptual loss: distances between
# features of a pretrained VGG. Its weights are downloaded at run time, which this offline
# project cannot do, so our loss is L1 + VQ + GAN. The cost: L1 is minimised by the median
# of the plausible images, so reconstructions come out blurrier and PSNR-friendly; only the
# GAN term pushes towards sharp texture, and with a short training budget it has little time
# to do so. For the same reason there is no reconstruction FID here (it needs Inception
# weights).
#
# **The 32 px setting departs from MAGE's tokenizer:**
#
# | | MAGE (ImageNet) | here (CIFAR-10) |
# |---|---|---|
# | input | 256 x 256 | 32 x 32 |
# | downsample factor f | 16 | 4 |
# | tokens per image | 16 x 16 = 256 | 8 x 8 = 64 |
# | pixels per token | 16 x 16 x 3 = 768 | 4 x 4 x 3 = 48 |
# | codebook | 1024 codes of dim 256 | `ci` 256 x 16, `cpu` 512 x 32, `gpu` 1024 x 32, l2-normalised |
# | losses | L1 + VQ + LPIPS + PatchGAN | L1 + VQ + PatchGAN |
# | training | ImageNet, long | minutes on a CPU (`ci`, `cpu`) |
#
# Each of our tokens covers 16 times fewer pixels than MAGE's, so its job is easier and the
# reconstructions are relatively better; but 64 tokens is a short sequence, and an 8 x 8
# grid leaves MAGE's masking less room to hide whole object parts. The collapse remedies
# are not part of MAGE's recipe; they are here because short training makes a plain
# quantizer collapse (section 4).
#
# ## Measured results
#
# This run's numbers are printed above and logged in its `metrics.json`. The executed `cpu`
# notebook in `reports/cpu/notebooks/` shows a full-size run, and the README's tables (rendered from
# committed metrics files) compare the tokenizer's PSNR with the thumbnail's per preset and
# codebook size.
#
# ## What to notice
# - The default tokenizer uses all of its codebook on the test split, the plain one a small
#   fraction: low-dimensional l2-normalised codes, k-means init and restart are what it takes
#   at this budget.
# - PSNR on the test split and the tokens' bit budget are logged in `metrics.json`; measured
#   numbers per preset are in the README's results section.
# - Notebooks 03-05 call `run.tokenizer()` and get this very model; they do not retrain it.
#
# ## Exercises
#
# Worked solutions: [`solutions/02_solutions.ipynb`](solutions/02_solutions.ipynb) (they reuse this
# notebook's models by name). The course's terms are in the [glossary](../docs/glossary.md), the method as
# the official code does it in [`docs/method.md`](../docs/method.md).
#
# 1. Set `vqgan.restart_after` to 0 and train again (`overrides={"vqgan.restart_after": 0}`).
#    How much of the usage did restart alone buy? Then try `vqgan.init="random"` instead.
# 2. Move `vqgan.disc_start` past the end of training to train without the GAN. Compare PSNR
#    and the sharpness of the reconstructions. Which do you trust more?
# 3. Halve and double `vqgan.codebook_size`. How do usage, perplexity and PSNR change, and
#    what would each choice mean for MAGE's cross-entropy over the vocabulary?

# %%
run.summary()
