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
