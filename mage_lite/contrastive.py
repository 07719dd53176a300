"""Contrastive co-training for MAGE-C: a projection head and the InfoNCE (NT-Xent) loss.

MAGE-C adds a SimCLR-style loss between two augmented views of every image to MAGE's
token-reconstruction loss. The official training code was never released; the choices
made here (the ``contrastive_*`` fields of ``MAGECConfig``, discussed in notebook 04) are this
project's. The model that uses these pieces is ``mage_c.MAGEC``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ProjectionHead(nn.Module):
    """The 2-layer MLP on the pooled encoder output: (B, D) -> (B, out_dim), Linear-BN-ReLU-Linear."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _pair_similarities(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities of all 2B embeddings, (2B, 2B) with -inf on the diagonal (k != i), and the
    index of each anchor's other view, (2B,)."""
    if z1.shape != z2.shape or z1.dim() != 2 or len(z1) < 2:
        raise ValueError(f"info_nce needs two (B, E) tensors with B >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    B = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, E)
    sim = (z @ z.t()).fill_diagonal_(float("-inf"))  # (2B, 2B)
    positive = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(z.device)  # (2B,): the other view
    return sim, positive


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent between two views: z1, z2 (B, E), row i of each from the same image -> scalar loss.

    With the 2B embeddings l2-normalised, s_ij their cosine similarity and p(i) the other
    view of sample i, the loss is the mean over all 2B anchors of

        -log( exp(s_{i,p(i)} / t) / sum_{k != i} exp(s_{ik} / t) ),

    i.e. a (2B - 1)-way classification of the positive among every other embedding.
    """
    sim, positive = _pair_similarities(z1, z2)
    return F.cross_entropy(sim / temperature, positive)


@torch.no_grad()
def positive_rank_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Share of anchors whose most similar other embedding is their own second view (a readable InfoNCE)."""
    sim, positive = _pair_similarities(z1, z2)
    return (sim.argmax(1) == positive).float().mean()
