"""A token bank: the frozen tokenizer's ids of V augmented views of every training image, built once.

MAGE trains on a frozen tokenizer, so tokenizing every augmented crop again at every step
repeats the same kind of work a few hundred thousand times. The bank draws V augmented views
of each training image (RandomResizedCrop with the preset's scale + flip, exactly as the
on-the-fly sampler draws them), tokenizes them once, and keeps the ids as a compact integer
tensor (N, V, L) on disk, beside the models that use it. Training then samples (image, view)
pairs from it: an index gather instead of a tokenizer pass.

With V views a run that sees E epochs uses each view about E / V times; the official code
tokenizes on the fly (a fresh crop every time), which ``bank.views = 0`` keeps available.
The continuous-input arm of notebook 05 (mage_continuous.py) reads the tokenizer's unquantized features, which the
bank does not hold (32-96 floats per token instead of one integer): it always tokenizes on
the fly.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .artifacts import DamagedFileError, atomic_torch_save, code_fingerprint, config_hash, is_stale, load_state
from .augment import random_resized_crop, to_float


@dataclass
class BankConfig:
    views: int = 0  # augmented views per training image kept in the bank; 0 = tokenize every batch on the fly (official)
    batch_size: int = 500  # images tokenized at once while the bank is built

    def __post_init__(self):
        if self.views < 0 or self.batch_size < 1:
            raise ValueError(f"bank.views must be >= 0 (0: tokenize on the fly) and bank.batch_size >= 1, "
                             f"got {self.views} and {self.batch_size}")


def _id_dtype(codebook_size: int) -> torch.dtype:
    """The smallest signed integer type that holds every id (int16 for codebooks up to 32,768 codes)."""
    return torch.int16 if codebook_size <= 2**15 else torch.int32


@torch.no_grad()
def build_bank(tokenizer, images: torch.Tensor, views: int, crop_scale: tuple, hflip: bool = True,
               seed: int = 0, batch_size: int = 500, device: torch.device | str = "cpu",
               progress: bool = True) -> torch.Tensor:
    """Token ids of ``views`` augmented views of every image: uint8 images (N, 3, H, W) -> (N, V, L).

    View v of chunk c is drawn from a generator seeded with (seed, v, c), so the bank is the
    same whatever the batch size of the training that later reads it. The tokenizer runs in
    eval mode, in full precision.
    """
    if views < 1:
        raise ValueError(f"a token bank needs at least one view, got views={views}")
    tokenizer.eval()
    N = len(images)
    bank = torch.empty(N, views, tokenizer.num_tokens, dtype=_id_dtype(tokenizer.codebook_size))
    gen = torch.Generator(device=device)
    chunks = [(v, i) for v in range(views) for i in range(0, N, batch_size)]
    for v, i in tqdm(chunks, desc=f"token bank ({views} views of {N} images)", disable=not progress, leave=False):
        gen.manual_seed(seed * 1_000_003 + v * 7919 + i)
        batch = to_float(images[i:i + batch_size].to(device))  # (b, 3, H, W)
        crops = random_resized_crop(batch, crop_scale, hflip=hflip, generator=gen)
        with torch.autocast(device_type=torch.device(device).type, enabled=False):
            ids = tokenizer.encode_to_ids(crops.float())  # (b, h, w)
        bank[i:i + batch_size, v] = ids.flatten(1).to(bank.dtype).cpu()  # (b, L)
    return bank


def get_or_build_bank(tokenizer, tokenizer_id: str, images: torch.Tensor, cfg: BankConfig, crop_scale: tuple,
                      hflip: bool, models_dir: Path | str, device: torch.device | str = "cpu") -> tuple[torch.Tensor, Path, bool]:
    """The bank for this tokenizer, data and augmentation, built now or read from ``models_dir``.

    ``tokenizer_id`` names the trained tokenizer uniquely (its run folder: name + config hash,
    which covers its config, training, data, seed and code). The bank's key adds the crop scale,
    the flip, V, the number of images and this module's code; its file is written atomically, so a build that is
    interrupted leaves nothing a later run could mistake for a bank. Returns (ids (N, V, L), path,
    whether it was built now).
    """
    key = {"tokenizer": tokenizer_id, "images": len(images), "crop_scale": [float(c) for c in crop_scale],
           "hflip": bool(hflip), "views": cfg.views,
           "code": code_fingerprint(sys.modules[__name__])}
    path = Path(models_dir) / f"token-bank-{config_hash(key)}" / "bank.pt"
    if path.exists() and not is_stale(path):
        try:
            state = load_state(path)
            usable = state.get("key") == key and tuple(state["ids"].shape[:2]) == (len(images), cfg.views)
        except DamagedFileError as e:  # a bank is always safe to rebuild
            usable = False
            print(f"warning: {e.path} {e.problem}; building the token bank again")
        if usable:
            print(f"reusing the token bank built earlier: {path}")
            return state["ids"], path, False
    print(f"building the token bank: {cfg.views} augmented view(s) of {len(images)} training images, "
          f"crop scale {tuple(crop_scale)}, flip {hflip}")
    ids = build_bank(tokenizer, images, cfg.views, tuple(crop_scale), hflip, seed=0, batch_size=cfg.batch_size,
                     device=device)
    atomic_torch_save({"ids": ids, "key": key}, path)
    return ids, path, True


class BankSampler:
    """Training batches of token ids drawn from a bank (N, V, L): random images, each with a random view.

    ``sampler(batch_size, generator)`` returns ids (B, L) int64 on ``device``, or with
    ``views=2`` two *different* views of each image, (B, 2, L) (MAGE-C; needs V >= 2). Under
    DDP each process has its own generator (seeded by rank), so each samples its own shard.
    """

    def __init__(self, bank: torch.Tensor, device: torch.device | str = "cpu", views: int = 1):
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {views}")
        if bank.dim() != 3:
            raise ValueError(f"a token bank is (N, V, L), got shape {tuple(bank.shape)}")
        if views == 2 and bank.shape[1] < 2:
            raise ValueError(f"MAGE-C needs two different views of each image but the bank holds {bank.shape[1]}; "
                             "set bank.views to at least 2 (or 0 to tokenize on the fly)")
        self.device = torch.device(device)
        self.bank = bank.to(self.device)  # (N, V, L), int16
        self.views = views

    def __len__(self) -> int:
        return len(self.bank)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        N, V, _ = self.bank.shape
        idx = torch.randint(N, (batch_size,), device=self.device, generator=generator)  # (B,)
        first = torch.randint(V, (batch_size,), device=self.device, generator=generator)  # (B,)
        if self.views == 1:
            return self.bank[idx, first].long()  # (B, L)
        # a second view that differs from the first: shift by 1..V-1 places
        second = (first + torch.randint(1, V, (batch_size,), device=self.device, generator=generator)) % V
        return torch.stack([self.bank[idx, first], self.bank[idx, second]], dim=1).long()  # (B, 2, L)
