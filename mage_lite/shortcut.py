"""How much of a masked position does its neighbourhood give away? (notebook 05)

The paper's argument against unquantized input: a CNN tokenizer's features overlap in
their receptive fields, so the features around a masked position nearly determine it and a
masked model can copy instead of understanding. Quantization throws most of that away.
``neighbour_predictability`` measures it directly: a ridge regression from the four
neighbours' vectors to the centre's, fitted on one half of the images and scored on the
other, once on the continuous features and once on the quantized code vectors. The masked
model trained on such features is ``mage_continuous.ContinuousMAGE``.
"""

import torch


def _neighbour_pairs(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """grid (N, h, w, C) -> (inputs (N*(h-2)*(w-2), 4C): up, down, left, right; targets (same rows, C)) for interior cells."""
    c = grid[:, 1:-1, 1:-1]  # (N, h-2, w-2, C)
    x = torch.cat([grid[:, :-2, 1:-1], grid[:, 2:, 1:-1], grid[:, 1:-1, :-2], grid[:, 1:-1, 2:]], dim=-1)  # (N, h-2, w-2, 4C)
    return x.reshape(-1, x.shape[-1]), c.reshape(-1, c.shape[-1])


def _ridge(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Closed-form ridge with a bias column: (n, d), (n, c) -> weights (d + 1, c)."""
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    reg = alpha * torch.eye(x1.shape[1], dtype=x.dtype)
    reg[-1, -1] = 0  # the bias is not shrunk
    return torch.linalg.solve(x1.t() @ x1 + reg, x1.t() @ y)


def neighbour_predictability(features: torch.Tensor, ids: torch.Tensor, codebook: torch.Tensor,
                             alpha: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Predict each interior position from its 4 neighbours, with continuous features and with quantized codes.

    features (N, L, C) unquantized, ids (N, L) their codes, codebook (K, C) the code vectors
    (as the quantizer compares them), L a square grid. Half of the images fit the
    regressions, the other half score them:

    - ``r2_continuous`` / ``r2_quantized``: variance of the centre's vector explained (1 = copied exactly);
    - ``id_from_continuous`` / ``id_from_quantized``: % of centres whose token id is the nearest
      code to the prediction from the neighbours' continuous features / their code vectors;
    - ``id_majority``: % of centres whose id is the most common id among the 4 neighbours.
    """
    N, L, C = features.shape
    side = int(round(L ** 0.5))
    if side * side != L or side < 3:
        raise ValueError(f"the tokens must form a square grid of side >= 3, got {L} tokens")
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    fit, held = perm[: N // 2], perm[N // 2:]
    codebook = codebook.double()
    quantized = codebook[ids]  # (N, L, C)
    out = {}
    _, id_centre = _neighbour_pairs(ids[held].view(-1, side, side, 1))  # (n, 1)
    id_centre = id_centre[:, 0]
    for name, vectors in (("continuous", features.double()), ("quantized", quantized)):
        grids = vectors.view(N, side, side, C)
        w = _ridge(*_neighbour_pairs(grids[fit]), alpha)
        x, y = _neighbour_pairs(grids[held])
        pred = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1) @ w  # (n, C)
        out[f"r2_{name}"] = float(1 - (pred - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
        nearest = torch.cdist(pred, codebook).argmin(1)
        out[f"id_from_{name}"] = 100.0 * float((nearest == id_centre).double().mean())
    neigh, _ = _neighbour_pairs(ids[held].view(-1, side, side, 1))  # (n, 4) neighbour ids
    out["id_majority"] = 100.0 * float((neigh.mode(dim=1).values == id_centre).double().mean())
    return out
