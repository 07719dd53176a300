"""What a papermill run leaves in its terminal and saved notebook: the notebook's own output only."""

import asyncio

import nbformat
import pytest
import zmq
from jupyter_client.manager import AsyncKernelManager

from mage_lite.lab import runner
from mage_lite.lab.kernel_setup import RunnerKernelManager, tidy_streams

BARS_NOTEBOOK = '''# %% tags=["parameters"]
preset = "smoke"

# %%
from tqdm.auto import tqdm, trange
print("before")
for i in tqdm(range(30), desc="train"):
    pass
for i in trange(10, desc="probe", leave=False):
    pass
print("after")
'''


def test_runner_kernels_are_not_interrupted_on_shutdown(monkeypatch):
    interrupts = []

    async def interrupt(self):
        interrupts.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    km = RunnerKernelManager(kernel_name="python3")
    km.shutting_down = True
    asyncio.run(km._async_interrupt_kernel())
    assert interrupts == []  # the interrupt that made ipykernel log "KeyboardInterrupt caught in kernel"
    km.shutting_down = False
    asyncio.run(km._async_interrupt_kernel())
    assert interrupts == [False]  # an interrupt asked for while the kernel runs still goes through


def test_runner_kernels_use_an_encrypted_transport_where_pyzmq_can():
    expected = "auto" if zmq.has("curve") else "disabled"
    assert RunnerKernelManager(kernel_name="python3").transport_encryption == expected


def test_tidy_streams_keeps_the_last_state_of_each_bar_and_the_order_of_outputs():
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    cell = nbformat.v4.new_code_cell("", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="before\n\rtrain:  10%|#"),
        nbformat.v4.new_output("stream", name="stdout", text="\rtrain: 100%|##########| 30/30\n"),
        nbformat.v4.new_output("stream", name="stdout", text="\rprobe:  50%|#####\r                 \r"),
        figure,
        nbformat.v4.new_output("stream", name="stdout", text="after\n"),
    ])
    nb = nbformat.v4.new_notebook(cells=[cell])
    tidy_streams(nb)
    assert [o.get("text") for o in cell.outputs] == ["before\ntrain: 100%|##########| 30/30\n", None, "after\n"]


@pytest.mark.slow
def test_a_papermill_run_saves_text_bars_and_prints_no_kernel_noise(tmp_path, capfd):
    book = tmp_path / "99_bars.py"
    book.write_text(BARS_NOTEBOOK)
    out = runner.execute(book, {}, tmp_path / "out", progress=False)
    terminal = capfd.readouterr()
    assert "without encryption" not in terminal.err and "KeyboardInterrupt" not in terminal.err + terminal.out
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs)
    assert text.startswith("before\ntrain: 100%") and "30/30" in text and text.endswith("after\n")
    assert "probe" not in text and "\r" not in text
