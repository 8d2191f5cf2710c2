"""notebooks/lesson.ipynb runs top to bottom (with a short training) so it never rots."""

import json
import sys

import nbformat
from nbclient import NotebookClient

from tests.helpers import DATA_DIR, ROOT

NOTEBOOK = ROOT / "notebooks" / "lesson.ipynb"


def this_python_kernel(jupyter_dir) -> str:
    """A kernelspec named python3 that runs this interpreter: JUPYTER_PATH comes first in
    Jupyter's search, so no user-wide or system kernel can stand in for the project's venv."""
    spec = jupyter_dir / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python",
                                                  "display_name": "cnnlab test"}))  # fmt: skip
    return "python3"


def test_lesson_notebook_executes(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's cnnlab
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("CNNLAB_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("CNNLAB_NOTEBOOK_TRAIN_BATCHES", "30")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, kernel_name=this_python_kernel(tmp_path / "jupyter"), timeout=600,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails

    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    text = "\n".join(out.get("text", "") for out in outputs)
    assert "4\t3\t4\n2\t4\t3\n2\t3\t4" in text  # the lesson's feature map
    assert "1,199,882 parameters" in text and "Test accuracy:" in text
    assert "def training_step(self, batch: Batch, batch_idx: int) -> Tensor:" in text
    images = sum("image/png" in out.get("data", {}) for out in outputs)
    assert images >= 8  # imshow + colour bar, 6 run figures, live feature maps
    (run_dir,) = (tmp_path / "outputs" / "notebook").glob("*_lesson")
    assert len(list((run_dir / "figures").glob("*.png"))) == 7
    assert "my_digit.png: " in text and "true label: Seven" in text  # predict ran on it
