"""VQGAN tokenizer for mage-lite: conv encoder -> vector quantizer -> conv decoder.

Follows MAGE's tokenizer (taming-style VQGAN without attention blocks, GroupNorm +
swish, input images in [0, 1]) at CIFAR scale: a 32 x 32 image becomes an 8 x 8 grid of
codebook ids with the default downsample factor 4. Trained with an L1/L2 reconstruction
loss, the VQ loss and a PatchGAN hinge loss with taming's adaptive weight. No LPIPS:
its pretrained backbone cannot be downloaded offline.

Codebook-collapse remedies are switches on the config: low-dimensional codes
(`code_dim`), l2-normalised codes (`l2_normalize`), k-means / data initialisation
(`init`) and dead-code restart (`restart_after`).
"""

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

INITS = ("kmeans", "data", "random")
REC_LOSSES = ("l1", "l2")


@dataclass
class VQGANConfig:
    image_size: int = 32          # input resolution (square images)
    downsample: int = 4           # spatial factor, a power of 2; 32 px -> 8 x 8 tokens
    channels: int = 64            # base conv width
    channel_mult: tuple = (1, 2)  # width multiplier per downsampling stage, len == log2(downsample);
                                  # stage i runs at image_size / 2**i and ends in a stride-2 conv
    res_blocks: int = 1           # residual blocks per stage (and in the middle, at token resolution)
    norm_groups: int = 32         # GroupNorm groups; must divide channels * m for every m in channel_mult
    codebook_size: int = 512      # number of codes K (Sonnet CIFAR-10 VQ-VAE recipe)
    code_dim: int = 32            # code dimension D; < encoder width = low-dim codes (ViT-VQGAN)
    l2_normalize: bool = True     # normalise z and codebook before lookup (ViT-VQGAN)
    init: str = "kmeans"          # codebook init from the first training batch: "kmeans" | "data" | "random"
    kmeans_iters: int = 10        # Lloyd iterations for init="kmeans"
    restart_after: int = 50       # training steps unused before a dead code is restarted; 0 disables
    beta: float = 0.25            # commitment weight (taming / VQ-VAE)
    rec_loss: str = "l1"          # pixel reconstruction loss: "l1" | "l2"
    disc_channels: int = 32       # PatchGAN base width
    disc_layers: int = 2          # PatchGAN stride-2 layers (32 px -> 6 x 6 patch logits)
    disc_start: int = 1000        # step at which the GAN terms switch on
    disc_weight: float = 0.5      # weight on the adaptive GAN term (taming: discriminator_weight)

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        ds = self.downsample
        if ds < 2 or ds & (ds - 1):
            raise ValueError(f"downsample must be a power of 2 >= 2, got {ds}.")
        if self.image_size < 1 or self.image_size % ds:
            raise ValueError(f"image_size must be a positive multiple of downsample={ds}, got {self.image_size}.")
        n_stages = int(math.log2(ds))
        if len(self.channel_mult) != n_stages or any(int(m) != m or m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult must hold log2(downsample)={n_stages} positive ints, got {self.channel_mult}.")
        if self.channels < 1 or self.norm_groups < 1:
            raise ValueError(f"channels and norm_groups must be >= 1, got {self.channels} and {self.norm_groups}.")
        if any((self.channels * m) % self.norm_groups for m in self.channel_mult):
            raise ValueError(f"norm_groups={self.norm_groups} must divide channels * m for every m in channel_mult.")
        if self.res_blocks < 0:
            raise ValueError(f"res_blocks must be >= 0, got {self.res_blocks}.")
        if self.codebook_size < 2 or self.code_dim < 1:
            raise ValueError(f"codebook_size must be >= 2 and code_dim >= 1, got {self.codebook_size} and {self.code_dim}.")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}.")
        if self.kmeans_iters < 0 or self.restart_after < 0:
            raise ValueError(f"kmeans_iters and restart_after must be >= 0, got {self.kmeans_iters} and {self.restart_after}.")
        if self.beta < 0 or self.disc_weight < 0:
            raise ValueError(f"beta and disc_weight must be >= 0, got {self.beta} and {self.disc_weight}.")
        if self.rec_loss not in REC_LOSSES:
            raise ValueError(f"rec_loss must be one of {REC_LOSSES}, got {self.rec_loss!r}.")
        if self.disc_channels < 1 or self.disc_layers < 1:
            raise ValueError(f"disc_channels and disc_layers must be >= 1, got {self.disc_channels} and {self.disc_layers}.")
        if self.image_size // 2 ** self.disc_layers < 3:
            raise ValueError(f"disc_layers={self.disc_layers} is too deep for image_size={self.image_size}: need image_size / 2**disc_layers >= 3.")
        if self.disc_start < 0:
            raise ValueError(f"disc_start must be >= 0, got {self.disc_start}.")

    @property
    def encoder_width(self) -> int:
        return self.channels * self.channel_mult[-1]


# ----------------------------------------------------------------------------- vector quantizer

def _sq_dists(x, codes):
    """Squared L2 distances (N, K) between rows of x (N, D) and codes (K, D)."""
    # expanded form: avoids materialising an (N, K, D) difference tensor
    return x.pow(2).sum(1, keepdim=True) - 2 * x @ codes.t() + codes.pow(2).sum(1)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook lookup with a straight-through gradient.

    forward(z): z (B, D, h, w) -> z_q (B, D, h, w), loss (), ids (B, h, w) int64.
    The loss is ||sg[z] - e||^2 + beta * ||z - sg[e]||^2 (codebook term weight 1,
    commitment term weight beta), each a mean over elements. With l2_normalize, z and the
    codebook are unit-normalised first and z_q lives on the unit sphere.

    State for the collapse remedies lives in buffers so checkpoints capture it:
    `initialized` (has the data / k-means init run) and `unused_steps` (K,) int64
    (consecutive training steps each code went unused).
    """

    def __init__(self, codebook_size, code_dim, beta=0.25, l2_normalize=False, init="random", kmeans_iters=10):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}.")
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.beta, self.l2_normalize = beta, l2_normalize
        self.init, self.kmeans_iters = init, kmeans_iters
        # taming's init; data / k-means init overwrite it on the first training batch
        self.codebook = nn.Parameter(torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size))
        self.register_buffer("initialized", torch.tensor(init == "random"))
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))

    def _flatten(self, z):
        """(B, D, h, w) -> (B*h*w, D) in the codebook's dtype, l2-normalised if enabled."""
        D = z.shape[1]
        # argmin and the VQ loss in full precision even under autocast: bf16 distances tie
        x = z.permute(0, 2, 3, 1).reshape(-1, D).to(self.codebook.dtype)  # (B*h*w, D)
        return F.normalize(x, dim=1) if self.l2_normalize else x

    def codes(self) -> torch.Tensor:
        """The codebook as the lookup compares it (l2-normalised when the quantizer normalises): (K, D)."""
        return F.normalize(self.codebook, dim=1) if self.l2_normalize else self.codebook

    def forward(self, z):
        B, D, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = self._flatten(z)  # (N, D), N = B*h*w
            codes = self.codes()  # (K, D)
            with torch.no_grad():
                ids = _sq_dists(x, codes).argmin(1)  # (N,)
            e = codes[ids]  # (N, D)
            loss = F.mse_loss(e, x.detach()) + self.beta * F.mse_loss(x, e.detach())
            # straight-through: forward value e, backward identity onto x
            z_q = x + (e - x).detach()
            z_q = z_q.view(B, h, w, D).permute(0, 3, 1, 2)  # (B, D, h, w)
        return z_q, loss, ids.view(B, h, w)

    def lookup(self, ids):
        """ids (B, h, w) int64 -> codes (B, D, h, w)."""
        return self.codes()[ids].permute(0, 3, 1, 2)  # (B, D, h, w)

    def _sample_rows(self, x, n):
        """n random rows of x (N, D); with replacement only when N < n."""
        idx = torch.randperm(len(x), device=x.device)[:n] if len(x) >= n else torch.randint(len(x), (n,), device=x.device)
        return x[idx]

    def _sync(self):
        # each rank saw its own batch: take rank 0's codebook so DDP replicas stay identical
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(self.codebook.data, src=0)

    @torch.no_grad()
    def init_codebook(self, z):
        """Data / k-means init of the codebook from encoder outputs z (B, D, h, w)."""
        x = self._flatten(z)
        codes = self._sample_rows(x, self.codebook_size)  # (K, D)
        iters = self.kmeans_iters if self.init == "kmeans" else 0
        for _ in range(iters):  # Lloyd; spherical k-means when l2-normalised
            ids = _sq_dists(x, codes).argmin(1)
            sums = torch.zeros_like(codes).index_add_(0, ids, x)
            counts = torch.bincount(ids, minlength=self.codebook_size)
            # empty clusters keep their centroid; dead-code restart deals with them later
            codes = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], codes)
            if self.l2_normalize:
                codes = F.normalize(codes, dim=1)
        self.codebook.copy_(codes)
        self._sync()
        self.initialized.fill_(True)
        self.unused_steps.zero_()

    @torch.no_grad()
    def restart_dead(self, z, restart_after):
        """Codes unused for >= restart_after steps get random encoder outputs of z (B, D, h, w)."""
        x = self._flatten(z)
        dead = self.unused_steps >= restart_after  # (K,)
        # sample for every code and select with where: no host sync, constant RNG use per step
        fresh = x[torch.randint(len(x), (self.codebook_size,), device=x.device)]  # (K, D)
        self.codebook.copy_(torch.where(dead[:, None], fresh, self.codebook))
        self._sync()
        self.unused_steps.masked_fill_(dead, 0)

    @torch.no_grad()
    def update_usage(self, ids):
        used = torch.bincount(ids.flatten(), minlength=self.codebook_size) > 0
        self.unused_steps.add_(1).masked_fill_(used, 0)


def _usage_perplexity(ids, codebook_size):
    """Tensor version of codebook_stats: (usage (), perplexity (), counts (K,))."""
    counts = torch.bincount(ids.flatten(), minlength=codebook_size)
    p = counts.float() / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-30))).sum()  # p=0 terms contribute 0
    return (counts > 0).float().mean(), entropy.exp(), counts


def codebook_stats(ids: torch.Tensor, codebook_size: int) -> dict:
    """ids (any shape) int64 -> {"usage": float, "perplexity": float, "counts": (K,) int64}.

    usage = fraction of codes used at least once; perplexity = exp(entropy of the code
    frequencies), between 1 (one code) and K (uniform). Both depend on how many ids are given.
    """
    usage, perplexity, counts = _usage_perplexity(ids.long(), codebook_size)
    return {"usage": usage.item(), "perplexity": perplexity.item(), "counts": counts}


# ----------------------------------------------------------------------------- conv nets

class ResBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H, W): two GroupNorm-swish-conv3x3 with a skip."""

    def __init__(self, c_in, c_out, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, code_dim, H/ds, W/ds) pre-quantization features."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        widths = [cfg.channels * m for m in cfg.channel_mult]
        g = cfg.norm_groups
        self.conv_in = nn.Conv2d(3, widths[0], 3, padding=1)
        layers, c = [], widths[0]
        for w in widths:
            for _ in range(cfg.res_blocks):
                layers.append(ResBlock(c, w, g))
                c = w
            if c != w:  # res_blocks == 0: still reach this stage's width
                layers.append(nn.Conv2d(c, w, 1))
                c = w
            layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers += [ResBlock(c, c, g) for _ in range(cfg.res_blocks)]
        self.blocks = nn.Sequential(*layers)
        self.norm_out = nn.GroupNorm(g, c)
        self.proj = nn.Conv2d(c, cfg.code_dim, 1)  # into the (low-dim) code space

    def forward(self, x):
        h = self.blocks(self.conv_in(x))
        return self.proj(F.silu(self.norm_out(h)))


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C, 2H, 2W): nearest neighbour then conv3x3 (no checkerboard)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    """(B, code_dim, h, w) codes -> (B, 3, h*ds, w*ds) images in ~[0, 1] (not clamped)."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        widths = [cfg.channels * m for m in cfg.channel_mult]
        g = cfg.norm_groups
        c = widths[-1]
        self.proj = nn.Conv2d(cfg.code_dim, c, 1)  # out of the code space
        layers = [ResBlock(c, c, g) for _ in range(cfg.res_blocks)]
        for w in reversed(widths):  # mirror of the encoder
            layers.append(Upsample(c))
            for _ in range(cfg.res_blocks):
                layers.append(ResBlock(c, w, g))
                c = w
            if c != w:
                layers.append(nn.Conv2d(c, w, 1))
                c = w
        self.blocks = nn.Sequential(*layers)
        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)  # its weight is the adaptive weight's "last layer"

    def forward(self, z):
        h = self.blocks(self.proj(z))
        return self.conv_out(F.silu(self.norm_out(h)))


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / taming NLayerDiscriminator): (B, 3, H, W) -> (B, 1, H/2**L - 2, W/2**L - 2) logits."""

    def __init__(self, channels=32, layers=2):
        super().__init__()
        mods = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for n in range(1, layers + 1):
            c_next = channels * min(2 ** n, 8)
            stride = 2 if n < layers else 1  # the last hidden layer keeps resolution, as in pix2pix
            mods += [nn.Conv2d(c, c_next, 4, stride, 1, bias=False), nn.BatchNorm2d(c_next), nn.LeakyReLU(0.2)]
            c = c_next
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        for m in self.modules():  # DCGAN init, as pix2pix / taming
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.net(x)


# ----------------------------------------------------------------------------- VQGAN

class VQGAN(nn.Module):
    """Tokenizer: images (B, 3, H, W) in [0, 1] <-> ids (B, H/ds, W/ds) int64 in [0, K)."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, cfg.beta, cfg.l2_normalize,
                                         cfg.init, cfg.kmeans_iters)
        self.decoder = Decoder(cfg)
        self.discriminator = PatchDiscriminator(cfg.disc_channels, cfg.disc_layers)

    @property
    def num_tokens(self) -> int:
        return (self.cfg.image_size // self.cfg.downsample) ** 2

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def no_weight_decay(self):
        """Parameter names the training loop keeps out of AdamW's decay: decay would pull codes to 0."""
        return ("quantizer.codebook",)

    def encode_continuous(self, imgs):
        """imgs (B, 3, H, W) -> (B, code_dim, h, w), before l2-norm and lookup."""
        return self.encoder(imgs)

    def encode_features(self, imgs):
        """imgs (B, 3, H, W) -> (features (B, L, code_dim), ids (B, L)) from one encoder pass.

        The features are what the quantizer compares with the codebook (l2-normalised when
        the codebook is): the unquantized input of notebook 05's continuous MAGE, whose
        nearest code is exactly ``ids``.
        """
        z = self.encoder(imgs)  # (B, code_dim, h, w)
        B, C = z.shape[:2]
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = self.quantizer._flatten(z)  # (B*L, C)
            ids = _sq_dists(x, self.quantizer.codes()).argmin(1)  # (B*L,)
        return x.view(B, -1, C), ids.view(B, -1)  # (B, L, C), (B, L)

    def encode_to_ids(self, imgs):
        """imgs (B, 3, H, W) -> ids (B, h, w) int64."""
        return self.quantizer(self.encoder(imgs))[2]

    def decode_ids(self, ids):
        """ids (B, h, w) int64 -> images (B, 3, H, W), clamped to [0, 1]."""
        return self.decoder(self.quantizer.lookup(ids)).clamp(0, 1)

    def forward(self, imgs):
        """imgs (B, 3, H, W) -> rec (B, 3, H, W) unclamped, vq_loss (), ids (B, h, w)."""
        z_q, vq_loss, ids = self.quantizer(self.encoder(imgs))
        return self.decoder(z_q), vq_loss, ids

    def _adaptive_weight(self, rec_loss, g_loss):
        """taming's ||grad_last(rec)|| / (||grad_last(gan)|| + 1e-4), clamped to [0, 1e4], detached."""
        last = self.decoder.conv_out.weight
        g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
        g_gan = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        # float32 norms: under bf16 autocast the grads of the fp32 leaf are fp32 anyway, but be explicit
        w = g_rec.float().norm() / (g_gan.float().norm() + 1e-4)
        return w.clamp(0.0, 1e4).detach()

    def training_loss(self, imgs, step: int):
        """imgs (B, 3, H, W) in [0, 1] -> (loss, logs) for one shared optimizer.

        loss.backward() gives the generator rec + vq + disc_weight * adaptive_w * g_loss and
        the discriminator only its hinge loss. In training mode this also runs the codebook
        init (first call) or dead-code restart, and updates the usage counters.
        """
        cfg = self.cfg
        z = self.encoder(imgs)  # (B, code_dim, h, w)
        vq = self.quantizer
        if self.training:
            # before the lookup: the codebook must not change after the graph has used it
            if not vq.initialized:
                vq.init_codebook(z.detach())
            elif cfg.restart_after > 0:
                vq.restart_dead(z.detach(), cfg.restart_after)
        z_q, vq_loss, ids = vq(z)
        if self.training:
            vq.update_usage(ids)
        rec = self.decoder(z_q)  # (B, 3, H, W)

        diff = rec.float() - imgs.float()
        rec_loss = diff.abs().mean() if cfg.rec_loss == "l1" else diff.pow(2).mean()
        zero = rec_loss.new_zeros(())
        g_loss, d_loss, adaptive = zero, zero, zero
        if step >= cfg.disc_start:  # before that D is skipped: no gradient, no BN-stat updates
            disc = self.discriminator
            flags = [p.requires_grad for p in disc.parameters()]
            disc.requires_grad_(False)  # autograd records at op time: g_loss leaves no grad on D
            try:
                g_loss = -disc(rec).float().mean()
            finally:
                for p, f in zip(disc.parameters(), flags):
                    p.requires_grad_(f)
            if rec.requires_grad:  # no graph under torch.no_grad() (validation)
                adaptive = self._adaptive_weight(rec_loss, g_loss)
            # rec.detach(): the hinge loss must not reach the generator
            logits_real = disc(imgs).float()
            logits_fake = disc(rec.detach()).float()
            d_loss = 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())

        loss = rec_loss + vq_loss + cfg.disc_weight * adaptive * g_loss + d_loss
        usage, perplexity, _ = _usage_perplexity(ids, cfg.codebook_size)
        logs = {"rec_loss": rec_loss, "vq_loss": vq_loss, "g_loss": g_loss, "d_loss": d_loss,
                "adaptive_weight": adaptive, "usage": usage, "perplexity": perplexity}
        return loss, {k: v.detach() for k, v in logs.items()}


# ----------------------------------------------------------------------------- helpers

@torch.no_grad()
def encode_dataset(model, images_uint8, batch_size=256, device="cpu"):
    """images uint8 (N, 3, H, W) -> ids (N, h, w) int64 on the CPU, encoded in eval mode."""
    images = torch.as_tensor(images_uint8)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}.")
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float() / 255.0  # (b, 3, H, W) in [0, 1]
        out.append(model.encode_to_ids(x).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def encode_dataset_features(model, images_uint8, batch_size=256, device="cpu"):
    """images uint8 (N, 3, H, W) -> (features (N, L, code_dim) float32, ids (N, L) int64), on the CPU, in eval mode."""
    images = torch.as_tensor(images_uint8)
    was_training = model.training
    model.eval()
    feats, ids = [], []
    for i in range(0, len(images), batch_size):
        f, t = model.encode_features(images[i:i + batch_size].to(device).float() / 255.0)
        feats.append(f.float().cpu()), ids.append(t.cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(ids)


def psnr(x, y) -> float:
    """Mean over images of per-image PSNR (dB) for x, y (B, 3, H, W) in [0, 1], both clamped to [0, 1]."""
    mse = (x.float().clamp(0, 1) - y.float().clamp(0, 1)).pow(2).flatten(1).mean(1)  # (B,)
    return (10 * torch.log10(1.0 / mse.clamp(min=1e-10))).mean().item()
