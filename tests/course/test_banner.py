"""A smoke run says at setup that its numbers are not results; other presets say nothing."""

from mage_lite.banner import preset_banner, print_preset_banner
from mage_lite.config import PRESET_NAMES


def test_smoke_prints_one_banner_saying_its_numbers_are_not_results(capsys):
    print_preset_banner("smoke")
    out = capsys.readouterr().out
    words = " ".join(out.split())  # however the banner is wrapped
    assert "PRESET SMOKE" in words and "it is NOT a result" in words and "only checks that the code runs" in words
    assert out.count("PRESET") == 1


def test_presets_that_measure_print_no_banner(capsys):
    for preset in set(PRESET_NAMES) - {"smoke"}:
        assert preset_banner(preset) == ""
        print_preset_banner(preset)
    assert capsys.readouterr().out == ""


def test_every_notebook_setup_prints_it(capsys, tmp_path, monkeypatch):
    from mage_lite.session import NotebookRun

    monkeypatch.setenv("MAGE_LITE_RUNS_DIR", str(tmp_path))
    NotebookRun("banner_check", "smoke")
    assert "PRESET SMOKE" in " ".join(capsys.readouterr().out.split())
