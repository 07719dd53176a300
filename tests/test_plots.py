"""The shared figures read honestly: bars from zero, labelled axes, distances marked lower-is-better."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from mage_lite.plots import bar_chart, curves, is_distance


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_bar_chart_starts_at_zero_even_when_values_are_close():
    ax = bar_chart({"a": 61.2, "b": 62.0, "c": 61.7}, "probe top-1 (%)")
    ax.figure.canvas.draw()
    assert ax.get_ylim()[0] == 0
    assert ax.get_ylim()[1] > 62.0  # room for the value written on the tallest bar
    assert ax.get_ylabel() == "probe top-1 (%)"


def test_bar_chart_keeps_zero_for_a_line_drawn_afterwards():
    ax = bar_chart({"a": 3.0, "b": 4.0}, "fd_classifier")
    ax.axhline(5.0)  # a reference line above every bar, as notebook 03 draws
    ax.figure.canvas.draw()
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 5.0


def test_distance_panels_say_lower_is_better():
    assert bar_chart({"a": 0.02}, "KID").get_ylabel() == "KID (lower is better)"
    assert bar_chart({"a": 3.0}, "fd_classifier").get_ylabel() == "fd_classifier (lower is better)"
    said_in_title = bar_chart({"a": 3.0}, "fd_classifier", title="generation (lower is better)")
    assert said_in_title.get_ylabel() == "fd_classifier"
    assert bar_chart({"a": 40.0}, "probe top-1 (%)").get_ylabel() == "probe top-1 (%)"
    assert is_distance("fd_classifier (lower is better)") and not is_distance("kidney") and not is_distance("feedback")


def test_small_values_are_written_with_significant_digits():
    ax = bar_chart({"a": 0.0123}, "KID")
    assert [t.get_text() for t in ax.texts] == ["0.0123"]


def test_bar_chart_refuses_an_unlabelled_axis():
    with pytest.raises(ValueError, match="needs a y label"):
        bar_chart({"a": 1.0}, "")


def test_curves_label_the_y_axis():
    hist = [{"step": 0, "loss": 2.0}, {"step": 1, "loss": 1.0}]
    assert curves({"run": hist}).get_ylabel() == "loss"
    assert curves({"run": hist}, ylabel="masked-token loss").get_ylabel() == "masked-token loss"
