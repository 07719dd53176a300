"""MAGE (Li et al., CVPR 2023) at CIFAR scale: one model for representation and generation.

Read top to bottom, this file follows the paper (docs/method.md section 3):

1. Tokens. A frozen VQGAN turns an image into L token ids over a codebook of K codes.
2. Variable masking. A masking ratio is drawn once per batch from a truncated Gaussian
   (mean about 0.69); that fraction of the tokens is masked, and of those, half of the
   sequence is dropped from the encoder. The rest of the masked positions enter it as [MASK].
3. Encoder. A fake class token [C0] sits at position 0, before the token sequence. The ViT
   encoder reads [C0] and the kept tokens, each with its learned position embedding.
4. [C] padding. The decoder's input is the encoder's output scattered back to its positions,
   with every masked position filled with [C], the projected encoder output at position 0.
5. Decoder and head. A shallower transformer, then logits over the codebook through a head
   tied to the (detached) token embedding.
6. Loss. Label-smoothed cross-entropy on the masked positions only.

Entry points: ``training_loss(batch, step)`` for training, ``features(x)`` for probing,
``logits_for(ids)`` for iterative decoding (mage_lite.generate). The variants the later
notebooks study subclass this model: MAGE-C (mage_c.py, notebook 04) and the
continuous-input arm (mage_continuous.py, notebook 05).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Block, FixedPosEmbed, LearnedPosEmbed, init_weights, pooled_features, sincos_pos_embed_2d
from .masking import Fixed, make_ratio_dist, mask_count, mask_tokens

PADDINGS = ("cls", "mask_token")
DECODER_POS = ("learned", "sincos", "learned_sincos")
LOSS_ON = ("masked", "all")


@dataclass
class MAGEConfig:
    codebook_size: int = 512  # tokenizer codebook size K; set it from the tokenizer (vqgan.codebook_size)
    num_tokens: int = 64  # token sequence length L: the 8 x 8 grid of a 32 px image at downsample 4
    dim: int = 192  # encoder width
    depth: int = 6  # encoder blocks
    heads: int = 3  # encoder attention heads
    decoder_dim: int = 0  # decoder width; 0 = dim (official: the decoder is as wide as the encoder); read cfg.dec_dim
    decoder_depth: int = 2  # decoder blocks (official: 8; scaled down)
    decoder_heads: int = 0  # decoder attention heads; 0 = heads; read cfg.dec_heads
    mlp_ratio: float = 4.0  # MLP hidden width / block width
    dropout: float = 0.1  # dropout after the embedding and inside every block (official: 0.1)
    mask_ratio: str = "truncnorm"  # ratio distribution: "truncnorm" (N(0.55, 0.25) on [0.5, 1]), "fixed:R", "uniform:A,B"
    per_sample_ratio: bool = False  # one ratio per image instead of one per batch (official: per batch)
    drop_ratio: float = 0.5  # fraction of tokens dropped from the encoder (official: the ratio's lower bound 0.5)
    padding: str = "cls"  # what fills masked positions in the decoder: "cls" ([C], MAGE) | "mask_token" (MAE-style)
    # decoder position embedding: "learned" (official: learned, init std 0.02) | "sincos" (fixed 2D sin-cos as MAE's
    # decoder: a buffer, no gradient, a zero row at position 0) | "learned_sincos" (learned, initialised from that table)
    decoder_pos: str = "learned"
    # multiplies the sin-cos table of "sincos" / "learned_sincos" (1 = MAE's table, entries of RMS 1/sqrt 2); [C] has
    # entries of order 1, so at 2 the position, not [C], dominates a masked position's input (docs/method.md 7.2)
    decoder_pos_scale: float = 1.0
    loss_on: str = "masked"  # cross-entropy on "masked" positions only (MAGE) | "all" positions (the ablation)
    label_smoothing: float = 0.1  # label smoothing of the cross-entropy (official: 0.1)

    def __post_init__(self):
        if self.codebook_size < 2 or self.num_tokens < 1:
            raise ValueError(f"mage.codebook_size must be >= 2 and mage.num_tokens >= 1, got {self.codebook_size} and {self.num_tokens}")
        for name in ("dim", "depth", "heads", "decoder_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"mage.{name} must be at least 1, got {getattr(self, name)}")
        if self.decoder_dim < 0 or self.decoder_heads < 0:
            raise ValueError("mage.decoder_dim and mage.decoder_heads must be >= 1, or 0 for the encoder's value")
        if self.dim % self.heads or self.dec_dim % self.dec_heads:
            raise ValueError(f"mage.dim ({self.dim}) and the decoder width ({self.dec_dim}) must be multiples of their head counts ({self.heads}, {self.dec_heads})")
        if self.mlp_ratio <= 0 or not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("mage.mlp_ratio must be > 0, and mage.dropout and mage.label_smoothing in [0, 1)")
        if not 0.0 <= self.drop_ratio <= 1.0:
            raise ValueError(f"mage.drop_ratio must be in [0, 1], got {self.drop_ratio}")
        dist = make_ratio_dist(self.mask_ratio)  # raises on a bad spec
        n_drop, n_mask_min = mask_count(self.num_tokens, self.drop_ratio), mask_count(self.num_tokens, dist.low)
        if n_drop > n_mask_min:
            raise ValueError(f"mage.drop_ratio {self.drop_ratio} must not exceed the lowest masking ratio {dist.low} of {self.mask_ratio!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"mage.padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.decoder_pos not in DECODER_POS:
            raise ValueError(f"mage.decoder_pos must be one of {DECODER_POS}, got {self.decoder_pos!r}")
        if self.decoder_pos != "learned":
            if math.isqrt(self.num_tokens) ** 2 != self.num_tokens:
                raise ValueError(f"mage.decoder_pos={self.decoder_pos!r} lays the tokens on a square grid, but "
                                 f"mage.num_tokens={self.num_tokens} is not a square; use decoder_pos='learned'")
            if self.dec_dim % 4:
                raise ValueError(f"mage.decoder_pos={self.decoder_pos!r} needs a decoder width divisible by 4, "
                                 f"got {self.dec_dim}")
        if not self.decoder_pos_scale > 0:
            raise ValueError(f"mage.decoder_pos_scale must be > 0, got {self.decoder_pos_scale}")
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"mage.loss_on must be one of {LOSS_ON}, got {self.loss_on!r}")

    # Resolved at use, not in __post_init__, so that dataclasses.replace(cfg, dim=...) moves the decoder too.
    @property
    def dec_dim(self) -> int:
        return self.decoder_dim or self.dim

    @property
    def dec_heads(self) -> int:
        return self.decoder_heads or self.heads


class MAGE(nn.Module):
    """Masked token model. Token ids (B, L) in [0, K) -> logits (B, L, K) over the codebook.

    Vocabulary: the K codes, then [MASK] (id K), then [C0] (id K + 1).
    """

    def __init__(self, cfg: MAGEConfig):
        super().__init__()
        self.cfg = cfg
        self.mask_id, self.c0_id = cfg.codebook_size, cfg.codebook_size + 1
        self.ratio_dist = make_ratio_dist(cfg.mask_ratio)
        self._tokenizer: list = []  # a plain list: the frozen VQGAN is no submodule, so not in state_dict
        # The parts in the order of the paper. A subclass extends a part by overriding its builder:
        # the order of construction fixes the random draws and the parameter order.
        self._build_embedding()
        self._build_encoder()
        self._build_decoder()
        self._build_head()
        self._init_weights()

    def _build_embedding(self):
        """The token embedding: one row per code, [MASK] and [C0] (K + 2 rows of width D)."""
        self.token_emb = nn.Embedding(self.cfg.codebook_size + 2, self.cfg.dim)

    def _build_encoder(self):
        """Learned position embedding -> LayerNorm -> dropout (BERT-style embedding), then the ViT blocks."""
        cfg = self.cfg
        self.pos_embed = LearnedPosEmbed(cfg.num_tokens + 1, cfg.dim)  # position 0 is [C0]
        self.emb_norm = nn.LayerNorm(cfg.dim)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def _build_decoder(self):
        """Projection to the decoder width, the padding, the decoder position embedding and blocks."""
        cfg, L, Dd = self.cfg, self.cfg.num_tokens, self.cfg.dec_dim
        self.decoder_embed = nn.Linear(cfg.dim, Dd)
        if cfg.padding == "mask_token":  # MAE-style: one learned vector instead of [C]
            self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        if cfg.decoder_pos == "learned":  # the official one; the default path draws exactly what it always drew
            self.decoder_pos_embed = LearnedPosEmbed(L + 1, Dd)
        else:  # 2D sin-cos over the sqrt(L) x sqrt(L) grid, a zero row for position 0 ([C0] / [C])
            table = cfg.decoder_pos_scale * sincos_pos_embed_2d(Dd, math.isqrt(L), cls_token=True)  # (1+L, Dd)
            self.decoder_pos_embed = (FixedPosEmbed(table) if cfg.decoder_pos == "sincos"
                                      else LearnedPosEmbed(L + 1, Dd, init=table))
        self.decoder_blocks = nn.ModuleList(
            Block(Dd, cfg.dec_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(Dd)

    def _build_head(self):
        """Linear -> GELU -> LayerNorm, then logits against the detached token embedding + a bias."""
        cfg = self.cfg
        self.head_fc = nn.Linear(cfg.dec_dim, cfg.dim)
        self.head_norm = nn.LayerNorm(cfg.dim)
        self.head_bias = nn.Parameter(torch.zeros(cfg.codebook_size + 2))

    def _init_weights(self):
        """ViT-style linears and LayerNorms, then N(0, 0.02^2) for the embedding (and mask token), as the official code."""
        self.apply(init_weights)
        nn.init.normal_(self.token_emb.weight, std=0.02)
        if self.cfg.padding == "mask_token":
            nn.init.normal_(self.mask_token, std=0.02)

    def no_weight_decay(self):
        names = ["pos_embed.weight"]
        if self.cfg.decoder_pos != "sincos":  # the fixed sin-cos table is a buffer, not a parameter
            names.append("decoder_pos_embed.weight")
        return tuple(names + (["mask_token"] if self.cfg.padding == "mask_token" else []))

    # --- 1. tokens -----------------------------------------------------------------
    def set_tokenizer(self, vqgan: nn.Module) -> "MAGE":
        """Attach a trained VQGAN (frozen, eval mode). It is kept out of parameters() and state_dict."""
        if vqgan.codebook_size != self.cfg.codebook_size or vqgan.num_tokens != self.cfg.num_tokens:
            raise ValueError(
                f"the tokenizer makes {vqgan.num_tokens} tokens from {vqgan.codebook_size} codes but the model expects "
                f"{self.cfg.num_tokens} from {self.cfg.codebook_size}; set mage.codebook_size / num_tokens from the tokenizer")
        vqgan.eval().requires_grad_(False)
        self._tokenizer = [vqgan]
        return self

    @property
    def tokenizer(self) -> nn.Module:
        if not self._tokenizer:
            raise RuntimeError("no tokenizer attached: call model.set_tokenizer(vqgan) first")
        return self._tokenizer[0]

    @torch.no_grad()
    def tokenize(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs (B, 3, H, W) float in [0, 1] -> ids (B, L) int64, in full precision even under autocast."""
        return self._tokenizer_outputs(imgs)[1]

    @torch.no_grad()
    def _tokenizer_outputs(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """imgs (B, 3, H, W) in [0, 1] -> the frozen tokenizer's (unquantized features (B, L, C), ids (B, L))."""
        tok = self.tokenizer
        if next(tok.parameters()).device != imgs.device:  # model.to(device) does not move it
            tok.to(imgs.device)
        tok.eval()
        with torch.autocast(device_type=imgs.device.type, enabled=False):
            return tok.encode_features(imgs.float())  # (B, L, C), (B, L)

    def encode_images(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """imgs (B, 3, H, W) in [0, 1] -> (what the encoder reads, target ids (B, L)): here both are the ids."""
        ids = self.tokenize(imgs)  # (B, L)
        return ids, ids

    # --- 2. variable masking -------------------------------------------------------
    def sample_mask(self, batch: int, device, ratio: float | None = None, generator=None):
        """(masked, dropped), each (B, L) bool, drawn as in training (or at a fixed ``ratio``)."""
        dist = self.ratio_dist if ratio is None else Fixed(ratio)
        m = mask_tokens(batch, self.cfg.num_tokens, dist, self.cfg.drop_ratio, self.cfg.per_sample_ratio, generator, device)
        return m.masked, m.dropped

    def _check_mask(self, ids, masked, dropped):
        """A mask given by the caller: masked, dropped (B, L) bool, dropped (default: nothing) within masked."""
        B, L = ids.shape
        if masked is None:
            raise ValueError("give `masked` whenever `dropped` is given")
        masked = masked.reshape(B, L).bool()
        dropped = torch.zeros_like(masked) if dropped is None else dropped.reshape(B, L).bool()
        n = dropped.sum(1)
        if (dropped & ~masked).any() or (n != n[0]).any():
            raise ValueError("`dropped` must be a subset of `masked` with the same number of dropped tokens in every row")
        return masked, dropped

    # --- 3. encoder ----------------------------------------------------------------
    def embed_tokens(self, ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """ids (B, L), masked (B, L) bool -> (B, L, D): each token's embedding, [MASK]'s where masked."""
        return self.token_emb(ids.masked_fill(masked, self.mask_id))

    def _embed(self, inp: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """The encoder's input sequence: [C0], then :meth:`embed_tokens` of ``inp``, with position
        embeddings, LayerNorm and dropout -> (B, 1+L, D)."""
        x = self.embed_tokens(inp, masked)  # (B, L, D)
        c0 = self.token_emb(inp.new_full((inp.shape[0], 1), self.c0_id, dtype=torch.long))  # (B, 1, D)
        x = self.pos_embed(torch.cat([c0.to(x.dtype), x], dim=1))  # (B, 1+L, D)
        return self.emb_drop(self.emb_norm(x))

    @staticmethod
    def _kept_index(dropped: torch.Tensor) -> torch.Tensor:
        """dropped (B, L) bool -> positions in the (1+L) sequence that the encoder sees, (B, 1+N) ascending, 0 first."""
        B, L = dropped.shape
        n_keep = L - int(dropped[0].sum())  # equal in every row (checked / by construction)
        order = torch.sort(dropped.to(torch.uint8), dim=1, stable=True).indices[:, :n_keep]  # kept, original order
        return torch.cat([order.new_zeros(B, 1), order + 1], dim=1)  # (B, 1+N)

    def forward_encoder(self, inp, masked, dropped):
        """inp: ids (B, L); masked, dropped (B, L) bool
        -> (latent (B, 1+N, D), kept index (B, 1+N)), N = L - #dropped."""
        x = self._embed(inp, masked)  # (B, 1+L, D)
        idx = self._kept_index(dropped)  # (B, 1+N)
        x = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))  # (B, 1+N, D): dropped positions leave
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), idx

    # --- 4. [C] padding ------------------------------------------------------------
    def decoder_input(self, latent, idx, masked):
        """The padded decoder input (B, 1+L, Dd), before the decoder position embedding.

        latent (B, 1+N, D) and idx (B, 1+N) from the encoder. Every position starts as the
        padding ([C] = the projected position-0 output, or the learned mask token); the kept
        outputs are scattered back to their positions; then every masked position is
        overwritten with the padding again.
        """
        x = self.decoder_embed(latent)  # (B, 1+N, Dd)
        B, L = masked.shape
        Dd = x.shape[2]
        if self.cfg.padding == "cls":
            pad = x[:, :1].expand(B, L + 1, Dd)  # (B, 1+L, Dd): [C] everywhere
        else:
            pad = self.mask_token.to(x.dtype).expand(B, L + 1, Dd)
        full = pad.scatter(1, idx[..., None].expand(-1, -1, Dd), x)  # (B, 1+L, Dd)
        m = torch.cat([masked.new_zeros(B, 1), masked], dim=1)  # (B, 1+L): position 0 never masked
        return torch.where(m[..., None], pad, full)

    # --- 5. decoder and head -------------------------------------------------------
    def forward_decoder(self, latent, idx, masked):
        """latent (B, 1+N, D), idx (B, 1+N), masked (B, L) -> logits over the codebook (B, L, K) (position 0 dropped)."""
        x = self.decoder_pos_embed(self.decoder_input(latent, idx, masked))  # (B, 1+L, Dd)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.head(self.decoder_norm(x))[:, 1:]

    def code_vectors(self) -> torch.Tensor:
        """(K+2, D) the rows the head scores against: the token embedding, detached (tied to the input,
        which trains it; no gradient reaches it through the head)."""
        return self.token_emb.weight.detach()

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, Dd) -> logits (B, T, K): Linear -> GELU -> LayerNorm -> h @ E^T + b, E = :meth:`code_vectors`."""
        h = self.head_norm(F.gelu(self.head_fc(x)))  # (B, T, D)
        E = self.code_vectors()  # (K+2, D)
        logits = h @ E.t().to(h.dtype) + self.head_bias.to(h.dtype)  # (B, T, K+2)
        return logits[..., : self.cfg.codebook_size]  # (B, T, K): [MASK] and [C0] are never targets

    # --- 6. loss -------------------------------------------------------------------
    def forward_loss(self, ids, logits, mask):
        """ids (B, L), logits (B, L, K), mask (B, L) float -> label-smoothed cross-entropy, averaged over
        the masked positions (or all with loss_on='all')."""
        B, L, K = logits.shape
        ce = F.cross_entropy(logits.float().reshape(B * L, K), ids.reshape(B * L),
                             label_smoothing=self.cfg.label_smoothing, reduction="none").view(B, L)  # (B, L)
        w = mask if self.cfg.loss_on == "masked" else torch.ones_like(mask)
        return (ce * w).sum() / w.sum().clamp(min=1)

    def forward(self, ids, masked=None, dropped=None, ratio: float | None = None, generator=None):
        """ids (B, L) (or (B, h, w)) int64 -> (loss, logits (B, L, K), mask (B, L) float, 1 = masked).

        The masking is drawn as in training unless ``masked`` (and optionally ``dropped``,
        default: nothing dropped) is given, or a fixed ``ratio`` is asked for (a ratio whose
        mask count is below the drop count is refused by mask_tokens).
        """
        ids = ids.flatten(1)  # (B, L)
        return self._reconstruct(ids, ids, masked, dropped, ratio, generator)[:3]

    def _reconstruct(self, inp, ids, masked=None, dropped=None, ratio=None, generator=None):
        """One masked pass: the encoder reads ``inp`` (the ids (B, L) themselves, for MAGE), the loss
        targets ``ids`` (B, L) -> (loss, logits (B, L, K), mask (B, L) float, latent (B, 1+N, D))."""
        if masked is None and dropped is None:
            masked, dropped = self.sample_mask(ids.shape[0], ids.device, ratio, generator)
        else:
            masked, dropped = self._check_mask(ids, masked, dropped)
        latent, idx = self.forward_encoder(inp, masked, dropped)
        logits = self.forward_decoder(latent, idx, masked)
        mask = masked.float()
        return self.forward_loss(ids, logits, mask), logits, mask, latent

    # --- training ------------------------------------------------------------------
    def training_loss(self, batch: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """The training entry point: batch -> (loss, logs), for mage_lite.train.fit.

        batch: images (B, 3, H, W) in [0, 1] (tokenized on the fly) or token ids (B, L) (from a
        token bank). Logs: masked-token accuracy, the masking ratio and the mode share.
        """
        loss, logs, _, _ = self._training_pass(batch)
        return loss, logs

    def _training_pass(self, batch: torch.Tensor):
        """:meth:`training_loss` plus what MAGE-C reads further: (loss, logs, encoder input, latent (B, 1+N, D))."""
        if batch.is_floating_point():
            inp, ids = self.encode_images(batch)
        else:
            inp = ids = batch.flatten(1)  # (B, L)
        loss, logits, mask, latent = self._reconstruct(inp, ids)
        with torch.no_grad():
            pred = logits.argmax(-1)  # (B, L)
            correct = (pred == ids).float()  # (B, L)
            logs = {"acc": (correct * mask).sum() / mask.sum().clamp(min=1), "mask_ratio": mask.mean(),
                    # the [C]-padding trap (docs/method.md 7.2): share of masked positions given the image's mode
                    "mode_share": mode_counts(pred, mask.bool()).sum() / mask.sum().clamp(min=1)}
        return loss, logs, inp, latent

    # --- generation ----------------------------------------------------------------
    def logits_for(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) with [MASK] (id K) at unknown positions -> logits (B, L, K); nothing dropped.

        The caller sets eval mode and no_grad (see mage_lite.generate)."""
        ids = ids.flatten(1)  # (B, L)
        masked = ids == self.mask_id
        dropped = torch.zeros_like(masked)
        latent, idx = self.forward_encoder(ids, masked, dropped)
        return self.forward_decoder(latent, idx, masked)

    # --- representation ------------------------------------------------------------
    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The probing entry point: encoder features of the whole, unmasked input.

        x: images (B, 3, H, W) float in [0, 1] (tokenized here) or what the encoder reads
        (token ids (B, L)). Returns {"avg": (B, D) mean of the image tokens after the final
        norm, "c0": (B, D) position 0 after the final norm, "block_i": (B, D) mean of the image
        tokens after block i, for i = 1..depth}.
        """
        if x.is_floating_point() and x.dim() == 4:  # images
            x = self.encode_images(x)[0]
        inp = x if x.is_floating_point() else x.flatten(1)  # ids (B, L); a subclass may read (B, L, C) features
        h = self._embed(inp, torch.zeros(inp.shape[:2], dtype=torch.bool, device=inp.device))  # (B, 1+L, D)
        return pooled_features(h, self.blocks, self.norm, first="c0")


def mode_counts(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred (B, L) predicted ids, mask (B, L) bool of masked positions -> (B,) int64: how many of
    each image's masked positions get that image's most common prediction among its masked
    positions (0 for an image with nothing masked).

    Summed over images and divided by the number of masked positions this is the mode share
    (``mage_eval.mode_share``). Which id wins a tie does not change the count. Costs a
    (B, L, L) comparison; no random numbers, no gradient needed.
    """
    same = pred[:, :, None] == pred[:, None, :]  # (B, L, L): position i predicts what position j predicts
    counts = (same & mask[:, None, :]).sum(-1)  # (B, L): masked positions sharing position i's prediction
    return counts.masked_fill(~mask, 0).amax(1)  # (B,): the count of the most common masked prediction
