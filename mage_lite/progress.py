"""Progress bars that survive a saved notebook.

In an interactive notebook ``tqdm.auto`` draws widgets, which is what a student wants. A
notebook executed by papermill keeps a widget only as its first frame (0 %), so the runner's
kernels call :func:`use_text_bars` at start: every ``tqdm.auto`` bar created afterwards, in
``mage_lite`` and in the notebook alike, is plain text, and the runner keeps the last state of
each bar when it saves the notebook (:func:`mage_lite.lab.kernel_setup.tidy_streams`).

In JupyterLab a widget bar's output only points at a widget model that lives in the kernel and
the page. A bar closed with ``leave=False`` (a probe's or a token bank's passes) closes its model
at once, and every model is gone after a kernel restart; the output still points at it, and Lab
then shows "Error displaying widget: model not found" (a front end without widgets shows the
bar's first frame). :func:`use_notebook_bars` makes ``tqdm.auto`` give :class:`NotebookBar`
instead: a widget while it runs, replaced when it closes by its final text line (by nothing for
``leave=False``), so what stays in the notebook needs no widget front end.
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


def _notebook_bar_class():
    """:class:`NotebookBar` over the ``tqdm.auto`` widget bar in force, or None where that is not a widget bar."""
    base = tqdm.auto.tqdm
    if "tqdm.notebook" not in sys.modules:
        return None  # tqdm.auto chose text bars: not in a kernel (and IPython need not be imported)
    from IPython.display import display
    from tqdm.notebook import tqdm_notebook

    if not (isinstance(base, type) and issubclass(base, tqdm_notebook)):
        return None  # not in a kernel, no ipywidgets, or text bars already chosen
    if base.__name__ == "NotebookBar":
        return base

    class NotebookBar(base):
        """tqdm's widget bar, shown through a display handle so that closing it can replace the
        widget in the notebook with the bar's last text line ("" for ``leave=False``)."""

        def __init__(self, *args, **kwargs):
            show = kwargs.pop("display", True)
            self._handle = None
            super().__init__(*args, display=False, **kwargs)
            if show and not self.disable and not self.displayed and self.delay <= 0:
                self._handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self):
            handle, self._handle = getattr(self, "_handle", None), None
            super().close()
            failed = bool(self.total and self.n < self.total)
            if handle is not None:
                handle.update({"text/plain": str(self) if self.leave or failed else ""}, raw=True)
                self.container.close()  # the widget's model is no longer shown anywhere

    NotebookBar.__name__ = NotebookBar.__qualname__ = "NotebookBar"
    return NotebookBar


def use_notebook_bars() -> bool:
    """In a notebook kernel, make ``from tqdm.auto import tqdm`` (and ``trange``) give
    :class:`NotebookBar` widgets from now on; elsewhere, or after :func:`use_text_bars`, do nothing.
    Whether it did."""
    bar = _notebook_bar_class()
    if bar is None:
        return False
    tqdm.auto.tqdm = bar
    tqdm.auto.trange = lambda *args, **kwargs: bar(range(*args), **kwargs)
    return True
