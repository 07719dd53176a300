"""The README's Results section, rendered from the metrics files a published run committed.

    python -m mage_lite publish --preset ci   # runs/ci -> reports/ci (metrics, figures, notebooks)
    python -m mage_lite results                         # reports/*/ -> README.md, between the results markers

Every number in the section comes from ``reports/<preset>/<notebook>/seed0/metrics.json`` and
``reports/<preset>/timings.json``; a test renders it again and compares, so the README cannot
drift from the files. A preset that was never published gets no column.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..artifacts import REPO_ROOT, load_json
from ..names import NB00, NB01, NB02, NB03, NB04, NB05, STEMS, GenerationNoise
from .readme import link_base, write_block

RESULTS_BLOCK, COURSE_BLOCK, HEADLINE_BLOCK = "results", "course-map", "headline"  # the file each lives in: lab.readme.HOMES
RUNTIME_BLOCK = "runtime"  # in each notebook's opening markdown cell
PRESETS = ("ci", "cpu", "gpu")  # the columns, in this order, where published

NB = STEMS  # {number: stem}, the course's notebooks (mage_lite.names)


COURSE = {  # what a student learns in each notebook (the course map's middle column)
    NB00.stem: "the data, augmentation, presets; the linear probe and its two anchors (pixels, an untrained encoder)",
    NB01.stem: "MAE, the pixel baseline: random masking, the norm-pix target, reading an encoder with a probe",
    NB02.stem: "a VQGAN tokenizer for 32 px images (8 x 8 tokens); why codebook usage needs care",
    NB03.stem: "MAGE: variable masking, [C0]/[C] padding, iterative generation and how to score it",
    NB04.stem: "MAGE-C: InfoNCE between two views beside reconstruction; comparing encoders fairly",
    NB05.stem: "why MAGE reads quantized tokens: the shortcut continuous features leave open",
}


@dataclass(frozen=True)
class Row:
    label: str
    notebook: str  # a key of NB: the number of the notebook whose metrics hold the cell's keys
    value: Callable[[dict], str]  # the cell, from that notebook's metrics; KeyError -> "not measured"


def pct(key: str) -> Callable[[dict], str]:
    return lambda m: f"{m[key]:.1f} %"


def share(key: str) -> Callable[[dict], str]:  # a fraction in [0, 1], shown in percent
    return lambda m: f"{100 * m[key]:.1f} %"


def num(key: str, digits: int = 2) -> Callable[[dict], str]:
    return lambda m: f"{m[key]:.{digits}f}"


def pair(a: Callable[[dict], str], b: Callable[[dict], str], joiner: str = " -> ") -> Callable[[dict], str]:
    return lambda m: f"{a(m)}{joiner}{b(m)}"


TABLES: dict[str, list[Row]] = {
    "Linear probe, top-1 on the test images (BatchNorm + linear layer on frozen features, average-pooled)": [
        Row("training budget, epochs of the train split: MAE / MAGE / MAGE-C (equal by design)", "03",
            lambda m: " / ".join(f"{m[NB03.budgets][k]['epochs']:.2f}" for k in ("mae", "mage", "mage_c"))),
        Row("raw pixels", "01", pct(NB01.probe_pixels)),
        Row("MAE-shaped encoder, untrained", "01", pct(NB01.probe_random_encoder)),
        Row("MAE, norm-pix target, mask 0.75", "01", pct(NB01.probe_normpix)),
        Row("MAE, raw-pixel target, mask 0.75", "01", pct(NB01.probe_rawpix)),
        Row("MAGE encoder, untrained (same tokens)", "03", pct(NB03.probe_random_encoder)),
        Row("MAGE", "03", pct(NB03.probe_mage)),
        Row("MAGE-C (contrastive co-training)", "04", pct(NB04.probe_mage_c)),
        Row("the tokens alone: bag of codes / code vectors", "03", pair(pct(NB03.probe_bag_of_codes), pct(NB03.probe_code_vectors), " / ")),
    ],
    "Tokenizer (notebook 02), on random test images": [
        Row("test PSNR, default quantizer", "02", lambda m: f"{m[NB02.psnr_test]:.2f} dB"),
        Row("test PSNR, the 8 x 8 thumbnail upsampled (yardstick)", "02", lambda m: f"{m[NB02.psnr_reconstruction_baseline]:.2f} dB"),
        Row("codes used / perplexity, default quantizer", "02",
            pair(share(NB02.codebook_usage_test), num(NB02.perplexity_test, 0), " / ")),
        Row("codes used / perplexity, plain quantizer (same budget)", "02",
            pair(share(NB02.codebook_usage_test_plain), num(NB02.perplexity_test_plain, 0), " / ")),
    ],
    "MAGE (notebook 03): reconstruction and generation; fd_classifier and KID lower is better": [
        Row("masked-token accuracy at ratio 0.75 (most-frequent-code baseline)", "03",
            lambda m: f"{m[NB03.masked_acc]:.2f} % ({m[NB03.masked_acc_baseline]:.2f} %)"),
        Row("mode share of masked predictions (the true tokens')", "03",
            lambda m: f"{100 * m[NB03.mode_share]:.1f} % ({100 * m[NB03.mode_share_true]:.1f} %)"),
        Row("fd_classifier: MAGE / untrained / tokenizer reconstructions / real test images", "03",
            lambda m: " / ".join(f"{m[k]:.1f}" for k in (NB03.fd_classifier_mage, NB03.fd_classifier_untrained,
                                                          NB03.fd_classifier_recon, NB03.fd_classifier_real))),
        Row("KID: MAGE / untrained / real test images", "03",
            lambda m: " / ".join(f"{m[k]:.3f}" for k in (NB03.kid_mage, NB03.kid_untrained, NB03.kid_real))),
        Row("sampling noise: std of fd_classifier / KID over 3 sampling seeds, as a share of the untrained-to-real gap", "03",
            lambda m: f"{100 * m[NB03.generation_noise][GenerationNoise.fd_ratio]:.1f} % / "
                      f"{100 * m[NB03.generation_noise][GenerationNoise.kid_ratio]:.1f} %"),
        Row("feature network's own test accuracy", "03", pct(NB03.fd_classifier_test_acc)),
    ],
    "MAGE-C (notebook 04), against notebook 03's MAGE at the same budget": [
        Row("InfoNCE loss, first -> last logged", "04", pair(num(NB04.contrastive_loss_first), num(NB04.contrastive_loss_last))),
        Row("views matched to their partner, first -> last", "04", pair(share(NB04.view_match_first), share(NB04.view_match_last))),
        Row("20-NN accuracy: MAGE / MAGE-C", "04", pair(pct(NB04.knn_mage), pct(NB04.knn_mage_c), " / ")),
        Row("fd_classifier: MAGE / MAGE-C", "04", pair(num(NB04.fd_classifier_mage, 1), num(NB04.fd_classifier_mage_c, 1), " / ")),
        Row("crops (0.2, 1) / (0.8, 1): MAGE's fd_classifier, and its training views' own", "04",
            lambda m: f"{m[NB04.fd_classifier_mage]:.1f} / {m[NB04.fd_classifier_mage_crop08]:.1f}, "
                      f"views {m[NB04.fd_classifier_views]:.1f} / {m[NB04.fd_classifier_views_crop08]:.1f}"),
    ],
    "The quantization shortcut (notebook 05)": [
        Row("centre feature's variance explained by its 4 neighbours: continuous / quantized", "05",
            pair(num(NB05.neighbour_r2_continuous), num(NB05.neighbour_r2_quantized), " / ")),
        Row("final training loss: tokens / continuous input", "05", pair(num(NB05.loss_last_tokens), num(NB05.loss_last_continuous), " / ")),
        Row("on test tokens, cross-entropy without smoothing: tokens / continuous input", "05",
            pair(num(NB05.masked_nll_tokens), num(NB05.masked_nll_continuous), " / ")),
        Row("linear probe: tokens / continuous input", "05", pair(pct(NB05.probe_tokens), pct(NB05.probe_continuous), " / ")),
    ],
}


def published(root: Path | None = None, presets: tuple = PRESETS) -> dict[str, Path]:
    """The presets with a published run: {preset: <root>/reports/<preset>}."""
    reports = (root or REPO_ROOT) / "reports"
    return {p: reports / p for p in presets if (reports / p / "timings.json").exists()}


def load_timings(root: Path | None = None, presets: tuple = PRESETS) -> dict[str, dict]:
    """{preset: its published ``timings.json``} for every published preset."""
    return {p: load_json(f / "timings.json") for p, f in published(root, presets).items()}


def minutes(record: dict) -> float:
    """A notebook's runtime from an empty ``runs/``: the measured time plus the logged training time of
    any model it reused that no notebook of the run trained (``trained_earlier``, see mage_lite.lab.runner)."""
    return (record["seconds"] + sum(record.get("trained_earlier", {}).values())) / 60


def load_metrics(folder: Path) -> dict[str, dict]:
    """{notebook number: seed 0's metrics} of one published run."""
    out = {}
    for num_, stem in NB.items():
        path = folder / stem / "seed0" / "metrics.json"
        if path.exists():
            out[num_] = load_json(path)
    return out


def _cell(row: Row, metrics: dict[str, dict]) -> str:
    try:
        return row.value(metrics[row.notebook])
    except KeyError:
        return "not measured"


def render(root: Path | None = None, presets: tuple = PRESETS) -> str:
    """The Results section: one column per published preset, every cell from its metrics files."""
    runs = published(root, presets)
    if not runs:
        return "No run has been published yet: `python -m mage_lite publish --preset ci` after a ci run."
    metrics = {p: load_metrics(f) for p, f in runs.items()}
    timings = load_timings(root, presets)
    head = "| | " + " | ".join(f"`{p}`" for p in runs) + " |"
    rule = "| --- |" + " --- |" * len(runs)
    lines = []
    for p in runs:
        command = next(iter(timings[p].values()))["command"]
        if set(NB.values()) <= set(timings[p]):  # every notebook ran: one command without --only does it all
            command = re.sub(r" --only( \d\d)+", "", command)
        dataset = command.split("--dataset ")[1].split()[0] if "--dataset " in command else ""
        shown = command.replace(dataset, "PATH/TO/" + Path(dataset).name) if dataset else command
        lines.append(f"- `{p}`: `{shown}`, seed 0; metrics, figures and executed notebooks in "
                     f"[`reports/{p}/`]({link_base(RESULTS_BLOCK)}reports/{p}/README.md).")
    lines.append("")
    for title, rows in TABLES.items():
        lines += [f"**{title}**", "", head, rule]
        lines += [f"| {row.label} | " + " | ".join(_cell(row, metrics[p]) for p in runs) + " |" for row in rows]
        lines.append("")
    lines += ["**Runtime per notebook** (minutes from an empty `runs/`, as the run measured it, plus the logged training "
              "time of any model a stopped earlier run had trained; 2-core CPU unless the preset is `gpu`)", "", head, rule]
    for stem in NB.values():
        lines.append(f"| {stem} | " + " | ".join(f"{minutes(timings[p][stem]):.1f}" if stem in timings[p] else "not run"
                                               for p in runs) + " |")
    return "\n".join(lines)


# The front page's few rows, chosen from TABLES by label: the four encoders against the pixels, and generation
HEADLINE = ("raw pixels", "MAE, norm-pix target, mask 0.75", "MAGE", "MAGE-C (contrastive co-training)",
            "fd_classifier: MAGE / untrained / tokenizer reconstructions / real test images")


def render_headline(root: Path | None = None, presets: tuple = PRESETS) -> str:
    """The README's headline: a few rows of the Results tables (:data:`HEADLINE`), one column per published preset."""
    runs = published(root, presets)
    if not runs:
        return "No run has been published yet."
    metrics = {p: load_metrics(f) for p, f in runs.items()}
    rows = {row.label: row for table in TABLES.values() for row in table}
    budget = rows["training budget, epochs of the train split: MAE / MAGE / MAGE-C (equal by design)"]
    lines = ["| | " + " | ".join(f"`{p}`" for p in runs) + " |", "| --- |" + " --- |" * len(runs),
             "| epochs per model (MAE / MAGE / MAGE-C) | " + " | ".join(_cell(budget, metrics[p]) for p in runs) + " |"]
    for label in HEADLINE:
        shown = f"linear probe: {label}" if "fd_classifier" not in label else f"generation, {label} (lower is better)"
        lines.append(f"| {shown} | " + " | ".join(_cell(rows[label], metrics[p]) for p in runs) + " |")
    return "\n".join(lines)


def render_runtime(stem: str, root: Path | None = None) -> str:
    """A notebook's expected runtime per preset, as its published runs measured it (a markdown line)."""
    timings = load_timings(root)
    cells = ["`smoke` seconds"]
    for p in PRESETS:
        t = timings.get(p, {}).get(stem)
        cells.append(f"`{p}` {minutes(t):.1f} min" if t else f"`{p}` not measured yet")
    return "# " + " · ".join(cells)


def render_course_map(root: Path | None = None) -> str:
    """The README's course map: each notebook, what it teaches and its measured runtime per published preset."""
    timings = load_timings(root)
    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [row("notebook", "what you learn", *(f"`{p}`" for p in timings)), row(*["---"] * (2 + len(timings)))]
    for stem, learn in COURSE.items():
        lines.append(row(f"[`{stem}`](notebooks/{stem}.ipynb)", learn,
                         *(f"{minutes(timings[p][stem]):.1f} min" if stem in timings[p] else "not run" for p in timings)))
    if timings:
        lines.append(row("all six", "", *(f"**{sum(map(minutes, timings[p].values())):.0f} min**"
                                          + ("" if len(timings[p]) >= len(NB) else f" ({len(timings[p])} of {len(NB)} run)")
                                          for p in timings)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    argparse.ArgumentParser(prog="python -m mage_lite results", description=__doc__.split("\n")[0]).parse_args(argv)
    write_block(RESULTS_BLOCK, render())
    write_block(HEADLINE_BLOCK, render_headline())
    readme = write_block(COURSE_BLOCK, render_course_map())
    for stem in NB.values():
        write_block(RUNTIME_BLOCK, render_runtime(stem), REPO_ROOT / "notebooks" / f"{stem}.py")
    print(f"rendered the results of {', '.join(published()) or 'no published run'} in {readme} and the notebooks' "
          "runtimes; run `jupytext --sync notebooks/*.py` to refresh the paired .ipynb files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
