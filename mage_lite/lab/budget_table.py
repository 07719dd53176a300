"""``python -m mage_lite config``: re-render docs/results.md's table of every preset's training budgets
(:func:`mage_lite.config.render_budget_table`) in its block ``budget-table``."""

import argparse

from ..config import render_budget_table
from .readme import write_block

BLOCK = "budget-table"  # rendered blocks; the file each lives in: mage_lite.lab.readme.HOMES


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m mage_lite config", description=__doc__.split("\n")[0]).parse_args(argv)
    print(f"rendered the budget table in {write_block(BLOCK, render_budget_table())}")
    return 0
