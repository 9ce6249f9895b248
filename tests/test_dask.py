"""Dask-distributed EM on a real LocalCluster of worker processes (no mocks)."""

import os
import signal

import dask.array as da
import distributed
import numpy as np
import pytest
from conftest import blobs

from latentem import EMImputer, GaussianHMM, GaussianMixture, LinearGaussianSSM, fit_em
from latentem.backends import Chunked, ChunkedSource
from latentem.backends.dask import DaskSource
from latentem.models.hmm import SequenceData

pytestmark = pytest.mark.filterwarnings("ignore::latentem.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"NUMBA_NUM_THREADS": "1"},
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def fit(data, **kw):
    gm = GaussianMixture(3, covariance_type=kw.pop("covariance_type", "full"), random_state=2)
    result = fit_em(gm, data, max_iter=12, tol=0, random_state=2, **kw)
    return gm, result


def same_bits(a, b):
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_dask_equals_chunked_exactly_and_memory_to_1e9(client, covariance_type):
    X = blobs()
    mem, rm = fit(X, covariance_type=covariance_type)
    chk, rc = fit(Chunked(X, block_rows=1000), covariance_type=covariance_type)
    dsk, rd = fit(da.from_array(X, chunks=(1000, 3)), covariance_type=covariance_type)
    same_bits(dsk, chk)  # same blocks, same reduction tree: the same bits
    np.testing.assert_array_equal(rd.history, rc.history)
    n = min(rm.n_iter, rd.n_iter)
    np.testing.assert_allclose(rd.history[:n], rm.history[:n], rtol=1e-9)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(dsk, name), getattr(mem, name), rtol=1e-9, atol=1e-12)
    # the blocks live on the workers: a source (as fit_em builds one) persists them there;
    # checked while it is alive, since the fit's own source may already be released
    source = DaskSource(dsk, da.from_array(X, chunks=(1000, 3)))
    assert any(client.has_what().values())
    del source


def test_gmm_fit_accepts_dask_array_and_column_chunks(client):
    X = blobs(3000)
    a = GaussianMixture(3, random_state=0).fit(X)
    b = GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(700, 1)))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    assert a.n_iter_ == b.n_iter_


def test_killed_worker_does_not_lose_the_fit(client):
    X = blobs()
    Xd = da.from_array(X, chunks=(750, 3))
    ref, rref = fit(Xd)
    pids = client.run(os.getpid)
    victim = None

    def kill_one(info):
        nonlocal victim
        if info.iteration == 3:  # between E-steps: kill a worker holding persisted blocks
            held = {addr: keys for addr, keys in client.has_what().items() if keys}
            addr = sorted(held)[0]
            assert any("validate_block" in str(k) for k in held[addr])
            victim = pids[addr]
            os.kill(victim, signal.SIGKILL)

    got, rgot = fit(Xd, callback=kill_one)
    assert victim is not None and victim not in client.run(os.getpid).values()  # it really died
    same_bits(got, ref)
    np.testing.assert_array_equal(rgot.history, rref.history)


def test_worker_errors_and_bad_inputs_are_clear(client):
    X = blobs(2000)
    X[1500, 1] = np.inf
    with pytest.raises(ValueError, match="inf"):
        fit(da.from_array(X, chunks=(500, 3)))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fit(da.from_array(blobs(100), chunks=(50, 3))[da.arange(100) > 10])
    with pytest.raises(ValueError, match="Dask backend"):
        fit(blobs(100), backend="dask")


def test_gaussian_mixture_with_gaps_on_dask_equals_memory(client):
    X = blobs(2000)
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    mem, _ = fit(X)
    dsk, _ = fit(da.from_array(X, chunks=(500, 3)))
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(dsk, name), getattr(mem, name), rtol=1e-9)


def hmm_data(seed=5, n_seq=30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 400, n_seq)
    states = np.concatenate([np.repeat(rng.integers(0, 2, L // 20 + 1), 20)[:L] for L in lengths])
    X = rng.normal(np.where(states[:, None] == 0, -1.5, 1.5), 1.0, (len(states), 2))
    X[rng.random(len(X)) < 0.02] = np.nan  # missing observations travel too
    labels = np.where(rng.random(len(X)) < 0.05, states, -1)
    return X, lengths, labels


def test_hmm_on_dask_keeps_sequences_whole_and_equals_chunked(client):
    X, lengths, labels = hmm_data()

    def fit_hmm(data):
        return GaussianHMM(2, n_iter=12, tol=0, random_state=0).fit(data, lengths, labels)

    mem = fit_hmm(X)
    chk = fit_hmm(Chunked(X, block_rows=700))
    dsk = fit_hmm(da.from_array(X, chunks=(700, 1)))  # cut inside sequences, and by column
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_array_equal(getattr(dsk, name), getattr(chk, name))
        np.testing.assert_allclose(getattr(dsk, name), getattr(mem, name), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(dsk.history_, chk.history_)
    assert np.all(np.diff(dsk.history_) >= -1e-9 * np.abs(dsk.history_[1:]))
    # scoring and decoding take dask arrays too (in memory)
    Xd = da.from_array(X, chunks=(700, 2))
    np.testing.assert_allclose(dsk.score(Xd, lengths), dsk.score(X, lengths), rtol=1e-12)
    np.testing.assert_array_equal(dsk.predict(Xd, lengths), dsk.predict(X, lengths))


def test_hmm_start_sample_is_the_same_from_dask_and_chunked(client):
    X, lengths, labels = hmm_data(seed=6, n_seq=60)
    model = GaussianHMM(2)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    rows = Chunked(X, block_rows=900, init_rows=2500)
    a = ChunkedSource(model, SequenceData(rows, offsets, labels)).init_data()
    b = DaskSource(
        model, SequenceData(da.from_array(X, chunks=(900, 2)), offsets, labels), init_rows=2500
    ).init_data()
    assert 1000 < len(a) <= 2500 and a.n_sequences > 5
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.labels, b.labels)
    # whole sequences' prefixes, in order: each one starts where its sequence starts
    firsts = a.X[a.offsets[:-1]]
    starts = X[offsets[:-1]]
    assert all(np.any(np.all((starts == f) | np.isnan(f), axis=1)) for f in firsts)


def test_imputer_on_dask_equals_chunked(client):
    rng = np.random.default_rng(7)
    cov = np.array([[1.0, 0.7, 0.2], [0.7, 1.0, 0.4], [0.2, 0.4, 1.0]])
    X = rng.multivariate_normal(np.zeros(3), cov, size=8000)
    X[rng.random(X.shape) < 0.25] = np.nan
    chk = EMImputer(2, random_state=0, tol=0, max_iter=8).fit(Chunked(X, block_rows=1500))
    dsk = EMImputer(2, random_state=0, tol=0, max_iter=8).fit(da.from_array(X, chunks=(1500, 3)))
    np.testing.assert_array_equal(dsk.covariances_, chk.covariances_)
    np.testing.assert_array_equal(dsk.history_, chk.history_)
    np.testing.assert_array_equal(dsk.transform(X[:50]), chk.transform(X[:50]))
    for name in ("n_observed_", "data_min_", "data_max_"):
        np.testing.assert_array_equal(getattr(dsk, name), getattr(chk, name))
    assert np.all(np.diff(dsk.history_) >= -1e-9 * np.abs(dsk.history_[1:]))


def test_state_space_model_on_dask_equals_chunked_and_memory(client):
    # many short sequences with gaps, simulated from a known 2-state model
    rng = np.random.default_rng(11)
    A = np.array([[0.9, 0.2], [-0.1, 0.7]])
    C = rng.normal(size=(3, 2))
    lengths = rng.integers(20, 60, size=40)
    Ys = []
    for L in lengths:
        x, rows = rng.normal(size=2), []
        for _ in range(L):
            x = A @ x + rng.normal(scale=0.5, size=2)
            rows.append(C @ x + rng.normal(scale=0.4, size=3))
        Ys.append(rows)
    Y = np.vstack(Ys)
    Y[rng.random(Y.shape) < 0.1] = np.nan  # gaps travel with their rows
    runs = {}
    sources = (
        ("memory", Y),
        ("chunked", Chunked(Y, block_rows=400)),
        ("dask", da.from_array(Y, chunks=(300, 3))),  # cut inside sequences: re-cut whole
    )
    for backend, X in sources:
        model = LinearGaussianSSM(2)
        data = model.prepare(X, lengths)
        runs[backend] = fit_em(model, data, backend=backend, max_iter=8, tol=0, random_state=0)
        runs[backend].model = model
    dsk, chk, mem = runs["dask"], runs["chunked"], runs["memory"]
    # the blocks differ (whole sequences re-cut from other chunks): sums agree to rounding
    np.testing.assert_allclose(dsk.history, chk.history, rtol=1e-13)
    np.testing.assert_allclose(dsk.history, mem.history, rtol=1e-10)
    assert np.all(np.diff(dsk.history) >= -1e-9 * np.abs(dsk.history[1:]))
    for name in ("transition_matrix_", "observation_matrix_", "observation_cov_"):
        np.testing.assert_allclose(getattr(dsk.model, name), getattr(mem.model, name), rtol=1e-8)
