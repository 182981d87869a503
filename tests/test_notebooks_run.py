"""The notebooks, run top to bottom in a real Jupyter kernel, print the summary the spec describes."""
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import COURSE


def run_notebook(path, workdir):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return "".join(out.get("text", "") for c in notebook.cells if c.cell_type == "code" for out in c.outputs)


@pytest.mark.parametrize("path, expected", [
    (COURSE / "release" / "batchnorm" / "batchnorm.ipynb", "0/10 TESTS PASSED:"),
    (COURSE / "source" / "batchnorm" / "batchnorm.ipynb", "10/10 TESTS PASSED:"),
], ids=["release-0-of-10", "source-10-of-10"])
def test_notebook_runs_without_error(path, expected, tmp_path):
    printed = run_notebook(path, tmp_path)
    assert expected in printed
    assert "0 - Learnable parameters set correctly:" in printed
