"""MAE, the pixel baseline (He et al., 2022), at CIFAR scale.

An asymmetric encoder sees only the visible patches (+ CLS); a light decoder fills the
removed ones with a shared mask token, puts every token back in place, and predicts the
pixels. The loss is taken on removed patches only.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from .layers import Block, init_weights, patchify, pooled_features, sincos_pos_embed_2d, unpatchify

# CIFAR-10 channel statistics: the encoder sees standardised pixels, as MAE's ImageNet pipeline does.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class MAEConfig:
    image_size: int = 32  # input side in pixels
    patch_size: int = 4  # 32 px / 4 = 8 x 8 = 64 patches, the same length as MAGE's token grid
    dim: int = 192  # encoder width
    depth: int = 6  # encoder blocks
    heads: int = 3  # encoder attention heads
    decoder_dim: int = 128  # decoder width (official: 512 for ViT-B; a light decoder, scaled down)
    decoder_depth: int = 2  # decoder blocks (official: 8)
    decoder_heads: int = 4
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75  # fraction of patches removed (MAE's default)
    norm_pix_loss: bool = True  # target = each patch normalised by its own mean/var (better features)

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"mae.image_size {self.image_size} must be a multiple of mae.patch_size {self.patch_size}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mae.mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
    """Per-sample random masking by sorting noise, as in the MAE paper.

    Each patch gets uniform noise; the patches with the smallest noise are kept. x: (B, L, D).
    Returns (x_kept (B, K, D) with K = int(L * (1 - mask_ratio)), mask (B, L) with 0 = keep
    and 1 = removed in the original order, ids_restore (B, L), ids_shuffle (B, L)).
    """
    B, L, D = x.shape
    keep = int(L * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(B, L, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)  # small noise first = kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # where each original patch went
    ids_keep = ids_shuffle[:, :keep]  # (B, K)
    x_kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, D))  # (B, K, D)
    mask = torch.ones(B, L, device=x.device)
    mask[:, :keep] = 0  # in shuffled order: the first K are kept
    mask = torch.gather(mask, 1, ids_restore)  # back to the original order
    return x_kept, mask, ids_restore, ids_shuffle


class MAE(nn.Module):
    def __init__(self, cfg: MAEConfig):
        super().__init__()
        self.cfg = cfg
        L, p = cfg.num_patches, cfg.patch_size
        grid = cfg.image_size // p
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)
        # Encoder
        self.patch_embed = nn.Linear(p * p * 3, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(cfg.dim, grid, cls_token=True)[None])  # (1, 1+L, D)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        # Decoder
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(cfg.decoder_dim, grid, cls_token=True)[None])
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, p * p * 3)
        self.apply(init_weights)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        assert L == self.pos_embed.shape[1] - 1

    def no_weight_decay(self):
        return ("cls_token", "mask_token")

    def normalize(self, imgs: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> standardised pixels, (B, 3, H, W)."""
        return (imgs - self.mean) / self.std

    # --- encoder -------------------------------------------------------------------
    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """imgs (B, 3, H, W) in [0, 1] -> (latent (B, 1+K, D), mask (B, L), ids_restore (B, L))."""
        x = self.patch_embed(patchify(self.normalize(imgs), self.cfg.patch_size))  # (B, L, D)
        x = x + self.pos_embed[:, 1:]
        x, mask, ids_restore, _ = random_masking(x, mask_ratio, noise)  # (B, K, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)  # (B, 1+K, D)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    # --- decoder -------------------------------------------------------------------
    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1+K, D) -> predicted pixels for every patch (B, L, p*p*3)."""
        x = self.decoder_embed(latent)  # (B, 1+K, Dd)
        B, L = ids_restore.shape
        fill = self.mask_token.expand(B, L + 1 - x.shape[1], -1)  # one shared token per removed patch
        x_ = torch.cat([x[:, 1:], fill], dim=1)  # (B, L, Dd), shuffled order
        x_ = torch.gather(x_, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # un-shuffle
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed  # (B, 1+L, Dd)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # (B, L, p*p*3), CLS dropped

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """The pixels the decoder must predict, (B, L, p*p*3): per-patch normalised with norm_pix_loss."""
        t = patchify(self.normalize(imgs), self.cfg.patch_size)
        if self.cfg.norm_pix_loss:
            mean, var = t.mean(dim=-1, keepdim=True), t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1e-6) ** 0.5
        return t

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over removed patches only."""
        per_patch = ((pred - self.target(imgs)) ** 2).mean(dim=-1)  # (B, L)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None):
        """imgs (B, 3, H, W) in [0, 1] -> (loss, pred (B, L, p*p*3), mask (B, L))."""
        ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(imgs, ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    def training_loss(self, imgs: torch.Tensor, step: int):
        loss, _, _ = self(imgs)
        return loss, {}

    # --- probing -------------------------------------------------------------------
    @torch.no_grad()
    def features(self, imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder features of the full (unmasked) image for linear probing.

        Returns {"avg": (B, D) mean of the patch tokens after the final norm, "cls": (B, D),
        "block_i": (B, D) mean of the patch tokens after block i, for i = 1..depth}.
        """
        x = self.patch_embed(patchify(self.normalize(imgs), self.cfg.patch_size)) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)  # (B, 1+L, D)
        return pooled_features(x, self.blocks, self.norm, first="cls")

    def reconstruct(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn predictions back into [0, 1] images: (reconstruction, reconstruction with visible patches pasted).

        With norm_pix_loss the prediction lives in per-patch normalised space; each patch is
        de-normalised with the true patch's mean/std, as the MAE visualisation does.
        """
        p = self.cfg.patch_size
        true = patchify(self.normalize(imgs), p)  # (B, L, p*p*3)
        if self.cfg.norm_pix_loss:
            mean, var = true.mean(dim=-1, keepdim=True), true.var(dim=-1, keepdim=True)
            pred = pred * (var + 1e-6) ** 0.5 + mean
        m = mask[..., None]  # (B, L, 1)
        pasted = pred * m + true * (1 - m)

        def to_img(t):
            return (unpatchify(t, p) * self.std + self.mean).clamp(0, 1)

        return to_img(pred), to_img(pasted)
