"""The ablation report: verdicts from the spread, the table re-rendered from stored metrics,
resume, failed runs named, and (in smoke, one seed) the whole command."""

import json
import os
from pathlib import Path

import pytest

from mage_lite import report
from mage_lite.report import ARMS, CLAIMS, Arm, load_report_metrics, render_table, table_from_readme, verdict

REPO = Path(__file__).resolve().parents[1]


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
    status = report.run_grid("smoke", 1, jobs=1, arms=_arm_with_broken_config())
    assert status["broken/0"]["status"] == "failed" and "mage.dim" in status["broken/0"]["error"]
    assert status["after-broken/0"]["status"] == "skipped" and "broken" in status["after-broken/0"]["error"]
    out = report.write_report("smoke", 1, status, {}, "test", tmp_path / "out")
    text = out.read_text()
    assert "## Failed or skipped runs" in text and "`broken/0`: failed" in text


@pytest.mark.slow
def test_smoke_report_with_one_seed(smoke_runs, tmp_path, monkeypatch, capsys):
    # Reuses the smoke notebooks the suite already ran (03-05, seed 0): the report resumes from them
    # and runs only its variant arms (those with overrides).
    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(smoke_runs.parent))
    out = tmp_path / "report"
    assert report.main(["--preset", "smoke", "--seeds", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    variants = sum(1 for a in ARMS if a.overrides)
    assert f"{len(ARMS) - variants} already finished, {variants} to run" in printed
    text = (out / "README.md").read_text()
    table = table_from_readme(text)
    assert len(table.splitlines()) == 2 + len(CLAIMS)
    assert table.count("inconclusive (one seed)") == len(CLAIMS)  # every claim measured, none decided by one seed
    assert "python -m mage_lite.report --preset smoke --seeds 1" in text
    for fig in ("claims.png", "probe_blocks.png"):
        assert (out / "figures" / fig).stat().st_size > 5_000
    assert sorted(p.name for p in (out / "metrics").iterdir()) == sorted(a.name for a in ARMS)
    assert len(list((out / "notebooks").glob("*.html"))) == variants  # the arms this invocation ran
    assert render_table(load_report_metrics(out)) == table
    # a second invocation reuses everything
    assert report.main(["--preset", "smoke", "--seeds", "1", "--out", str(out)]) == 0
    assert f"{len(ARMS)} already finished, 0 to run" in capsys.readouterr().out


COMMITTED = REPO / "reports" / "report"


@pytest.mark.skipif(not (COMMITTED / "README.md").exists(), reason="no committed report yet")
def test_committed_report_matches_the_metrics_it_was_rendered_from():
    text = (COMMITTED / "README.md").read_text()
    metrics = load_report_metrics(COMMITTED)
    assert render_table(metrics) == table_from_readme(text)
    assert all(len(by_seed) == 3 for by_seed in metrics.values()), {k: sorted(v) for k, v in metrics.items()}
    assert "python -m mage_lite.report --preset report --seeds 3" in text
    for by_seed in metrics.values():
        for m in by_seed.values():
            assert m["preset"] == "report" and m["complete"] is True
    assert json.loads(json.dumps(metrics))  # plain JSON, nothing else
    # the README's results section is that very table
    assert table_from_readme((REPO / "README.md").read_text()) == table_from_readme(text)


def test_bad_arguments_get_one_line(capsys, tmp_path):
    assert report.main(["--preset", "huge", "--seeds", "1", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert report.main(["--seeds", "0"]) == 2
    assert report.main(["--preset", "smoke", "--render-only", "--out", str(tmp_path / "none")]) == 2
    assert os.path.exists(tmp_path)


def test_each_verdict_comes_with_its_measured_mechanism():
    m = _fake_metrics()
    for s in m["base"]:
        m["base"][s].update(masked_acc=7.0 + s, masked_acc_baseline=1.5, mode_share=0.30, mode_share_true=0.10,
                            budgets={"mae": {"epochs": 1.02}, "mage": {"epochs": 1.02}},
                            generation_noise={"fd_std": 0.5}, fd_classifier_real=1.0, fd_classifier_untrained=60.0)
    rows = render_table(m).splitlines()[2:]
    why = [r.split("|")[-2].strip() for r in rows]
    assert "budget 1.02 epochs each (MAE 1.02)" in why[0] and "accuracy 8.0 % against a 1.5 % most-frequent" in why[0]
    assert "mode share 30% (true tokens 10%)" in why[0]
    assert why[2].startswith("difference -10.00 against one model's sampling std 0.50")  # fd 51 vs 61 (seed means)
    assert why[3] == "seed-to-seed std of the A arm 1.00 over 3 seeds"
    assert "continuous 0.78" not in why[4] and why[4] == "no mechanism metric logged"  # not in the fake metrics
    assert why[-1] == ""  # a claim not measured gets no mechanism
