"""Out-of-core (chunked) EM and online EM (mixtures, imputation).

Same fits as in memory, bounded memory, clear errors.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, blobs
from hypothesis import given, settings
from hypothesis import strategies as st

import latentem
from latentem import ConvergenceWarning, EMImputer, GaussianHMM, GaussianMixture, fit_em
from latentem.backends import Chunked, OnlineEM, resolve, step_size
from latentem.backends.base import pairwise_sum, sequence_bounds

pytestmark = pytest.mark.filterwarnings("ignore::latentem.ConvergenceWarning")


def assert_same_fit(a, b, ra=None, rb=None, rtol=1e-9):
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(a.means_, b.means_, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=rtol, atol=1e-12)
    if ra is not None:
        assert_same_history(ra, rb, rtol)


def assert_same_history(ra, rb, rtol=1e-9):
    """Same log-likelihoods; with tol=0 a fit stops when the change is exactly 0,
    which rounding may reach an iteration earlier or later."""
    n = min(ra.n_iter, rb.n_iter)
    assert n >= 3
    np.testing.assert_allclose(ra.history[:n], rb.history[:n], rtol=rtol)
    for r in (ra, rb):
        if r.n_iter > n:
            np.testing.assert_allclose(r.history[n - 1 :], r.history[-1], rtol=1e-14)


@pytest.fixture
def npy(tmp_path):
    X = blobs()
    path = tmp_path / "X.npy"
    np.save(path, X)
    return X, path


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("source", ["memmap", "memmap-blocks", "npy-reads"])
def test_chunked_gmm_equals_in_memory(npy, covariance_type, source):
    X, path = npy
    data = {
        "memmap": lambda: np.load(path, mmap_mode="r"),
        "memmap-blocks": lambda: Chunked(np.load(path, mmap_mode="r"), block_rows=777),
        "npy-reads": lambda: Chunked.from_npy(path, block_rows=1000),
    }[source]()
    fits = []
    for d in (X, data):
        gm = GaussianMixture(3, covariance_type=covariance_type, random_state=1)
        fits.append((gm, fit_em(gm, d, max_iter=25, tol=0, random_state=1)))
    (a, ra), (b, rb) = fits
    assert_same_fit(a, b, ra, rb)


def test_init_sample_and_gmm_fit_api(npy):
    X, path = npy
    mm = np.load(path, mmap_mode="r")
    # fewer rows than init_rows: the whole data start the fit, as in memory
    a = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=200).fit(X)
    b = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=200).fit(mm)
    assert_same_fit(a, b)
    assert a.n_iter_ == b.n_iter_
    # a small init sample still finds the clusters, from a different start
    c = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=200).fit(
        Chunked(mm, init_rows=300, block_rows=2000)
    )
    np.testing.assert_allclose(np.sort(c.means_[:, 0]), np.sort(a.means_[:, 0]), atol=1e-4)
    assert not np.shares_memory(mm, c.means_)


def test_blocks_are_summed_in_a_fixed_tree():
    parts = [(np.array([float(i)]), float(i)) for i in range(5)]
    stats, ll = pairwise_sum(parts)
    assert stats[0] == ll == 10.0
    order = []
    pairwise_sum(list("abcde"), add=lambda x, y: order.append(x + y) or x + y)
    assert order == ["ab", "cd", "abcd", "abcde"]


class PoissonMixture:
    """The README's custom model: no validate_data, 1-D data."""

    def __init__(self, k):
        self.k = k

    def init_params(self, X, rng):
        self.weights = np.full(self.k, 1 / self.k)
        self.rates = X.mean() * rng.uniform(0.5, 1.5, self.k)

    def _log_joint(self, X):
        from scipy.special import gammaln

        return (
            np.log(self.weights)
            + X[:, None] * np.log(self.rates)
            - self.rates
            - gammaln(X + 1)[:, None]
        )

    def e_step(self, X):
        from scipy.special import logsumexp

        lj = self._log_joint(X)
        ll = logsumexp(lj, axis=1)
        resp = np.exp(lj - ll[:, None])
        return (resp.sum(0), resp.T @ X), float(ll.sum())

    def m_step(self, stats):
        counts, sums = stats
        self.weights, self.rates = counts / counts.sum(), sums / counts

    def log_likelihood(self, X):
        return self.e_step(X)[1]


def test_custom_model_runs_chunked_unchanged():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.poisson(3, 4000), rng.poisson(12, 2000)]).astype(float)
    a, b = PoissonMixture(2), PoissonMixture(2)
    ra = fit_em(a, X, max_iter=50, tol=0, random_state=3)
    rb = fit_em(b, Chunked(X, block_rows=500), max_iter=50, tol=0, random_state=3)
    # Two overlapping Poisson components converge slowly: the last-bit differences of
    # summing in blocks instead of at once grow along the EM path (about 2e-9 after
    # 50 iterations with NumPy 2.4), while the likelihoods still agree to 1e-9.
    np.testing.assert_allclose(a.rates, b.rates, rtol=1e-7)
    assert_same_history(ra, rb)
    bad = X.copy()
    bad[4321] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_em(PoissonMixture(2), Chunked(bad, block_rows=500), random_state=0)


def test_hmm_chunked_keeps_sequences_whole(tmp_path):
    rng = np.random.default_rng(5)
    lengths = rng.integers(20, 400, 30)
    states = np.concatenate([np.repeat(rng.integers(0, 2, L // 20 + 1), 20)[:L] for L in lengths])
    X = rng.normal(np.where(states[:, None] == 0, -1.5, 1.5), 1.0, (len(states), 2))
    path = tmp_path / "h.npy"
    np.save(path, X)
    seen = []

    class Recording(GaussianHMM):
        def e_step(self, data):
            seen.append(np.diff(data.offsets).tolist())
            return super().e_step(data)

    a = GaussianHMM(2, n_iter=15, tol=0, random_state=0).fit(X, lengths)
    b = Recording(2, n_iter=15, tol=0, random_state=0)
    b.fit(Chunked(np.load(path, mmap_mode="r"), block_rows=700), lengths)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.transmat_, b.transmat_, rtol=1e-9)
    n = min(len(a.history_), len(b.history_))
    np.testing.assert_allclose(a.history_[:n], b.history_[:n], rtol=1e-9)
    blocks_per_pass = len(seen) // len(b.history_)
    assert blocks_per_pass > 5
    one_pass = [L for block in seen[:blocks_per_pass] for L in block]
    assert one_pass == lengths.tolist()  # every sequence whole, in order


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(1, 120))
def test_sequence_bounds_cover_whole_sequences(lengths, block_rows):
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    bounds = sequence_bounds(offsets, block_rows)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(lengths)
    for (_, l0), (f1, _) in zip(bounds, bounds[1:]):
        assert l0 == f1
    for first, last in bounds:
        rows = offsets[last] - offsets[first]
        assert last > first and (rows <= block_rows or last - first == 1)


def test_truncated_or_unreadable_files_give_clear_errors(tmp_path):
    X = blobs(2000)
    path = tmp_path / "X.npy"
    np.save(path, X)
    size = os.path.getsize(path)
    short = tmp_path / "short.npy"
    short.write_bytes(path.read_bytes()[: size - 800])
    with pytest.raises(ValueError, match="truncated"):
        Chunked.from_npy(short)
    # a file that shrinks after it was opened: the next pass notices
    data = Chunked.from_npy(path, block_rows=500)
    with open(path, "r+b") as f:
        f.truncate(size - 8 * 3 * 100)
    with pytest.raises(ValueError, match="truncated"):
        GaussianMixture(3, random_state=0).fit(data)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="cannot read"):
        Chunked.from_npy(junk)
    with pytest.raises(ValueError, match="cannot read"):
        Chunked.from_parquet(junk)


def test_parquet_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = blobs(3000)
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "name": ["x"] * len(X)})
    path = tmp_path / "X.parquet"
    pq.write_table(table, path, row_group_size=700)
    data = Chunked.from_parquet(path)
    assert data.shape == (3000, 3) and data.bounds()[:2] == [(0, 700), (700, 1400)]
    a = GaussianMixture(3, random_state=0, max_iter=20, tol=0).fit(X)
    b = GaussianMixture(3, random_state=0, max_iter=20, tol=0).fit(data)
    assert_same_fit(a, b)
    with pytest.raises(ValueError, match="not numeric"):
        Chunked.from_parquet(path, columns=["a", "name"])


def test_backend_argument():
    X = blobs(500)
    with pytest.raises(ValueError, match="backend must be one of"):
        fit_em(GaussianMixture(2), X, backend="gpu")
    with pytest.raises(ValueError, match="in-memory array"):
        resolve(GaussianMixture(2), Chunked(X), "memory")
    a, b = GaussianMixture(2), GaussianMixture(2)
    ra = fit_em(a, X, max_iter=10, tol=0, random_state=0)
    rb = fit_em(b, X, max_iter=10, tol=0, random_state=0, backend="chunked")
    np.testing.assert_allclose(ra.history, rb.history, rtol=1e-12)
    with pytest.raises(ValueError, match="n_components=3 is larger"):
        GaussianMixture(3).fit(Chunked(X[:2]))


def test_dask_array_without_a_client_runs_blocks_in_process():
    import dask.array as da

    from latentem.backends.dask import DaskSource, active_client

    assert active_client() is None
    X = blobs(2000)
    a, b = GaussianMixture(3), GaussianMixture(3)
    ra = fit_em(a, Chunked(X, block_rows=500), max_iter=8, tol=0, random_state=0)
    rb = fit_em(b, da.from_array(X, chunks=(500, 3)), max_iter=8, tol=0, random_state=0)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(ra.history, rb.history)
    source = DaskSource(GaussianMixture(3), da.from_array(X, chunks=(500, 3)))
    assert source.scheduler == "sync" and not source.persist


def _memory_run(gb, backend=None):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "memory", "--gb", str(gb)]
    if backend:
        cmd += ["--backend", backend]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_memmap_fit_keeps_anonymous_memory_bounded():
    """Issue 7: a 1.3 GB memmap may grow anonymous memory by at most 300 MB.

    Scaled to a 0.3 GB file here (bound 300 * 0.3 / 1.3 = 69 MB); the full
    check is ``python benchmarks/bench_scale.py memory --gb 1.3``. The
    control run loads the same file into memory first (np.array) and must grow
    by at least its size, which shows the measurement sees anonymous memory.
    """
    gb = 0.3
    run = _memory_run(gb)
    assert run["n_iter"] == 3 and np.isfinite(run["mean_loglik"])
    assert run["anon_growth_mb"] <= 300 * gb / 1.3, run
    control = _memory_run(gb, backend="memory")
    assert control["anon_growth_mb"] >= gb * 1000, control


# ------------------------------------------------------------------ online EM


def test_step_size_schedule():
    assert step_size(1) == 1.0
    g = [step_size(t, 0.7, 10.0) for t in range(1, 200)]
    assert all(a > b for a, b in zip(g, g[1:]))
    np.testing.assert_allclose(step_size(5, 1.0, 0.0), 1 / 5)
    for decay, offset in [(0.5, 1.0), (1.2, 1.0), (0.7, -1.0)]:
        with pytest.raises(ValueError, match="decay"):
            OnlineEM(GaussianMixture(2), decay=decay, offset=offset)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_move_stats_is_exact(covariance_type):
    rng = np.random.default_rng(0)
    X = blobs(400, d=3)
    W = rng.dirichlet(np.ones(3), size=len(X))
    gm = GaussianMixture(3, covariance_type=covariance_type)
    gm._new_parts(3)
    fam = gm._family
    cov = GaussianMixture(3, covariance_type=covariance_type).fit(X).covariances_
    refs, stats = [], []
    for means in (rng.normal(size=(3, 3)), rng.normal(size=(3, 3)) * 5):
        fam.set_parameters(means, cov)
        nk, S, Q = fam.accumulate(X, W)
        refs.append(gm.stats_reference())
        stats.append({"weights": nk, "emission": (nk, S, Q)})
    moved = gm.move_stats(stats[0], refs[0], refs[1])
    np.testing.assert_array_equal(moved["weights"], stats[1]["weights"])
    for a, b in zip(moved["emission"], stats[1]["emission"]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_partial_fit_on_a_stream_approaches_the_batch_fit(covariance_type):
    X = blobs(30000, d=2, seed=3)
    batch = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    online = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    for part in np.array_split(X, 60):
        online.partial_fit(part, decay=0.6)
    assert online.n_iter_ == 60 and np.isfinite(online.lower_bound_)
    order_b, order_o = np.argsort(batch.means_[:, 0]), np.argsort(online.means_[:, 0])
    np.testing.assert_allclose(online.means_[order_o], batch.means_[order_b], atol=0.08)
    np.testing.assert_allclose(online.weights_[order_o], batch.weights_[order_b], atol=0.03)
    assert abs(online.score(X) - batch.score(X)) < 0.01
    # a later full fit starts a new stream
    online.fit(X[:1000])
    assert "_online" not in vars(online)


def test_partial_fit_errors_and_warm_start():
    X = blobs(3000)
    gm = GaussianMixture(3, random_state=0)
    with pytest.raises(ValueError, match="n_components=3 is larger"):
        gm.partial_fit(X[:2])
    gm.partial_fit(X[:500])
    gm.partial_fit(X[500:502])  # later batches may be tiny
    with pytest.raises(ValueError, match="features"):
        gm.partial_fit(X[:100, :2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = GaussianMixture(3, random_state=0, warm_start=True, max_iter=200).fit(X)
    before = warm.means_.copy()
    warm.partial_fit(X[:1000], offset=50.0)  # gamma_1 = 1: the batch's own statistics
    np.testing.assert_allclose(np.sort(warm.means_[:, 0]), np.sort(before[:, 0]), atol=0.2)


# ------------------------------------------------------------------ online EM for imputation


def _gappy_stream(n, seed, frac=0.3):
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    X = rng.multivariate_normal([1.0, 2.0, 3.0], cov, size=n)
    gaps = X.copy()
    gaps[rng.random(X.shape) < frac] = np.nan
    return X, gaps, cov


def test_imputer_partial_fit_on_a_stream_approaches_the_batch_fit():
    X, gaps, cov = _gappy_stream(40000, seed=1)
    batch = EMImputer().fit(gaps)
    online = EMImputer()
    for part in np.array_split(gaps, 80):
        online.partial_fit(part)
    assert online.n_iter_ == 80 and np.isfinite(online.lower_bound_)
    for name in ("n_observed_", "data_min_", "data_max_"):  # summed over the batches
        np.testing.assert_array_equal(getattr(online, name), getattr(batch, name))
    np.testing.assert_allclose(online.mean_, batch.mean_, atol=0.02)
    np.testing.assert_allclose(online.covariance_, batch.covariance_, atol=0.03)
    np.testing.assert_allclose(online.covariance_, cov, atol=0.05)
    # imputing any batch afterwards: as good as the batch fit
    hidden = np.isnan(gaps[:2000])
    rmse = [
        np.sqrt(np.mean((m.transform(gaps[:2000]) - X[:2000])[hidden] ** 2))
        for m in (online, batch)
    ]
    assert rmse[0] < rmse[1] * 1.01
    # without the conditional covariances in the statistics the variances would be biased down
    assert np.all(np.diag(online.covariance_) > 0.95)


def test_imputer_partial_fit_mixture_and_dataframes():
    rng = np.random.default_rng(2)
    z = rng.random(20000) < 0.4
    X = np.where(z[:, None], [-4.0, 4.0], [4.0, -4.0]) + rng.normal(size=(20000, 2))
    gaps = X.copy()
    gaps[rng.random(X.shape) < 0.2] = np.nan
    frame = pd.DataFrame(gaps, columns=["a", "b"], index=np.arange(20000) * 2)
    imp = EMImputer(2, random_state=0)
    for part in np.array_split(np.arange(20000), 20):
        imp.partial_fit(frame.iloc[part])
    np.testing.assert_allclose(np.sort(imp.weights_), [0.4, 0.6], atol=0.02)
    out = imp.transform(frame)
    assert list(out.columns) == ["a", "b"] and (out.index == frame.index).all()
    assert frame.isna().to_numpy().any() and not out.isna().to_numpy().any()
    hidden = np.isnan(gaps)
    batch = EMImputer(2, random_state=0).fit_transform(gaps)
    mean = np.where(hidden, np.nanmean(gaps, axis=0), gaps)
    rmse = [np.sqrt(np.mean((F - X)[hidden] ** 2)) for F in (out.to_numpy(), batch, mean)]
    assert rmse[0] < 1.01 * rmse[1] and rmse[0] < 0.6 * rmse[2]
    with pytest.raises(ValueError, match="numeric columns"):
        imp.partial_fit(frame[["b", "a"]])


def test_imputer_partial_fit_errors_warm_start_and_files(tmp_path):
    X, gaps, _ = _gappy_stream(3000, seed=3)
    with pytest.raises(ValueError, match='ridge="auto"'):
        EMImputer(ridge="auto").partial_fit(gaps)
    first = gaps[:200].copy()
    first[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 of the first batch is entirely missing"):
        EMImputer().partial_fit(first)
    imp = EMImputer(ridge=5.0).partial_fit(gaps[:1000])
    later = gaps[1000:1100].copy()
    later[:, 1] = np.nan  # later batches may miss a whole column
    imp.partial_fit(later)
    with pytest.raises(ValueError, match="features"):
        imp.partial_fit(gaps[:10, :2])
    with pytest.raises(ValueError, match="partial_fit keeps none"):
        imp.sample_imputations(gaps[:10])
    with pytest.raises(ValueError, match="partial_fit keeps none"):
        _ = imp.fraction_missing_info_
    path = tmp_path / "stream.lem"
    imp.save(path)
    back = latentem.load(path)
    np.testing.assert_array_equal(back.transform(gaps[:50]), imp.transform(gaps[:50]))
    # after fit(), partial_fit continues from the fitted parameters; fit() starts afresh
    fitted = EMImputer().fit(gaps)
    before = fitted.covariance_.copy()
    fitted.partial_fit(gaps[:500], offset=50.0)
    np.testing.assert_allclose(fitted.covariance_, before, atol=0.2)
    assert fitted.n_iter_ == 1 and fitted.history_.size == 0
    fitted.fit(gaps)
    assert "_online" not in vars(fitted) and fitted.history_.size > 1
    assert fitted.sample_imputations(gaps[:10], 2, random_state=0)[0].shape == (10, 3)


def test_imputer_fits_memmaps_and_chunked_files_block_by_block(tmp_path):
    X, gaps, _ = _gappy_stream(30000, seed=4)
    path = tmp_path / "gaps.npy"
    np.save(path, gaps)
    memory = EMImputer(random_state=0).fit(gaps)
    for source in (np.load(path, mmap_mode="r"), Chunked.from_npy(path, block_rows=4000)):
        blocks = EMImputer(random_state=0).fit(source)
        np.testing.assert_allclose(blocks.covariance_, memory.covariance_, rtol=1e-12)
        np.testing.assert_allclose(blocks.history_, memory.history_, rtol=1e-12)
        np.testing.assert_allclose(blocks.transform(gaps[:100]), memory.transform(gaps[:100]))
        for name in ("n_observed_", "data_min_", "data_max_"):  # shrinkage and bounds
            np.testing.assert_array_equal(getattr(blocks, name), getattr(memory, name))
    mixture = EMImputer(3, random_state=0).fit(Chunked.from_npy(path, block_rows=4000))
    np.testing.assert_allclose(mixture.weights_.sum(), 1.0)
    filled = EMImputer(random_state=0).fit_transform(np.load(path, mmap_mode="r"))
    np.testing.assert_allclose(filled, memory.transform(gaps), rtol=1e-12)
    assert np.isnan(np.load(path)).any()  # the file is untouched
    with pytest.raises(ValueError, match="partial_fit keeps none|fitted on"):
        blocks.sample_imputations(gaps[:10])


def test_imputer_out_of_core_errors_are_clear(tmp_path):
    _, gaps, _ = _gappy_stream(3000, seed=5)
    bad = gaps.copy()
    bad[:, 2] = np.nan
    np.save(tmp_path / "empty_col.npy", bad)
    with pytest.raises(ValueError, match="column 2 of X is entirely missing"):
        EMImputer().fit(np.load(tmp_path / "empty_col.npy", mmap_mode="r"))
    const = gaps.copy()
    const[:, 0] = np.where(np.isnan(const[:, 0]), np.nan, 0.1)
    np.save(tmp_path / "const.npy", const)
    with pytest.raises(ValueError, match="column 0 of X is constant"):
        EMImputer().fit(Chunked.from_npy(tmp_path / "const.npy", block_rows=500))
    inf = gaps.copy()
    inf[2500, 1] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    with pytest.raises(ValueError, match="inf"):
        EMImputer().fit(Chunked.from_npy(tmp_path / "inf.npy", block_rows=1000))
    with pytest.raises(ValueError, match='ridge="auto"'):
        EMImputer(ridge="auto").fit(np.load(tmp_path / "const.npy", mmap_mode="r"))
