"""The benchmarks: every model is timed and written to JSON; the README's tables are renderings of
the committed JSON files, never copied by hand."""

from pathlib import Path

import pytest

from mage_lite.artifacts import load_json
from mage_lite.lab import bank_check, bench, bench_threads
from mage_lite.lab.readme import read_block

REPO = Path(__file__).resolve().parents[2]
RENDERED = [  # (committed JSON, its README block, the renderer)
    ("reports/bench/bench.json", bench.TABLE_BLOCK, bench.render_table),
    ("reports/bench/threads.json", bench_threads.BLOCK, bench_threads.render_table),
    ("reports/bank/bank_check.json", bank_check.BLOCK, bank_check.render_table),
    ("reports/bench/bench_gpu.json", bench.GPU_BLOCK, bench.render_table),
    ("reports/bench/ci_run.json", bench.CI_BLOCK, bench.render_ci),
]


def test_bench_times_every_model_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--presets", "smoke", "--steps", "1", "--threads", "1", "--out", str(out)]) == 0
    result = load_json(out)
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    (run,) = result["runs"]
    assert run["threads"] == 1 and run["matmul_gflops"] > 0
    whats = {r["what"] for r in run["rows"]}
    for expected in ("training step", "training step (GAN on)", "training step, tokenizing on the fly",
                     "training step, token bank", "training step, pre-tokenized ids",
                     "training step, token bank (2 views)", "training step, pre-tokenized ids (2 views)",
                     "training step, token bank (2 views), InfoNCE on the masked pass",
                     "token bank build", "probe features (images)", "probe features (token ids)"):
        assert expected in whats
    assert any(w.startswith("generation") for w in whats)
    for r in run["rows"]:
        assert r["img_per_s"] > 0 and r["gflop_per_call"] > 0 and r["achieved_gflops"] > 0
        if r["input_share"] is not None:
            assert 0 <= r["input_share"] < 1
    table = bench.render_table(result)
    assert table.count("\n| `smoke` |") == len(run["rows"])
    assert "smoke: MAGE pre-tokenized / bank" in bench.ratios(result)


def test_ci_time_is_read_from_the_log(tmp_path):
    log = tmp_path / "ci.log"
    log.write_text("2026-11-28\n...\nFAILED tests/test_x.py::test_y - boom\n"
                   "===== 1 failed, 250 passed, 2 skipped in 1500.25s (0:25:00) =====\n\nreal\t26m3.5s\nuser 1m\n")
    rec = bench.record_ci(str(log), str(tmp_path / "ci.json"))
    assert rec["tests"] == "1 failed, 250 passed, 2 skipped" and rec["failed"] == ["tests/test_x.py::test_y"]
    assert rec["pytest_s"] == 1500.25 and rec["script_s"] == 26 * 60 + 3.5
    assert "26.1 min for the whole script" in bench.render_ci(rec) and "`tests/test_x.py::test_y`" in bench.render_ci(rec)


@pytest.mark.parametrize("argv", [["--presets", "nope"], ["--steps", "0"], ["--threads", "0"]])
def test_bench_refuses_bad_input_in_one_sentence(argv, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("json_path, block, render", RENDERED, ids=lambda x: str(x).split("/")[-1])
def test_readme_tables_are_renderings_of_the_committed_json(json_path, block, render):
    assert read_block(block) == render(load_json(REPO / json_path)).strip(), \
        f"the README's table differs from {json_path}: run its --render command"
