"""Executes the notebooks in place as CI sees them (NUCSEG_SMOKE=1, the glioma tiles), so that
their stored outputs are what nbval compares against; then strips what varies by machine and run
(execution times, TensorFlow's start-up lines on stderr). Usage, from the project root:

    NUCSEG_DATA=$(cd .. && pwd)/shared/data/tcga_glioma NUCSEG_SMOKE=1 .venv/bin/python scripts/run_notebooks.py
"""

import sys
import uuid
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.setdefault("id", uuid.uuid4().hex[:8])
    NotebookClient(
        notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    print(f"{path.name}: executed")


if __name__ == "__main__":
    for notebook in [Path(p) for p in sys.argv[1:]] or NOTEBOOKS:
        run(notebook)
