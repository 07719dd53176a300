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
    # One thread on small machines (see mage_lite.device.set_cpu_threads): faster and steadier.
    from mage_lite.device import set_cpu_threads

    set_cpu_threads()
