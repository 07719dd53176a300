"""Small matplotlib helpers the notebooks share: image grids, training curves, metric charts."""

import re

import matplotlib.pyplot as plt
import torch


def as_hwc(img: torch.Tensor):
    """(3, H, W) uint8 or float in [0, 1] -> (H, W, 3) numpy array for imshow."""
    img = img.detach().cpu()
    if img.dtype == torch.uint8:
        img = img.float() / 255
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def image_rows(rows: list[torch.Tensor], row_titles: list[str] | None = None, col_titles: list[str] | None = None,
               size: float = 1.2):
    """A figure with one row per tensor (N, 3, H, W); returns the figure."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * size, n_rows * size), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(row):
                ax.imshow(as_hwc(row[j]), interpolation="nearest")
            if j == 0 and row_titles:
                ax.set_ylabel(row_titles[i], rotation=0, ha="right", va="center", fontsize=8)
            if i == 0 and col_titles and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
    fig.tight_layout()
    return fig


def curves(histories: dict[str, list[dict]], key: str = "loss", ax=None, logy: bool = False, ylabel: str = ""):
    """Plot ``key`` against step for several metric histories on one axis (y axis labelled ``ylabel`` or ``key``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for label, hist in histories.items():
        pts = [(h["step"], h[key]) for h in hist if key in h]
        if pts:
            ax.plot(*zip(*pts), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel or key)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


LOWER_IS_BETTER = "lower is better"
# Distances between image sets (fd_classifier, FID, KID): a smaller value means closer to the real images.
_DISTANCE = re.compile(r"(?<![a-z])(fd|fid|kid|fr[eé]chet)(?![a-z])", re.IGNORECASE)


def is_distance(label: str) -> bool:
    """Whether an axis label names a distance (fd_classifier, FID, KID), where lower values are better."""
    return bool(_DISTANCE.search(label))


def _bar_label(v: float) -> str:
    # Probe accuracies read well with one decimal; KID and other small values need significant digits.
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def bar_chart(values: dict[str, float], ylabel: str, ax=None, title: str = "", lower_is_better: bool | None = None):
    """Bars from zero with their values written on top; for probe accuracies, distances and similar.

    The y axis always includes zero, so bar heights compare as ratios; it is never cut to the
    data range. ``lower_is_better`` (default: guessed from ``ylabel``, true for fd_classifier,
    FID and KID) adds "lower is better" to the y label, unless the label or title says it already.
    """
    if not ylabel:
        raise ValueError("bar_chart needs a y label saying what the bars measure (and its unit)")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3, len(values) * 1.1), 3))
    if lower_is_better is None:
        lower_is_better = is_distance(ylabel)
    if lower_is_better and LOWER_IS_BETTER not in (ylabel + " " + title).lower():
        ylabel = f"{ylabel} ({LOWER_IS_BETTER})"
    bars = ax.bar(list(values), list(values.values()), color="tab:blue")
    for b, v in zip(bars, values.values()):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), _bar_label(v), ha="center",
                va="bottom" if v >= 0 else "top", fontsize=8)
    # Bars stick to zero (matplotlib's sticky edges); the margin leaves room for the value labels
    # above the tallest bar while autoscaling stays on for lines a caller draws afterwards.
    ax.margins(y=0.12)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    return ax


def precision_recall_chart(points: dict[str, tuple[float, float]], ax=None, title: str = "",
                           colors: dict[str, str] | None = None):
    """Generated sets as points in the precision-recall plane, both axes [0, 1], each point labelled.

    points: {label: (precision, recall)}; ``colors`` per label (default tab:blue). Top right is
    best: samples that look real (precision) and cover the real variety (recall).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    colors = colors or {}
    markers = "osD^vP*X"
    for i, (label, (p, r)) in enumerate(points.items()):  # a legend, not annotations: nearby points stay readable
        ax.scatter([p], [r], s=70, color=colors.get(label, "tab:blue"), marker=markers[i % len(markers)], zorder=3,
                   edgecolor="white", linewidth=0.8, label=f"{label}: P {p:.2f}, R {r:.2f}")
    ax.legend(fontsize=7, loc="best", framealpha=0.9)
    ax.set_xlim(-0.02, 1.02), ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("precision: samples inside the real manifold")
    ax.set_ylabel("recall: real images inside the samples' manifold")
    ax.plot([0, 1], [0, 1], ls=":", c="lightgray", lw=1, zorder=1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return ax


def masked_image(imgs: torch.Tensor, mask: torch.Tensor, patch: int, fill: float = 0.5) -> torch.Tensor:
    """Grey out removed patches: imgs (B, 3, H, W) float, mask (B, L) with 1 = removed."""
    B, _, H, W = imgs.shape
    grid = mask.view(B, 1, H // patch, W // patch).float()
    pixel_mask = grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)  # (B, 1, H, W)
    return imgs * (1 - pixel_mask) + fill * pixel_mask


def token_grid(ids: torch.Tensor, ax=None, codebook_size: int | None = None, fontsize: float = 6.5,
               title: str = ""):
    """Show a grid of token ids (h, w) as coloured cells with each id written in its cell."""
    ids = ids.detach().cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    h, w = ids.shape
    vmax = (codebook_size or int(ids.max()) + 1) - 1
    ax.imshow(ids.numpy(), cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    for i in range(h):
        for j in range(w):
            v = int(ids[i, j])
            ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize,
                    color="white" if v < 0.6 * vmax else "black")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return ax


# Colours of token roles in the MAGE figures (notebook 03 onwards).
TOKEN_COLORS = {"[C0]": "#7b3294", "visible": "#1a9641", "[MASK]": "#fdae61", "dropped": "#9e9e9e",
                "[C]": "#c2a5cf", "encoder output": "#a6dba0"}


def token_roles(ax, img: torch.Tensor, masked, dropped, patch: int = 4, title: str = ""):
    """Draw one image with its token grid: visible tokens clear, masked-but-kept tokens hatched
    orange (they enter the encoder as [MASK]), dropped tokens grey (the encoder never sees them).

    img (3, H, W); masked, dropped: (L,) bool with L = (H / patch) ** 2, row-major.
    """
    from matplotlib.patches import Rectangle

    grid = img.shape[-1] // patch
    ax.imshow(as_hwc(img), extent=(0, grid, grid, 0), interpolation="nearest")
    for j in range(grid * grid):
        r, c = divmod(j, grid)
        if bool(dropped[j]):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=TOKEN_COLORS["dropped"], alpha=0.92, edgecolor="white", lw=0.5))
        elif bool(masked[j]):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=TOKEN_COLORS["[MASK]"], alpha=0.6, hatch="///",
                                   edgecolor="white", lw=0.5))
        else:
            ax.add_patch(Rectangle((c, r), 1, 1, fill=False, edgecolor="white", lw=0.5))
    ax.set_xlim(0, grid), ax.set_ylim(grid, 0)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return ax


def sequence_strip(ax, cells: list[tuple[str, str]], y: float = 0.0, label: str = "", below: list[str] | None = None,
                   fontsize: float = 5.5):
    """One row of unit cells at height ``y``: cells = [(text, colour), ...]; ``below`` writes small text under each."""
    from matplotlib.patches import Rectangle

    for i, (text, color) in enumerate(cells):
        ax.add_patch(Rectangle((i, y), 1, 1, facecolor=color, edgecolor="white", lw=0.6))
        if text:
            ax.text(i + 0.5, y + 0.5, text, ha="center", va="center", fontsize=fontsize, rotation=90 if len(text) > 2 else 0)
        if below:
            ax.text(i + 0.5, y - 0.25, below[i], ha="center", va="center", fontsize=fontsize - 1, color="dimgray")
    if label:
        ax.text(-0.6, y + 0.5, label, ha="right", va="center", fontsize=8)
    return ax


# Composite figures of the notebooks: each returns the figure, so a notebook cell computes, calls one
# of these, saves and shows. Panels are built from the helpers above.


def _no_ticks(ax):
    ax.set_xticks([]), ax.set_yticks([])


def curve_panels(panels: list[tuple[dict[str, list[dict]], str, str]], size: tuple[float, float] | None = None,
                 ylabel: str = ""):
    """Training curves side by side, one axis per panel: panels = [(histories, key, title), ...] as for ``curves``.

    ``ylabel`` labels every panel's y axis (default: each panel's key); ``size`` defaults to 5 x 3.2 per panel.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=size or (5 * len(panels), 3.2), squeeze=False)
    for ax, (histories, key, title) in zip(axes[0], panels):
        curves(histories, key, ax=ax, ylabel=ylabel)
        ax.set_title(title, fontsize=9)
    return fig


def bar_panels(panels: list[tuple[dict[str, float], str, str]], size: tuple[float, float] | None = None):
    """Bar charts side by side (bars from zero, see ``bar_chart``): panels = [(values, ylabel, title), ...].

    ``size`` defaults to 5 x 3.2 per panel.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=size or (5 * len(panels), 3.2), squeeze=False)
    for ax, (values, ylabel, title) in zip(axes[0], panels):
        bar_chart(values, ylabel, ax=ax, title=title)
    return fig


_REFERENCE_LINES = [("--", "gray"), (":", "tab:blue")]


def probe_by_block(table: dict[str, float], per_block: dict[str, dict[str, float]], references: dict[str, float],
                   title: str, block_title: str, markers: str = "o"):
    """Linear probe of several encoders: bars of ``table`` (name -> test top-1 %) beside per-block probe curves.

    per_block: {label: probe accuracies with keys "block_1" .. "block_n" (other keys ignored)}, the i-th drawn with
    ``markers[i]`` (the last marker repeats); references: {label: top-1 %}, at most two, drawn as horizontal
    lines (the first dashed grey, the second dotted blue).
    """
    if len(references) > len(_REFERENCE_LINES):
        raise ValueError(f"probe_by_block draws at most {len(_REFERENCE_LINES)} reference lines")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    bar_chart(table, "test top-1 (%)", ax=axes[0], title=title)
    depth = 0
    for i, (label, accs) in enumerate(per_block.items()):
        blocks = [k for k in accs if k.startswith("block_")]
        axes[1].plot(range(1, len(blocks) + 1), [accs[b] for b in blocks], marker=markers[min(i, len(markers) - 1)],
                     label=label)
        depth = max(depth, len(blocks))
    for (label, value), (ls, c) in zip(references.items(), _REFERENCE_LINES):
        axes[1].axhline(value, ls=ls, c=c, label=label)
    axes[1].set_xticks(range(1, depth + 1))
    axes[1].set_xlabel("encoder block"), axes[1].set_ylabel("probe top-1 (%)"), axes[1].legend(fontsize=8)
    axes[1].set_title(block_title, fontsize=9)
    return fig


def masking_steps(image: torch.Tensor, noise: torch.Tensor, ids_shuffle: torch.Tensor, mask: torch.Tensor, patch: int):
    """MAE's masking by sorting noise, in four panels: the noise, each patch's rank (= ids_restore), the mask
    and what the encoder sees.

    image (1, 3, H, W) float; noise, ids_shuffle, mask: (1, L) with L = (H / patch) ** 2 and mask 1 = removed.
    """
    grid = image.shape[-1] // patch
    keep = int((mask == 0).sum())
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
    im = axes[0].imshow(noise.view(grid, grid).numpy(), cmap="viridis")
    axes[0].set_title("noise u (small = keep)", fontsize=9)
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    axes[1].imshow(torch.argsort(ids_shuffle).view(grid, grid).numpy(), cmap="magma")
    axes[1].set_title("rank of each patch\n(= ids_restore)", fontsize=9)
    axes[2].imshow(mask.view(grid, grid).numpy(), cmap="gray_r")
    axes[2].set_title("mask (black = removed)", fontsize=9)
    axes[3].imshow(masked_image(image, mask, patch)[0].permute(1, 2, 0).numpy())
    axes[3].set_title(f"what the encoder sees ({keep} patches)", fontsize=9)
    for ax in axes:
        _no_ticks(ax)
    return fig


def vqgan_loss_curves(history: list[dict], disc_start: int, steps: int):
    """The VQGAN's training terms in four panels: L1 reconstruction (log scale), VQ loss, the two GAN terms and
    the adaptive weight, with a dashed line at ``disc_start`` when the GAN switches on before ``steps``.

    history: the training loop's metric dicts (step, rec_loss, vq_loss, g_loss, d_loss, adaptive_weight).
    """
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    curves({"L1 reconstruction": history}, "rec_loss", ax=axes[0], logy=True)
    curves({"VQ loss": history}, "vq_loss", ax=axes[1])
    curves({"generator -E[D(x_hat)]": history}, "g_loss", ax=axes[2])
    curves({"discriminator hinge": history}, "d_loss", ax=axes[2])
    axes[2].set_ylabel("GAN terms")
    curves({"adaptive weight w": history}, "adaptive_weight", ax=axes[3])
    for ax in axes:
        if disc_start < steps:
            ax.axvline(disc_start, ls="--", c="gray", lw=1)
    axes[2].set_title("GAN terms (0 before disc_start, dashed)", fontsize=9)
    fig.tight_layout()
    return fig


def codebook_health(history: list[dict], counts: torch.Tensor, usage: float, perplexity: float):
    """Codebook use in three panels: usage and perplexity per training batch, and each code's frequency on
    test images against the uniform 1/K.

    history: training metric dicts with "usage" and "perplexity"; counts (K,): how often each code was picked on
    the test images; usage (fraction of codes used) and perplexity on the same images, for the title.
    """
    K = len(counts)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3))
    curves({"train batch": history}, "usage", ax=axes[0])
    axes[0].set_ylim(0, 1.05)
    curves({"train batch": history}, "perplexity", ax=axes[1])
    axes[1].axhline(K, ls=":", c="gray")
    freq = counts.float() / counts.sum()
    axes[2].bar(range(K), freq.numpy(), width=1.0, color="tab:blue")
    axes[2].axhline(1 / K, ls="--", c="gray", label="uniform 1/K")
    axes[2].set_xlabel("code id"), axes[2].set_ylabel("frequency on test images"), axes[2].legend(fontsize=8)
    axes[2].set_title(f"test: usage {usage:.0%}, perplexity {perplexity:.0f} of {K}", fontsize=9)
    fig.tight_layout()
    return fig


def codebook_collapse(stats: dict[str, dict], histories: dict[str, list[dict]], legend: dict[str, str]):
    """Two tokenizers' codebooks in four panels: test usage (%) and perplexity as bars from zero, sorted code
    frequencies (log scale) and usage per training batch; the first tokenizer blue, the second red.

    stats: {name: {"usage", "perplexity", "counts" (K,)}} on the test images (as reconstruction_quality returns);
    histories: {name: training metric dicts with "usage"}; legend: {name: label of its frequency curve}.
    """
    colors = dict(zip(stats, ["tab:blue", "tab:red"]))
    K = len(next(iter(stats.values()))["counts"])
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, key, ylabel in [(axes[0], "usage", "codes used (%)"), (axes[1], "perplexity", "perplexity")]:
        vals = [100 * r[key] if key == "usage" else r[key] for r in stats.values()]
        bars = ax.bar(list(stats), vals, color=list(colors.values()))
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(ylabel), ax.set_title(f"test split, K = {K}", fontsize=9)
    for name, r in stats.items():
        f = (r["counts"].float() / r["counts"].sum()).sort(descending=True).values
        axes[2].plot(range(1, K + 1), f.clamp(min=1e-7).numpy(), c=colors[name], label=legend[name])
    axes[2].set_yscale("log"), axes[2].set_ylim(1e-6, 1)
    axes[2].set_xlabel("code rank"), axes[2].set_ylabel("frequency (0 drawn at 1e-7)")
    axes[2].set_title("sorted code frequencies", fontsize=9), axes[2].legend(fontsize=7)
    for name, hist in histories.items():
        axes[3].plot([h["step"] for h in hist], [h["usage"] for h in hist], c=colors[name], label=name)
    axes[3].set_ylim(0, 1.05), axes[3].grid(alpha=0.3), axes[3].legend(fontsize=8)
    axes[3].set_xlabel("step"), axes[3].set_ylabel("usage"), axes[3].set_title("usage per training batch", fontsize=9)
    fig.tight_layout()
    return fig


def images_and_tokens(images: torch.Tensor, decoded: torch.Tensor, ids: torch.Tensor, codebook_size: int):
    """One row per image: the image, its decoding from tokens, and its grid of token ids.

    images, decoded: (N, 3, H, W) float; ids: (N, h, w) token ids.
    """
    n = len(images)
    h, w = ids.shape[-2:]
    fig, axes = plt.subplots(n, 3, figsize=(9, 3.1 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(as_hwc(images[i]), interpolation="nearest")
        axes[i, 0].set_title("image", fontsize=9)
        axes[i, 1].imshow(as_hwc(decoded[i]), interpolation="nearest")
        axes[i, 1].set_title("decoded from its tokens", fontsize=9)
        token_grid(ids[i], ax=axes[i, 2], codebook_size=codebook_size, title=f"{h} x {w} token ids")
        for ax in axes[i, :2]:
            _no_ticks(ax)
    fig.tight_layout()
    return fig


def code_gallery(images: torch.Tensor, codes: torch.Tensor, shares: torch.Tensor, per_row: int = 8):
    """What single codes decode to, ``per_row`` a row, each titled with its id and its share of test tokens.

    images (N, 3, H, W): the decoding of a grid filled with one code; codes (N,) their ids; shares (N,) in %.
    """
    fig = image_rows([images[i:i + per_row] for i in range(0, len(images), per_row)], size=1.3)
    for ax, code, share in zip(fig.axes, codes, shares):
        ax.set_title(f"code {int(code)}\n{share:.1f} %", fontsize=8)
    fig.tight_layout()
    return fig


def mask_ratio_distribution(dist, draws: torch.Tensor, image: torch.Tensor, masked, dropped, ratio: float, patch: int):
    """MAGE's masking-ratio distribution (histogram of ``draws`` over its density ``dist.pdf``, its mean and MAE's
    fixed 0.75) beside one image masked at ``ratio``, with its tokens' roles (see ``token_roles``).

    draws (N,) ratios; image (3, H, W); masked, dropped: (L,) bool.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.7, 1]})
    x = torch.linspace(0.35, 1.05, 500)
    axes[0].hist(draws.numpy(), bins=60, density=True, alpha=0.45, color="tab:blue", label=f"{len(draws):,} draws")
    axes[0].plot(x, dist.pdf(x), c="tab:blue", label="density p(r)")
    axes[0].axvline(dist.mean(), c="k", ls="--", lw=1, label=f"mean {dist.mean():.3f}")
    axes[0].axvline(0.75, c="tab:red", ls=":", lw=1.5, label="MAE: fixed 0.75")
    axes[0].set_xlabel("masking ratio r"), axes[0].set_ylabel("density"), axes[0].legend(fontsize=8)
    axes[0].set_title("MAGE draws one ratio per batch", fontsize=9)
    token_roles(axes[1], image, masked, dropped, patch,
                title=f"r = {ratio:.2f}: {int(masked.sum())} masked = {int(masked.sum() - dropped.sum())} [MASK] + "
                      f"{int(dropped.sum())} dropped;\n{int((~masked).sum())} visible")
    return fig


def encoder_decoder_inputs(ids: torch.Tensor, masked, dropped, kept_pos: list[int], dec_in: torch.Tensor, ratio: float):
    """What MAGE's encoder and decoder see for one image: the token sequence, the encoder input (with the position
    each kept token keeps) and the decoder input as strips of cells, above the decoder input's values.

    ids (L,) token ids; masked, dropped: (L,) bool; kept_pos: the encoder's positions in the 1 + L sequence, 0
    ([C0]) first; dec_in (1 + L, D): the decoder input, column 0 = [C].
    """
    from matplotlib.patches import Rectangle

    L = len(ids)
    role = ["dropped" if dropped[j] else "[MASK]" if masked[j] else "visible" for j in range(L)]
    seq = [("C0", TOKEN_COLORS["[C0]"])] + [(str(int(ids[j])) if role[j] == "visible" else "", TOKEN_COLORS[role[j]])
                                            for j in range(L)]
    enc = [("C0", TOKEN_COLORS["[C0]"])] + [
        (str(int(ids[p - 1])) if role[p - 1] == "visible" else "M", TOKEN_COLORS[role[p - 1]]) for p in kept_pos[1:]]
    dec = [("C", TOKEN_COLORS["[C]"])] + [("C", TOKEN_COLORS["[C]"]) if masked[j] else ("e", TOKEN_COLORS["encoder output"])
                                          for j in range(L)]
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(14, 5.6), gridspec_kw={"height_ratios": [1.5, 1]})
    sequence_strip(ax, seq, 4.2, "token sequence")
    sequence_strip(ax, enc, 2.1, "encoder input", below=["0"] + [str(p) for p in kept_pos[1:]])
    sequence_strip(ax, dec, 0.0, "decoder input")
    ax.set_xlim(-9, L + 1.5), ax.set_ylim(-1.6, 5.4), ax.axis("off")
    ax.set_title(f"one image at r = {ratio:.2f}: ids shown for visible tokens (M = [MASK]; under the encoder input: "
                 "the position each token keeps); decoder input: e = encoder output, C = [C]", fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in TOKEN_COLORS.values()]
    ax.legend(handles, list(TOKEN_COLORS), ncol=6, fontsize=8, loc="lower center", bbox_to_anchor=(0.55, -0.04),
              frameon=False)
    axh.imshow(dec_in.T.numpy(), aspect="auto", cmap="RdBu_r", interpolation="nearest",
               extent=(0, L + 1, dec_in.shape[1], 0))
    axh.set_xlim(-9, L + 1.5)
    axh.set_xlabel("decoder position (0 = [C]); every masked column repeats column 0")
    axh.set_ylabel("channel")
    axh.set_title("the decoder input itself (untrained model): masked columns are copies of [C]", fontsize=9)
    return fig


def masked_token_training(histories: dict[str, list[dict]], test_acc: float, baseline: float, eval_ratio: float):
    """MAGE's training in two panels: the loss, and masked-token accuracy (%) on training batches against the
    test accuracy at a fixed ``eval_ratio`` mask and the most-frequent-code baseline (both in %).

    histories: {label: training metric dicts with "loss" and "acc" (a fraction)}.
    """
    fig = curve_panels([(histories, "loss", "label-smoothed CE on masked tokens"),
                        ({label: [{"step": h["step"], "acc": 100 * h["acc"]} for h in hist]
                          for label, hist in histories.items()}, "acc",
                         "training batches (ratio drawn per batch) vs test")], size=(11, 3.2))
    ax = fig.axes[1]
    ax.axhline(baseline, c="gray", ls="--", label="most-frequent code (test)")
    ax.axhline(test_acc, c="tab:green", ls=":", label=f"test, fixed {eval_ratio} mask")
    ax.set_ylabel("masked-token accuracy (%)"), ax.legend(fontsize=8)
    return fig


def padding_trap(histories: dict[str, list[dict]], true_mode_share: float, similarity: dict[str, float],
                 eval_ratio: float):
    """The [C]-padding trap in two panels: the mode share (%) of every training batch against the true tokens',
    and the mean cosine between an image's masked decoder inputs after the first LayerNorm, as bars from zero.

    histories: {label: training metric dicts, "mode_share" a fraction where logged}; true_mode_share: a fraction;
    similarity: {label: mean cosine} on the test tokens at a fixed ``eval_ratio`` mask.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 3.4))
    curves({label: [{"step": h["step"], "mode_share": 100 * h["mode_share"]} for h in hist if "mode_share" in h]
            for label, hist in histories.items()}, "mode_share", ax=ax)
    ax.axhline(100 * true_mode_share, c="gray", ls="--", lw=1, label="true tokens (test)")
    ax.set_ylim(0, 105), ax.set_ylabel("mode share (% of masked positions)"), ax.legend(fontsize=8)
    ax.set_title("training batches: masked positions given their image's most common prediction", fontsize=9)
    bar_chart(similarity, "mean cosine", ax=ax2,
              title=f"masked decoder inputs after the first LayerNorm (test, fixed {eval_ratio} mask)")
    return fig


def masking_ablation(histories: dict[str, list[dict]], probes: dict[str, float], fds: dict[str, float],
                     fd_real: float, samples: dict[str, torch.Tensor], n_samples: int = 8):
    """Two masking schemes compared: training loss, linear probe and fd_classifier (bars from zero, a dashed line
    at the real images' ``fd_real``) on top, ``n_samples`` generated images of each below.

    histories: {label: metric dicts with "loss"}; probes: {label: top-1 %}; fds: {label: fd_classifier};
    samples: {label: (N, 3, H, W) float images}, one row each.
    """
    fig = plt.figure(figsize=(12, 5.2))
    top = fig.subplots(1, 3, gridspec_kw={"bottom": 0.52})
    curves(histories, "loss", ax=top[0])
    top[0].set_title("training loss (on each model's own masks)", fontsize=9)
    bar_chart(probes, "probe top-1 (%)", ax=top[1], title="linear probe")
    bar_chart(fds, "fd_classifier (lower is better)", ax=top[2], title="generation")
    top[2].axhline(fd_real, c="gray", ls="--", lw=1)
    bottom = fig.subplots(len(samples), n_samples, squeeze=False,
                          gridspec_kw={"top": 0.4, "bottom": 0.02, "left": 0.2, "right": 0.8, "hspace": 0.05, "wspace": 0.05})
    for row, (label, imgs) in enumerate(samples.items()):
        for j in range(n_samples):
            bottom[row][j].imshow(as_hwc(imgs[j]), interpolation="nearest")
            _no_ticks(bottom[row][j])
        bottom[row][0].set_ylabel(label, fontsize=8)
    return fig


def generation_scores(scores: dict[str, float], title: str,
                      references: tuple[str, ...] = ("real test images", "tokenizer reconstructions"),
                      highlight: str = "MAGE"):
    """fd_classifier of every image set as bars from zero: the ``references`` grey, ``highlight`` green, the
    others blue; labels drop a leading "MAGE, " ("MAGE, tau 1" -> "tau 1"). scores: {set: fd_classifier}.
    """
    ax = bar_chart({k.replace(f"{highlight}, ", ""): v for k, v in scores.items()}, "fd_classifier (lower is better)",
                   title=title)
    ax.figure.set_size_inches(max(6, 1.2 * len(scores)), 3.4)
    for bar, k in zip(ax.patches, scores):
        bar.set_color("gray" if k in references else "tab:green" if k == highlight else "tab:blue")
    return ax.figure


def contrastive_sweeps(sweep: dict[str, dict], reference_probe: float):
    """One panel per swept MAGE-C parameter: linear probe and k-NN top-1 (%) at each value, each point's
    fd_classifier written above it, and plain MAGE's probe as a dashed line.

    sweep: {parameter: {value: {"probe", "knn", "fd"}}}; reference_probe: MAGE's probe top-1 (%).
    """
    fig, axes = plt.subplots(1, len(sweep), figsize=(14 * len(sweep) / 3, 3.2), squeeze=False)
    for ax, (kind, runs) in zip(axes[0], sweep.items()):
        xs = sorted(runs)
        pos = range(len(xs))
        ax.plot(pos, [runs[x]["probe"] for x in xs], marker="o", label="MAGE-C probe")
        ax.plot(pos, [runs[x]["knn"] for x in xs], marker="s", label="MAGE-C k-NN")
        ax.axhline(reference_probe, c="gray", ls="--", label="MAGE probe")
        ax.set_xticks(list(pos), [str(x) for x in xs]), ax.set_xlabel(kind), ax.set_ylabel("top-1 (%)")
        for p, x in zip(pos, xs):
            ax.annotate(f"fd {runs[x]['fd']:.1f}", (p, runs[x]["probe"]), fontsize=7,
                        textcoords="offset points", xytext=(0, 6), ha="center")
        ax.legend(fontsize=7)
        ax.set_title(f"MAGE-C, {kind} moved (others at their defaults)", fontsize=9)
    return fig


def neighbour_shortcut(shortcut: dict[str, float], sim_continuous: torch.Tensor, sim_quantized: torch.Tensor):
    """The quantization shortcut in three panels: the centre vector's variance explained by its 4 neighbours
    (100 R²) and the share of centre tokens recovered, as bars from zero, and a histogram of right-neighbour
    cosine similarities for continuous features and quantized codes.

    shortcut: neighbour_predictability's dict (r2_continuous, r2_quantized as fractions; id_from_continuous,
    id_from_quantized, id_majority in %); sim_continuous, sim_quantized: (M,) cosine similarities.
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    bar_chart({"continuous": 100 * shortcut["r2_continuous"], "quantized": 100 * shortcut["r2_quantized"]},
              "variance explained, 100 R² (%)", ax=axes[0], title="centre vector predicted from its 4 neighbours")
    bar_chart({"from continuous": shortcut["id_from_continuous"], "from quantized": shortcut["id_from_quantized"],
               "neighbour vote": shortcut["id_majority"]}, "% of centre tokens recovered", ax=axes[1],
              title="centre token recovered from its 4 neighbours")
    axes[2].hist(sim_continuous.numpy(), bins=20, alpha=0.6, label="continuous features")
    axes[2].hist(sim_quantized.numpy(), bins=20, alpha=0.6, label="quantized codes")
    axes[2].set_xlabel("cosine similarity with the right neighbour (one image)"), axes[2].legend(fontsize=8)
    return fig
