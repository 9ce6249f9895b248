"""The README's code and the examples run as written."""

import re
import runpy
import sys

import pytest

from conftest import ROOT


DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks():
    """Every ```python block of the README and docs (```py marks fragments that do not run)."""
    blocks = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            blocks.append(pytest.param(code, id=f"{path.name}-{i}"))
    return blocks


@pytest.mark.parametrize("code", python_blocks())
def test_documented_python_blocks_run(code):
    exec(compile(code, "<docs>", "exec"), {})


def test_custom_model_example_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["custom_model.py"])
    runpy.run_path(str(ROOT / "examples" / "custom_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "SQUAREM" in out and "rates" in out
