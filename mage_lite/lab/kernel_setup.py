"""How the notebook runner starts and stops its Jupyter kernels and saves their output, so
that an executed notebook and the runner's terminal hold the notebook's own output only.

Left alone, Jupyter adds three things to every papermill run:

- ipykernel's warning "Kernel is running over TCP without encryption" when a kernel starts.
  :class:`RunnerKernelManager` gives the kernel CurveZMQ keys instead (when pyzmq was built
  with CurveZMQ and the kernelspec declares support, as ipykernel's does), so the transport
  is encrypted and the warning has no cause;
- "KeyboardInterrupt caught in kernel" at the end of some runs: jupyter_client interrupts a
  kernel (SIGINT) before asking it to shut down, and an interrupt that lands while the idle
  kernel is finishing a message is logged. A notebook that ran to its end has nothing to
  interrupt, so the manager does not interrupt on shutdown; a kernel that does not stop when
  asked is still killed by jupyter_client after ``shutdown_wait_time``;
- tqdm.auto progress bars saved as widgets frozen at 0 %: the kernel switches to text bars at
  start (:data:`KERNEL_ARGUMENTS`, :mod:`mage_lite.progress`) and :func:`tidy_streams` keeps
  each text bar's last state when the notebook is saved.
"""

import zmq
from jupyter_client.manager import AsyncKernelManager

# Run in every runner kernel at start, before the first cell (IPython's exec_lines).
KERNEL_ARGUMENTS = ["--IPKernelApp.exec_lines=['import mage_lite.progress; mage_lite.progress.use_text_bars()']"]


class RunnerKernelManager(AsyncKernelManager):
    """The papermill runner's kernel manager: encrypted transport where possible, no interrupt on shutdown."""

    def __init__(self, **kwargs):
        # Older jupyter_client has no transport_encryption setting; its kernels warn as before.
        if "transport_encryption" in self.class_trait_names() and zmq.has("curve"):
            kwargs.setdefault("transport_encryption", "auto")
        super().__init__(**kwargs)

    async def _async_interrupt_kernel(self) -> None:
        if getattr(self, "shutting_down", False):
            return
        await super()._async_interrupt_kernel()


def _resolve_carriage_returns(text: str) -> str:
    """What a terminal would show: on each line, the text after its last carriage return;
    a line a bar blanked on closing (leave=False) is left empty."""
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            shown = [part for part in line.split("\r") if part]
            line = shown[-1] if shown and shown[-1].strip() else ""
        lines.append(line)
    return "\n".join(lines)


def tidy_streams(nb) -> None:
    """Merge each cell's consecutive outputs of the same stream and resolve carriage returns, in place.

    Only neighbours are merged, so prints and figures keep their order."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1]["name"] == out["name"]):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                out["text"] = _resolve_carriage_returns(out["text"])
        cell["outputs"] = [o for o in merged if o.get("output_type") != "stream" or o["text"]]

