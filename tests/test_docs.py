"""The README's code and the examples run as written."""

import re
import runpy
import sys

import pytest

from conftest import ROOT


def readme_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_python_blocks_run(index):
    exec(compile(readme_blocks()[index], f"README.md block {index}", "exec"), {})


def test_custom_model_example_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["custom_model.py"])
    runpy.run_path(str(ROOT / "examples" / "custom_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "SQUAREM" in out and "rates" in out
