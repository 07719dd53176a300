"""Which MAGE a preset's ``mage`` section builds: MAGE, MAGE-C or the continuous-input arm.

A preset carries one config for every MAGE-family model, so that a notebook override such as
``{"mage.contrastive_weight": 0.1}`` or ``run.mage(tok, name, input="continuous")`` picks the
variant; :func:`build_mage` turns it into the model.
"""

from dataclasses import dataclass

from .mage import MAGE
from .mage_c import MAGEC, MAGECConfig
from .mage_continuous import ContinuousMAGE, ContinuousMAGEConfig

INPUTS = ("tokens", "continuous")


@dataclass
class MAGEFamilyConfig(MAGECConfig, ContinuousMAGEConfig):
    """Every MAGE-family field in one section. It overrides one default on purpose: ``contrastive_weight`` is 0
    here, not MAGECConfig's 0.1, so a preset's ``mage`` section builds plain MAGE unless it asks for MAGE-C with a
    weight > 0 (notebook 04 sets ``mage.contrastive_weight``)."""

    contrastive_weight: float = 0.0  # lambda of MAGE-C; 0 = plain MAGE (MAGE-C: 0.1)
    input: str = "tokens"  # encoder input: "tokens" (MAGE) | "continuous" (unquantized tokenizer features, notebook 05)

    def __post_init__(self):
        super().__post_init__()
        if self.input not in INPUTS:
            raise ValueError(f"mage.input must be one of {INPUTS}, got {self.input!r}")


class ContinuousMAGEC(MAGEC, ContinuousMAGE):
    """MAGE-C on continuous input: no notebook trains it, but the two switches combine."""


def build_mage(cfg: MAGEFamilyConfig) -> MAGE:
    """The untrained model ``cfg`` asks for: MAGE-C when contrastive_weight > 0, the continuous-input
    arm when input="continuous" (both: MAGE-C on continuous input), else MAGE."""
    if cfg.input == "continuous":
        return ContinuousMAGEC(cfg) if cfg.contrastive else ContinuousMAGE(cfg)
    return MAGEC(cfg) if cfg.contrastive else MAGE(cfg)
