"""The continuous-input arm of notebook 05's quantization-shortcut ablation.

The same MAGE (same masking, dropping, [C] padding, decoder, targets and loss), but the
encoder reads the tokenizer's unquantized features (B, L, C), projected to its width,
instead of token ids; masked positions still enter as [MASK], so nothing of a masked
feature leaks in. The paper's point: neighbouring continuous features give a masked
position away, so the model reconstructs well and learns little (docs/method.md section 6).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from .mage import MAGE, MAGEConfig


@dataclass
class ContinuousMAGEConfig(MAGEConfig):
    feature_dim: int = 0  # width C of the tokenizer's features: set it from the tokenizer (vqgan.cfg.code_dim)

    def __post_init__(self):
        super().__post_init__()
        if self.feature_dim < 0:
            raise ValueError(f"mage.feature_dim must be >= 0 (0: taken from the tokenizer), got {self.feature_dim}")


class ContinuousMAGE(MAGE):
    """MAGE whose encoder reads features (B, L, C); the targets are still the token ids (B, L)."""

    cfg: ContinuousMAGEConfig

    def _build_embedding(self):
        super()._build_embedding()  # [MASK] and [C0] stay embeddings
        if self.cfg.feature_dim < 1:
            raise ValueError("a continuous-input MAGE needs mage.feature_dim: set it to the tokenizer's code_dim")
        self.feature_proj = nn.Linear(self.cfg.feature_dim, self.cfg.dim)

    def encode_images(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """imgs (B, 3, H, W) in [0, 1] -> (unquantized features (B, L, C), the ids (B, L) they quantize to)."""
        return self._tokenizer_outputs(imgs)

    def embed_tokens(self, feats: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """feats (B, L, C), masked (B, L) bool -> (B, L, D): projected features, [MASK]'s embedding where masked."""
        if not feats.is_floating_point() or feats.dim() != 3:
            raise ValueError(f"a continuous-input MAGE reads features (B, L, C), got {feats.dtype} {tuple(feats.shape)}")
        x = self.feature_proj(feats.to(self.feature_proj.weight.dtype))  # (B, L, D)
        return torch.where(masked[..., None], self.token_emb.weight[self.mask_id].to(x.dtype), x)  # same [MASK] as tokens

    def code_vectors(self) -> torch.Tensor:
        """(K+2, D) the token embedding, not detached: the code vectors learn through the head.

        MAGE ties its output to the detached token embedding, which a token model trains through
        its input. Here the input is the projected feature, so nothing else would train the K code
        rows: they would stay at their random initialisation, and the model would have to express
        every prediction against fixed random class vectors.
        """
        return self.token_emb.weight

    def forward(self, ids, masked=None, dropped=None, ratio: float | None = None, generator=None, features=None):
        """As :meth:`MAGE.forward`, the encoder reading ``features`` (B, L, C); ``ids`` (B, L) stay the targets."""
        if features is None:
            raise ValueError("a continuous-input MAGE needs the tokenizer's features: pass features=(B, L, C)")
        return self._reconstruct(features, ids.flatten(1), masked, dropped, ratio, generator)[:3]

    def logits_for(self, ids: torch.Tensor) -> torch.Tensor:
        raise ValueError("a continuous-input MAGE cannot generate: there are no features for positions it fills in; "
                         "use input='tokens'")
