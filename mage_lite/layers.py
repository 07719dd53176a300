"""Model parts shared by MAE and MAGE: a pre-LN transformer block, position embeddings,
patchify/unpatchify."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Multi-head self-attention on (B, T, D) through scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads; pick a width that is a multiple of the head count")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, D // self.heads)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return F.dropout(self.proj(out), p, self.training)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)), then x + mlp(LN(x)). (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module) -> None:
    """ViT-style init: xavier-uniform linears with zero bias, unit LayerNorms (as MAE does)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def sincos_pos_embed_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Fixed sin-cos embedding of positions (N,) -> (N, dim): half the channels sin, half cos."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    angles = positions.double()[:, None] * omega[None, :]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()  # (N, dim)


def sincos_pos_embed_2d(dim: int, grid: int, cls_token: bool = False) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding for a grid x grid layout, row-major.

    Half of the channels encode the row, half the column. With ``cls_token`` a zero row is
    prepended for the class position. Returns (grid*grid [+1], dim).
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos embedding needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    emb = torch.cat(
        [sincos_pos_embed_1d(dim // 2, rows.flatten()), sincos_pos_embed_1d(dim // 2, cols.flatten())], dim=1
    )  # (grid*grid, dim)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim), emb], dim=0)  # (1 + grid*grid, dim)
    return emb


def _pos_table(init: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """A (length, dim) or (1, length, dim) table -> a float32 copy (1, length, dim); refuses other shapes."""
    if tuple(init.shape[-2:]) != (length, dim) or init.dim() not in (2, 3) or (init.dim() == 3 and init.shape[0] != 1):
        raise ValueError(f"a position table for {length} positions x {dim} channels must be ({length}, {dim}) or "
                         f"(1, {length}, {dim}), got {tuple(init.shape)}")
    return init.detach().reshape(1, length, dim).float().clone()


class LearnedPosEmbed(nn.Module):
    """Learned absolute position embedding for a sequence of ``length``: (B, T, D) -> (B, T, D).

    Initialised N(0, std^2) (drawing from the global generator), or, when ``init`` is given, as
    a copy of that (length, dim) table (e.g. a sin-cos one; then nothing random is drawn).
    """

    def __init__(self, length: int, dim: int, std: float = 0.02, init: torch.Tensor | None = None):
        super().__init__()
        w = torch.randn(1, length, dim) * std if init is None else _pos_table(init, length, dim)
        self.weight = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[:, : x.shape[1]]


class FixedPosEmbed(nn.Module):
    """A fixed position embedding (e.g. 2D sin-cos, as MAE's decoder has): (B, T, D) -> (B, T, D).

    The (length, dim) table is a buffer named ``weight``: it has no gradient, is not among the
    parameters, moves with ``.to()`` and is saved in the state_dict under the same key a
    :class:`LearnedPosEmbed` would use.
    """

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", _pos_table(table, table.shape[-2], table.shape[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[:, : x.shape[1]]


def patchify(imgs: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, patch*patch*C), patches in row-major order, pixels (p, q, c) inside."""
    B, C, H, W = imgs.shape
    if H % patch or W % patch:
        raise ValueError(f"image size {H}x{W} is not divisible by the patch size {patch}")
    h, w = H // patch, W // patch
    x = imgs.reshape(B, C, h, patch, w, patch)  # (B, C, h, p, w, p)
    x = torch.einsum("bchpwq->bhwpqc", x)
    return x.reshape(B, h * w, patch * patch * C)  # (B, L, p*p*C)


def unpatchify(x: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """(B, L, patch*patch*C) -> (B, C, H, W); the inverse of :func:`patchify` for square images."""
    B, L, _ = x.shape
    h = w = int(math.isqrt(L))
    if h * w != L:
        raise ValueError(f"{L} patches do not form a square grid")
    x = x.reshape(B, h, w, patch, patch, channels)  # (B, h, w, p, p, C)
    x = torch.einsum("bhwpqc->bchpwq", x)
    return x.reshape(B, channels, h * patch, w * patch)  # (B, C, H, W)


def pooled_features(x: torch.Tensor, blocks: nn.ModuleList, norm: nn.Module, first: str = "cls") -> dict[str, torch.Tensor]:
    """Run ``blocks`` and the final ``norm`` over x (B, 1+L, D) and read features for probing.

    Returns {"block_i": (B, D) mean of positions 1..L after block i (i = 1..depth),
    "avg": (B, D) mean of positions 1..L after the final norm, ``first``: (B, D) position 0}.
    """
    out = {}
    for i, blk in enumerate(blocks, 1):
        x = blk(x)
        out[f"block_{i}"] = x[:, 1:].mean(dim=1)
    x = norm(x)
    out["avg"] = x[:, 1:].mean(dim=1)
    out[first] = x[:, 0]
    return out
