"""CSV and TSV tables without pandas: ``pip install .`` then ``latentem impute`` works."""

import csv
import glob
import subprocess
import sys

import numpy as np
import pytest

from latentem import _tables
from latentem._tables import TextTable, numeric_block, read_table
from latentem.cli import main

pd = pytest.importorskip("pandas")  # only to write the inputs and check the outputs

from test_cli_fuzz import BAD_TABLES  # noqa: E402  (the same bad tables, the same messages)


@pytest.fixture
def no_pandas(monkeypatch):
    """Tables read as if pandas were not installed."""
    monkeypatch.setattr(_tables, "has_pandas", lambda: False)


def gappy_table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "town": np.where(g == 1, "Oslo", "Lyon"),
            "x": rng.normal(3.0 * g, 1.0).round(4),
            "kids": rng.poisson(1 + 2 * g),
            "note": [f"free text {i}" for i in range(n)],
        }
    )
    gappy = df.astype({"kids": float})
    gappy.loc[rng.random(n) < 0.2, "town"] = None
    gappy.loc[rng.random(n) < 0.2, "x"] = np.nan
    gappy.loc[rng.random(n) < 0.2, "kids"] = np.nan
    return df, gappy


def write_csv(df, path, sep=","):
    df.to_csv(path, index=False, sep=sep, float_format="%.10g")


def rows(path, sep=","):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter=sep))


def test_text_table_types(tmp_path, no_pandas):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,x,2.5\n,NA,\n3,y,-1e3\n", encoding="utf-8")
    t = read_table(str(path))
    assert isinstance(t, TextTable) and len(t) == 3
    assert t.columns == ["a", "b", "c"]
    assert t.integer["a"] and not t.integer["c"] and not t.is_numeric("b")
    assert t.cells["b"] == ["x", None, "y"]
    X, names = numeric_block(t, None)
    assert names == ["a", "c"]
    np.testing.assert_array_equal(X, [[1, 2.5], [np.nan, np.nan], [3, -1000.0]])
    with pytest.raises(ValueError, match="column 'b' is not numeric"):
        numeric_block(t, ["b"])


@pytest.mark.parametrize("case", [c for c in BAD_TABLES if c != "a column of all text"])
def test_bad_tables_same_one_line_errors(case, tmp_path, no_pandas, capsys):
    data, expected = BAD_TABLES[case]
    table = tmp_path / "in.csv"
    table.write_bytes(data)
    out = tmp_path / "out.csv"
    code = main(["impute", str(table), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and expected in err[0], err
    assert not out.exists() and glob.glob(str(tmp_path / ".*.tmp")) == []


def test_impute_without_pandas_matches_pandas(tmp_path, monkeypatch, capsys):
    df, gappy = gappy_table()
    src = tmp_path / "in.csv"
    write_csv(gappy, src)
    assert main(["impute", str(src), "-o", str(tmp_path / "pd.csv"), "-q"]) == 0
    assert "left untouched: id, note\n" in capsys.readouterr().out
    monkeypatch.setattr(_tables, "has_pandas", lambda: False)
    assert main(["impute", str(src), "-o", str(tmp_path / "std.csv"), "-q"]) == 0
    assert "left untouched: id, note\n" in capsys.readouterr().out  # the same columns
    a = pd.read_csv(tmp_path / "pd.csv")
    b = pd.read_csv(tmp_path / "std.csv")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)  # the same model, the same fills
    got, given = rows(tmp_path / "std.csv"), rows(src)
    assert got[0] == given[0]
    for r_out, r_in in zip(got[1:], given[1:]):
        for v_out, v_in in zip(r_out, r_in):
            assert v_out == v_in or v_in == ""  # observed cells written as read
    # counts are written as whole numbers, text gaps with known levels
    kids = [r[3] for r in got[1:]]
    assert all(k.isdigit() for k in kids)
    assert {r[1] for r in got[1:]} == {"Oslo", "Lyon"}
    hid = gappy["town"].isna().to_numpy()
    assert (b["town"][hid] == df["town"][hid]).mean() > 0.8


def test_multiple_copies_and_tsv_without_pandas(tmp_path, no_pandas, capsys):
    _, gappy = gappy_table(n=120, seed=1)
    src = tmp_path / "in.tsv"
    write_csv(gappy, src, sep="\t")
    assert main(["impute", str(src), "-o", str(tmp_path / "mi.tsv"), "-m", "3", "-q"]) == 0
    copies = [rows(tmp_path / f"mi_{i}.tsv", "\t") for i in (1, 2, 3)]
    for c in copies:
        assert len(c) == len(gappy) + 1 and all("" not in r[1:4] for r in c[1:])
    assert copies[0] != copies[1]  # drawn, not the same fill


def test_parquet_without_pandas_says_what_to_install(tmp_path, no_pandas, capsys):
    src = tmp_path / "in.parquet"
    src.write_bytes(b"PAR1")
    code = main(["impute", str(src), "-o", str(tmp_path / "o.csv"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "pip install 'latentem[io]'" in err


def test_cli_runs_with_pandas_unimportable(tmp_path):
    """A process where ``import pandas`` fails, as after a plain ``pip install .``."""
    _, gappy = gappy_table(n=80, seed=2)
    src = tmp_path / "in.csv"
    write_csv(gappy, src)
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from latentem.cli import main\n"
        f"rc = main(['impute', {str(src)!r}, '-o', {str(tmp_path / 'o.csv')!r}, '-q'])\n"
        "assert 'pandas' not in sys.modules or sys.modules['pandas'] is None\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "o.csv")
    assert not out[["town", "x", "kids"]].isna().any().any()
