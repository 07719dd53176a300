"""Linear probing: frozen features -> BatchNorm1d(affine=False) -> Linear, as MAE and MAGE do it.

Features are computed once and the probe trains on them, so a probe costs seconds. Every
notebook prints two anchors beside its own number, measured in the same run: raw pixels
and a randomly initialised encoder of the same shape.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import to_float


@dataclass
class ProbeConfig:
    train_size: int = 10000  # images drawn at random from the train split for the probe (0 = all)
    test_size: int = 0  # images drawn at random from the test split (0 = all)
    epochs: int = 30  # passes over the precomputed features
    batch_size: int = 256
    lr: float = 1e-3  # AdamW peak lr, cosine to 0, no weight decay (as MAE's probe)

    def __post_init__(self):
        if self.train_size < 0 or self.test_size < 0 or self.epochs < 1:
            raise ValueError("probe.train_size and probe.test_size must be >= 0 and probe.epochs >= 1")


def random_subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """Indices of a random subset of size n (all when n is 0 or too large). Never 'the first n':
    the image-folder datasets are ordered by class."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_total, generator=g)
    return perm if n <= 0 or n >= n_total else perm[:n].sort().values


@torch.no_grad()
def extract_features(
    feature_fn: Callable[[torch.Tensor], dict[str, torch.Tensor] | torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    desc: str = "features",
) -> dict[str, torch.Tensor]:
    """Run ``feature_fn`` over uint8 images (N, 3, H, W) in batches.

    feature_fn takes float [0, 1] images on ``device`` and returns a tensor (B, D) or a dict
    of them. Returns a dict of CPU float tensors (N, D) (key "features" for a bare tensor).
    """
    chunks: dict[str, list[torch.Tensor]] = {}
    for i in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        out = feature_fn(to_float(images[i : i + batch_size].to(device)))
        if isinstance(out, torch.Tensor):
            out = {"features": out}
        for k, v in out.items():
            chunks.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v) for k, v in chunks.items()}


def pixel_features(imgs: torch.Tensor) -> torch.Tensor:
    """The raw-pixel anchor: (B, 3, H, W) -> (B, 3*H*W)."""
    return imgs.flatten(1)


def linear_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    cfg: ProbeConfig, seed: int = 0,
) -> float:
    """Train BatchNorm1d(affine=False) + Linear on frozen features; return test top-1 in percent."""
    return linear_probes({"x": train_x}, train_y, {"x": test_x}, test_y, cfg, seed)["x"]


def linear_probes(
    train: dict[str, torch.Tensor], train_y: torch.Tensor, test: dict[str, torch.Tensor], test_y: torch.Tensor,
    cfg: ProbeConfig, seed: int = 0,
) -> dict[str, float]:
    """One linear probe per read-out, {name: train features (N, D)} -> {name: test top-1 in percent}.

    Each head is exactly the probe it would be alone: its own generator seeded with ``seed``
    (its init, then its epochs' orders), its own loss. The heads share one backward and one
    optimizer step per batch (AdamW is elementwise, and a head's gradient of the summed loss is
    the gradient of its own), which is where most of a lone probe's per-step time goes.
    """
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    heads, gens = {}, {}
    for k, x in train.items():
        gens[k] = torch.Generator().manual_seed(seed)
        heads[k] = nn.Sequential(nn.BatchNorm1d(x.shape[1], affine=False), nn.Linear(x.shape[1], n_classes))
        with torch.no_grad():
            nn.init.normal_(heads[k][1].weight, std=0.01, generator=gens[k])
            nn.init.zeros_(heads[k][1].bias)
    opt = torch.optim.AdamW([p for h in heads.values() for p in h.parameters()], lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = max(1, len(train_y) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)
    for h in heads.values():
        h.train()
    for _ in range(cfg.epochs):
        perms = {k: torch.randperm(len(train_y), generator=g) for k, g in gens.items()}
        for i in range(steps_per_epoch):
            loss = 0.0
            for k, h in heads.items():
                idx = perms[k][i * cfg.batch_size : (i + 1) * cfg.batch_size]
                loss = loss + F.cross_entropy(h(train[k][idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    accs = {}
    with torch.no_grad():
        for k, h in heads.items():
            pred = h.eval()(test[k]).argmax(dim=1)
            accs[k] = 100.0 * (pred == test_y).float().mean().item()
    return accs


class ProbeData:
    """The probe's fixed random train/test subsets of a dataset, drawn once per seed."""

    def __init__(self, dataset, cfg: ProbeConfig, seed: int = 0):
        tr = random_subset(len(dataset.train_images), cfg.train_size, seed)
        te = random_subset(len(dataset.test_images), cfg.test_size, seed + 1)
        self.train_images, self.train_labels = dataset.train_images[tr], dataset.train_labels[tr]
        self.test_images, self.test_labels = dataset.test_images[te], dataset.test_labels[te]
        self.cfg, self.seed = cfg, seed

    def evaluate(self, feature_fn, device="cpu", desc="probe") -> dict[str, float]:
        """Probe accuracy (%) for every feature ``feature_fn`` returns, e.g. {"avg": 41.2, "block_1": ...}."""
        tr = extract_features(feature_fn, self.train_images, device=device, desc=f"{desc}: train features")
        te = extract_features(feature_fn, self.test_images, device=device, desc=f"{desc}: test features")
        return self.fit(tr, te)

    def fit(self, train: dict[str, torch.Tensor], test: dict[str, torch.Tensor]) -> dict[str, float]:
        """Probe accuracy (%) for features already computed, {name: (N_train, D)} and {name: (N_test, D)},
        all heads trained together (:func:`linear_probes`)."""
        return linear_probes(train, self.train_labels, test, self.test_labels, self.cfg, self.seed)

    def pixel_anchor(self) -> float:
        """Probe accuracy on raw pixels."""
        return self.evaluate(pixel_features, desc="raw pixels")["features"]


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, keys: torch.Tensor, k: int, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine k-nearest neighbours: queries (Q, D), keys (N, D) -> (similarities (Q, k), indices (Q, k)), best first."""
    if k < 1 or k > len(keys):
        raise ValueError(f"k must be between 1 and the number of keys ({len(keys)}), got {k}")
    keys = F.normalize(keys.float(), dim=1)
    sims, idx = [], []
    for i in range(0, len(queries), chunk):
        s = F.normalize(queries[i:i + chunk].float(), dim=1) @ keys.t()  # (q, N)
        top = s.topk(k, dim=1)
        sims.append(top.values), idx.append(top.indices)
    return torch.cat(sims), torch.cat(idx)


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int = 20, temperature: float = 0.07) -> float:
    """Weighted k-NN classifier on frozen features (cosine similarity, votes weighted by exp(s / T)), top-1 in percent.

    The usual no-training read-out of self-supervised features (InstDisc, DINO): unlike the
    linear probe it rewards features whose *neighbourhoods* share a class.
    """
    sims, idx = nearest_neighbours(test_x, train_x, min(k, len(train_x)))
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    votes = torch.zeros(len(test_x), n_classes).scatter_add_(1, train_y[idx], (sims / temperature).exp())  # (Q, C)
    return 100.0 * (votes.argmax(1) == test_y).float().mean().item()
