"""The shared figures read honestly: bars from zero, labelled axes, distances marked lower-is-better."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from mage_lite.masking import make_ratio_dist
from mage_lite.plots import (bar_chart, bar_panels, code_gallery, codebook_collapse, codebook_health,
                             contrastive_sweeps, curve_panels, curves, encoder_decoder_inputs, generation_scores,
                             images_and_tokens, is_distance, mask_ratio_distribution, masked_token_training,
                             masking_ablation, masking_steps, neighbour_shortcut, padding_trap, probe_by_block,
                             vqgan_loss_curves)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_bar_chart_starts_at_zero_even_when_values_are_close():
    ax = bar_chart({"a": 61.2, "b": 62.0, "c": 61.7}, "probe top-1 (%)")
    ax.figure.canvas.draw()
    assert ax.get_ylim()[0] == 0
    assert ax.get_ylim()[1] > 62.0  # room for the value written on the tallest bar
    assert ax.get_ylabel() == "probe top-1 (%)"


def test_bar_chart_keeps_zero_for_a_line_drawn_afterwards():
    ax = bar_chart({"a": 3.0, "b": 4.0}, "fd_classifier")
    ax.axhline(5.0)  # a reference line above every bar, as notebook 03 draws
    ax.figure.canvas.draw()
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 5.0


def test_distance_panels_say_lower_is_better():
    assert bar_chart({"a": 0.02}, "KID").get_ylabel() == "KID (lower is better)"
    assert bar_chart({"a": 3.0}, "fd_classifier").get_ylabel() == "fd_classifier (lower is better)"
    said_in_title = bar_chart({"a": 3.0}, "fd_classifier", title="generation (lower is better)")
    assert said_in_title.get_ylabel() == "fd_classifier"
    assert bar_chart({"a": 40.0}, "probe top-1 (%)").get_ylabel() == "probe top-1 (%)"
    assert is_distance("fd_classifier (lower is better)") and not is_distance("kidney") and not is_distance("feedback")


def test_small_values_are_written_with_significant_digits():
    ax = bar_chart({"a": 0.0123}, "KID")
    assert [t.get_text() for t in ax.texts] == ["0.0123"]


def test_bar_chart_refuses_an_unlabelled_axis():
    with pytest.raises(ValueError, match="needs a y label"):
        bar_chart({"a": 1.0}, "")


def test_curves_label_the_y_axis():
    hist = [{"step": 0, "loss": 2.0}, {"step": 1, "loss": 1.0}]
    assert curves({"run": hist}).get_ylabel() == "loss"
    assert curves({"run": hist}, ylabel="masked-token loss").get_ylabel() == "masked-token loss"


# The notebooks' composite figures, drawn from tiny synthetic inputs.

def _hist(n=4, **extra):
    return [{"step": s, "loss": 1.0 / (s + 1), **{k: v * (s + 1) / n for k, v in extra.items()}} for s in range(n)]


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_curve_panels_one_titled_axis_per_panel():
    fig = curve_panels([({"a": _hist()}, "loss", "first"), ({"b": _hist()}, "loss", "second")], ylabel="MSE")
    assert _titles(fig) == ["first", "second"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["MSE", "MSE"]
    assert tuple(fig.get_size_inches()) == (10, 3.2)


def test_bar_panels_keep_bars_from_zero_and_mark_distances():
    fig = bar_panels([({"a": 41.0, "b": 42.0}, "probe top-1 (%)", "probe"), ({"a": 3.0}, "fd_classifier", "generation")],
                     size=(8, 3))
    fig.canvas.draw()
    assert _titles(fig) == ["probe", "generation"]
    assert [ax.get_ylim()[0] for ax in fig.axes] == [0, 0]
    assert fig.axes[1].get_ylabel() == "fd_classifier (lower is better)"


def test_probe_by_block_draws_bars_curves_and_references():
    accs = {"avg": 40.0, "block_1": 30.0, "block_2": 35.0}
    fig = probe_by_block({"pixels": 30.0, "model": 40.0}, {"model": accs, "other": {"block_1": 31.0}},
                         {"pixels": 30.0, "random": 28.0}, "linear probe", "per-block probe", markers="os")
    bars, blocks = fig.axes
    assert bars.get_title() == "linear probe" and bars.get_ylabel() == "test top-1 (%)"
    assert blocks.get_xlabel() == "encoder block" and list(blocks.get_xticks()) == [1, 2]
    assert [t.get_text() for t in blocks.get_legend().get_texts()] == ["model", "other", "pixels", "random"]
    with pytest.raises(ValueError, match="at most 2"):
        probe_by_block({"a": 1.0}, {}, {"x": 1.0, "y": 2.0, "z": 3.0}, "", "")


def test_masking_steps_four_panels():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 16, generator=g)
    ids_shuffle = torch.argsort(noise, dim=1)
    mask = (torch.argsort(ids_shuffle, dim=1) >= 4).float()
    fig = masking_steps(torch.rand(1, 3, 16, 16, generator=g), noise, ids_shuffle, mask, 4)
    assert len(fig.axes) == 5  # four panels and the noise's colour bar
    assert fig.axes[3].get_title() == "what the encoder sees (4 patches)"


def test_vqgan_loss_curves_mark_disc_start():
    hist = _hist(rec_loss=1.0, vq_loss=1.0, g_loss=1.0, d_loss=1.0, adaptive_weight=1.0)
    fig = vqgan_loss_curves(hist, disc_start=2, steps=4)
    assert len(fig.axes) == 4 and fig.axes[2].get_ylabel() == "GAN terms"
    assert fig.axes[0].get_yscale() == "log"
    assert all(len(ax.lines) >= 2 for ax in fig.axes)  # a curve and the dashed disc_start line
    assert len(vqgan_loss_curves(hist, disc_start=4, steps=4).axes[1].lines) == 1


def test_codebook_health_three_panels():
    counts = torch.tensor([5, 3, 0, 2])
    fig = codebook_health(_hist(usage=1.0, perplexity=3.0), counts, 0.75, 2.9)
    assert len(fig.axes) == 3
    assert fig.axes[2].get_title() == "test: usage 75%, perplexity 3 of 4"
    assert fig.axes[2].get_xlabel() == "code id" and len(fig.axes[2].patches) == 4


def test_codebook_collapse_compares_two_tokenizers():
    stats = {"default": {"usage": 1.0, "perplexity": 3.5, "counts": torch.tensor([3, 3, 2, 2])},
             "plain": {"usage": 0.5, "perplexity": 1.5, "counts": torch.tensor([9, 1, 0, 0])}}
    fig = codebook_collapse(stats, {"default": _hist(usage=1.0), "plain": _hist(usage=0.5)},
                            {"default": "default codes", "plain": "plain codes"})
    assert len(fig.axes) == 4
    assert [ax.get_ylabel() for ax in fig.axes] == ["codes used (%)", "perplexity", "frequency (0 drawn at 1e-7)", "usage"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["100.0", "50.0"]
    assert fig.axes[0].get_title() == "test split, K = 4"


def test_images_and_tokens_one_row_per_image():
    imgs = torch.rand(2, 3, 8, 8)
    fig = images_and_tokens(imgs, imgs, torch.randint(0, 4, (2, 2, 2)), codebook_size=4)
    assert len(fig.axes) == 6
    assert _titles(fig)[:3] == ["image", "decoded from its tokens", "2 x 2 token ids"]


def test_code_gallery_titles_each_code():
    fig = code_gallery(torch.rand(4, 3, 8, 8), torch.tensor([7, 3, 1, 0]), torch.tensor([40.0, 30.0, 20.0, 10.0]),
                       per_row=2)
    assert _titles(fig) == ["code 7\n40.0 %", "code 3\n30.0 %", "code 1\n20.0 %", "code 0\n10.0 %"]


def test_mask_ratio_distribution_two_panels():
    dist = make_ratio_dist("truncnorm:0.55,0.25,0.5,1.0")
    draws = dist.sample(200, torch.Generator().manual_seed(0))
    masked = torch.tensor([True] * 10 + [False] * 6)
    dropped = torch.tensor([True] * 8 + [False] * 8)
    fig = mask_ratio_distribution(dist, draws, torch.rand(3, 16, 16), masked, dropped, 0.62, 4)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "masking ratio r"
    assert "200 draws" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert fig.axes[1].get_title().startswith("r = 0.62: 10 masked = 2 [MASK] + 8 dropped")


def test_encoder_decoder_inputs_draws_the_three_sequences():
    L = 4
    masked = torch.tensor([True, True, False, False])
    dropped = torch.tensor([True, False, False, False])
    fig = encoder_decoder_inputs(torch.tensor([5, 6, 7, 8]), masked, dropped, [0, 2, 3, 4], torch.randn(1 + L, 6), 0.5)
    strips, values = fig.axes
    assert [t.get_text() for t in strips.texts if t.get_text().endswith("input") or t.get_text() == "token sequence"] == \
        ["token sequence", "encoder input", "decoder input"]
    assert values.get_ylabel() == "channel" and strips.get_title().startswith("one image at r = 0.50")


def test_masked_token_training_adds_test_references():
    fig = masked_token_training({"MAGE": _hist(acc=0.2)}, test_acc=15.0, baseline=5.0, eval_ratio=0.75)
    assert _titles(fig) == ["label-smoothed CE on masked tokens", "training batches (ratio drawn per batch) vs test"]
    assert fig.axes[1].get_ylabel() == "masked-token accuracy (%)"
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == \
        ["MAGE", "most-frequent code (test)", "test, fixed 0.75 mask"]
    assert max(fig.axes[1].lines[0].get_ydata()) == pytest.approx(20.0)  # fractions drawn in %


def test_padding_trap_two_panels():
    fig = padding_trap({"[C] padding": _hist(mode_share=0.9)}, 0.3, {"untrained": 0.99, "[C] padding": 0.8}, 0.75)
    ax, bars = fig.axes
    assert ax.get_ylabel() == "mode share (% of masked positions)" and ax.get_ylim() == (0, 105)
    assert bars.get_ylabel() == "mean cosine" and len(bars.patches) == 2


def test_masking_ablation_curves_bars_and_sample_rows():
    samples = {"variable": torch.rand(8, 3, 8, 8), "fixed 0.75": torch.rand(8, 3, 8, 8)}
    fig = masking_ablation({"variable ratio": _hist(), "fixed 0.75": _hist()}, {"variable": 40.0, "fixed 0.75": 38.0},
                           {"variable": 5.0, "fixed 0.75": 6.0}, 1.0, samples)
    assert len(fig.axes) == 3 + 2 * 8
    assert _titles(fig)[:3] == ["training loss (on each model's own masks)", "linear probe", "generation"]
    assert fig.axes[2].get_ylabel() == "fd_classifier (lower is better)"
    assert [fig.axes[3].get_ylabel(), fig.axes[11].get_ylabel()] == ["variable", "fixed 0.75"]


def test_generation_scores_colours_references():
    fig = generation_scores({"real test images": 1.0, "MAGE": 5.0, "MAGE, tau 1": 6.0}, "scores")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["real test images", "MAGE", "tau 1"]
    assert [matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches] == \
        [matplotlib.colors.to_hex(c) for c in ("gray", "tab:green", "tab:blue")]
    assert ax.get_ylabel() == "fd_classifier (lower is better)"


def test_contrastive_sweeps_one_panel_per_parameter():
    run = {"probe": 40.0, "knn": 35.0, "fd": 5.0}
    fig = contrastive_sweeps({"weight": {0.1: run, 0.3: run}, "input": {"clean": run}}, reference_probe=38.0)
    assert [ax.get_xlabel() for ax in fig.axes] == ["weight", "input"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["fd 5.0", "fd 5.0"]
    assert fig.axes[0].get_ylabel() == "top-1 (%)"


def test_neighbour_shortcut_three_panels():
    shortcut = {"r2_continuous": 0.6, "r2_quantized": 0.3, "id_from_continuous": 20.0, "id_from_quantized": 10.0,
                "id_majority": 15.0}
    fig = neighbour_shortcut(shortcut, torch.rand(20), torch.rand(20))
    assert len(fig.axes) == 3
    assert fig.axes[0].get_ylabel() == "variance explained, 100 R² (%)"
    assert [t.get_text() for t in fig.axes[0].texts] == ["60.0", "30.0"]
    assert fig.axes[2].get_xlabel() == "cosine similarity with the right neighbour (one image)"
