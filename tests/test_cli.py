"""The command line, run as users run it: a separate process, on real CSV and Parquet files."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from latentem.persistence import describe, load


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "latentem", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def one_line_error(proc, code=1):
    """A failure is exactly one line on stderr, no traceback, and the expected exit code."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_demo_fits_old_faithful():
    proc = run("demo")
    assert proc.returncode == 0, proc.stderr
    assert "Old Faithful" in proc.stdout
    assert "Best: 2 components" in proc.stdout  # the textbook answer for these data
    assert "Traceback" not in proc.stderr


def test_no_command_prints_help_and_fails():
    proc = run()
    assert proc.returncode == 2
    assert "demo" in proc.stderr


def test_bad_option_is_one_clear_line():
    proc = run("demo", "--max-components", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "latentem: error: --max-components must be at least 1"


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("latentem ")


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("demo",),
        ("fit",),
        ("fit", "gmm"),
        ("fit", "hmm"),
        ("predict",),
        ("score",),
        ("info",),
        ("impute",),
    ],
    ids=lambda a: " ".join(a) or "latentem",
)
def test_help_everywhere(args, capsys):
    from latentem.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])  # in-process: argparse exits after printing the help
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: latentem")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Two clusters with an id and a text column, as CSV and Parquet; sequences for HMMs."""
    d = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    n = 200
    blob = np.repeat([0, 1], n // 2)
    df = pd.DataFrame(
        {
            "id": np.arange(n) + 1000,
            "name": [f"row {i}" for i in range(n)],
            "x": rng.normal(np.where(blob == 0, -4.0, 4.0), 1.0),
            "y": rng.normal(np.where(blob == 0, 0.0, 6.0), 1.0),
        }
    )
    df.to_csv(d / "blobs.csv", index=False)
    df.to_parquet(d / "blobs.parquet")
    # Three sequences, interleaved in the file: the sequence column groups them.
    states = np.tile(np.repeat([0, 1, 0, 1], 30), 3)
    seq = np.repeat(["a", "b", "c"], 120)
    value = rng.normal(np.where(states == 0, -3.0, 3.0), 1.0)
    h = pd.DataFrame({"seq": seq, "value": value, "state_true": states})
    shuffle = np.argsort(np.tile(np.arange(120), 3), kind="stable")  # a1 b1 c1 a2 b2 ...
    h.iloc[shuffle].to_csv(d / "seqs.csv", index=False)
    return d, df, h.iloc[shuffle].reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_fit_predict_score_info_gmm(fmt, tables):
    d, df, _ = tables
    src = d / f"blobs.{fmt}"
    model = d / f"gmm-{fmt}.lem"
    proc = run("fit", "gmm", src, "--components", 2, "-o", model)
    assert proc.returncode == 0, proc.stderr
    assert "Fitted GaussianMixture with 2 components on 200 rows" in proc.stdout
    assert "column(s): x, y" in proc.stdout  # numeric columns; the integer key is left out
    assert "note: left out 'id'" in proc.stdout
    gm = load(model)
    meta = describe(model)["metadata"]
    assert meta["columns"] == ["x", "y"] and meta["trained_on"] == f"blobs.{fmt}"

    out = d / f"pred-{fmt}.{fmt}"
    proc = run("predict", model, src, "-o", out)
    assert proc.returncode == 0, proc.stderr
    pred = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert list(pred.columns) == [*df.columns, "label", "proba_0", "proba_1"]
    pd.testing.assert_frame_equal(pred[df.columns], df, check_exact=fmt == "parquet")
    X = df[meta["columns"]].to_numpy()
    np.testing.assert_array_equal(pred["label"], gm.predict(X))
    np.testing.assert_allclose(pred[["proba_0", "proba_1"]], gm.predict_proba(X), rtol=1e-12)

    proc = run("score", model, src)
    assert proc.returncode == 0, proc.stderr
    ll = float(proc.stdout.split("log-likelihood: ")[1].split()[0])
    assert ll == pytest.approx(gm.score(X) * len(X), rel=1e-5)
    assert "BIC: " in proc.stdout and "AIC: " in proc.stdout

    proc = run("info", model)
    assert proc.returncode == 0, proc.stderr
    assert "class: GaussianMixture" in proc.stdout and "means_" in proc.stdout
    assert f"trained on: blobs.{fmt} (200 rows)" in proc.stdout


def test_fit_gmm_with_chosen_columns_then_predict_other_table(tables, tmp_path):
    d, df, _ = tables
    model = tmp_path / "m.lem"
    proc = run(
        "fit", "gmm", d / "blobs.csv", "-k", 2, "-o", model, "--columns", "x,y",
        "--covariance-type", "diag", "--n-init", 2, "--seed", 3,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    gm = load(model)
    assert gm.covariance_type == "diag" and gm.n_init == 2 and gm.random_state == 3
    assert describe(model)["metadata"]["columns"] == ["x", "y"]
    # New data with the columns in another order and without the extra columns.
    new = df[["y", "x"]].iloc[:10]
    new.to_csv(tmp_path / "new.csv", index=False)
    proc = run("predict", model, tmp_path / "new.csv", "-o", tmp_path / "out.csv")
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["y", "x", "label", "proba_0", "proba_1"]
    np.testing.assert_array_equal(out["label"], gm.predict(new[["x", "y"]].to_numpy()))


def test_fit_predict_hmm_with_sequences(tables, tmp_path):
    d, _, h = tables
    model = tmp_path / "hmm.lem"
    proc = run(
        "fit", "hmm", d / "seqs.csv", "-k", 2, "--sequence-column", "seq", "--columns",
        "value", "-o", model,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "in 3 sequences" in proc.stdout
    hmm = load(model)
    assert type(hmm).__name__ == "GaussianHMM"
    proc = run("predict", model, d / "seqs.csv", "-o", tmp_path / "states.parquet")
    assert proc.returncode == 0, proc.stderr
    out = pd.read_parquet(tmp_path / "states.parquet")
    assert list(out.columns) == ["seq", "value", "state_true", "state", "proba_0", "proba_1"]
    # Viterbi per sequence, in the file's (interleaved) row order.
    for s in "abc":
        rows = out[out["seq"] == s]
        expect = hmm.predict(rows[["value"]].to_numpy())
        np.testing.assert_array_equal(rows["state"], expect)
    agree = (out["state"] == out["state_true"]).mean()
    assert max(agree, 1 - agree) > 0.95
    proc = run("score", model, d / "seqs.csv")
    assert proc.returncode == 0, proc.stderr
    assert "in 3 sequences" in proc.stdout and "2 states" in proc.stdout


def test_fit_poisson_and_categorical_hmm(tmp_path):
    rng = np.random.default_rng(1)
    states = np.repeat([0, 1, 0, 1], 50)
    pd.DataFrame(
        {
            "count": rng.poisson(np.where(states == 0, 1.0, 9.0)),
            "symbol": np.where(states == 0, rng.integers(0, 2, 200), 2),
        }
    ).to_csv(tmp_path / "c.csv", index=False)
    proc = run("fit", "hmm", tmp_path / "c.csv", "-k", 2, "--emission", "poisson",
               "--columns", "count", "-o", tmp_path / "p.lem")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert np.sort(load(tmp_path / "p.lem").lambdas_.ravel()) == pytest.approx([1, 9], abs=1)
    proc = run("fit", "hmm", tmp_path / "c.csv", "-k", 2, "--emission", "categorical",
               "-o", tmp_path / "c.lem")  # fmt: skip
    line = one_line_error(proc)
    assert "exactly one column" in line
    proc = run("fit", "hmm", tmp_path / "c.csv", "-k", 2, "--emission", "categorical",
               "--columns", "symbol", "-o", tmp_path / "c.lem")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert load(tmp_path / "c.lem").emissionprob_.shape == (2, 3)


def test_errors_are_one_clear_line(tables, tmp_path):
    d, df, _ = tables
    csv = d / "blobs.csv"
    line = one_line_error(run("fit", "gmm", tmp_path / "missing.csv", "-k", 2, "-o", "m.lem"))
    assert line == f"latentem: error: no such file: {tmp_path / 'missing.csv'}"
    line = one_line_error(run("fit", "gmm", csv, "-k", 2, "-o", tmp_path / "m.lem",
                              "--columns", "x,nope"))  # fmt: skip
    assert "unknown column 'nope'" in line and "id, name, x, y" in line
    line = one_line_error(run("fit", "gmm", csv, "-k", 2, "-o", tmp_path / "m.lem",
                              "--columns", "x,name"))  # fmt: skip
    assert "column 'name' is not numeric" in line and "'row 0'" in line
    line = one_line_error(run("fit", "gmm", csv, "-o", tmp_path / "m.lem"), code=2)
    assert "required: -k/--components" in line
    line = one_line_error(run("fit", "gmm", csv, "-k", 0, "-o", tmp_path / "m.lem"), code=2)
    assert "--components must be at least 1" in line
    line = one_line_error(run("fit", "gmm", d / "blobs.xlsx", "-k", 2, "-o", tmp_path / "m.lem"))
    assert "name it .csv, .tsv or .parquet" in line
    gaps = df.copy()
    gaps.loc[3, "x"] = np.nan
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    # Gaussian mixtures marginalise missing cells: a table with gaps fits as it is
    assert (
        run("fit", "gmm", tmp_path / "gaps.csv", "-k", 2, "-o", tmp_path / "g.lem").returncode == 0
    )
    (tmp_path / "bad.csv").write_text('a,b\n1,"2\n')
    line = one_line_error(run("fit", "gmm", tmp_path / "bad.csv", "-k", 1, "-o", "m.lem"))
    assert "cannot read" in line
    line = one_line_error(run("predict", csv, csv, "-o", tmp_path / "o.csv"))
    assert "not a readable latentem model file" in line
    line = one_line_error(run("info", tmp_path / "none.lem"))
    assert "no such model file" in line
    assert not (tmp_path / "m.lem").exists()


def test_predict_checks_the_table_against_the_model(tables, tmp_path):
    d, df, _ = tables
    model = tmp_path / "m.lem"
    assert (
        run("fit", "gmm", d / "blobs.csv", "-k", 2, "--columns", "x,y", "-o", model).returncode == 0
    )
    df[["x"]].to_csv(tmp_path / "onlyx.csv", index=False)
    line = one_line_error(run("predict", model, tmp_path / "onlyx.csv", "-o", tmp_path / "o.csv"))
    assert "unknown column 'y'" in line
    df.assign(label=1).to_csv(tmp_path / "clash.csv", index=False)
    line = one_line_error(run("predict", model, tmp_path / "clash.csv", "-o", tmp_path / "o.csv"))
    assert "already has a column named 'label'" in line
    line = one_line_error(run("predict", model, d / "blobs.csv", "-o", tmp_path / "no/o.csv"))
    assert "does not exist" in line


def test_impute_csv_and_parquet(tmp_path):
    rng = np.random.default_rng(2)
    n = 300
    z = rng.multivariate_normal([0, 0, 0], [[1, 0.8, 0.5], [0.8, 1, 0.4], [0.5, 0.4, 1]], n)
    df = pd.DataFrame(
        {
            "key": np.arange(n),
            "city": rng.choice(["Lyon", "Oslo", None], n),
            "a": z[:, 0],
            "b": z[:, 1] * 10 + 50,
            "count": rng.integers(0, 5, n),
            "c": z[:, 2],
        }
    )
    gappy = df.copy()
    gappy.loc[rng.random(n) < 0.2, "a"] = np.nan
    gappy.loc[rng.random(n) < 0.1, "c"] = np.nan
    gappy.to_csv(tmp_path / "in.csv", index=False)
    gappy.to_parquet(tmp_path / "in.parquet")

    proc = run("impute", tmp_path / "in.csv", "-o", tmp_path / "out.csv")
    assert proc.returncode == 0, proc.stderr
    assert "left untouched: key\n" in proc.stdout  # identifiers; text gaps are filled
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == list(df.columns)
    assert not out[["a", "b", "c", "count", "city"]].isna().any().any()
    # Observed cells and identifiers are untouched; gaps are filled near the truth.
    keep = ["key", "b", "count"]
    pd.testing.assert_frame_equal(out[keep], pd.read_csv(tmp_path / "in.csv")[keep])
    city = gappy["city"].notna()
    assert (out.loc[city, "city"] == gappy.loc[city, "city"]).all()
    assert set(out["city"]) == {"Lyon", "Oslo"}
    seen = gappy["a"].notna()
    np.testing.assert_allclose(out.loc[seen, "a"], gappy.loc[seen, "a"], rtol=1e-12)
    gap = gappy["a"].isna()
    rmse = np.sqrt(np.mean((out.loc[gap, "a"] - df.loc[gap, "a"]) ** 2))
    assert rmse < 0.7  # about sqrt(1 - R^2) from b and c; filling with the mean gives ~1

    proc = run("impute", tmp_path / "in.parquet", "-o", tmp_path / "mi.parquet", "-m", 3, "-k", 1)
    assert proc.returncode == 0, proc.stderr
    copies = [pd.read_parquet(tmp_path / f"mi_{i}.parquet") for i in (1, 2, 3)]
    for c in copies:
        assert list(c.columns) == list(df.columns) and not c["a"].isna().any()
        pd.testing.assert_frame_equal(c[keep], gappy[keep])
    assert not np.allclose(copies[0].loc[gap, "a"], copies[1].loc[gap, "a"])  # draws differ

    proc = run("impute", tmp_path / "in.csv", "-o", tmp_path / "ab.csv", "--columns", "a,b")
    assert proc.returncode == 0, proc.stderr
    ab = pd.read_csv(tmp_path / "ab.csv")
    assert ab["a"].notna().all() and ab["c"].isna().sum() == gappy["c"].isna().sum()

    line = one_line_error(run("impute", tmp_path / "in.csv", "-o", tmp_path / "x.csv",
                              "--columns", "a,town"))  # fmt: skip
    assert "unknown column 'town'" in line
    line = one_line_error(run("impute", tmp_path / "in.csv", "-o", tmp_path / "x.csv", "-m", 0), 2)
    assert "--multiple must be at least 1" in line


# ------------------------------------------------------------------ regime switching
@pytest.fixture(scope="module")
def gnp_csv(tmp_path_factory):
    from latentem.datasets import load_hamilton_gnp

    path = tmp_path_factory.mktemp("gnp") / "gnp.csv"
    pd.DataFrame(load_hamilton_gnp()).to_csv(path, index=False)
    return path


def test_fit_predict_score_info_regime(gnp_csv, tmp_path):
    from latentem import MarkovAutoregression
    from latentem.datasets import load_hamilton_gnp

    model_path = tmp_path / "gnp.lem"
    r = run(
        "fit", "regime", str(gnp_csv), "-o", str(model_path), "--column", "growth",
        "--order", "1", "--n-init", "2", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "MarkovAutoregression with 2 regimes on 135 rows" in r.stdout
    model = load(model_path)
    assert describe(model_path)["metadata"]["column"] == "growth"
    # the same fit in Python gives the same log-likelihood
    y = load_hamilton_gnp()["growth"]
    same = MarkovAutoregression(2, order=1, n_init=2, random_state=0, tol=1e-8, max_iter=100)
    same.fit(y)  # the command line's defaults
    assert model.score(y) == pytest.approx(same.score(y), rel=1e-10)

    out = tmp_path / "regimes.csv"
    r = run("predict", str(model_path), str(gnp_csv), "-o", str(out))
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out)
    assert list(table.columns[-3:]) == ["regime", "proba_0", "proba_1"]
    assert table["regime"].iloc[0] == -1 and np.isnan(table["proba_0"].iloc[0])  # the lag
    probs = table[["proba_0", "proba_1"]].to_numpy()[1:]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    smoothed = model.smooth(y).smoothed_marginal_probabilities
    np.testing.assert_allclose(probs, smoothed, rtol=1e-10)

    r = run("score", str(model_path), str(gnp_csv))
    assert r.returncode == 0 and "log-likelihood" in r.stdout and "BIC" in r.stdout
    r = run("info", str(model_path))
    assert r.returncode == 0 and "transmat_" in r.stdout and "response: growth" in r.stdout


def test_fit_regime_with_regressors_and_clear_errors(gnp_csv, tmp_path):
    model_path = tmp_path / "reg.lem"
    r = run(
        "fit", "regime", str(gnp_csv), "-o", str(model_path), "--column", "growth",
        "--exog", "recession", "--n-init", "2", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "MarkovRegression" in r.stdout and "on recession" in r.stdout
    for extra, message in [
        (["--column", "nope"], "no column 'nope'"),
        (["--column", "growth", "-k", "1"], "at least 2"),
        (["--column", "growth", "--sequence-column", "growth"], "cannot also be"),
    ]:
        r = run("fit", "regime", str(gnp_csv), "-o", str(tmp_path / "x.lem"), *extra, "-q")
        assert r.returncode != 0
        assert message in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
