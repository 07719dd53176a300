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
# # 04 · Solutions to the exercises
#
# Each exercise of notebook 04, answered by training the MAGE-C variant it asks for with
# `mage_lite` and reading it as notebook 04 does: the reconstruction loss, the linear probe,
# the k-NN classifier and `fd_classifier` (lower is better). The tokenizer, notebook 03's MAGE
# and notebook 04's MAGE-C are reused. In `smoke` this only checks that the code runs (its
# numbers are not results); run it in `ci` or `cpu` for answers.

# %% tags=["parameters"]
preset = "smoke"  # smoke | ci | cpu | gpu
dataset = ""  # empty: the preset's choice; else shapes, cifar10 or a path to an image-folder archive
seed = 0
device = ""  # empty: the preset choice; auto picks cuda, then mps, then cpu
overrides = {}  # config overrides, e.g. mage_train.steps: 100

# %%
import dataclasses
from itertools import combinations

import matplotlib.pyplot as plt

from mage_lite.mage_eval import GenerationScorer, token_features
from mage_lite.plots import bar_chart
from mage_lite.probe import knn_accuracy, linear_probe
from mage_lite.session import NotebookRun
from mage_lite.vqgan import encode_dataset

run = NotebookRun("solutions/04", preset, dataset, seed, device, overrides)
tokenizer = run.tokenizer()
probe = run.probe
probe_train_ids = encode_dataset(tokenizer, probe.train_images, device=run.device).flatten(1)
probe_test_ids = encode_dataset(tokenizer, probe.test_images, device=run.device).flatten(1)
scorer = GenerationScorer(run, tokenizer)
# notebook 04's budget: MAGE-C reads half as many images per step, two views of each
mage_c_train = dataclasses.replace(run.cfg.mage_train, batch_size=run.cfg.mage_train.batch_size // 2)


def mage_c(weight: float = 0.1, temperature: float = 0.2, pass_: str = "clean", crop_scale=None):
    """MAGE-C as notebook 04 trains it (same names, so its model is reused), trained now or reused."""
    suffix = "" if crop_scale is None else f"-crop{crop_scale[0]:g}"
    return run.mage(tokenizer, f"mage-c-{pass_}-w{weight:g}-t{temperature:g}{suffix}", crop_scale=crop_scale,
                    train_cfg=mage_c_train, contrastive_weight=weight, contrastive_temperature=temperature,
                    contrastive_input=pass_)


def read_out(model, history) -> dict:
    tr = token_features(model, probe_train_ids, keys=("avg",))["avg"]
    te = token_features(model, probe_test_ids, keys=("avg",))["avg"]
    last = history[-1]
    return {"reconstruction loss": last.get("rec_loss", last["loss"]),
            "probe top-1 (%)": linear_probe(tr, probe.train_labels, te, probe.test_labels, probe.cfg, probe.seed),
            "20-NN top-1 (%)": knn_accuracy(tr, probe.train_labels, te, probe.test_labels),
            "fd_classifier": scorer.score(scorer.samples(model))}


def compare(results: dict) -> None:
    metrics = list(next(iter(results.values())))
    for label, r in results.items():
        print(f"{label:26s} " + "   ".join(f"{m} {v:6.2f}" for m, v in r.items()))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3))
    for ax, m in zip(axes, metrics):
        bar_chart({label: r[m] for label, r in results.items()}, m, ax=ax)
    fig.tight_layout()
    plt.show()


results = {"MAGE": read_out(*run.main_mage(tokenizer)), "MAGE-C": read_out(*mage_c())}

# %% [markdown]
# ## 1. `contrastive_weight` 1.0
#
# InfoNCE now weighs as much as reconstruction. Its gradient pulls the pooled encoder output
# towards augmentation-invariant features, at the expense of the token detail reconstruction
# needs: expect a higher reconstruction loss and worse samples, and a probe that gains only as
# long as the masked-token task still shapes the encoder.

# %%
results["MAGE-C, lambda 1"] = read_out(*mage_c(weight=1.0))
compare({k: results[k] for k in ("MAGE", "MAGE-C", "MAGE-C, lambda 1")})

# %% [markdown]
# ## 2. InfoNCE on the masked pass
#
# The masked pass already exists for reconstruction, so this variant costs no extra encoder
# call. Its pooled features come
# from a half-dropped, partly [MASK]ed sequence, not the clean one the probe reads: the share
# of the probe gain that survives is the comparison below.

# %%
results["MAGE-C, masked pass"] = read_out(*mage_c(pass_="masked"))
compare({k: results[k] for k in ("MAGE", "MAGE-C", "MAGE-C, masked pass")})

# %% [markdown]
# ## 3. MAGE-C with weak crops
#
# Contrast teaches invariance to what differs between the two views. With crops of 80 % of
# the image or more the views differ by little more than a flip and a small shift, so InfoNCE
# is solved by low-level matching and has little left to teach.

# %%
results["MAGE-C, weak crops"] = read_out(*mage_c(crop_scale=(0.8, 1.0)))
compare({k: results[k] for k in ("MAGE-C", "MAGE-C, weak crops")})

# %% [markdown]
# ## 4. When k-NN and the linear probe disagree
#
# The pairs of models the two read-outs rank in opposite orders. The linear probe rewards
# features in which the classes are *linearly separable* after normalisation, even if images
# of a class are spread far apart; k-NN rewards features whose *nearest neighbours* share a
# class, whatever the global geometry. Contrastive training pulls views, and so similar
# images, together, which helps k-NN more directly than the probe.

# %%
disagree = [(a, b) for a, b in combinations(results, 2)
            if (results[a]["probe top-1 (%)"] - results[b]["probe top-1 (%)"])
            * (results[a]["20-NN top-1 (%)"] - results[b]["20-NN top-1 (%)"]) < 0]
for a, b in disagree:
    print(f"{a} vs {b}: probe {results[a]['probe top-1 (%)']:.1f} vs {results[b]['probe top-1 (%)']:.1f} %, "
          f"20-NN {results[a]['20-NN top-1 (%)']:.1f} vs {results[b]['20-NN top-1 (%)']:.1f} %")
print(f"{len(disagree)} of {len(results) * (len(results) - 1) // 2} pairs ranked differently")
