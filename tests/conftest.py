import json
import os
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

def _run_all(preset, tmp_root, dataset=""):
    from mage_lite import notebooks

    os.environ["MAGE_LITE_RUNS_DIR"] = str(tmp_root)
    try:
        notebooks.run(preset, dataset=dataset, progress=False)
    finally:
        os.environ.pop("MAGE_LITE_RUNS_DIR")
    return tmp_root / preset


def metrics(root: Path, stem: str) -> dict:
    return json.loads((root / stem / "seed0" / "metrics.json").read_text())


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    return _run_all("smoke", tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def ci_runs(tmp_path_factory, cifar_archive):
    if not (IN_CI or os.environ.get("MAGE_LITE_CI_NOTEBOOKS") == "1"):
        pytest.skip("the ci-preset notebooks take about 25 minutes: set MAGE_LITE_CI_NOTEBOOKS=1 (CI does) to run them")
    return _run_all("ci", tmp_path_factory.mktemp("runs"), dataset=str(cifar_archive))


