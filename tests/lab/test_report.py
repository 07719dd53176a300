"""The ablation report: verdicts from the spread, the table re-rendered from stored metrics,
resume, failed runs named, and (in smoke, one seed) the whole command."""

import json
import os
import re
from pathlib import Path

import pytest

from mage_lite.config import ConfigError
from mage_lite.lab.readme import read_block
from mage_lite.lab.report import __main__ as report_cli
from mage_lite.lab.report import claims, grid, render
from mage_lite.lab.report.claims import ARMS, CLAIMS, Arm, verdict
from mage_lite.lab.report.render import load_report_metrics, render_table, table_from_readme

REPO = Path(__file__).resolve().parents[2]


def test_verdict_is_decided_by_the_spread():
    assert verdict([2.0, 2.2, 1.9])[0] == "reproduced"
    assert verdict([-2.0, -2.2, -1.9])[0] == "not reproduced at this scale"
    assert verdict([2.0, -1.0, 3.0])[0] == "inconclusive"  # the interval contains zero
    assert verdict([5.0])[0] == "inconclusive (one seed)"
    _, (lo, hi) = verdict([1.0, 2.0, 3.0])  # mean 2, std 1, t(2) = 4.303: 2 -+ 4.303 / sqrt(3)
    assert lo == pytest.approx(2 - 4.303 / 3 ** 0.5) and hi == pytest.approx(2 + 4.303 / 3 ** 0.5)


def _fake_metrics(seeds=3):
    base = {"probe_mage": 30.0, "probe_mae": 40.0, "probe_blocks_mage": {"block_1": 20.0, "block_2": 30.0},
            "probe_blocks_mae": {"block_1": 35.0, "block_2": 40.0}, "fd_classifier_mage": 50.0, "fd_classifier_fixed075": 60.0,
            "probe_mage_fixed075": 31.0}
    return {"base": {s: {k: (v + s if isinstance(v, float) else v) for k, v in base.items()} for s in range(seeds)},
            "quantization": {s: {"loss_last_continuous": 3.0 + 0.1 * s, "loss_last_tokens": 5.0, "probe_tokens": 25.0,
                                 "probe_continuous": 20.0 + s} for s in range(seeds)}}


def test_table_rows_follow_the_claims_and_say_what_is_missing():
    table = render_table(_fake_metrics())
    rows = table.splitlines()[2:]
    assert len(rows) == len(CLAIMS)
    mage_vs_mae = rows[0]
    assert "| 31.00 ± 1.00 | 41.00 ± 1.00 | -10.00 [-10.00, -10.00] | 3 |" in mage_vs_mae
    assert "not reproduced at this scale" in mage_vs_mae
    assert "reproduced" in rows[2] and "not" not in rows[2]  # fd lower for variable masking: the paper's direction
    assert "not measured" in rows[-1]  # no MAGE-C runs in the fake metrics


def _arm_with_broken_config():
    broken = Arm("broken", "05_quantization_shortcut", overrides={"mage.dim": -1})
    return broken, Arm("after-broken", "05_quantization_shortcut", after="broken")


@pytest.mark.slow
def test_failed_run_is_named_and_its_dependents_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    status = grid.run_grid("smoke", 1, jobs=1, arms=_arm_with_broken_config())
    assert status["broken/0"]["status"] == "failed" and "mage.dim" in status["broken/0"]["error"]
    assert status["after-broken/0"]["status"] == "skipped" and "broken" in status["after-broken/0"]["error"]
    out = render.write_report("smoke", 1, status, {}, "test", tmp_path / "out")
    text = out.read_text()
    assert "## Failed or skipped runs" in text and "`broken/0`: failed" in text


@pytest.mark.slow
def test_smoke_report_with_one_seed(smoke_runs, tmp_path, monkeypatch, capsys):
    # Reuses the smoke notebooks the suite already ran (03-05, seed 0): the report resumes from them
    # and runs only its variant arms (those with overrides).
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    out = tmp_path / "report"
    assert report_cli.main(["--preset", "smoke", "--seeds", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    variants = sum(1 for a in ARMS if a.overrides)
    assert f"{len(ARMS) - variants} already finished, {variants} to run" in printed
    text = (out / "README.md").read_text()
    table = table_from_readme(text)
    assert len(table.splitlines()) == 2 + len(CLAIMS)
    assert table.count("inconclusive (one seed)") == len(CLAIMS)  # every claim measured, none decided by one seed
    assert "python -m mage_lite report --preset smoke --seeds 1" in text
    for fig in ("claims.png", "probe_blocks.png"):
        assert (out / "figures" / fig).stat().st_size > 5_000
    assert sorted(p.name for p in (out / "metrics").iterdir()) == sorted(a.name for a in ARMS)
    assert len(list((out / "notebooks").glob("*.html"))) == variants  # the arms this invocation ran
    assert render_table(load_report_metrics(out)) == table
    # a second invocation reuses everything
    assert report_cli.main(["--preset", "smoke", "--seeds", "1", "--out", str(out)]) == 0
    assert f"{len(ARMS)} already finished, 0 to run" in capsys.readouterr().out


COMMITTED = REPO / "reports" / "report"


@pytest.mark.skipif(not (COMMITTED / "README.md").exists(), reason="no committed report yet")
def test_committed_report_matches_the_metrics_it_was_rendered_from():
    text = (COMMITTED / "README.md").read_text()
    metrics = load_report_metrics(COMMITTED)
    assert render_table(metrics) == table_from_readme(text)
    assert all(len(by_seed) == 3 for by_seed in metrics.values()), {k: sorted(v) for k, v in metrics.items()}
    assert "python -m mage_lite report --preset report --seeds 3" in text
    for by_seed in metrics.values():
        for m in by_seed.values():
            assert m["preset"] == "report" and m["complete"] is True
    assert json.loads(json.dumps(metrics))  # plain JSON, nothing else
    # the results page holds that very table, and the README's summary is rendered from the same metrics
    assert read_block(render.TABLE_BLOCK) == table_from_readme(text)
    assert read_block(render.SUMMARY_BLOCK) == render.render_summary(metrics, text)


def test_bad_arguments_get_one_line(capsys, tmp_path):
    assert report_cli.main(["--preset", "huge", "--seeds", "1", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert report_cli.main(["--seeds", "0"]) == 2
    assert report_cli.main(["--preset", "smoke", "--render-only", "--out", str(tmp_path / "none")]) == 2
    assert os.path.exists(tmp_path)


def test_each_verdict_comes_with_its_measured_mechanism():
    m = _fake_metrics()
    for s in m["base"]:
        m["base"][s].update(masked_acc=7.0 + s, masked_acc_baseline=1.5, mode_share=0.30, mode_share_true=0.10,
                            budgets={"mae": {"epochs": 1.02}, "mage": {"epochs": 1.02}},
                            generation_noise={"fd_std": 0.5, "kid_std": 0.01}, fd_classifier_real=1.0, fd_classifier_untrained=60.0,
                            kid_mage=0.5, kid_fixed075=0.6, kid_real=0.001, kid_untrained=1.2)
    rows = render_table(m).splitlines()[2:]
    why = {r.split("|")[1].strip(): r.split("|")[-2].strip() for r in rows}
    first = why["MAGE's linear probe beats MAE's"]
    assert "budget 1.02 epochs each (MAE 1.02)" in first and "accuracy 8.0 % against a 1.5 % most-frequent" in first
    assert "mode share 30% (true tokens 10%)" in first
    fd = why["variable masking generates better (fd_classifier, lower is better)"]
    assert fd.startswith("difference -10.00 (seed-to-seed std 0.00) against one model's sampling std 0.50")  # 51 vs 61
    kid = why["variable masking generates better (KID, lower is better)"]
    assert kid == "difference -0.100 (seed-to-seed std 0.000) against one model's sampling std 0.010 (3 sampling seeds); real images score 0.001, the untrained model 1.200"
    assert why["variable masking probes better"] == "seed-to-seed std of the A arm 1.00 over 3 seeds"
    loss = why["continuous input reaches a lower training loss"]
    assert "continuous 0.78" not in loss and loss == "no mechanism metric logged"  # not in the fake metrics
    assert why["MAGE-C generates as well as MAGE (fd_classifier)"] == ""  # a claim not measured gets no mechanism


def test_crop_and_quantization_whys_read_their_mechanism_metrics():
    claim = {c.claim: c for c in CLAIMS}
    crops = claim["strong crops (0.2, 1) generate better than weak (0.8, 1)"]
    m = {"base": {s: {"generation_noise": {"fd_std": 0.5}} for s in range(3)},
         "contrastive": {s: {"fd_classifier_mage": 40.0, "fd_classifier_mage_crop08": 33.0} for s in range(3)}}
    before = crops.why(m)  # runs that did not log their training views: the generation facts alone
    assert before.startswith("difference +7.00 (seed-to-seed std 0.00) against one model's sampling std 0.50")
    for s in range(3):
        m["contrastive"][s] |= {"fd_classifier_views": 20.0 + s, "fd_classifier_views_crop08": 5.0}
    assert crops.why(m) == ("the training views themselves (tokenized crops of real images) score (0.2, 1) 21.0 vs "
                            "(0.8, 1) 5.0; " + before)
    loss = claim["continuous input reaches a lower training loss"]
    q = {"quantization": {0: {"masked_nll_tokens": 4.5, "masked_nll_continuous": 4.75, "masked_p_true_tokens": 0.05,
                              "masked_p_true_continuous": 0.04}}}
    assert loss.why(q) == ("on test tokens, cross-entropy without smoothing tokens 4.50 vs continuous 4.75, "
                           "probability on the true code 0.050 vs 0.040")


def test_summary_groups_the_claims_by_verdict_and_states_the_noise():
    m = _fake_metrics()
    for s in m["base"]:
        m["base"][s]["generation_noise"] = {"fd_std": 0.4 + 0.2 * s, "fd_ratio": 0.01, "kid_std": 0.01, "kid_ratio": 0.3}
    readme = ("# Ablation report\n\nProduced by `python -m mage_lite report --preset report --seeds 3`.\n\n"
              "- runs: 12 notebook runs finished, 0 failed or skipped; 200 min of notebook time, 110 min wall-clock this invocation\n")
    text = render.render_summary(m, readme)
    assert text.startswith("Measured with `python -m mage_lite report --preset report --seeds 3`: 12 notebook runs finished")
    lines = {re.match(r"- \*\*(.+?)\*\*", line).group(1): line for line in text.splitlines() if line.startswith("- ")}
    rows = claims.claim_rows(m)
    counts = [int(re.search(r"\((\d+)\): ", line).group(1)) for key, line in lines.items() if not key.startswith("generation")]
    assert sum(counts) == len(rows)  # every claim in exactly one group
    assert "MAGE's linear probe beats MAE's" in lines["not reproduced at this scale"]  # 30 vs 40 on every seed
    assert "variable masking generates better (fd_classifier, lower is better)" in lines["reproduced"]
    assert "MAGE-C's linear probe beats MAGE's" in lines["not measured"]
    noise = lines["generation metrics' sampling noise"]
    assert "fd_classifier 0.6 (1.0% of the untrained-to-real gap, within a fifth of it)" in noise  # mean of 0.4, 0.6, 0.8
    assert "KID 0.01 (30.0% of the untrained-to-real gap, above a fifth of it)" in noise
    with pytest.raises(ConfigError, match="Produced by"):
        render.render_summary(m, "# a report without its header lines")


def test_a_report_names_data_by_file_not_by_this_machines_folders():
    assert render.file_names("image folder /home/me/data/cifar10-jpg.tar.gz; seed 0") == "image folder cifar10-jpg.tar.gz; seed 0"
    m = {"base": {0: {"dataset": {"source": "image folder /srv/x/cifar"}}}}
    assert render.preset_line("smoke", m).endswith("; data: image folder cifar")
