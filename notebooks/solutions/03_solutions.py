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
# # 03 · Solutions to the exercises
#
# Each exercise of notebook 03, answered by training the MAGE variant it asks for with
# `mage_lite` and measuring it as notebook 03 does: masked-token accuracy at a fixed ratio,
# the [C]-padding trap's mode share, the linear probe and `fd_classifier` (lower is better).
# The tokenizer and notebook 03's MAGE are reused. In `smoke` this only checks that the code
# runs (its numbers are not results); run it in `ci` or `cpu` for answers.

# %% tags=["parameters"]
preset = "smoke"  # smoke | ci | cpu | gpu
dataset = ""  # empty: the preset's choice; else shapes, cifar10 or a path to an image-folder archive
seed = 0
device = ""  # empty: the preset choice; auto picks cuda, then mps, then cpu
overrides = {}  # config overrides, e.g. mage_train.steps: 100

# %%
import matplotlib.pyplot as plt

from mage_lite.fd import decode_ids
from mage_lite.mage_eval import GenerationScorer, generate, masked_token_accuracy, probe_tokens, trap_metrics
from mage_lite.plots import bar_chart, image_rows
from mage_lite.probe import random_subset
from mage_lite.session import NotebookRun
from mage_lite.vqgan import encode_dataset

run = NotebookRun("solutions/03", preset, dataset, seed, device, overrides)
tokenizer = run.tokenizer()
gen = run.cfg.generation
EVAL_RATIO = 0.75  # as notebook 03: the same fixed-ratio masks for every model
test_ids = encode_dataset(tokenizer, run.data.test_images[random_subset(len(run.data.test_images), gen.eval_images, seed + 2)],
                          device=run.device).flatten(1)
probe_train_ids = encode_dataset(tokenizer, run.probe.train_images, device=run.device).flatten(1)
probe_test_ids = encode_dataset(tokenizer, run.probe.test_images, device=run.device).flatten(1)
scorer = GenerationScorer(run, tokenizer)


def mage(name: str, **changes):
    """The preset's MAGE with ``changes``, trained now or reused (notebook 03's names, so its models are reused)."""
    return run.mage(tokenizer, name, **changes)[0]


def measure(model) -> dict:
    acc = masked_token_accuracy(model, test_ids, EVAL_RATIO, seed)
    trap = trap_metrics(model, test_ids, EVAL_RATIO, seed)
    return {"masked-token acc (%)": acc["acc"], "mode share (%)": 100 * trap["mode_share"],
            "probe top-1 (%)": probe_tokens(run.probe, model, probe_train_ids, probe_test_ids, keys=("avg",))["avg"],
            "fd_classifier": scorer.score(scorer.samples(model))}


def compare(results: dict) -> None:
    metrics = list(next(iter(results.values())))
    for label, r in results.items():
        print(f"{label:22s} " + "   ".join(f"{m} {v:6.2f}" for m, v in r.items()))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3))
    for ax, m in zip(axes, metrics):
        bar_chart({label: r[m] for label, r in results.items()}, m, ax=ax)
    fig.tight_layout()
    plt.show()


base = mage(f"mage-{run.cfg.mage.mask_ratio.replace(':', '')}")  # notebook 03's model
base_results = measure(base)
print(f"fd_classifier of real test images (the floor): {scorer.real:.2f}")

# %% [markdown]
# ## 1. MAE-style padding with a learned mask token
#
# With [C] padding every masked position of the decoder starts from the same image summary,
# so the encoder is pushed to put what the decoder needs into [C]; with a mask token the
# summary reaches the decoder only through attention to the visible positions. The paper
# reports [C] padding as better for both tasks; at small scale [C] padding can also fall into
# the trap of predicting one code everywhere (the mode share), which the mask token avoids.

# %%
compare({"[C] padding": base_results, "mask token": measure(mage(run.mage_name(run.cfg.mage.mask_ratio, "mask_token"), padding="mask_token"))})

# %% [markdown]
# ## 2. The loss on all positions
#
# Visible tokens are in the input, so predicting them is copying. Part of the model's
# capacity and of every gradient goes to that easy task: the loss falls faster, but the
# masked-token accuracy and the samples are expected to be no better, as the paper reports.

# %%
loss_all = mage("mage-lossall", loss_on="all")
compare({"masked only": base_results, "all positions": measure(loss_all)})
image_rows([decode_ids(tokenizer, generate(m, 8, gen.steps, gen.temperature, seed)) for m in (base, loss_all)],
           row_titles=["masked only", "all positions"])
plt.show()

# %% [markdown]
# ## 3. Choice temperature and number of steps
#
# With **one step** generation reduces to a single pass on the fully masked sequence: every
# token is sampled at once and independently from its own softmax, the same prediction as
# section 4's at ratio 1.0 (with sampling instead of argmax). Nothing a token decided can
# inform another, so the samples lose their structure; more steps let later tokens condition
# on earlier ones. Temperature 0 unmasks strictly by confidence (the easiest tokens first,
# which tends to repeat them); a high temperature makes the order nearly random.

# %%
def fd_of(steps: int, tau: float) -> float:
    ids = generate(base, gen.samples, steps, tau, seed, gen.batch_size)
    return scorer.score(decode_ids(tokenizer, ids))


by_tau = {f"tau {t:g}": fd_of(gen.steps, t) for t in (0, 1, 4.5, 10)}
by_steps = {f"{s} steps": fd_of(s, gen.temperature) for s in (1, 4, 20)}
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
bar_chart(by_tau, "fd_classifier", ax=axes[0], title=f"{gen.steps} steps")
bar_chart(by_steps, "fd_classifier", ax=axes[1], title=f"tau {gen.temperature:g}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. A uniform ratio on the same support
#
# Both distributions reach a fully masked sequence, which generation needs; they differ in
# how often the model trains at high ratios. If only the support mattered the two rows would
# agree within the spread of seeds; measuring that needs several seeds (`seed` parameter).

# %%
compare({"truncated Gaussian": base_results, "uniform": measure(mage("mage-uniform0.5,1.0", mask_ratio="uniform:0.5,1.0"))})

# %% [markdown]
# ## 5. The decoder position embedding and its scale
#
# When every masked decoder input is the same [C], only the position embedding tells the
# masked positions apart. The official learned embedding starts nearly equal everywhere (std
# 0.02), so the decoder can settle on one code for all of them: the trap. A sin-cos table makes
# the positions distinct from the first step, the more so the larger its scale against [C].
# Compare the mode share, and whether the probe moves with it.

# %%
default = f"{run.cfg.mage.decoder_pos} x{run.cfg.mage.decoder_pos_scale:g} (preset default)"
compare({default: base_results,
         "learned (official)": measure(mage("mage-pos-learned", decoder_pos="learned")),
         "sincos x2": measure(mage("mage-pos-sincos-x2", decoder_pos="sincos", decoder_pos_scale=2.0)),
         "sincos x4": measure(mage("mage-pos-sincos-x4", decoder_pos="sincos", decoder_pos_scale=4.0))})
