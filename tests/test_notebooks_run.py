"""The notebooks, run top to bottom in a real Jupyter kernel: the self-check prints the original
summary, then why each failed check failed and a hint; the test cells fail where it fails."""
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import COURSE
from gradekit import contract


def run_notebook(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return {c.get("id"): c.outputs for c in notebook.cells if c.cell_type == "code"}


def printed(outputs):
    return "".join(out.get("text", "") for out in outputs)


def errors(outputs):
    return [out for out in outputs if out.output_type == "error"]


@pytest.mark.parametrize("name", contract.names())
def test_release_self_check_explains_each_failure(name):
    assignment = contract.get(name)
    outputs = run_notebook(COURSE / "release" / name / assignment.notebook)
    core = assignment.modules()[0].CHECKS
    text = printed(outputs["self-check"])
    assert f"0/{len(core)} TESTS PASSED:" in text and "What failed, and what to try:" in text
    assert text.count("Hint:") == len(core)
    assert not errors(outputs["self-check"])
    for number in range(len(core)):
        failure = errors(outputs[f"check-{number}"])
        assert failure and f"check {number} ({core[number]['name']}) failed" in failure[0].evalue


@pytest.mark.parametrize("name", contract.names())
def test_source_passes_everything(name):
    assignment = contract.get(name)
    outputs = run_notebook(COURSE / "source" / name / assignment.notebook)
    core = assignment.modules()[0].CHECKS
    assert f"{len(core)}/{len(core)} TESTS PASSED:" in printed(outputs["self-check"])
    assert "What failed" not in printed(outputs["self-check"])
    assert not [cell for cell, out in outputs.items() if errors(out)]
