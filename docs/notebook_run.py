"""Execute docs/notebook.ipynb (the Python API's page) in a Jupyter kernel.

``python docs/notebook_run.py`` runs it in a temporary folder against the photos of
``$TUNE_FOOD_DATA_DIR`` and saves it in place with its outputs as Jupyter shows them,
so that the docs site (mkdocs-jupyter, which does not execute it) shows a real run;
``tests/test_docs.py`` executes it with :func:`execute` and checks the outputs.
"""

from __future__ import annotations

import os
import sys
import tempfile

import nbclient
import nbformat

NOTEBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notebook.ipynb")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def execute(path: str, cwd: str, env: dict[str, str] | None = None):
    """The notebook at ``path`` executed cell by cell in a fresh Jupyter kernel
    (nbclient; the kernel's working folder ``cwd``, this process's environment with
    ``env`` laid over it). Returns the notebook with its outputs.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised.
    """
    notebook = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env or {})   # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": cwd}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


def as_shown(notebook):
    """``notebook``'s outputs as Jupyter shows and saves them: consecutive stream
    outputs merged and a line redrawn with carriage returns (a progress bar) kept as
    its last state; empty HTML displays dropped."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.outputs:
            if out.output_type == "display_data" and out.data.get("text/html") == "":
                continue
            if out.output_type == "stream" and merged and \
                    merged[-1].output_type == "stream" and merged[-1].name == out.name:
                merged[-1].text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.output_type == "stream":
                out.text = "\n".join(line.rsplit("\r", 1)[-1].rstrip() if line.strip("\r")
                                     else line for line in out.text.split("\n"))
        cell.outputs = merged
        cell.metadata.pop("execution", None)
    return notebook


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="tune_food-notebook-") as folder:
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
        nbformat.write(as_shown(execute(NOTEBOOK, folder, env)), NOTEBOOK)
    print(f"{NOTEBOOK}: executed and saved with its outputs", file=sys.stderr)
