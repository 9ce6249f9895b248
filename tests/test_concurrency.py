"""Concurrent use: one fitted model serving predict, score and transform from 8 threads
gives the serial answers (as behind a web server), and fitting a copy in one thread
while another thread predicts with the original is safe."""

import copy
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from latentem import EMImputer, GaussianHMM, GaussianMixture, PoissonHMM

N_THREADS = 8


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-3, 1, (n // 2, 3)), rng.normal(3, 0.7, (n - n // 2, 3))])


def _with_gaps(X, seed):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < 0.15] = np.nan
    return X


def _models():
    X = _blobs(400, 0)
    counts = np.random.default_rng(0).poisson(np.repeat([2.0, 9.0], 150))[:, None]
    return {
        "GaussianMixture": (
            GaussianMixture(2, random_state=0).fit(X),
            lambda m, D: (m.predict(D), m.predict_proba(D), m.score_samples(D), m.score(D)),
            lambda s: _blobs(300, s),
        ),
        "GaussianHMM": (
            GaussianHMM(2, n_iter=10, random_state=0).fit(X),
            lambda m, D: (m.predict(D), m.predict_proba(D), m.score(D)),
            lambda s: _blobs(300, s),
        ),
        "PoissonHMM": (
            PoissonHMM(2, n_iter=10, random_state=0).fit(counts),
            lambda m, D: (m.predict(D), m.predict_proba(D), m.score(D)),
            lambda s: np.random.default_rng(s).poisson(4.0, (200, 1)),
        ),
        "EMImputer": (
            EMImputer(2, random_state=0).fit(_with_gaps(X, 1)),
            lambda m, D: (m.transform(D),),
            lambda s: _with_gaps(_blobs(300, s), s),
        ),
    }


@pytest.mark.parametrize("name", ["GaussianMixture", "GaussianHMM", "PoissonHMM", "EMImputer"])
def test_eight_threads_give_the_serial_answers(name):
    model, answer, data = _models()[name]
    # different data per task, so that per-call caches (missing-data plans, kernel
    # tables) are rebuilt and replaced while other threads use them
    inputs = [data(seed) for seed in range(8)]
    serial = [answer(model, D) for D in inputs]
    start = threading.Barrier(N_THREADS)

    def task(i):
        if i < N_THREADS:
            start.wait()  # all threads begin together
        return answer(model, inputs[i % len(inputs)])

    for _ in range(2):
        with ThreadPoolExecutor(N_THREADS) as pool:
            results = list(pool.map(task, range(3 * len(inputs))))
        for i, got in enumerate(results):
            for a, b in zip(got, serial[i % len(inputs)]):
                np.testing.assert_array_equal(a, b)


def test_fitting_a_copy_while_predicting_with_the_original():
    X = _blobs(600, 0)
    model = GaussianMixture(3, random_state=0).fit(X)
    expected = model.predict_proba(X)
    means = model.means_.copy()
    twin = copy.deepcopy(model)
    done = threading.Event()
    mismatches = []

    def predict_until_done():
        while not done.is_set():
            if not np.array_equal(model.predict_proba(X), expected):
                mismatches.append(1)

    readers = [threading.Thread(target=predict_until_done) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for seed in range(3):  # refit the copy on other data, several times
            twin.set_params(random_state=seed).fit(_blobs(600, seed + 1) * 2.0)
    finally:
        done.set()
        for t in readers:
            t.join()
    assert not mismatches
    np.testing.assert_array_equal(model.means_, means)
    assert not np.array_equal(twin.means_, means)
