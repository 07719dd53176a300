"""MAGE-C: MAGE co-trained with a contrastive loss between two augmented views (notebook 04).

Every image comes as two views; both are masked and reconstructed as in MAGE, and an
InfoNCE term pulls together the projected, average-pooled encoder outputs of the two views
of an image:

    loss = reconstruction + contrastive_weight * InfoNCE.

The official code was never released: the projection head's sizes, the pooling and which
encoder pass InfoNCE reads are this project's choices (docs/method.md section 5). The
InfoNCE pieces themselves are in contrastive.py.
"""

from dataclasses import dataclass

import torch

from .contrastive import ProjectionHead, info_nce, positive_rank_accuracy
from .mage import MAGE, MAGEConfig

CONTRASTIVE_INPUTS = ("masked", "clean")


@dataclass
class MAGECConfig(MAGEConfig):
    contrastive_weight: float = 0.1  # lambda: loss = reconstruction + lambda * InfoNCE (MAGE-C follow-ups: 0.1)
    contrastive_temperature: float = 0.2  # InfoNCE temperature (SimCLR-style, about 0.2)
    contrastive_hidden: int = 512  # hidden width of the 2-layer projection head
    contrastive_out: int = 128  # projection width where InfoNCE is taken (SimCLR: 128)
    contrastive_input: str = "clean"  # encoder pass InfoNCE reads: "clean" (an extra unmasked pass) | "masked" (reconstruction's: no extra cost)

    def __post_init__(self):
        super().__post_init__()
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError(f"mage.contrastive_weight must be >= 0 and mage.contrastive_temperature > 0, got "
                             f"{self.contrastive_weight} and {self.contrastive_temperature}")
        if self.contrastive_input not in CONTRASTIVE_INPUTS:
            raise ValueError(f"mage.contrastive_input must be one of {CONTRASTIVE_INPUTS}, got {self.contrastive_input!r}")
        if self.contrastive_hidden < 1 or self.contrastive_out < 1:
            raise ValueError("mage.contrastive_hidden and mage.contrastive_out must be at least 1")

    @property
    def contrastive(self) -> bool:
        """MAGE-C: trained on two views per image with the InfoNCE term (a weight of 0 is plain MAGE)."""
        return self.contrastive_weight > 0


class MAGEC(MAGE):
    """MAGE plus a projection head on the pooled encoder output, trained on two views per image."""

    cfg: MAGECConfig

    def _build_head(self):
        super()._build_head()
        self.projection = ProjectionHead(self.cfg.dim, self.cfg.contrastive_hidden, self.cfg.contrastive_out)

    def training_loss(self, batch: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """batch: two views per image, images (B, 2, 3, H, W) in [0, 1] or ids (B, 2, L) -> (loss, logs).

        Both views are reconstructed as in MAGE. InfoNCE reads the encoder outputs of an extra
        unmasked pass (``contrastive_input="clean"``) or of the reconstruction pass itself
        (``"masked"``: no extra encoder cost). Logs MAGE's, plus the two loss terms and the
        share of views whose nearest other embedding is their own other view.
        """
        two_views = batch.dim() == (5 if batch.is_floating_point() else 3) and batch.shape[1] == 2
        if not two_views:
            raise ValueError(f"MAGE-C trains on two views per image, images (B, 2, 3, H, W) or ids (B, 2, L), got "
                             f"{batch.dtype} {tuple(batch.shape)}; sample batches with views=2")
        B = batch.shape[0]
        batch = batch.transpose(0, 1).flatten(0, 1)  # (2B, ...): all first views, then all second views
        rec, logs, inp, latent = self._training_pass(batch)
        if self.cfg.contrastive_input == "clean":  # an extra pass over the whole, unmasked sequence
            none = torch.zeros(inp.shape[:2], dtype=torch.bool, device=inp.device)  # (2B, L)
            latent, _ = self.forward_encoder(inp, none, none)  # (2B, 1+L, D)
        z = self.projection(latent[:, 1:].mean(dim=1))  # (2B, E): pooled over the encoded image positions, not [C0]
        nce = info_nce(z[:B], z[B:], self.cfg.contrastive_temperature)
        logs.update(rec_loss=rec.detach(), contrastive_loss=nce.detach(), view_match=positive_rank_accuracy(z[:B], z[B:]))
        return rec + self.cfg.contrastive_weight * nce, logs
