"""The command line on hostile input: one clear line and a non-zero exit for each bad
table or output path, and outputs that are written whole or not at all."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from latentem.cli import main


def cli(argv, capsys):
    """Run the command in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(result, expected=1):
    code, _, err = result
    assert code == expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentem: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A Gaussian mixture fitted on columns x, y, saved as the CLI saves it."""
    d = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60) + 3})
    df.loc[30:, "x"] += 8
    df.to_csv(d / "train.csv", index=False)
    assert main(["fit", "gmm", str(d / "train.csv"), "-k", "2", "-o", str(d / "m.lem"), "-q"]) == 0
    return d / "m.lem", df


#: name -> (bytes of the table, the message expected in the one error line)
BAD_TABLES = {
    "empty file": (b"", "is empty"),
    "header only": (b"x,y\n", "header but no rows"),
    "Latin-1 bytes": ("x,y,name\n1,2,caf\u00e9\n3,4,b\n".encode("latin-1"), "not UTF-8"),
    "semicolon-delimited": (b"x;y\n1;2\n3;4\n", "separated by semicolons"),
    "duplicate column names": (b"x,y,x\n1,2,3\n4,5,6\n", "twice"),
    "empty column name": (b"x,,y\n1,2,3\n4,5,6\n", "has no name"),
    "a column of all text": (b"x,y\none,two\nthree,four\n", "not numeric"),
    "ragged rows": (b"x,y\n1,2\n3,4,5\n", "Expected 2 fields"),
    "binary garbage": (bytes(range(256)) * 4, "not UTF-8"),
    "infinite values": (b"x,y\n1,inf\n3,4\n", "inf"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
@pytest.mark.parametrize("command", ["fit", "predict", "score", "impute"])
def test_bad_table_is_one_clear_line(case, command, model, tmp_path, capsys):
    data, expected = BAD_TABLES[case]
    table = tmp_path / "in.csv"
    table.write_bytes(data)
    out = tmp_path / "out.csv"
    argv = {
        "fit": ["fit", "gmm", table, "-k", "2", "-o", tmp_path / "m.lem", "-q"],
        "predict": ["predict", model[0], table, "-o", out],
        "score": ["score", model[0], table],
        "impute": ["impute", table, "-o", out, "-q"],
    }[command]
    if case == "a column of all text" and command == "impute":
        # impute fills text columns as categories: a valid table, here without gaps
        code, _, err = cli(argv, capsys)
        assert code == 0, err
        assert out.read_bytes() == data
        return
    if case == "a column of all text" and command == "fit":
        argv += ["--columns", "x"]
    line = error_line(cli(argv, capsys))
    assert expected in line, line
    assert not out.exists() and not (tmp_path / "m.lem").exists()
    assert glob.glob(str(tmp_path / ".*.tmp")) == []


def test_accepted_oddities(model, tmp_path, capsys):
    """A byte-order mark, a quoted newline inside a cell and a 1 MB line are valid CSV:
    they are read as written."""
    path, df = model
    table = tmp_path / "odd.csv"
    note = ["a\nmulti-line note", "x" * (1 << 20)] + [""] * (len(df) - 2)
    odd = df.assign(note=note)
    table.write_bytes(b"\xef\xbb\xbf" + odd.to_csv(index=False).encode())
    out = tmp_path / "out.csv"
    code, _, err = cli(["predict", path, table, "-o", out], capsys)
    assert code == 0, err
    back = pd.read_csv(out, keep_default_na=False)
    assert list(back.columns[:3]) == ["x", "y", "note"]
    assert back["note"][0] == "a\nmulti-line note" and len(back["note"][1]) == 1 << 20
    assert len(back) == len(df)


@pytest.mark.parametrize("command", ["fit", "predict", "impute"])
def test_output_paths_fail_before_the_work(command, model, tmp_path, capsys):
    path, df = model
    table = tmp_path / "in.csv"
    df.to_csv(table, index=False)
    before = table.read_bytes()
    base = {
        "fit": ["fit", "gmm", table, "-k", "2", "-q"],
        "predict": ["predict", path, table],
        "impute": ["impute", table, "-q"],
    }[command]
    missing = tmp_path / "no" / "such" / "dir" / "out.csv"
    line = error_line(cli([*base, "-o", missing], capsys))
    assert "does not exist" in line
    line = error_line(cli([*base, "-o", tmp_path], capsys))
    assert "directory" in line
    line = error_line(cli([*base, "-o", table], capsys))
    assert "would overwrite the input" in line
    # the same file under another name
    os.symlink(table, tmp_path / "alias.csv")
    line = error_line(cli([*base, "-o", tmp_path / "alias.csv"], capsys))
    assert "would overwrite the input" in line
    assert table.read_bytes() == before


def test_predict_over_its_model_file_is_refused(model, tmp_path, capsys):
    path, df = model
    table = tmp_path / "in.csv"
    df.to_csv(table, index=False)
    line = error_line(cli(["predict", path, table, "-o", path], capsys))
    assert "format" in line or "would overwrite" in line
    assert len(describe_arrays(path)) > 0


def describe_arrays(path):
    from latentem.persistence import describe

    return describe(path)["arrays"]


def test_interrupted_write_leaves_the_previous_output(model, tmp_path, capsys, monkeypatch):
    """Ctrl-C in the middle of writing: exit 130, the previous output intact, no
    temporary file left."""
    path, df = model
    table = tmp_path / "in.csv"
    df.to_csv(table, index=False)
    out = tmp_path / "out.csv"
    out.write_text("previous output\n")

    def half_then_interrupt(self, target, *args, **kwargs):
        with open(target, "w") as f:
            f.write("label,proba_0\n0,")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupt)
    code, _, err = cli(["predict", path, table, "-o", out], capsys)
    assert code == 130 and err.strip() == "latentem: interrupted"
    assert out.read_text() == "previous output\n"
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "out.csv"]


_KILLED_MID_WRITE = """
import os, signal, sys
import pandas as pd
original = pd.DataFrame.to_csv
def half_then_die(self, target, *args, **kwargs):
    text = original(self, None, *args, **kwargs)
    with open(target, "w") as f:
        f.write(text[: len(text) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
pd.DataFrame.to_csv = half_then_die
from latentem.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_mid_write_leaves_the_previous_output(model, tmp_path):
    """SIGKILL while half the table is written: the output is the previous file, whole."""
    path, df = model
    table = tmp_path / "in.csv"
    df.to_csv(table, index=False)
    out = tmp_path / "out.csv"
    out.write_text("previous output\n")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_WRITE, "predict", str(path), str(table), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert out.read_text() == "previous output\n"


def test_killed_at_any_moment_leaves_a_whole_output_or_none(model, tmp_path):
    """A real process on a larger table, killed as soon as its temporary file appears: the
    output is absent or complete, never half-written."""
    path, _ = model
    rng = np.random.default_rng(1)
    n = 50_000
    big = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n)})
    table = tmp_path / "big.csv"
    big.to_csv(table, index=False)
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentem", "predict", str(path), str(table), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if glob.glob(str(tmp_path / ".out.csv.*.tmp")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait(timeout=60)
    if out.exists():  # the kill came after the move: the file is whole
        assert len(pd.read_csv(out)) == n
    leftovers = glob.glob(str(tmp_path / ".out.csv.*.tmp"))
    assert len(leftovers) <= 1  # a killed process cannot tidy up; its file is hidden
