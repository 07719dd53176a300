"""Writing the report: its README (the claims table, the summary, the grid), its figures, and the project's
blocks rendered from the report's committed metrics (the summary on README.md, the table on docs/results.md)."""

import json
import math
import re
import shutil
from pathlib import Path

from ...artifacts import load_json, save_json
from ..published import without_machine_paths
from ...config import ConfigError, load_preset
from ...names import NB03, GenerationNoise
from ..readme import markers, read_block, write_block
from .claims import ARMS, claim_rows, mean_std

TABLE_BLOCK, SUMMARY_BLOCK = "report-table", "report-summary"  # rendered blocks (their files: mage_lite.lab.readme.HOMES); the table also in the report's own README


def _pm(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    m, s = mean_std(xs)
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
                m, s = mean_std(vals)
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
              (("MAGE", NB03.probe_blocks_mage), ("MAE", NB03.probe_blocks_mae))}
    if all(curves.values()):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for label, runs in curves.items():
            blocks = sorted(runs[0], key=lambda k: int(k.split("_")[1]))
            means = [mean_std([r[b] for r in runs])[0] for b in blocks]
            stds = [0 if len(runs) < 2 else mean_std([r[b] for r in runs])[1] for b in blocks]
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
    return f"- preset: {load_preset(preset).description}; data: {file_names(source)}"


def file_names(text: str) -> str:
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
            save_json(without_machine_paths(m), out / "metrics" / arm / f"seed{s}.json")
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
             "", markers(TABLE_BLOCK)[0], render_table(metrics), markers(TABLE_BLOCK)[1], ""]
    if failed:
        lines += ["## Failed or skipped runs", ""] + [f"- `{k}`: {v['status']}: {v.get('error', '')}" for k, v in sorted(failed.items())] + [""]
    lines += ["## Figures", ""] + [f"![{f}](figures/{f})" for f in figs] + [""]
    lines += ["## The grid", "", "| arm | notebook | overrides |", "| --- | --- | --- |"]
    lines += [f"| {a.name} | {a.stem} | {json.dumps(a.overrides) if a.overrides else ''} |" for a in ARMS]
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
             f"**What reproduces at 32 px**, from the verdicts of the {len(rows)} rows of its table ({seeds} seeds):"]
    for prefix, label in VERDICT_GROUPS:
        claims = [r["claim"].claim for r in rows if r["verdict"].startswith(prefix)]
        if claims:
            lines.append(f"- {label} ({len(claims)}): " + "; ".join(claims))
    noise = [m[NB03.generation_noise] for m in metrics.get("base", {}).values() if NB03.generation_noise in m]
    if noise:
        parts = []
        for std_key, ratio_key, name in ((GenerationNoise.fd_std, GenerationNoise.fd_ratio, "fd_classifier"),
                                         (GenerationNoise.kid_std, GenerationNoise.kid_ratio, "KID")):
            std = mean_std([n[std_key] for n in noise])[0]
            ratio = mean_std([n[ratio_key] for n in noise])[0]
            parts.append(f"{name} {std:.3g} ({ratio:.1%} of the untrained-to-real gap, "
                         f"{'within' if ratio <= 0.2 else 'above'} a fifth of it)")
        lines.append(f"- **generation metrics' sampling noise** in this preset (one model's std over 3 sampling seeds, "
                     f"mean over {len(noise)} seeds of the base run): " + "; ".join(parts))
    return "\n".join(lines)


def publish(metrics: dict[str, dict[int, dict]], report_readme: str) -> None:
    """Put the report's table (docs/results.md) and its summary (README.md) between their markers."""
    page = write_block(TABLE_BLOCK, render_table(metrics))
    readme = write_block(SUMMARY_BLOCK, render_summary(metrics, report_readme))
    print(f"rendered the report's summary in {readme} and its table in {page}")


def table_from_readme(text: str) -> str:
    """The claims table of a README (between the report-table markers)."""
    return read_block(TABLE_BLOCK, text)
