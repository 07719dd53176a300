"""The ablation report: every claim of the paper this project tests, measured over seeds.

    python -m mage_lite.report --preset report --seeds 3 --dataset PATH/TO/cifar10-jpg.tar.gz
    python -m mage_lite.report --preset smoke --seeds 1          # seconds: checks the machinery
    python -m mage_lite.report --preset report --render-only     # re-render table and figures from reports/report/metrics/

Each arm of the grid is one notebook (03-05) executed by papermill with its parameters and
config overrides, once per seed, two at a time on separate processes (``--jobs``). A run
whose ``metrics.json`` is complete, with the same config and the same, unchanged data, is
reused, so an interrupted report resumes where it stopped (workers die with the report, even
on kill -9); a run that fails is named in the report, with its error, and its rows say so.

The report goes to ``reports/<preset>/``: ``README.md`` (the table: mean +- std over seeds,
the paper's ImageNet figure, and a verdict computed from the paired differences),
``figures/``, ``metrics/`` (the numbers the table was rendered from, so a test can render it
again) and ``notebooks/`` (the executed notebooks as HTML; not committed).
"""

import argparse
import ctypes
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .artifacts import REPO_ROOT, DamagedFileError, block_between, config_hash, load_json, replace_block, runs_root, save_json
from .config import PRESET_NAMES, ConfigError, load_preset
from .data import load_dataset, source_key
from .notebooks import NOTEBOOK_DIR, check_reachable, check_writable, cli, resolve_dataset

TABLE_START, TABLE_END = "<!-- report-table -->", "<!-- /report-table -->"
SUMMARY_START, SUMMARY_END = "<!-- report-summary -->", "<!-- /report-summary -->"


@dataclass(frozen=True)
class Arm:
    """One notebook run per seed: notebook ``stem`` with config ``overrides``."""

    name: str
    stem: str
    overrides: dict = field(default_factory=dict)
    after: str = ""  # an arm of the same seed that must finish first (it trains the models this one reuses)

    @property
    def tag(self) -> str:
        """'' for a notebook run as it is (its outputs are the plain run's, reused both ways), else the arm's name."""
        return self.name if self.overrides else ""

    @property
    def run_overrides(self) -> dict:
        """The overrides the notebook runs with: the arm's, plus its name as the run's ``variant``."""
        return {**self.overrides, "variant": self.tag} if self.tag else dict(self.overrides)

    def run_dir(self, preset: str, seed: int, root: Path | None = None) -> Path:
        folder = f"{self.stem}--{self.tag}" if self.tag else self.stem
        return (root or runs_root()) / preset / folder / f"seed{seed}"


# The loss variant leaves out the fixed-ratio and other-padding models: the base run measures them. The padding needs
# no arm of its own: the base run trains, probes and scores the same model with the mask token
# (ablations.other_padding, notebook 03), one MAGE training instead of a whole notebook run per seed.
ARMS = (
    Arm("base", "03_mage_variable_masking"),
    Arm("loss-all", "03_mage_variable_masking",
        {"mage.loss_on": "all", "ablations.fixed_ratio": False, "ablations.other_padding": False}, "base"),
    Arm("contrastive", "04_contrastive_cotraining", after="base"),
    Arm("quantization", "05_quantization_shortcut", after="base"),
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
    return lambda m: m["budgets"][model]["epochs"]


def _noise(kind: str) -> Callable[[dict], float]:  # one model's sampling std of fd_classifier or KID (notebook 03)
    return lambda m: m["generation_noise"][f"{kind}_std"]


def why_mage_vs_mae(m: dict) -> str:
    return _facts(m, ("budget {:.2f} epochs each (MAE {:.2f})", ("base", _epochs("mage")), ("base", _epochs("mae"))),
                  ("MAGE's masked-token accuracy {:.1f} % against a {:.1f} % most-frequent baseline",
                   ("base", "masked_acc"), ("base", "masked_acc_baseline")),
                  ("mode share {:.0%} (true tokens {:.0%})", ("base", "mode_share"), ("base", "mode_share_true")),
                  ("the tokens alone probe {:.1f} % (code vectors), an untrained MAGE encoder {:.1f} %",
                   ("base", "probe_code_vectors"), ("base", "probe_random_encoder")))


def why_generation(arm_a: str, key_a, arm_b: str, key_b, kind: str = "fd") -> Callable[[dict], str]:
    """A generation claim's mechanism: the difference against the metric's own sampling noise (``kind``: "fd" for
    fd_classifier, "kid" for KID), and the real-image and untrained-model anchors it is read between."""
    anchors = {"fd": ("fd_classifier_real", "fd_classifier_untrained", "{:.1f}", "{:+.2f}", "{:.2f}"),
               "kid": ("kid_real", "kid_untrained", "{:.3f}", "{:+.3f}", "{:.3f}")}[kind]
    real, untrained, level, diff, std = anchors

    def why(m: dict) -> str:
        a, b = _avg(m, arm_a, key_a), _avg(m, arm_b, key_b)
        if a is None or b is None:
            return NO_MECHANISM
        paired = [va - vb for _, va, vb in _pairs(m, (arm_a, key_a), (arm_b, key_b))]
        spread = f" (seed-to-seed std {std.format(_mean_std(paired)[1])})" if len(paired) > 1 else ""
        # the two sources of spread side by side: the models' (training seeds) and the metric's (sampling seeds)
        return _facts(m, (f"difference {diff.format(a - b)}{spread} against one model's sampling std {std} (3 sampling seeds)",
                          ("base", _noise(kind))),
                      (f"real images score {level}, the untrained model {level}", ("base", real), ("base", untrained)))
    return why


def why_padding(m: dict) -> str:
    return _facts(m, ("mode share [C] {:.0%} vs mask token {:.0%}", ("base", "mode_share"), ("base", "mode_share_other_padding")),
                  ("masked decoder inputs' cosine [C] {:.3f} vs mask token {:.3f}",
                   ("base", "masked_similarity"), ("base", "masked_similarity_other_padding")))


def why_quantization(m: dict) -> str:
    return _facts(m, ("a feature's variance explained by its 4 neighbours: continuous {:.2f}, quantized {:.2f}",
                      ("quantization", "neighbour_r2_continuous"), ("quantization", "neighbour_r2_quantized")),
                  ("masked-token accuracy tokens {:.1f} % vs continuous {:.1f} %",
                   ("quantization", "masked_acc_tokens"), ("quantization", "masked_acc_continuous")),
                  ("on test tokens, cross-entropy without smoothing tokens {:.2f} vs continuous {:.2f}, "
                   "probability on the true code {:.3f} vs {:.3f}", ("quantization", "masked_nll_tokens"),
                   ("quantization", "masked_nll_continuous"), ("quantization", "masked_p_true_tokens"),
                   ("quantization", "masked_p_true_continuous")))


def why_contrastive(m: dict) -> str:
    return _facts(m, ("views matched to their partner {:.0%} -> {:.0%}", ("contrastive", "view_match_first"),
                      ("contrastive", "view_match_last")),
                  ("InfoNCE {:.2f} -> {:.2f}", ("contrastive", "contrastive_loss_first"), ("contrastive", "contrastive_loss_last")),
                  ("reconstruction loss MAGE-C {:.3f} vs MAGE {:.3f}", ("contrastive", "rec_loss_last_mage_c"),
                   ("contrastive", "rec_loss_last_mage")))


def why_loss(m: dict) -> str:
    return _facts(m, ("masked-token accuracy masked-only {:.1f} % vs all-token {:.1f} %", ("base", "masked_acc"),
                      ("loss-all", "masked_acc")),
                  ("mode share masked-only {:.0%} vs all-token {:.0%}", ("base", "mode_share"), ("loss-all", "mode_share")))


def why_seed_spread(arm: str, key) -> Callable[[dict], str]:
    """No mechanism metric of its own: the seed-to-seed spread the difference is read against."""
    def why(m: dict) -> str:
        vals = [v for v in (_value(x, key) for x in m.get(arm, {}).values()) if v is not None]
        if len(vals) < 2:
            return "one seed: no spread measured"
        return f"seed-to-seed std of the A arm {_mean_std(vals)[1]:.2f} over {len(vals)} seeds"
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
    Claim("MAGE vs MAE", "MAGE's linear probe beats MAE's", ("base", "probe_mage"), ("base", "probe_mae"),
          "MAGE", "MAE", True, "74.7 vs 68.0", why_mage_vs_mae),
    Claim("MAGE vs MAE", "MAGE's per-block probe is above MAE's (mean over blocks)",
          ("base", _mean_blocks("probe_blocks_mage")), ("base", _mean_blocks("probe_blocks_mae")), "MAGE", "MAE", True,
          "Figure 6 (numbers unconfirmed)", why_mage_vs_mae),
    Claim("masking", "variable masking generates better (fd_classifier, lower is better)", ("base", "fd_classifier_mage"),
          ("base", "fd_classifier_fixed075"), "truncated Gaussian", "fixed 0.75", False, "Table 5 (numbers unconfirmed)",
          why_generation("base", "fd_classifier_mage", "base", "fd_classifier_fixed075")),
    Claim("masking", "variable masking generates better (KID, lower is better)", ("base", "kid_mage"),
          ("base", "kid_fixed075"), "truncated Gaussian", "fixed 0.75", False, "Table 5 (numbers unconfirmed)",
          why_generation("base", "kid_mage", "base", "kid_fixed075", "kid")),
    Claim("masking", "variable masking probes better", ("base", "probe_mage"), ("base", "probe_mage_fixed075"),
          "truncated Gaussian", "fixed 0.75", True, "Table 5 (numbers unconfirmed)",
          why_seed_spread("base", "probe_mage")),
    Claim("quantization", "continuous input reaches a lower training loss", ("quantization", "loss_last_continuous"),
          ("quantization", "loss_last_tokens"), "continuous", "tokens", False, "3.31 vs 5.76", why_quantization),
    Claim("quantization", "quantized tokens probe better than continuous features", ("quantization", "probe_tokens"),
          ("quantization", "probe_continuous"), "tokens", "continuous", True, "74.7 vs 49.5", why_quantization),
    Claim("padding", "[C] padding probes better than a learnable mask token", ("base", "probe_mage"),
          ("base", "probe_mage_other_padding"), "[C]", "mask token", True, "appendix (numbers unconfirmed)", why_padding),
    Claim("padding", "[C] padding generates better (fd_classifier)", ("base", "fd_classifier_mage"),
          ("base", "fd_classifier_other_padding"), "[C]", "mask token", False, "appendix (numbers unconfirmed)",
          why_padding),
    Claim("padding", "[C] padding generates better (KID)", ("base", "kid_mage"), ("base", "kid_other_padding"),
          "[C]", "mask token", False, "appendix (numbers unconfirmed)", why_padding),
    Claim("loss", "masked-only loss probes better than all-token loss", ("base", "probe_mage"), ("loss-all", "probe_mage"),
          "masked only", "all tokens", True, "appendix (numbers unconfirmed)", why_loss),
    Claim("loss", "masked-only loss generates better (fd_classifier)", ("base", "fd_classifier_mage"),
          ("loss-all", "fd_classifier_mage"), "masked only", "all tokens", False, "appendix (numbers unconfirmed)",
          why_generation("base", "fd_classifier_mage", "loss-all", "fd_classifier_mage")),
    Claim("loss", "masked-only loss generates better (KID)", ("base", "kid_mage"), ("loss-all", "kid_mage"),
          "masked only", "all tokens", False, "appendix (numbers unconfirmed)",
          why_generation("base", "kid_mage", "loss-all", "kid_mage", "kid")),
    Claim("crops", "strong crops (0.2, 1) generate better than weak (0.8, 1)", ("contrastive", "fd_classifier_mage"),
          ("contrastive", "fd_classifier_mage_crop08"), "(0.2, 1)", "(0.8, 1)", False, "paper figure (numbers unconfirmed)",
          _with_facts(why_generation("contrastive", "fd_classifier_mage", "contrastive", "fd_classifier_mage_crop08"),
                      ("the training views themselves (tokenized crops of real images) score (0.2, 1) {:.1f} vs "
                       "(0.8, 1) {:.1f}", ("contrastive", "fd_classifier_views"),
                       ("contrastive", "fd_classifier_views_crop08")))),
    Claim("crops", "strong crops (0.2, 1) probe better than weak (0.8, 1)", ("contrastive", "probe_mage"),
          ("contrastive", "probe_mage_crop08"), "(0.2, 1)", "(0.8, 1)", True, "none given",
          why_seed_spread("contrastive", "probe_mage")),
    Claim("MAGE-C", "MAGE-C's linear probe beats MAGE's", ("contrastive", "probe_mage_c"), ("contrastive", "probe_mage"),
          "MAGE-C", "MAGE", True, "78.2 vs 74.7", why_contrastive),
    Claim("MAGE-C", "MAGE-C's k-NN accuracy beats MAGE's", ("contrastive", "knn_mage_c"), ("contrastive", "knn_mage"),
          "MAGE-C", "MAGE", True, "none given", why_contrastive),
    Claim("MAGE-C", "MAGE-C generates as well as MAGE (fd_classifier)", ("contrastive", "fd_classifier_mage_c"),
          ("contrastive", "fd_classifier_mage"), "MAGE-C", "MAGE", False, "not reported",
          why_generation("contrastive", "fd_classifier_mage_c", "contrastive", "fd_classifier_mage")),
)

# Two-sided 95 % Student t quantiles by degrees of freedom; beyond the table, the normal 1.96.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


# --- numbers --------------------------------------------------------------------------

def _value(metrics: dict, key) -> float | None:
    try:
        return float(key(metrics) if callable(key) else metrics[key])
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan"))


def verdict(diffs: list[float]) -> tuple[str, tuple[float, float] | None]:
    """From paired differences (positive = the paper's direction): the verdict and the 95 % t-interval.

    Reproduced when the whole interval is above 0, "not reproduced at this scale" when it is
    below 0, inconclusive when it contains 0 or there is one seed only.
    """
    if len(diffs) < 2:
        return "inconclusive (one seed)", None
    m, s = _mean_std(diffs)
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
            row["diff"] = _mean_std(diffs)
        elif seeds:
            row["verdict"], row["interval"] = "not measured (these runs did not log it)", None
        else:
            row["verdict"], row["interval"] = "not measured (its runs are missing or failed)", None
        rows.append(row)
    return rows


def _pm(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    m, s = _mean_std(xs)
    return f"{m:.2f}" if len(xs) == 1 else f"{m:.2f} ± {s:.2f}"


def render_table(metrics: dict[str, dict[int, dict]]) -> str:
    """The markdown table of the report, rendered from the metrics alone."""
    lines = ["| claim (paper's direction) | A | B | A: mean ± std | B: mean ± std | A − B in the paper's direction, "
             "mean [95 % CI] | seeds | paper (ImageNet, A vs B) | verdict | why (measured, seed means) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in claim_rows(metrics):
        c = r["claim"]
        if "diff" in r:
            d = f"{r['diff'][0]:+.2f}" + (f" [{r['interval'][0]:+.2f}, {r['interval'][1]:+.2f}]" if r["interval"] else "")
        else:
            d = "n/a"
        lines.append(f"| {c.claim} | {c.a_label} | {c.b_label} | {_pm(r['a'])} | {_pm(r['b'])} | {d} | {len(r['seeds'])} "
                     f"| {c.paper} | **{r['verdict']}** | {c.why(metrics) if r['seeds'] else ''} |")
    return "\n".join(lines)


# --- running the grid -----------------------------------------------------------------

def _data_files(path: Path) -> list[Path]:
    """The files of the data at ``path``: the archive itself, or every file under the folder."""
    return [path] if path.is_file() else sorted(Path(d) / f for d, _, fs in os.walk(path) for f in fs)


def _data_mtime(path: Path) -> float:
    """When the data at ``path`` last changed: an archive's mtime, or the newest of a folder's files."""
    return max([path.stat().st_mtime] + [f.stat().st_mtime for f in _data_files(path)])


def _complete(arm: Arm, preset: str, seed: int, dataset: str = "") -> dict | None:
    """The metrics of a finished run made with exactly what this run would use, else None.

    The reuse key is the run's whole config (the preset with the arm's overrides and ``dataset``,
    a path compared resolved; the device left out: the report does not choose it) and the data
    itself: the identity of the pixels and labels the run read (``ImageDataset.identity``), so a
    fresh copy of the same files is the same data. A run that logged no identity is reused only
    if it started after its data files last changed.
    """
    path = arm.run_dir(preset, seed) / "metrics.json"
    if not path.exists():
        return None
    try:
        m = load_json(path)
    except DamagedFileError:
        return None
    if not m.get("complete") or m.get("overrides", {}) != arm.run_overrides:
        return None
    want = load_preset(preset, arm.run_overrides, dataset=resolve_dataset(dataset)).to_dict()
    if config_hash({**m.get("config", {}), "device": ""}) != config_hash({**want, "device": ""}):
        return None
    source = want["data"]["dataset"]
    if source.lower() not in ("shapes", "cifar10"):
        made_on = m.get("dataset", {}).get("identity")
        if made_on is not None:  # the pixels and labels it read: a copy of the same data (new mtime) is the same
            if made_on != _data_identity(source, want["data"]["image_size"]):
                return None
        elif _data_mtime(Path(source)) > path.stat().st_mtime - m.get("elapsed_s", 0):
            return None  # a run from before identities were logged: reused only if its data did not change since
    return m


_IDENTITIES: dict = {}


def _data_identity(source: str, image_size: int) -> str:
    """:attr:`ImageDataset.identity` of the image-folder dataset at ``source`` (decoded once per report)."""
    key = (source, image_size, source_key(source))
    if key not in _IDENTITIES:
        _IDENTITIES[key] = load_dataset(source, image_size, progress=False).identity
    return _IDENTITIES[key]


def _task_command(arm: Arm, preset: str, seed: int, dataset: str) -> list[str]:
    params = {"preset": preset, "seed": seed}
    if arm.run_overrides:
        params["overrides"] = arm.run_overrides
    if dataset:
        params["dataset"] = dataset
    return [sys.executable, "-m", "mage_lite.report", "task", "--notebook", arm.stem, "--name", f"{arm.stem}--{arm.name}-seed{seed}",
            "--params", json.dumps(params), "--preset", preset]


def _find_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
PR_SET_PDEATHSIG = 1


def start_worker(cmd: list[str], log, jobs: int) -> subprocess.Popen:
    """Start one worker process that dies with the process that started it, even on kill -9.

    On Linux the kernel sends the worker SIGKILL when the starting thread exits
    (PR_SET_PDEATHSIG, set between fork and exec); the notebook kernel the worker starts
    exits too, as ipykernel polls its parent (jupyter_client's JPY_PARENT_PID). Elsewhere
    workers are started plainly. ``MAGE_LITE_JOBS`` tells the worker how many run at once.
    """
    parent = os.getpid()

    def die_with_parent() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)

    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, preexec_fn=die_with_parent,
                            env={**os.environ, "MAGE_LITE_JOBS": str(jobs)})


# What one notebook run of the report preset holds at once (CIFAR-10 decoded, its models, the probes' features,
# the kernel and its worker): an estimate, not a measurement, erring high so that --jobs never swaps.
JOB_MEMORY_GIB = 2.0


def _available_memory_gib() -> float | None:
    """The memory available to new processes (Linux's MemAvailable), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def cap_jobs(jobs: int) -> int:
    """``jobs``, or fewer where this machine holds fewer notebook runs at once (one per core, and
    :data:`JOB_MEMORY_GIB` of available memory each), saying so."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limits = [(cores, f"{cores} CPU cores")]
    memory = _available_memory_gib()
    if memory is not None:
        limits.append((max(1, int(memory // JOB_MEMORY_GIB)),
                       f"{memory:.1f} GiB of available memory, about {JOB_MEMORY_GIB:.0f} GiB per notebook run"))
    most, why = min(limits)
    if jobs <= most:
        return jobs
    print(f"--jobs {jobs} capped at {most}: this machine has {why}", flush=True)
    return most


def failure_reason(log: Path) -> str:
    """A failed worker's reason in one line, whole: its last ``error: ...`` message (a notebook's error may span
    lines), else the last line of its log (an uncaught traceback ends with the exception)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    errors = list(re.finditer(r"^error: ", text, re.M))
    if errors:
        return " ".join(text[errors[-1].end():].split())
    return ([line.strip() for line in text.splitlines() if line.strip()][-1:] or ["(no output)"])[0]


def run_grid(preset: str, seeds: int, dataset: str = "", jobs: int = 2, arms: tuple = ARMS, rerun: tuple = ()) -> dict:
    """Run every (arm, seed) not finished yet, and the arms named in ``rerun`` again (e.g. after their
    notebook learned to log more; the models they trained are still reused); returns
    {"arm/seed": {"status", "seconds", "error"}}."""
    unknown = sorted(set(rerun) - {a.name for a in arms})
    if unknown:
        raise ConfigError(f"--rerun names no arm of the grid: {', '.join(unknown)}; "
                          f"the arms are {', '.join(a.name for a in arms)}")
    # Refuse a bad preset or dataset, data that cannot be read and a folder that cannot be written before starting anything.
    check_reachable(load_preset(preset, dataset=dataset).data.dataset)
    check_writable(runs_root() / preset, "set MAGE_LITE_RUNS_DIR to a folder you can write to")
    dataset = resolve_dataset(dataset)
    jobs = cap_jobs(jobs)
    log_dir = runs_root() / preset / "report"
    log_dir.mkdir(parents=True, exist_ok=True)
    status_path = log_dir / "status.json"
    try:
        status = load_json(status_path) if status_path.exists() else {}
    except DamagedFileError:  # rebuilt from the runs' own metrics below
        status = {}
    pending = [(a, s) for s in range(seeds) for a in arms]
    pending.sort(key=lambda t: (t[0].after != "", t[1]))  # every seed's base first: it trains what the others reuse
    todo = []
    for a, s in pending:
        if a.name not in rerun and _complete(a, preset, s, dataset):
            status.setdefault(f"{a.name}/{s}", {"status": "done", "seconds": None})
            status[f"{a.name}/{s}"].update(status="done", reused=True)  # its seconds, if any, are an earlier invocation's
        else:  # forget what an earlier invocation said (done on other data, failed): it runs again
            status.pop(f"{a.name}/{s}", None)
            todo.append((a, s))
    print(f"report {preset}: {len(pending)} runs in the grid, {len(pending) - len(todo)} already finished, {len(todo)} to run "
          f"({jobs} at a time)", flush=True)
    procs: dict = {}  # (arm, seed) -> the worker process, to stop them on Ctrl-C

    def launch(a: Arm, s: int):
        log = log_dir / f"{a.name}-seed{s}.log"
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            procs[a.name, s] = start_worker(_task_command(a, preset, s, dataset), fh, jobs)
            rc = procs.pop((a.name, s)).wait()
        return rc, round(time.perf_counter() - t0, 1), log

    def state(a: Arm, s: int) -> str:
        return status.get(f"{a.name}/{s}", {}).get("status", "")

    by_name = {a.name: a for a in arms}
    running: dict = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while todo or running:
            for a, s in list(todo):
                if len(running) >= jobs:
                    break
                dep = by_name.get(a.after)
                if dep is not None and state(dep, s) in ("failed", "skipped"):
                    status[f"{a.name}/{s}"] = {"status": "skipped", "seconds": None, "error": f"needs {dep.name} (seed {s}), which failed"}
                    todo.remove((a, s))
                    continue
                if dep is not None and state(dep, s) != "done":
                    continue
                todo.remove((a, s))
                print(f"  start {a.name} seed {s} ({a.stem})", flush=True)
                running[pool.submit(launch, a, s)] = (a, s)
            save_json(status, status_path)
            if not running:  # nothing runs and nothing could start: what is left waits on runs that will not finish
                for a, s in todo:
                    status[f"{a.name}/{s}"] = {"status": "skipped", "seconds": None, "error": f"needs {a.after} (seed {s}), not run"}
                save_json(status, status_path)
                break
            try:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # stop the workers too (their runs resume on the next invocation)
                for proc in list(procs.values()):
                    proc.terminate()
                raise
            for fut in finished:
                a, s = running.pop(fut)
                rc, secs, log = fut.result()
                entry = {"status": "done" if rc == 0 else "failed", "seconds": secs, "token_banks_built": _banks_built(a, preset, s)}
                reason = failure_reason(log) if rc else ""
                if rc:
                    entry["error"] = f"exit code {rc}: {reason} (full log: {log})"
                status[f"{a.name}/{s}"] = entry
                print(f"  {entry['status']} {a.name} seed {s} in {secs / 60:.1f} min" + (f": {reason}" if reason else ""),
                      flush=True)
            save_json(status, status_path)
    built = sum(e.get("token_banks_built", 0) for e in status.values())
    print(f"token banks built by the runs of this report: {built}", flush=True)
    return status


def _banks_built(arm: Arm, preset: str, seed: int) -> int:
    """How many token banks a finished run built (rather than reused), from its metrics.json."""
    try:
        m = load_json(arm.run_dir(preset, seed) / "metrics.json")
    except (DamagedFileError, FileNotFoundError):
        return 0
    return sum(bool(b.get("built")) for b in m.get("token_banks", {}).values())


def collect(preset: str, seeds: int, dataset: str = "", arms: tuple = ARMS) -> dict[str, dict[int, dict]]:
    """metrics[arm][seed] of every complete run on ``dataset`` (the config left out)."""
    out: dict[str, dict[int, dict]] = {}
    for a in arms:
        for s in range(seeds):
            m = _complete(a, preset, s, dataset)
            if m:
                out.setdefault(a.name, {})[s] = {k: v for k, v in m.items() if k != "config"}
    return out


def load_report_metrics(report_dir: Path) -> dict[str, dict[int, dict]]:
    """The metrics a written report was rendered from (``reports/<preset>/metrics/<arm>/seed<k>.json``)."""
    out: dict[str, dict[int, dict]] = {}
    for path in sorted((report_dir / "metrics").glob("*/seed*.json")):
        out.setdefault(path.parent.name, {})[int(path.stem[4:])] = load_json(path)
    return out


# --- writing the report ----------------------------------------------------------------

def figures(metrics: dict[str, dict[int, dict]], out: Path) -> list[str]:
    """The claims as paired bars (mean, std, one dot per seed) and the per-block probe curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in claim_rows(metrics) if r["seeds"]]
    names = []
    if rows:
        cols = 4
        nrows = math.ceil(len(rows) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
        for ax, r in zip(axes.flat, rows):
            c = r["claim"]
            for j, vals in enumerate((r["a"], r["b"])):
                m, s = _mean_std(vals)
                ax.bar(j, m, yerr=0 if math.isnan(s) else s, color=("tab:green", "tab:gray")[j], alpha=0.7, capsize=4)
                ax.scatter([j] * len(vals), vals, c="k", s=12, zorder=3)
            ax.set_xticks([0, 1], [c.a_label, c.b_label], fontsize=8)
            ax.set_title(f"{c.claim}\n{r['verdict']}", fontsize=7.5)
            lo = min(r["a"] + r["b"])
            hi = max(r["a"] + r["b"])
            ax.set_ylim(lo - 0.15 * (hi - lo + 1e-9) - 0.5, hi + 0.15 * (hi - lo + 1e-9) + 0.5)
        for ax in list(axes.flat)[len(rows):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "claims.png", dpi=100)
        plt.close(fig)
        names.append("claims.png")
    base = metrics.get("base", {})
    curves = {label: [m[key] for m in base.values() if key in m] for label, key in
              (("MAGE", "probe_blocks_mage"), ("MAE", "probe_blocks_mae"))}
    if all(curves.values()):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for label, runs in curves.items():
            blocks = sorted(runs[0], key=lambda k: int(k.split("_")[1]))
            means = [_mean_std([r[b] for r in runs])[0] for b in blocks]
            stds = [0 if len(runs) < 2 else _mean_std([r[b] for r in runs])[1] for b in blocks]
            x = list(range(1, len(blocks) + 1))
            ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=f"{label} ({len(runs)} seeds)")
        ax.set_xlabel("encoder block"), ax.set_ylabel("linear probe top-1 (%)"), ax.legend(fontsize=8)
        ax.set_title("per-block probe, mean ± std over seeds", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "probe_blocks.png", dpi=100)
        plt.close(fig)
        names.append("probe_blocks.png")
    return names


def preset_line(preset: str, metrics: dict[str, dict[int, dict]]) -> str:
    """The report's "- preset:" line: what the preset is and the data its runs read (a path named by its file, not
    by this machine's folders)."""
    source = next((m.get("dataset", {}).get("source") for by_seed in metrics.values() for m in by_seed.values()), "?")
    return f"- preset: {load_preset(preset).description}; data: {_file_names(source)}"


def _file_names(text: str) -> str:
    """``text`` with each absolute path replaced by its file name (a report names no folder of the machine it ran on)."""
    return re.sub(r"/\S+", lambda p: Path(p.group(0)).name, text)


def write_report(preset: str, seeds: int, status: dict, metrics: dict[str, dict[int, dict]], command: str,
                 out: Path, wall_s: float | None = None) -> Path:
    """reports/<preset>/: README.md, figures/, metrics/ (and notebooks/ HTML copied by :func:`main`)."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "metrics").exists():
        shutil.rmtree(out / "metrics")
    for arm, by_seed in metrics.items():
        for s, m in by_seed.items():
            save_json(m, out / "metrics" / arm / f"seed{s}.json")
    figs = figures(metrics, out / "figures")
    secs = [v["seconds"] for v in status.values() if v.get("seconds")]
    failed = {k: v for k, v in status.items() if v.get("status") in ("failed", "skipped")}
    reused = sum(v.get("status") == "done" and bool(v.get("reused")) for v in status.values())
    lines = [f"# Ablation report: preset `{preset}`, {seeds} seed{'s' if seeds != 1 else ''}", "",
             f"Produced by `{command}`.", "",
             preset_line(preset, metrics),
             f"- runs: {sum(len(v) for v in metrics.values())} notebook runs finished, {len(failed)} failed or skipped"
             + (f", {reused} reused from an earlier invocation" if reused else "")
             + (f"; {sum(secs) / 60:.0f} min of notebook time" if secs else "")
             + (f", {wall_s / 60:.0f} min wall-clock this invocation" if wall_s else ""),
             "- A: the paper's preferred setting, B: the alternative. The verdict comes from the paired per-seed "
             "differences A − B (sign flipped where lower is better): **reproduced** when their 95 % t-interval is above "
             "zero, **not reproduced at this scale** when it is below zero, **inconclusive** when it contains zero "
             "(or with one seed). fd_classifier is this project's offline Fréchet distance (not FID; lower is better).",
             "- why: the measured mechanism behind each verdict, seed means of the runs' own metrics (the budget, the "
             "mode share, the metric's sampling noise, the neighbour predictability, ...), rendered with the table.",
             "", TABLE_START, render_table(metrics), TABLE_END, ""]
    if failed:
        lines += ["## Failed or skipped runs", ""] + [f"- `{k}`: {v['status']}: {v.get('error', '')}" for k, v in sorted(failed.items())] + [""]
    lines += ["## Figures", ""] + [f"![{f}](figures/{f})" for f in figs] + [""]
    lines += ["## The grid", "", "| arm | notebook | overrides |", "| --- | --- | --- |"]
    lines += [f"| {a.name} | {a.stem} | {json.dumps(a.run_overrides) if a.run_overrides else ''} |" for a in ARMS]
    lines += ["", "The numbers behind the table are in `metrics/<arm>/seed<k>.json`; the executed notebooks, as HTML, in "
              "`notebooks/` (written by the command, not committed).", ""]
    (out / "README.md").write_text("\n".join(lines))
    return out / "README.md"


VERDICT_GROUPS = (  # (verdict prefix, how the summary names the group)
    ("reproduced", "**reproduced**"),
    ("not reproduced", "**not reproduced at this scale**, the opposite beyond the seed spread"),
    ("inconclusive", "**inconclusive**, the interval contains zero"),
    ("not measured", "**not measured**"),
)


def run_facts(report_readme: str) -> tuple[str, str]:
    """(command, runs line) as a written report states them (its "Produced by" and "- runs:" lines)."""
    command = re.search(r"^Produced by `([^`]+)`", report_readme, re.M)
    runs = re.search(r"^- runs: (.+)$", report_readme, re.M)
    if not (command and runs):
        raise ConfigError("the report's README lacks its 'Produced by' or '- runs:' line; re-run the report command to rewrite it")
    return command.group(1), runs.group(1)


def render_summary(metrics: dict[str, dict[int, dict]], report_readme: str) -> str:
    """The project README's summary of the report: how it was made, what reproduces at 32 px (the claims grouped by
    verdict) and the generation metrics' sampling noise against the untrained-to-real gap in this preset."""
    command, runs = run_facts(report_readme)
    rows = claim_rows(metrics)
    seeds = max((len(r["seeds"]) for r in rows), default=0)
    lines = [f"Measured with `{command}`: {runs}. Figures and per-seed metrics: "
             "[`reports/report/`](reports/report/README.md).", "",
             f"**What reproduces at 32 px**, from the verdicts of the {len(rows)} rows below ({seeds} seeds):"]
    for prefix, label in VERDICT_GROUPS:
        claims = [r["claim"].claim for r in rows if r["verdict"].startswith(prefix)]
        if claims:
            lines.append(f"- {label} ({len(claims)}): " + "; ".join(claims))
    noise = [m["generation_noise"] for m in metrics.get("base", {}).values() if "generation_noise" in m]
    if noise:
        parts = []
        for kind, name in (("fd", "fd_classifier"), ("kid", "KID")):
            std = _mean_std([n[f"{kind}_std"] for n in noise])[0]
            ratio = _mean_std([n[f"{kind}_ratio"] for n in noise])[0]
            parts.append(f"{name} {std:.3g} ({ratio:.1%} of the untrained-to-real gap, "
                         f"{'within' if ratio <= 0.2 else 'above'} a fifth of it)")
        lines.append(f"- **generation metrics' sampling noise** in this preset (one model's std over 3 sampling seeds, "
                     f"mean over {len(noise)} seeds of the base run): " + "; ".join(parts))
    return "\n".join(lines)


def publish(metrics: dict[str, dict[int, dict]], report_readme: str) -> None:
    """Put the report's table and its summary in the project README, between their markers."""
    readme = REPO_ROOT / "README.md"
    text = replace_block(readme.read_text(), TABLE_START, TABLE_END, render_table(metrics))
    readme.write_text(replace_block(text, SUMMARY_START, SUMMARY_END, render_summary(metrics, report_readme)))
    print(f"rendered the report's summary and table in {readme}")


def table_from_readme(text: str) -> str:
    """The claims table of a README (between the report-table markers)."""
    return block_between(text, TABLE_START, TABLE_END)


def _task(args) -> int:
    """One notebook run in its own process (called by run_grid)."""
    from .notebooks import NotebookFailed, execute

    book = NOTEBOOK_DIR / f"{args.notebook}.py"
    out_dir = runs_root() / args.preset / "report" / "notebooks"

    def body() -> int:
        try:
            execute(book, json.loads(args.params), out_dir, progress=False, name=args.name)
        except NotebookFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0

    return cli(body)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["task"]:
        tp = argparse.ArgumentParser(prog="python -m mage_lite.report task")
        for name in ("--notebook", "--name", "--params", "--preset"):
            tp.add_argument(name, required=True)
        return _task(tp.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(prog="python -m mage_lite.report", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="report", help=f"one of {', '.join(PRESET_NAMES)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    ap.add_argument("--dataset", default="", help="'shapes', 'cifar10' or a path to an image-folder dataset")
    ap.add_argument("--jobs", type=int, default=2, help="notebook runs at a time (default 2: one per core on 2 cores)")
    ap.add_argument("--out", default="", help="report folder (default reports/<preset>)")
    ap.add_argument("--render-only", action="store_true", help="re-render README.md and the figures from the report's metrics/ folder")
    ap.add_argument("--rerun", nargs="+", default=[], metavar="ARM",
                    help="run these arms again even where finished (their trained models are reused)")
    args = ap.parse_args(argv)
    return cli(lambda: _report(args))


def _report(args) -> int:
    """The report command: refuse bad input up front, run the grid, write the report."""
    out = Path(args.out) if args.out else REPO_ROOT / "reports" / args.preset
    if args.seeds < 1 or args.jobs < 1:
        raise ConfigError(f"--seeds and --jobs must be at least 1, got {args.seeds} and {args.jobs}")
    if args.render_only:
        if not (out / "README.md").exists():
            raise ConfigError(f"--render-only needs a report in {out}, and there is none; run without --render-only first")
        text = (out / "README.md").read_text()
        metrics = load_report_metrics(out)
        text = text.replace(table_from_readme(text), render_table(metrics))
        text = re.sub(r"^- preset: .*$", lambda line: _file_names(line.group(0)), text, count=1, flags=re.M)
        (out / "README.md").write_text(text)
        figures(metrics, out / "figures")
        print(f"re-rendered {out / 'README.md'} and its figures")
        if out == REPO_ROOT / "reports" / "report":  # the project README shows the committed report's table
            publish(metrics, text)
        return 0
    # Before the grid: a report folder that cannot be written would be found out only after hours of runs.
    check_writable(out, "pass --out a folder you can write to")
    command = " ".join(["python -m mage_lite.report", f"--preset {args.preset}", f"--seeds {args.seeds}"]
                       + ([f"--dataset {args.dataset}"] if args.dataset else []) + ([f"--jobs {args.jobs}"] if args.jobs != 2 else [])
                       + ([f"--rerun {' '.join(args.rerun)}"] if args.rerun else []))
    t0 = time.perf_counter()
    status = run_grid(args.preset, args.seeds, args.dataset, args.jobs, rerun=tuple(args.rerun))
    metrics = collect(args.preset, args.seeds, args.dataset)
    path = write_report(args.preset, args.seeds, status, metrics, command, out, time.perf_counter() - t0)
    html = runs_root() / args.preset / "report" / "notebooks"
    (out / "notebooks").mkdir(exist_ok=True)
    for f in html.glob("*.html"):
        shutil.copyfile(f, out / "notebooks" / f.name)
    failed = [k for k, v in status.items() if v.get("status") != "done"]
    print(f"report: {path}" + (f" ({len(failed)} runs failed or skipped: {', '.join(sorted(failed))})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
