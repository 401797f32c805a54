"""Notebooks are valid and read runs only through the library."""

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_parse(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    for cell in code:
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):  # notebooks read results; they never train or generate sets
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"generate", "fit"}, f"{path.name} calls .{node.attr}"


def test_there_is_a_notebook():
    assert NOTEBOOKS
