"""The warning a notebook prints at setup when its preset cannot produce results (smoke)."""

# Presets whose models are too small and too briefly trained for any number to mean anything.
CODE_CHECK_PRESETS = ("smoke",)

_RULE = "=" * 78


def preset_banner(preset: str) -> str:
    """The banner for ``preset``: several lines for a code-check preset, '' for the others."""
    if preset not in CODE_CHECK_PRESETS:
        return ""
    return "\n".join([
        _RULE,
        f"PRESET {preset.upper()}: tiny models trained for a few steps (on synthetic shapes unless a",
        "dataset was given). Every number below only checks that the code runs: it is NOT a",
        "result, and no conclusion about MAE or MAGE can be drawn from it. For results run the",
        "ci, cpu or gpu preset.",
        _RULE,
    ])


def print_preset_banner(preset: str) -> None:
    """Print :func:`preset_banner` if there is one (NotebookRun calls this at setup)."""
    banner = preset_banner(preset)
    if banner:
        print(banner)
