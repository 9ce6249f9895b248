"""First impression: cold and warm first fits, each in a fresh process, next to the peers.

A new user's first fit pays for everything: starting Python, importing, and
(the first time on a machine) compiling numba kernels. This script builds a
fresh virtual environment with ``pip install`` of this working tree (unless
``--python`` names an interpreter that already has latentem), points
``NUMBA_CACHE_DIR`` at an empty temporary directory, and runs each job below
in a new process twice: *cold* (nothing compiled or cached) and *warm* (a
second process, the cache now filled). scikit-learn / hmmlearn run the same
job in fresh processes of this interpreter. Times are wall-clock seconds for
the whole process, import included.

    python benchmarks/bench_startup.py                  # fresh venv (needs pip)
    python benchmarks/bench_startup.py --python python  # this interpreter, temp cache
    python benchmarks/bench_startup.py --big            # also a job above the NumPy
                                                        # threshold (compiles)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
centers = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, 6.0]])
X3 = centers[rng.integers(0, 3, 500)] + rng.normal(size=(500, 3))
z = np.repeat(rng.integers(0, 3, 50), 10)
X1 = (np.array([-3.0, 0.0, 3.0])[z] + rng.normal(size=500))[:, None]
Xg = rng.multivariate_normal(np.zeros(4), 0.5 * np.eye(4) + 0.5, size=500)
Xg[rng.random(Xg.shape) < 0.2] = np.nan
S = (np.array([0, 1, 2])[z][:, None] + (rng.random((500, 1)) < 0.2)) % 3
"""

#: name -> (latentem code, peer name, peer code or None)
JOBS = {
    "`GaussianMixture(3).fit`, 500 x 3": (
        "from latentem import GaussianMixture\nGaussianMixture(3, random_state=0).fit(X3)",
        "scikit-learn",
        "from sklearn.mixture import GaussianMixture\nGaussianMixture(3, random_state=0).fit(X3)",
    ),
    "`GaussianHMM(3).fit`, 2 x 250": (
        "from latentem import GaussianHMM\nGaussianHMM(3, random_state=0).fit(X1, [250, 250])",
        "hmmlearn",
        "from hmmlearn.hmm import GaussianHMM\nGaussianHMM(3, random_state=0).fit(X1, [250, 250])",
    ),
    "`EMImputer().fit_transform`, 500 x 4, 20% gaps": (
        "from latentem import EMImputer\nEMImputer().fit_transform(Xg)",
        None,
        None,
    ),
    "`CategoricalHMM(3).fit`, 500 symbols": (
        "from latentem import CategoricalHMM\nCategoricalHMM(3, random_state=0).fit(S)",
        "hmmlearn",
        "from hmmlearn.hmm import CategoricalHMM\nCategoricalHMM(3, random_state=0).fit(S)",
    ),
}
BIG = {
    "`GaussianMixture(3).fit`, 20,000 x 3 (compiled kernels)": (
        "from latentem import GaussianMixture\n"
        "Xb = np.repeat(X3, 40, axis=0) + rng.normal(size=(20000, 3)) * 0.1\n"
        "GaussianMixture(3, random_state=0).fit(Xb)",
        "scikit-learn",
        "from sklearn.mixture import GaussianMixture\n"
        "Xb = np.repeat(X3, 40, axis=0) + rng.normal(size=(20000, 3)) * 0.1\n"
        "GaussianMixture(3, random_state=0).fit(Xb)",
    ),
}


def _run(python: str, args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([python, *args], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)[:80]} failed:\n{proc.stderr[-2000:]}")
    return dt


def _job(code: str) -> list[str]:
    return [
        "-W",
        "ignore",
        "-c",
        "import warnings; warnings.simplefilter('ignore')\n" + _DATA + code,
    ]


def fresh_venv(where: Path) -> str:
    """A new virtual environment with this working tree installed (not editable)."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = str(where / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        check=True,
    )
    return python


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--python",
        help="interpreter that already has latentem (default: build a fresh venv)",
    )
    ap.add_argument("--big", action="store_true", help="add a job above the NumPy threshold")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs: best of this many")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="latentem-startup-") as tmp:
        tmp = Path(tmp)
        if args.python:
            python = args.python
        else:
            t0 = time.perf_counter()
            python = fresh_venv(tmp / "venv")
            print(f"# fresh venv with `pip install .`: {time.perf_counter() - t0:.0f} s")
        cache = tmp / "numba-cache"
        cache.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
        env["NUMBA_CACHE_DIR"] = str(cache)
        if not args.python:
            env.pop("PYTHONPATH", None)  # the fresh venv's copy, not a checkout
        peer_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load:.2f}"
        )
        jobs = dict(JOBS, **(BIG if args.big else {}))
        imp = ["-c", "import latentem"]
        cold_import = _run(python, imp, env)
        print()
        print("| first fit, import included | cold (nothing compiled) | warm | peer, same job |")
        print("|---|---:|---:|---:|")
        print(
            f"| `import latentem` | {cold_import:.2f} s | "
            f"{min(_run(python, imp, env) for _ in range(args.repeats)):.2f} s | – |"
        )
        for name, (code, peer, peer_code) in jobs.items():
            cold = _run(python, _job(code), env)
            warm = min(_run(python, _job(code), env) for _ in range(args.repeats))
            if peer_code is not None:
                p = min(_run(sys.executable, _job(peer_code), peer_env) for _ in range(2))
                ptxt = f"{p:.2f} s ({peer})"
            else:
                ptxt = "–"
            print(f"| {name} | {cold:.2f} s | {warm:.2f} s | {ptxt} |", flush=True)
        demo = ["-m", "latentem", "demo"]
        cold = _run(python, demo, env)
        warm = min(_run(python, demo, env) for _ in range(args.repeats))
        print(f"| `latentem demo` | {cold:.2f} s | {warm:.2f} s | – |")
        n_files = sum(1 for _ in cache.rglob("*.nbi"))
        print()
        print(f"numba cache after the runs: {n_files} compiled kernel index files")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"# load average at the end: {load:.2f}")


if __name__ == "__main__":
    main()
