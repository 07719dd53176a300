"""Progress bars that survive a saved notebook.

In an interactive notebook ``tqdm.auto`` draws widgets, which is what a student wants. A
notebook executed by papermill keeps a widget only as its first frame (0 %), so the runner's
kernels call :func:`use_text_bars` at start: every ``tqdm.auto`` bar created afterwards, in
``mage_lite`` and in the notebook alike, is plain text, and the runner keeps the last state of
each bar when it saves the notebook (:func:`mage_lite.lab.kernel_setup.tidy_streams`).
"""

import sys

import tqdm.auto
from tqdm.asyncio import tqdm_asyncio


class TextBar(tqdm_asyncio):
    """tqdm's text bar on stdout (stderr would be shown as an error), redrawn at most every 2 s
    because nobody watches a papermill kernel's output live."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", 2.0)
        super().__init__(*args, **kwargs)


def text_range(*args, **kwargs) -> TextBar:
    return TextBar(range(*args), **kwargs)


def use_text_bars() -> None:
    """Make ``from tqdm.auto import tqdm`` (and ``trange``) give text bars in this process from now on."""
    tqdm.auto.tqdm = TextBar
    tqdm.auto.trange = text_range
