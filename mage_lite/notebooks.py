"""An alias, kept for the commands already written down: ``python -m mage_lite.notebooks run ...`` is
``python -m mage_lite run ...`` (the runner lives in :mod:`mage_lite.lab.runner`)."""

import sys

if __name__ == "__main__":
    from mage_lite.lab.runner import main

    sys.exit(main())
