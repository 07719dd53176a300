"""Measuring a tokenizer: how well its tokens describe images, against the thumbnail yardstick.

Shared by notebook 02 and the design check; the codebook statistics themselves are in ``vqgan.py``.
"""

import torch
import torch.nn.functional as F

from .vqgan import codebook_stats, encode_dataset, psnr


def thumbnail(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The reconstruction yardstick: images (B, 3, H, W) average-pooled by ``factor`` and upsampled back
    (bilinear). It has the token grid's resolution but three floats per cell instead of one code."""
    return F.interpolate(F.avg_pool2d(images, factor), scale_factor=factor, mode="bilinear", align_corners=False)


@torch.no_grad()
def reconstruction_quality(tokenizer, images_uint8: torch.Tensor, batch_size: int = 256, device="cpu") -> dict:
    """How well the tokens describe images uint8 (N, 3, H, W).

    Returns {"psnr", "psnr_thumbnail" (:func:`thumbnail` at the tokenizer's downsample factor),
    "usage", "perplexity", "counts" (:func:`codebook_stats` of the test ids), "ids" (N, h, w),
    "rec" (N, 3, H, W) float in [0, 1]}, tensors on the CPU.
    """
    ids = encode_dataset(tokenizer, images_uint8, batch_size, device)
    rec = torch.cat([tokenizer.decode_ids(ids[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(ids), batch_size)])
    x = torch.as_tensor(images_uint8).float() / 255.0  # (N, 3, H, W)
    return {"psnr": psnr(rec, x), "psnr_thumbnail": psnr(thumbnail(x, tokenizer.cfg.downsample), x),
            **codebook_stats(ids, tokenizer.codebook_size), "ids": ids, "rec": rec}
