"""The ablation report (``python -m mage_lite report``): claims.py says what is measured and how it is judged,
grid.py runs the notebooks, render.py writes the report and the README blocks, __main__.py is the command."""
