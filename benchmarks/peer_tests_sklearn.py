"""scikit-learn's own expectations, run against latentem.

Two measurements, both needing scikit-learn (a test-only dependency):

1. scikit-learn's installed ``sklearn/mixture/tests/test_gaussian_mixture.py``
   is copied into a temporary directory with ONLY its import of
   ``GaussianMixture`` changed to latentem's, and run with pytest (with
   scikit-learn's conftest loaded as a plugin, for its fixtures). Failures
   are sorted into "calls a scikit-learn private helper" (the test body
   uses a private scikit-learn name: a ``_function`` imported from
   scikit-learn or a ``._method`` of the estimator; latentem need not
   provide those) and "real difference".
2. ``sklearn.utils.estimator_checks.check_estimator`` on each latentem
   estimator, every check run (``on_fail=None``) and each failure listed.
   Checks an estimator declares it cannot meet (its
   ``_sklearn_expected_failed_checks()``, with a reason each) are reported
   as "xfail", not as failures.

    python benchmarks/peer_tests_sklearn.py             # both
    python benchmarks/peer_tests_sklearn.py --only peer # just the test file
    python benchmarks/peer_tests_sklearn.py --only checks
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SK_IMPORT = "from sklearn.mixture import GaussianMixture\n"
OUR_IMPORT = "from latentem import GaussianMixture\n"


def peer_file() -> Path:
    import sklearn

    return Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"


def private_users(source: str) -> set[str]:
    """Test functions whose body uses a private scikit-learn name.

    A private name is one imported from scikit-learn that starts with ``_``
    (``_estimate_gaussian_parameters``, ...), a ``sklearn.mixture._...``
    module path, or a single-underscore method or attribute of an object
    (``gmm._m_step``); dunders are public protocol.
    """
    tree = ast.parse(source)
    private = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sklearn"):
            private.update(a.asname or a.name for a in node.names if a.name.startswith("_"))
    users = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in private:
                users.add(node.name)
            elif isinstance(sub, ast.Attribute) and _is_private(sub.attr):
                users.add(node.name)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                if re.search(r"sklearn\.\w+\._", sub.value):
                    users.add(node.name)
    return users


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def run_peer_tests(verbose: bool) -> dict:
    source = peer_file().read_text()
    if SK_IMPORT not in source:
        raise SystemExit(f"{peer_file()} no longer imports GaussianMixture as expected")
    rewritten = source.replace(SK_IMPORT, OUR_IMPORT, 1)
    users = private_users(source)
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test_gaussian_mixture.py"
        test.write_text(rewritten)
        report = Path(tmp) / "report.xml"
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        # float32 cases too, as scikit-learn's CI runs them (global_dtype fixture)
        env = dict(os.environ, PYTHONPATH=path, SKLEARN_RUN_FLOAT32_TESTS="1")
        cmd = [
            sys.executable, "-m", "pytest", str(test), "-q", "-p", "sklearn.conftest",
            "-p", "no:cacheprovider", f"--junitxml={report}", "-W", "ignore::DeprecationWarning",
            "--rootdir", tmp,
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if not report.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit("pytest did not run")
        cases = ET.parse(report).getroot().iter("testcase")
        outcome = {"passed": 0, "failed": 0, "skipped": 0}
        private, real = [], []
        for case in cases:
            name = case.get("name", "")
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if case.find("skipped") is not None:
                outcome["skipped"] += 1
            elif bad is not None:
                outcome["failed"] += 1
                message = ((bad.get("message") or "").splitlines() or [""])[0][:160]
                (private if name.split("[")[0] in users else real).append((name, message))
            else:
                outcome["passed"] += 1
    run = outcome["passed"] + outcome["failed"]
    print(
        f"scikit-learn test_gaussian_mixture.py on latentem: {outcome['passed']} of {run} "
        f"passed, {outcome['failed']} failed ({outcome['skipped']} skipped as on scikit-learn: "
        "array-API cases) "
        f"(failures: {len(private)} call a scikit-learn private helper, {len(real)} real "
        "difference)"
    )
    groups = (("real difference", real), ("calls a scikit-learn private helper", private))
    for label, rows in groups:
        if rows and (verbose or label == "real difference"):
            print(f"  {label}:")
            for name, message in rows:
                print(f"    {name}: {message}")
    return {**outcome, "private": len(private), "real": len(real)}


def estimators() -> list:
    """(label, estimator): every latentem estimator scikit-learn's checks can feed."""
    from latentem import (
        GMMHMM,
        HMM,
        PPCA,
        BernoulliMixture,
        CategoricalMixture,
        EMImputer,
        FactorAnalysis,
        GaussianHMM,
        GaussianMixture,
        MixedImputer,
        Mixture,
        MixtureOfFactorAnalyzers,
        PoissonHMM,
        PoissonMixture,
    )
    from latentem.families import CategoricalColumnsFamily, PoissonFamily, StudentTFamily

    made = [
        GaussianMixture(),
        CategoricalMixture(),
        PoissonMixture(),
        BernoulliMixture(binarize=0.0),
        Mixture(emission=StudentTFamily(1)),
        Mixture(emission=PoissonFamily(1)),
        EMImputer(),
        MixedImputer(),
        FactorAnalysis(),
        PPCA(),
        MixtureOfFactorAnalyzers(2),
        GaussianHMM(2),
        GMMHMM(2, n_mix=2),
        PoissonHMM(2),
        HMM(2, emission=PoissonFamily(2)),
        HMM(2, emission=CategoricalColumnsFamily(2)),
    ]

    def label(est: Any) -> str:
        family = est.get_params().get("emission")
        text = repr(est).replace("\n", "").replace(" ", "")
        if family is None:
            return text
        return f"{type(est).__name__}(emission={type(family).__name__})"

    return [(label(est), est) for est in made]


#: Estimators (or settings) whose data scikit-learn's generated tables cannot be.
NOT_CHECKED = {
    "CategoricalHMM": (
        "reads one symbol per row, an (n, 1) array as in hmmlearn, and the checks "
        "generate tables of several columns; several symbols per time step are "
        "HMM(emission=CategoricalColumnsFamily(K)), which is checked"
    ),
    "BernoulliMixture()": (
        "the default binarize=None takes 0/1 data only and refuses the checks' "
        "real-valued tables; checked with binarize=0.0, as BernoulliNB's default"
    ),
}


def run_checks(verbose: bool) -> dict:
    from sklearn.utils.estimator_checks import check_estimator

    for name, reason in NOT_CHECKED.items():
        print(f"check_estimator({name}): not run: {reason}")
    failed_total = 0
    for label, est in estimators():
        expected = getattr(est, "_sklearn_expected_failed_checks", lambda: {})()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = check_estimator(
                    est, on_fail=None, on_skip=None, expected_failed_checks=expected
                )
        except Exception as exc:  # the checks could not even start
            print(f"check_estimator({label}): could not start: {exc!r:.200}")
            failed_total += 1
            continue
        status = [r["status"] for r in results]
        failed = [r for r in results if r["status"] == "failed"]
        failed_total += len(failed)
        print(
            f"check_estimator({label}): {status.count('passed')} passed, "
            f"{len(failed)} failed, {status.count('xfail')} xfail (declared), "
            f"{status.count('skipped')} skipped of {len(results)}"
        )
        for r in failed:
            exc = r["exception"]
            text = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            print(f"    FAIL {r['check_name']}: {text}")
        if verbose:
            for name, reason in expected.items():
                print(f"    xfail {name}: {reason}")
    return {"failed": failed_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("peer", "checks"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.only in (None, "peer"):
        run_peer_tests(args.verbose)
    if args.only in (None, "checks"):
        run_checks(args.verbose)


if __name__ == "__main__":
    main()
