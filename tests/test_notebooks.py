"""Every notebook in notebooks/ runs top to bottom (one test each, so xdist spreads them), and is committed without outputs."""

import importlib.util
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: Frameworks a notebook trains with (the ``[ci]`` extra has them all); without one, its run is skipped.
REQUIRES = {
    "gradient_boosting": ("xgboost", "lightgbm", "catboost", "pandas", "matplotlib"),
    "neural_networks": ("torch", "keras"),
    "batch_scoring": ("pyarrow", "pandas"),
    "gpu": ("xgboost", "torch"),
}


def test_every_notebook_is_found():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "gradient_boosting", "neural_networks", "trust", "batch_scoring", "gpu"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert any(c.cell_type == "markdown" for c in nb.cells[1:]), "prose between the cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} have outputs; clear them (jupyter nbconvert --clear-output --inplace {path.name})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path):
    missing = [m for m in REQUIRES.get(path.stem, ()) if importlib.util.find_spec(m) is None]  # found, not imported
    if missing:
        pytest.skip(f"{path.name} needs {missing}")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
