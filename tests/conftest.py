import json
import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = Path(os.environ.get("MAGE_LITE_CIFAR_JPG", REPO.parent / "shared" / "data" / "cifar10-jpg.tar.gz"))
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    """The offline CIFAR-10 archive. Required in CI; elsewhere its tests are skipped."""
    if SHARED_ARCHIVE.exists():
        return SHARED_ARCHIVE
    if IN_CI:
        pytest.fail(f"CI needs the real CIFAR-10 archive at {SHARED_ARCHIVE}, and it is missing")
    pytest.skip(f"real-data test: put cifar10-jpg.tar.gz at {SHARED_ARCHIVE} (or set MAGE_LITE_CIFAR_JPG) to run it")


def pytest_configure(config):
    # The project's thread policy (see mage_lite.device.set_cpu_threads): the cores shared among its jobs.
    from mage_lite.device import set_cpu_threads

    set_cpu_threads()


# --- notebooks executed once per test session, shared by the notebook test files ---------

def _run_all(preset, tmp_root, dataset="", only=None):
    from mage_lite import notebooks

    os.environ["MAGE_LITE_RUNS_DIR"] = str(tmp_root)
    try:
        notebooks.run(preset, only=only, dataset=dataset, progress=False)
    finally:
        os.environ.pop("MAGE_LITE_RUNS_DIR")
    return tmp_root / preset


def metrics(root: Path, stem: str) -> dict:
    return json.loads((root / stem / "seed0" / "metrics.json").read_text())


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    return _run_all("smoke", tmp_path_factory.mktemp("runs"))


# The ci-size notebooks CI executes: the data, MAE, the tokenizer and MAGE, the course's two models trained
# at real size (about 17 of the six notebooks' 30 minutes on an idle Intel machine, 24 on AMD EPYC). Notebooks
# 04 and 05 at these budgets are measured over 3 seeds by the report; MAGE_LITE_CI_NOTEBOOKS=all runs them here too.
CI_CORE_NOTEBOOKS = ["00", "01", "02", "03"]
CI_OTHER_NOTEBOOKS = ["04", "05"]


def _ci_notebooks_wanted() -> str:
    wanted = os.environ.get("MAGE_LITE_CI_NOTEBOOKS", "core" if IN_CI else "")
    return {"1": "core"}.get(wanted, wanted)


@pytest.fixture(scope="session")
def ci_runs(tmp_path_factory, cifar_archive):
    """The ci-size runs of notebooks 00-03 on real CIFAR-10 (run in CI; elsewhere on request)."""
    if _ci_notebooks_wanted() not in ("core", "all"):
        pytest.skip("the ci-preset notebooks 00-03 take about 17 minutes: set MAGE_LITE_CI_NOTEBOOKS=core "
                    "(CI does) or =all (04 and 05 too) to run them")
    return _run_all("ci", tmp_path_factory.mktemp("runs"), dataset=str(cifar_archive), only=CI_CORE_NOTEBOOKS)


@pytest.fixture(scope="session")
def ci_runs_all(ci_runs, cifar_archive):
    """ci_runs with notebooks 04 and 05 added in the same folder (reusing 03's models); on request only."""
    if _ci_notebooks_wanted() != "all":
        pytest.skip("the ci-preset notebooks 04 and 05 take about 13 more minutes: set MAGE_LITE_CI_NOTEBOOKS=all "
                    "to run them (the report measures them at ci budgets over 3 seeds)")
    return _run_all("ci", ci_runs.parent, dataset=str(cifar_archive), only=CI_OTHER_NOTEBOOKS)


# --- where CI's minutes go, printed as they pass (a run stopped by CI's time limit prints no --durations) ---

_SUITE_START = time.monotonic()
SLOW_TEST_S = 20.0
_TERMINAL = None


def pytest_sessionstart(session):
    global _TERMINAL
    _TERMINAL = session.config.pluginmanager.get_plugin("terminalreporter")


def pytest_runtest_logreport(report):
    if report.when == "teardown" or report.duration < SLOW_TEST_S or _TERMINAL is None:
        return
    elapsed = (time.monotonic() - _SUITE_START) / 60
    _TERMINAL.write(f"[{report.when} {report.duration:.0f} s, {elapsed:.1f} min into the suite] ")
