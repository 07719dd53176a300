"""The reuse keys of trained models survive edits that change no model: a refactor, a new check, a moved module.

A model's run folder is named by its config and the code fingerprint of the modules that build and train it
(artifacts.code_fingerprint). Every cached model in runs/ is found again only while these stay the same, so a
change that moves or adds code around the models must leave them alone; this test says when one does not. If a
change really alters what a model learns, update the value here in the same commit and say so: every cached
model of that kind will train again (shipped weights are keyed by config alone and still load)."""

from mage_lite.artifacts import code_fingerprint
from mage_lite.augment import BatchSampler
from mage_lite.mae import MAE
from mage_lite.mage import MAGE
from mage_lite.mage_c import MAGEC
from mage_lite.mage_continuous import ContinuousMAGE
from mage_lite import token_bank
from mage_lite.token_bank import BankSampler
from mage_lite.train import fit
from mage_lite.vqgan import VQGAN

# Measured on main at 914b979 (the shipped cpu weights and the budget curve's points were trained on this code).
FINGERPRINTS = {"mae": "4f668c0b", "mage": "b5f4259d", "mage_c": "372402cc", "continuous": "e59f9219",
                "vqgan": "ee0ca48c", "token_bank": "0f5b0eff"}


def test_model_fingerprints_are_unchanged():
    now = {"mae": code_fingerprint(MAE, fit, BatchSampler), "mage": code_fingerprint(MAGE, fit, BankSampler),
           "mage_c": code_fingerprint(MAGEC, fit, BankSampler),
           "continuous": code_fingerprint(ContinuousMAGE, fit, BatchSampler),
           "vqgan": code_fingerprint(VQGAN, fit, BatchSampler), "token_bank": code_fingerprint(token_bank)}
    assert now == FINGERPRINTS
