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
# # 01 · Solutions to the exercises
#
# Each exercise of notebook 01, answered by measuring it with `mage_lite`. Models trained by
# notebook 01 in the same preset and seed are reused, not trained again. In `smoke` this only
# checks that the code runs (its numbers are not results); run it in `ci` or `cpu` for answers.

# %% tags=["parameters"]
preset = "smoke"  # smoke | ci | cpu | gpu
dataset = ""  # empty: the preset's choice; else shapes, cifar10 or a path to an image-folder archive
seed = 0
device = ""  # empty: the preset choice; auto picks cuda, then mps, then cpu
overrides = {}  # config overrides, e.g. mae_train.steps: 100

# %%
import dataclasses

import matplotlib.pyplot as plt

from mage_lite.mae import MAE
from mage_lite.plots import bar_chart
from mage_lite.session import NotebookRun

run = NotebookRun("solutions/01", preset, dataset, seed, device, overrides)
cfg = run.cfg.mae


def train_mae(name: str, train_cfg=None, **changes):
    """The preset's norm-pix MAE with ``changes`` to its config, trained now or reused (keyed by its config)."""
    mcfg = dataclasses.replace(cfg, norm_pix_loss=True, **changes)
    return run.train(name, lambda: MAE(mcfg), train_cfg or run.cfg.mae_train, mcfg)


baseline, baseline_history = run.mae(norm_pix=True)  # notebook 01's model
baseline_probe = run.probe.evaluate(baseline.features, run.device, "MAE")

# %% [markdown]
# ## 1. Decoder depth
#
# The decoder is thrown away after pretraining, yet its depth matters to the encoder: a
# shallow decoder cannot do much of the reconstruction itself, so the encoder's last blocks
# spend themselves on low-level pixel detail instead of abstract features. The MAE paper
# reports a deeper decoder helps the linear probe; short CPU runs may not show it.

# %%
by_depth = {cfg.decoder_depth: baseline_probe["avg"]}
for depth in sorted({1, 4} - {cfg.decoder_depth}):
    model, _ = train_mae(f"mae-normpix-dec{depth}", decoder_depth=depth)
    by_depth[depth] = run.probe.evaluate(model.features, run.device, f"MAE decoder {depth}")["avg"]
by_depth = dict(sorted(by_depth.items()))
for d, acc in by_depth.items():
    print(f"decoder depth {d}: probe {acc:5.1f} %")
bar_chart({f"depth {d}": a for d, a in by_depth.items()}, "probe top-1 (%)", title="MAE probe vs decoder depth")
plt.show()

# %% [markdown]
# ## 2. Mask ratio 0.25
#
# With three quarters of the patches visible, a removed patch can be filled in by
# interpolating its visible neighbours: the loss is lower, but the task needs little
# understanding of the image, so the probe is expected to be no better, often worse, than
# at 0.75. (The losses are on different numbers of patches per image, but both are
# per-patch means, so they compare.)

# %%
low, low_history = run.mae(norm_pix=True, mask_ratio=0.25)
low_probe = run.probe.evaluate(low.features, run.device, "MAE r=0.25")
for r, hist, p in [(0.25, low_history, low_probe), (cfg.mask_ratio, baseline_history, baseline_probe)]:
    print(f"mask ratio {r}: final loss {hist[-1]['loss']:.4f}, probe {p['avg']:5.1f} %")

# %% [markdown]
# ## 3. `cls` or `avg`, and training length
#
# Both read-outs of notebook 01's model, and of the same model trained twice as long. No loss
# term is attached to the CLS token: it learns only what the decoder finds useful in it through
# attention, while every patch token is shaped by the reconstruction of its neighbourhood. Whether longer training
# closes the gap is the measurement below.

# %%
longer = dataclasses.replace(run.cfg.mae_train, steps=2 * run.cfg.mae_train.steps)
long_model, _ = train_mae("mae-normpix-2x", train_cfg=longer)
long_probe = run.probe.evaluate(long_model.features, run.device, "MAE 2x steps")
table = {f"{steps} steps, {key}": p[key] for steps, p in [(run.cfg.mae_train.steps, baseline_probe), (longer.steps, long_probe)]
         for key in ("avg", "cls")}
for k, v in table.items():
    print(f"{k:18s} {v:5.1f} %")
bar_chart(table, "probe top-1 (%)", title="read-out vs training length")
plt.show()
