"""mage-lite: a scaled-down, faithful reproduction of MAGE (MAsked Generative Encoder) on CIFAR-10."""

__version__ = "0.1.0"

# In a notebook kernel, tqdm.auto's widget bars leave a plain text line behind when they close, so a
# reloaded page or a front end without widgets shows no "model not found" (mage_lite.progress).
from . import progress as _progress

_progress.use_notebook_bars()
