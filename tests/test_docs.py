"""The README's code and the examples run as written."""

import re
import runpy
import sys

import pytest
from conftest import ROOT

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_documented_python_blocks_run(path):
    """The ```python blocks of each page run in order, in one namespace, like a notebook.

    ```py marks fragments that are not meant to run.
    """
    text = path.read_text(encoding="utf-8")
    namespace: dict = {}
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
        exec(compile(code, f"{path.name} block {i}", "exec"), namespace)


def test_custom_model_example_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["custom_model.py"])
    runpy.run_path(str(ROOT / "examples" / "custom_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "SQUAREM" in out and "rates" in out


def test_imputation_example_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["imputation.py"])
    runpy.run_path(str(ROOT / "examples" / "imputation.py"), run_name="__main__")
    out = capsys.readouterr().out
    em = float(re.search(r"RMSE of EM imputation:\s+([\d.]+)", out).group(1))
    mean = float(re.search(r"RMSE of mean imputation:\s+([\d.]+)", out).group(1))
    assert em < 0.85 * mean
    low, high = map(float, re.search(r"95% CI ([\d.]+) to ([\d.]+)", out).groups())
    assert low < 0.5 < high
