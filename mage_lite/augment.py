"""Batched augmentation on the training device, so no DataLoader workers are needed.

The whole training set lives on the device as one uint8 tensor; each step draws random
indices and applies RandomResizedCrop + horizontal flip to the batch at once with
``affine_grid``/``grid_sample``.
"""

import math

import torch
import torch.nn.functional as F

_TRIES = 10  # as torchvision: draw up to 10 (area, ratio) pairs before falling back to the full image


def random_resized_crop(
    imgs: torch.Tensor,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: bool = True,
    out_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """RandomResizedCrop (+ optional horizontal flip) applied per sample to a batch.

    imgs: (B, C, H, W) float. Each sample gets its own crop whose area is a uniform
    fraction in ``scale`` of the image and whose aspect ratio is log-uniform in ``ratio``;
    the crop is resized to ``out_size`` (default H) with bilinear sampling. Returns
    (B, C, S, S).
    """
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
    B, C, H, W = imgs.shape
    S = out_size or H
    dev = imgs.device
    area = torch.empty(B, _TRIES, device=dev).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(B, _TRIES, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    # Crop sides as fractions of the image side (the image is treated as the unit square).
    w = torch.sqrt(area * log_r.exp() * H / W)  # (B, tries)
    h = torch.sqrt(area / log_r.exp() * W / H)
    fits = (w <= 1) & (h <= 1)
    first = fits.float().argmax(dim=1, keepdim=True)  # first try that fits, per sample
    any_fit = fits.any(dim=1)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), torch.ones(B, device=dev))  # (B,)
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), torch.ones(B, device=dev))
    # Crop centre in normalised [-1, 1] coordinates, so the crop stays inside the image.
    cx = (torch.rand(B, device=dev, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(B, device=dev, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.ones(B, device=dev)
    if hflip:
        flip = torch.where(torch.rand(B, device=dev, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3, device=dev, dtype=imgs.dtype)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, (B, C, S, S), align_corners=False)  # (B, S, S, 2)
    return F.grid_sample(imgs, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_float(imgs_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255] -> float32 in [0, 1]."""
    return imgs_uint8.float().div_(255.0)


class BatchSampler:
    """Draws augmented training batches from a uint8 image tensor held on ``device``.

    ``sampler(batch_size, generator)`` returns float images in [0, 1], (B, 3, H, W), or with
    ``views=2`` two independent augmentations of each image, (B, 2, 3, H, W) (MAGE-C). Under
    DDP each process has its own generator (seeded by rank), so each samples its own shard.
    """

    def __init__(
        self,
        images: torch.Tensor,
        device: torch.device | str = "cpu",
        crop_scale: tuple[float, float] = (0.2, 1.0),
        hflip: bool = True,
        augment: bool = True,
        views: int = 1,
    ):
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {views}")
        self.images = images.to(device)  # (N, 3, H, W) uint8
        self.device = torch.device(device)
        self.crop_scale = tuple(crop_scale)
        self.hflip = hflip
        self.augment = augment
        self.views = views

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(len(self.images), (batch_size,), device=self.device, generator=generator)
        batch = to_float(self.images[idx])  # (B, 3, H, W)
        if not self.augment:
            return batch if self.views == 1 else torch.stack([batch, batch], dim=1)
        if self.views == 1:
            return random_resized_crop(batch, self.crop_scale, hflip=self.hflip, generator=generator)
        B = len(batch)
        both = random_resized_crop(batch.repeat(2, 1, 1, 1), self.crop_scale, hflip=self.hflip, generator=generator)  # (2B, ...)
        return torch.stack([both[:B], both[B:]], dim=1)  # (B, 2, 3, H, W)
