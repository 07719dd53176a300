"""Generation metrics beside the Fréchet distance, in the same features (``fd.py``'s feature network).

All of them read feature vectors, never images: (N, D) tensors, here the penultimate layer of
the project's own CIFAR classifier (so **not** Inception: the numbers compare only within this
project, never with published KID, precision or recall).

- ``polynomial_kernel`` / ``mmd2_unbiased`` / ``kid``: the Kernel Inception Distance of
  Binkowski et al. (2018), as torch-fidelity computes it: the unbiased estimator of the squared
  maximum mean discrepancy with the cubic kernel k(x, y) = (x.y / d + 1)^3, averaged over random
  subsets and reported as mean +- std over those subsets. Unbiased: its expectation is 0 when both
  sets come from one distribution, whatever their size, unlike the Fréchet distance, whose bias
  grows as the sets shrink. It can therefore come out slightly negative.
- ``knn_radii`` / ``inside_manifold`` / ``precision_recall``: the k-NN manifold estimate of
  Kynkaanniemi et al. (2019). Each set's manifold is the union of balls around its points, each
  ball reaching that point's k-th nearest neighbour in the set. Precision: the share of generated
  points inside the real manifold (are samples realistic?); recall: the share of real points
  inside the generated manifold (do samples cover the variety?).

Everything is computed in float64 on the CPU, in row chunks, with no scipy.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

CHUNK = 1024  # rows of a distance matrix computed at once (1024 x 10,000 float64: 80 MB)


def _as_feats(x: torch.Tensor, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu().double()
    if x.dim() != 2:
        raise ValueError(f"{name} must be features (N, D), got shape {tuple(x.shape)}")
    return x


# ----------------------------------------------------------------------------- KID

def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """k(x, y) = (x.y / d + coef0) ** degree for every pair: x (N, D), y (M, D) -> (N, M).

    With the defaults this is KID's cubic kernel (gamma = 1 / d, as in torch-fidelity).
    """
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype = torch.float64) -> float:
    """Unbiased estimate of MMD^2 between the distributions of x (m, D) and y (n, D), cubic kernel.

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n):
    the diagonals k(x_i, x_i) are left out, which is what removes the bias. Needs m, n >= 2.
    The kernel matrices are computed in ``dtype`` (float32 is about 3x faster on a CPU and
    agrees to about 1e-6 relative), the sums always in float64.
    """
    x, y = _as_feats(x, "x"), _as_feats(y, "y")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points per set, got {m} and {n}")
    x, y = x.to(dtype), y.to(dtype)
    kxx, kyy, kxy = (polynomial_kernel(a, b).double() for a, b in ((x, x), (y, y), (x, y)))
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


class KID(NamedTuple):
    """KID as mean and standard deviation of ``mmd2_unbiased`` over ``subsets`` random subsets."""
    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(fake: torch.Tensor, real: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        dtype: torch.dtype = torch.float32) -> KID:
    """Kernel Inception Distance between features fake (N, D) and real (M, D), in those features.

    As torch-fidelity: ``subsets`` times, draw ``subset_size`` points of each set without
    replacement (fewer when a set is smaller) and take ``mmd2_unbiased``; report the mean and
    the (population) standard deviation over the subsets. The std measures the estimator's
    spread over subsets, not the spread between sampling seeds or trained models. ``seed`` fixes
    the subsets, so the same features always give the same KID. ``dtype``: that of the kernel
    matrices (see ``mmd2_unbiased``).
    """
    fake, real = _as_feats(fake, "fake"), _as_feats(real, "real")
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"fake and real features differ in width: {fake.shape[1]} and {real.shape[1]}")
    size = min(subset_size, len(fake), len(real))
    if size < 2 or subsets < 1:
        raise ValueError(f"KID needs subsets >= 1 and at least 2 points per set, got {subsets} subsets and {size} points")
    g = torch.Generator().manual_seed(seed)
    vals = torch.tensor([mmd2_unbiased(fake[torch.randperm(len(fake), generator=g)[:size]],
                                       real[torch.randperm(len(real), generator=g)[:size]], dtype)
                         for _ in range(subsets)],
                        dtype=torch.float64)
    return KID(float(vals.mean()), float(vals.std(unbiased=False)), subsets, size)


# ----------------------------------------------------------------------------- precision and recall

def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances a (N, D), b (M, D) -> (N, M), float64 (clamped at 0 before the root)."""
    a, b = _as_feats(a, "a"), _as_feats(b, "b")
    d2 = a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)[None]
    return d2.clamp(min=0).sqrt()


def knn_radii(feats: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Distance from each point of feats (N, D) to its k-th nearest *other* point: (N,).

    The point itself (distance 0) is not counted as a neighbour. Needs N > k.
    """
    feats = _as_feats(feats, "feats")
    if not 1 <= k < len(feats):
        raise ValueError(f"k must be in [1, N - 1] = [1, {len(feats) - 1}], got {k}")
    out = []
    for i in range(0, len(feats), CHUNK):
        d = pairwise_distances(feats[i:i + CHUNK], feats)  # (c, N); column i + r is the point itself
        rows = torch.arange(len(d))
        d[rows, rows + i] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(out)


def inside_manifold(points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each of points (N, D) lies in a ball of the manifold: (N,) bool.

    The manifold is the union of the balls centred at manifold (M, D) with radii (M,)
    (``knn_radii`` of that set); a point on a ball's border counts as inside.
    """
    points, manifold = _as_feats(points, "points"), _as_feats(manifold, "manifold")
    radii = torch.as_tensor(radii).double()
    out = []
    for i in range(0, len(points), CHUNK):
        out.append((pairwise_distances(points[i:i + CHUNK], manifold) <= radii[None]).any(dim=1))
    return torch.cat(out)


class PrecisionRecall(NamedTuple):
    precision: float  # share of generated points inside the real manifold
    recall: float  # share of real points inside the generated manifold
    k: int


def precision_recall(fake: torch.Tensor, real: torch.Tensor, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of fake (N, D) against real (M, D).

    Both are fractions in [0, 1]. They depend on the set sizes through the k-NN radii: compare
    only numbers measured with the same N, M and k (the paper uses equal sizes).
    """
    fake, real = _as_feats(fake, "fake"), _as_feats(real, "real")
    precision = inside_manifold(fake, real, knn_radii(real, k)).double().mean()
    recall = inside_manifold(real, fake, knn_radii(fake, k)).double().mean()
    return PrecisionRecall(float(precision), float(recall), k)
