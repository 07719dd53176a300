"""The ablation report's claims: the grid of arms, what each claim compares, why-texts, statistics and verdicts.

This is the file to edit to add an arm or a claim (docs/map.md shows an example): an :class:`Arm` runs one
notebook with overrides, a :class:`Claim` compares two (arm, metric) sides over seeds. The metric keys are
those the notebooks log (:mod:`mage_lite.names`); the grid (:mod:`.grid`) runs the arms and the renderer
(:mod:`.render`) writes the table.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...artifacts import runs_root
from ...names import NB03, NB04, NB05, GenerationNoise


@dataclass(frozen=True)
class Arm:
    """One notebook run per seed: notebook ``stem`` with config ``overrides``."""

    name: str
    stem: str
    overrides: dict = field(default_factory=dict)
    after: str = ""  # an arm of the same seed that must finish first (it trains the models this one reuses)

    @property
    def variant(self) -> str:
        """The run's ``variant`` parameter: '' for a notebook run as it is (its outputs are the plain run's, reused
        both ways), else the arm's name (its outputs go to ``<notebook>--<arm>/``)."""
        return self.name if self.overrides else ""

    def run_dir(self, preset: str, seed: int, root: Path | None = None) -> Path:
        folder = f"{self.stem}--{self.variant}" if self.variant else self.stem
        return (root or runs_root()) / preset / folder / f"seed{seed}"


# The loss variant leaves out the fixed-ratio and other-padding models: the base run measures them. The padding needs
# no arm of its own: the base run trains, probes and scores the same model with the mask token
# (ablations.other_padding, notebook 03), one MAGE training instead of a whole notebook run per seed.
ARMS = (
    Arm("base", NB03.stem),
    Arm("loss-all", NB03.stem,
        {"mage.loss_on": "all", "ablations.fixed_ratio": False, "ablations.other_padding": False}, "base"),
    Arm("contrastive", NB04.stem, after="base"),
    Arm("quantization", NB05.stem, after="base"),
)


def _mean_blocks(key: str) -> Callable[[dict], float]:
    return lambda m: sum(m[key].values()) / len(m[key])


def _avg(metrics: dict[str, dict[int, dict]], arm: str, key) -> float | None:
    """The mean over seeds of one metric of one arm (``key``: a metrics key or a function of the metrics)."""
    vals = [v for v in (_value(m, key) for m in metrics.get(arm, {}).values()) if v is not None]
    return sum(vals) / len(vals) if vals else None


NO_MECHANISM = "no mechanism metric logged"


def _facts(metrics: dict, *parts: tuple) -> str:
    """"; "-joined facts, each (template, (arm, key), ...) filled with seed means; a fact whose metrics are
    missing is left out (older runs did not log it)."""
    out = []
    for template, *keys in parts:
        vals = [_avg(metrics, arm, key) for arm, key in keys]
        if all(v is not None for v in vals):
            out.append(template.format(*vals))
    return "; ".join(out) or NO_MECHANISM


def _with_facts(why: Callable[[dict], str], *parts: tuple) -> Callable[[dict], str]:
    """``why`` with the :func:`_facts` of ``parts`` before it (left out where not logged)."""
    def both(m: dict) -> str:
        first, rest = _facts(m, *parts), why(m)
        return "; ".join(x for x in (first, rest) if x != NO_MECHANISM) or NO_MECHANISM
    return both


def _epochs(model: str) -> Callable[[dict], float]:
    return lambda m: m[NB03.budgets][model]["epochs"]


def _noise(kind: str) -> Callable[[dict], float]:  # one model's sampling std of fd_classifier or KID (notebook 03)
    field = {"fd": GenerationNoise.fd_std, "kid": GenerationNoise.kid_std}[kind]
    return lambda m: m[NB03.generation_noise][field]


def why_mage_vs_mae(m: dict) -> str:
    return _facts(m, ("budget {:.2f} epochs each (MAE {:.2f})", ("base", _epochs("mage")), ("base", _epochs("mae"))),
                  ("MAGE's masked-token accuracy {:.1f} % against a {:.1f} % most-frequent baseline",
                   ("base", NB03.masked_acc), ("base", NB03.masked_acc_baseline)),
                  ("mode share {:.0%} (true tokens {:.0%})", ("base", NB03.mode_share), ("base", NB03.mode_share_true)),
                  ("the tokens alone probe {:.1f} % (code vectors), an untrained MAGE encoder {:.1f} %",
                   ("base", NB03.probe_code_vectors), ("base", NB03.probe_random_encoder)))


def why_generation(arm_a: str, key_a, arm_b: str, key_b, kind: str = "fd") -> Callable[[dict], str]:
    """A generation claim's mechanism: the difference against the metric's own sampling noise (``kind``: "fd" for
    fd_classifier, "kid" for KID), and the real-image and untrained-model anchors it is read between."""
    anchors = {"fd": (NB03.fd_classifier_real, NB03.fd_classifier_untrained, "{:.1f}", "{:+.2f}", "{:.2f}"),
               "kid": (NB03.kid_real, NB03.kid_untrained, "{:.3f}", "{:+.3f}", "{:.3f}")}[kind]
    real, untrained, level, diff, std = anchors

    def why(m: dict) -> str:
        a, b = _avg(m, arm_a, key_a), _avg(m, arm_b, key_b)
        if a is None or b is None:
            return NO_MECHANISM
        paired = [va - vb for _, va, vb in _pairs(m, (arm_a, key_a), (arm_b, key_b))]
        spread = f" (seed-to-seed std {std.format(mean_std(paired)[1])})" if len(paired) > 1 else ""
        # the two sources of spread side by side: the models' (training seeds) and the metric's (sampling seeds)
        return _facts(m, (f"difference {diff.format(a - b)}{spread} against one model's sampling std {std} (3 sampling seeds)",
                          ("base", _noise(kind))),
                      (f"real images score {level}, the untrained model {level}", ("base", real), ("base", untrained)))
    return why


def why_padding(m: dict) -> str:
    return _facts(m, ("mode share [C] {:.0%} vs mask token {:.0%}", ("base", NB03.mode_share), ("base", NB03.mode_share_other_padding)),
                  ("masked decoder inputs' cosine [C] {:.3f} vs mask token {:.3f}",
                   ("base", NB03.masked_similarity), ("base", NB03.masked_similarity_other_padding)))


def why_quantization(m: dict) -> str:
    return _facts(m, ("a feature's variance explained by its 4 neighbours: continuous {:.2f}, quantized {:.2f}",
                      ("quantization", NB05.neighbour_r2_continuous), ("quantization", NB05.neighbour_r2_quantized)),
                  ("masked-token accuracy tokens {:.1f} % vs continuous {:.1f} %",
                   ("quantization", NB05.masked_acc_tokens), ("quantization", NB05.masked_acc_continuous)),
                  ("on test tokens, cross-entropy without smoothing tokens {:.2f} vs continuous {:.2f}, "
                   "probability on the true code {:.3f} vs {:.3f}", ("quantization", NB05.masked_nll_tokens),
                   ("quantization", NB05.masked_nll_continuous), ("quantization", NB05.masked_p_true_tokens),
                   ("quantization", NB05.masked_p_true_continuous)))


def why_contrastive(m: dict) -> str:
    return _facts(m, ("views matched to their partner {:.0%} -> {:.0%}", ("contrastive", NB04.view_match_first),
                      ("contrastive", NB04.view_match_last)),
                  ("InfoNCE {:.2f} -> {:.2f}", ("contrastive", NB04.contrastive_loss_first), ("contrastive", NB04.contrastive_loss_last)),
                  ("reconstruction loss MAGE-C {:.3f} vs MAGE {:.3f}", ("contrastive", NB04.rec_loss_last_mage_c),
                   ("contrastive", NB04.rec_loss_last_mage)))


def why_loss(m: dict) -> str:
    return _facts(m, ("masked-token accuracy masked-only {:.1f} % vs all-token {:.1f} %", ("base", NB03.masked_acc),
                      ("loss-all", NB03.masked_acc)),
                  ("mode share masked-only {:.0%} vs all-token {:.0%}", ("base", NB03.mode_share), ("loss-all", NB03.mode_share)))


def why_seed_spread(arm: str, key) -> Callable[[dict], str]:
    """No mechanism metric of its own: the seed-to-seed spread the difference is read against."""
    def why(m: dict) -> str:
        vals = [v for v in (_value(x, key) for x in m.get(arm, {}).values()) if v is not None]
        if len(vals) < 2:
            return "one seed: no spread measured"
        return f"seed-to-seed std of the A arm {mean_std(vals)[1]:.2f} over {len(vals)} seeds"
    return why


@dataclass(frozen=True)
class Claim:
    """'a beats b' on one metric. ``a``/``b``: (arm, metrics key or function of the metrics)."""

    section: str
    claim: str
    a: tuple
    b: tuple
    a_label: str
    b_label: str
    higher_is_better: bool
    paper: str  # the ImageNet figure (docs/method.md section 9), or what the paper gives instead
    why: Callable[[dict], str] = lambda m: ""  # the measured mechanism behind the verdict, from all arms' metrics


CLAIMS = (
    Claim("MAGE vs MAE", "MAGE's linear probe beats MAE's", ("base", NB03.probe_mage), ("base", NB03.probe_mae),
          "MAGE", "MAE", True, "74.7 vs 68.0", why_mage_vs_mae),
    Claim("MAGE vs MAE", "MAGE's per-block probe is above MAE's (mean over blocks)",
          ("base", _mean_blocks(NB03.probe_blocks_mage)), ("base", _mean_blocks(NB03.probe_blocks_mae)), "MAGE", "MAE", True,
          "Figure 6 (numbers unconfirmed)", why_mage_vs_mae),
    Claim("masking", "variable masking generates better (fd_classifier, lower is better)", ("base", NB03.fd_classifier_mage),
          ("base", NB03.fd_classifier_fixed075), "truncated Gaussian", "fixed 0.75", False, "Table 5 (numbers unconfirmed)",
          why_generation("base", NB03.fd_classifier_mage, "base", NB03.fd_classifier_fixed075)),
    Claim("masking", "variable masking generates better (KID, lower is better)", ("base", NB03.kid_mage),
          ("base", NB03.kid_fixed075), "truncated Gaussian", "fixed 0.75", False, "Table 5 (numbers unconfirmed)",
          why_generation("base", NB03.kid_mage, "base", NB03.kid_fixed075, "kid")),
    Claim("masking", "variable masking probes better", ("base", NB03.probe_mage), ("base", NB03.probe_mage_fixed075),
          "truncated Gaussian", "fixed 0.75", True, "Table 5 (numbers unconfirmed)",
          why_seed_spread("base", NB03.probe_mage)),
    Claim("quantization", "continuous input reaches a lower training loss", ("quantization", NB05.loss_last_continuous),
          ("quantization", NB05.loss_last_tokens), "continuous", "tokens", False, "3.31 vs 5.76", why_quantization),
    Claim("quantization", "quantized tokens probe better than continuous features", ("quantization", NB05.probe_tokens),
          ("quantization", NB05.probe_continuous), "tokens", "continuous", True, "74.7 vs 49.5", why_quantization),
    Claim("padding", "[C] padding probes better than a learnable mask token", ("base", NB03.probe_mage),
          ("base", NB03.probe_mage_other_padding), "[C]", "mask token", True, "appendix (numbers unconfirmed)", why_padding),
    Claim("padding", "[C] padding generates better (fd_classifier)", ("base", NB03.fd_classifier_mage),
          ("base", NB03.fd_classifier_other_padding), "[C]", "mask token", False, "appendix (numbers unconfirmed)",
          why_padding),
    Claim("padding", "[C] padding generates better (KID)", ("base", NB03.kid_mage), ("base", NB03.kid_other_padding),
          "[C]", "mask token", False, "appendix (numbers unconfirmed)", why_padding),
    Claim("loss", "masked-only loss probes better than all-token loss", ("base", NB03.probe_mage), ("loss-all", NB03.probe_mage),
          "masked only", "all tokens", True, "appendix (numbers unconfirmed)", why_loss),
    Claim("loss", "masked-only loss generates better (fd_classifier)", ("base", NB03.fd_classifier_mage),
          ("loss-all", NB03.fd_classifier_mage), "masked only", "all tokens", False, "appendix (numbers unconfirmed)",
          why_generation("base", NB03.fd_classifier_mage, "loss-all", NB03.fd_classifier_mage)),
    Claim("loss", "masked-only loss generates better (KID)", ("base", NB03.kid_mage), ("loss-all", NB03.kid_mage),
          "masked only", "all tokens", False, "appendix (numbers unconfirmed)",
          why_generation("base", NB03.kid_mage, "loss-all", NB03.kid_mage, "kid")),
    Claim("crops", "strong crops (0.2, 1) generate better than weak (0.8, 1)", ("contrastive", NB04.fd_classifier_mage),
          ("contrastive", NB04.fd_classifier_mage_crop08), "(0.2, 1)", "(0.8, 1)", False, "paper figure (numbers unconfirmed)",
          _with_facts(why_generation("contrastive", NB04.fd_classifier_mage, "contrastive", NB04.fd_classifier_mage_crop08),
                      ("the training views themselves (tokenized crops of real images) score (0.2, 1) {:.1f} vs "
                       "(0.8, 1) {:.1f}", ("contrastive", NB04.fd_classifier_views),
                       ("contrastive", NB04.fd_classifier_views_crop08)))),
    Claim("crops", "strong crops (0.2, 1) probe better than weak (0.8, 1)", ("contrastive", NB04.probe_mage),
          ("contrastive", NB04.probe_mage_crop08), "(0.2, 1)", "(0.8, 1)", True, "none given",
          why_seed_spread("contrastive", NB04.probe_mage)),
    Claim("MAGE-C", "MAGE-C's linear probe beats MAGE's", ("contrastive", NB04.probe_mage_c), ("contrastive", NB04.probe_mage),
          "MAGE-C", "MAGE", True, "78.2 vs 74.7", why_contrastive),
    Claim("MAGE-C", "MAGE-C's k-NN accuracy beats MAGE's", ("contrastive", NB04.knn_mage_c), ("contrastive", NB04.knn_mage),
          "MAGE-C", "MAGE", True, "none given", why_contrastive),
    Claim("MAGE-C", "MAGE-C generates as well as MAGE (fd_classifier)", ("contrastive", NB04.fd_classifier_mage_c),
          ("contrastive", NB04.fd_classifier_mage), "MAGE-C", "MAGE", False, "not reported",
          why_generation("contrastive", NB04.fd_classifier_mage_c, "contrastive", NB04.fd_classifier_mage)),
)

# Two-sided 95 % Student t quantiles by degrees of freedom; beyond the table, the normal 1.96.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


# --- numbers --------------------------------------------------------------------------

def _value(metrics: dict, key) -> float | None:
    try:
        return float(key(metrics) if callable(key) else metrics[key])
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan"))


def verdict(diffs: list[float]) -> tuple[str, tuple[float, float] | None]:
    """From paired differences (positive = the paper's direction): the verdict and the 95 % t-interval.

    Reproduced when the whole interval is above 0, "not reproduced at this scale" when it is
    below 0, inconclusive when it contains 0 or there is one seed only.
    """
    if len(diffs) < 2:
        return "inconclusive (one seed)", None
    m, s = mean_std(diffs)
    half = T95.get(len(diffs) - 1, 1.96) * s / math.sqrt(len(diffs))
    lo, hi = m - half, m + half
    if lo > 0:
        return "reproduced", (lo, hi)
    if hi < 0:
        return "not reproduced at this scale", (lo, hi)
    return "inconclusive", (lo, hi)


def _pairs(metrics: dict[str, dict[int, dict]], a: tuple, b: tuple) -> list[tuple[int, float, float]]:
    """(seed, value of a, value of b) for every seed where both (arm, key) sides were logged."""
    seeds = sorted(set(metrics.get(a[0], {})) & set(metrics.get(b[0], {})))
    pairs = [(s, _value(metrics[a[0]][s], a[1]), _value(metrics[b[0]][s], b[1])) for s in seeds]
    return [(s, va, vb) for s, va, vb in pairs if va is not None and vb is not None]


def claim_rows(metrics: dict[str, dict[int, dict]]) -> list[dict]:
    """metrics[arm][seed] -> one row per claim with the per-seed values, summaries and verdict."""
    rows = []
    for c in CLAIMS:
        seeds = sorted(set(metrics.get(c.a[0], {})) & set(metrics.get(c.b[0], {})))
        pairs = _pairs(metrics, c.a, c.b)
        sign = 1 if c.higher_is_better else -1
        diffs = [sign * (a - b) for _, a, b in pairs]
        row = {"claim": c, "seeds": [s for s, _, _ in pairs], "a": [a for _, a, _ in pairs], "b": [b for _, _, b in pairs]}
        if pairs:
            row["verdict"], row["interval"] = verdict(diffs)
            row["diff"] = mean_std(diffs)
        elif seeds:
            row["verdict"], row["interval"] = "not measured (these runs did not log it)", None
        else:
            row["verdict"], row["interval"] = "not measured (its runs are missing or failed)", None
        rows.append(row)
    return rows
