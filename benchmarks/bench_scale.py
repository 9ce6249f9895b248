"""Scale benchmarks: seconds per EM iteration against N, and out-of-core memory.

Two modes:

``python benchmarks/bench_scale.py time [--sizes 1e5 1e6 1e7]``
    A full-covariance GaussianMixture (K=4, D=8), seconds per EM iteration
    (E-step plus M-step, initialisation excluded) in memory, chunked over a
    ``.npy`` memmap, and on a ``dask.distributed`` LocalCluster of 2 worker
    processes x 1 thread. Prints a Markdown table.

``python benchmarks/bench_scale.py memory --gb 1.3``
    Writes a float64 ``.npy`` file of that size (in a child process), then
    fits a GaussianMixture to ``np.load(path, mmap_mode="r")`` and reports the
    growth of the process's anonymous memory (``RssAnon``, sampled every
    millisecond, so file-backed pages of the memmap do not count) over the
    baseline after imports and compilation. Prints one JSON line;
    tests/test_scale.py runs it on a smaller file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

D, K = 8, 4


def rss_anon_bytes() -> int:
    """This process's resident anonymous memory, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


class PeakSampler:
    """Largest RssAnon seen by a background thread polling every millisecond."""

    def __init__(self) -> None:
        self.peak = rss_anon_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon_bytes())
            time.sleep(0.001)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_bytes())


def make_data(path: str, n: int, d: int = D, seed: int = 0, block: int = 1 << 20) -> None:
    """Write a K-cluster float64 .npy file of n rows, block by block."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 5, (K, d))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    for a in range(0, n, block):
        b = min(n, a + block)
        z = rng.integers(0, K, b - a)
        out[a:b] = centers[z] + rng.normal(size=(b - a, d))
    out.flush()
    del out


def memory_check(gb: float, max_iter: int = 3, backend: str | None = None) -> dict:
    from latentem import GaussianMixture, fit_em

    n = int(gb * 1e9) // (8 * D)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")
        # a child process writes the file, so its buffers never touch this process
        subprocess.run(
            [sys.executable, __file__, "make", path, str(n)], check=True, env=os.environ.copy()
        )
        warm = os.path.join(tmp, "warm.npy")
        make_data(warm, 5000)
        GaussianMixture(K, max_iter=2, tol=0, random_state=0).fit(np.load(warm, mmap_mode="r"))
        X = np.load(path, mmap_mode="r")
        base = rss_anon_bytes()
        t0 = time.perf_counter()
        with PeakSampler() as sampler:
            gm = GaussianMixture(K, random_state=0)
            data = np.array(X) if backend == "memory" else X  # the control loads the file
            res = fit_em(gm, data, max_iter=max_iter, tol=0, random_state=0, backend=backend)
            del data
        seconds = time.perf_counter() - t0
        del X
    return {
        "file_gb": round(n * 8 * D / 1e9, 3),
        "n_rows": n,
        "backend": backend or "auto",
        "n_iter": int(res.n_iter),
        "mean_loglik": float(res.mean_log_likelihood),
        "anon_growth_mb": round((sampler.peak - base) / 1e6, 1),
        "baseline_anon_mb": round(base / 1e6, 1),
        "seconds": round(seconds, 1),
    }


def _read_rows(path: str, a: int, b: int) -> np.ndarray:
    return np.array(np.load(path, mmap_mode="r")[a:b])


def dask_from_npy(path: str, chunk_rows: int):
    """A dask array whose blocks the workers read from the .npy file themselves."""
    import dask
    import dask.array as da

    n, d = np.load(path, mmap_mode="r").shape
    parts = [
        da.from_delayed(
            dask.delayed(_read_rows)(path, a, min(n, a + chunk_rows)),
            shape=(min(n, a + chunk_rows) - a, d),
            dtype=np.float64,
        )
        for a in range(0, n, chunk_rows)
    ]
    return da.concatenate(parts)


def _per_iter(fit) -> float:
    """Seconds per EM iteration from a fit run with a callback recording elapsed times."""
    times: list[float] = []
    fit(lambda info: times.append(info.elapsed))
    return (times[-1] - times[0]) / (len(times) - 1)


def _fit_per_iter(data, backend: str, n_iter: int) -> float:
    from latentem import GaussianMixture, fit_em

    def fit(cb):
        gm = GaussianMixture(K, random_state=0)
        fit_em(gm, data, max_iter=n_iter, tol=0, random_state=0, callback=cb, backend=backend)

    return _per_iter(fit)


def _row(n: int, path: str, client, n_iter: int) -> tuple:
    make_data(path, n)
    mm = np.load(path, mmap_mode="r")
    with client.as_current():
        dask_s = _fit_per_iter(dask_from_npy(path, min((1 << 22) // D, -(-n // 2))), "dask", n_iter)
    return (
        n,
        _fit_per_iter(np.array(mm), "memory", n_iter),
        _fit_per_iter(mm, "chunked", n_iter),
        dask_s,
    )


def time_table(sizes: list[int], n_iter: int = 4) -> str:
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"NUMBA_NUM_THREADS": "1"},
        )
        client = Client(cluster, set_as_default=False)
        try:
            rows = [_row(n, os.path.join(tmp, f"X{n}.npy"), client, n_iter) for n in sizes]
        finally:
            client.close()
            cluster.close()
    lines = [
        "| N | in memory (s/iter) | chunked memmap (s/iter) | Dask, 2 workers (s/iter) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for n, a, b, c in rows:
        lines.append(f"| {n:.0e} | {a:.3f} | {b:.3f} | {c:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    pm = sub.add_parser("memory", help="anonymous-memory growth of a memmap fit")
    pm.add_argument("--gb", type=float, default=1.3, help="file size in GB (default 1.3)")
    pm.add_argument("--max-iter", type=int, default=3)
    pm.add_argument(
        "--backend",
        choices=["memory", "chunked"],
        default=None,
        help="memory: load the file with np.array first (a control run)",
    )
    pt = sub.add_parser("time", help="seconds per iteration against N")
    pt.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    pt.add_argument("--n-iter", type=int, default=4)
    mk = sub.add_parser("make", help=argparse.SUPPRESS)
    mk.add_argument("path")
    mk.add_argument("n", type=int)
    args = p.parse_args(argv)
    from latentem import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed iteration counts
    if args.mode == "make":
        make_data(args.path, args.n)
    elif args.mode == "memory":
        print(json.dumps(memory_check(args.gb, args.max_iter, args.backend)))
    else:
        print(f"GaussianMixture K={K}, D={D}, full covariance; {os.cpu_count()} CPUs")
        print(time_table([int(s) for s in args.sizes], args.n_iter))


if __name__ == "__main__":
    main()
