"""The ablation report: every claim of the paper this project tests, measured over seeds.

    python -m mage_lite report --preset report --seeds 3 --dataset PATH/TO/cifar10-jpg.tar.gz
    python -m mage_lite report --preset smoke --seeds 1          # seconds: checks the machinery
    python -m mage_lite report --preset report --render-only     # re-render table and figures from reports/report/metrics/

Each arm of the grid is one notebook (03-05) executed by papermill with its parameters and
config overrides, once per seed, two at a time on separate processes (``--jobs``). A run
whose ``metrics.json`` is complete, with the same config and the same, unchanged data, is
reused, so an interrupted report resumes where it stopped (workers die with the report, even
on kill -9); a run that fails is named in the report, with its error, and its rows say so.

The report goes to ``reports/<preset>/``: ``README.md`` (the table: mean +- std over seeds,
the paper's ImageNet figure, and a verdict computed from the paired differences),
``figures/``, ``metrics/`` (the numbers the table was rendered from, so a test can render it
again) and ``notebooks/`` (the executed notebooks as HTML; not committed).

What the report measures is in claims.py, how it runs in grid.py, how it is written in render.py.
"""

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

from ...artifacts import REPO_ROOT, runs_root
from ...config import PRESET_NAMES, ConfigError
from ..cli import check_writable, cli
from . import grid
from .render import file_names, figures, load_report_metrics, publish, render_table, table_from_readme, write_report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["task"]:
        tp = argparse.ArgumentParser(prog="python -m mage_lite report task")
        for name in ("--notebook", "--name", "--params", "--preset"):
            tp.add_argument(name, required=True)
        return grid.task(tp.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(prog="python -m mage_lite report", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="report", help=f"one of {', '.join(PRESET_NAMES)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    ap.add_argument("--dataset", default="", help="'shapes', 'cifar10' or a path to an image-folder dataset")
    ap.add_argument("--jobs", type=int, default=2, help="notebook runs at a time (default 2: one per core on 2 cores)")
    ap.add_argument("--out", default="", help="report folder (default reports/<preset>)")
    ap.add_argument("--render-only", action="store_true", help="re-render README.md and the figures from the report's metrics/ folder")
    ap.add_argument("--rerun", nargs="+", default=[], metavar="ARM",
                    help="run these arms again even where finished (their trained models are reused)")
    args = ap.parse_args(argv)
    return cli(lambda: _report(args))


def _report(args) -> int:
    """The report command: refuse bad input up front, run the grid, write the report."""
    out = Path(args.out) if args.out else REPO_ROOT / "reports" / args.preset
    if args.seeds < 1 or args.jobs < 1:
        raise ConfigError(f"--seeds and --jobs must be at least 1, got {args.seeds} and {args.jobs}")
    if args.render_only:
        if not (out / "README.md").exists():
            raise ConfigError(f"--render-only needs a report in {out}, and there is none; run without --render-only first")
        text = (out / "README.md").read_text()
        metrics = load_report_metrics(out)
        text = text.replace(table_from_readme(text), render_table(metrics))
        text = re.sub(r"^- preset: .*$", lambda line: file_names(line.group(0)), text, count=1, flags=re.M)
        (out / "README.md").write_text(text)
        figures(metrics, out / "figures")
        print(f"re-rendered {out / 'README.md'} and its figures")
        if out == REPO_ROOT / "reports" / "report":  # the project README shows the committed report's table
            publish(metrics, text)
        return 0
    # Before the grid: a report folder that cannot be written would be found out only after hours of runs.
    check_writable(out, "pass --out a folder you can write to")
    command = " ".join(["python -m mage_lite report", f"--preset {args.preset}", f"--seeds {args.seeds}"]
                       + ([f"--dataset {args.dataset}"] if args.dataset else []) + ([f"--jobs {args.jobs}"] if args.jobs != 2 else [])
                       + ([f"--rerun {' '.join(args.rerun)}"] if args.rerun else []))
    t0 = time.perf_counter()
    status = grid.run_grid(args.preset, args.seeds, args.dataset, args.jobs, rerun=tuple(args.rerun))
    metrics = grid.collect(args.preset, args.seeds, args.dataset)
    path = write_report(args.preset, args.seeds, status, metrics, command, out, time.perf_counter() - t0)
    html = runs_root() / args.preset / "report" / "notebooks"
    (out / "notebooks").mkdir(exist_ok=True)
    for f in html.glob("*.html"):
        shutil.copyfile(f, out / "notebooks" / f.name)
    failed = [k for k, v in status.items() if v.get("status") != "done"]
    print(f"report: {path}" + (f" ({len(failed)} runs failed or skipped: {', '.join(sorted(failed))})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
