"""hmmlearn's own tests, run against latentem's classes: only the imports change.

Copies the installed hmmlearn test files (GaussianHMM, GMMHMM, CategoricalHMM,
PoissonHMM) and the helpers they import into a temporary package, rewrites the
lines that import hmmlearn's model classes so they import latentem's, runs
pytest there, and prints passed/failed per file. Each failure is classified:

* "private hook": the test uses an underscore method or attribute that
  hmmlearn's classes have and latentem's do not (``_init``, ``_check``,
  ``_compute_log_likelihood``, ...): hmmlearn's subclassing API, which
  latentem does not promise;
* "real difference": anything else, a difference a user switching the import
  would meet.

The same files, unchanged, are run against hmmlearn for reference.

    python benchmarks/peer_tests_hmmlearn.py [--seed 0] [--only-latentem] [-k EXPR]

The seed goes to hmmlearn's conftest (``HMMLEARN_SEED``), which seeds NumPy's
global generator: several tests draw from it.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

TEST_FILES = (
    "test_gaussian_hmm.py",
    "test_gmm_hmm_new.py",
    "test_gmm_hmm_multisequence.py",
    "test_categorical_hmm.py",
    "test_poisson_hmm.py",
)
#: Imported by the files above (helpers, conftest); copied, not run.
HELPER_FILES = ("__init__.py", "conftest.py", "test_gmm_hmm.py")

#: The import lines naming hmmlearn's model classes, and what replaces them.
IMPORT_REWRITES = {
    "from .. import hmm": "import latentem as hmm",
    "from hmmlearn import hmm": "import latentem as hmm",
    "from ..hmm import GMMHMM": "from latentem import GMMHMM",
    "from hmmlearn.base import ConvergenceMonitor": (
        "from latentem.models.hmm import ConvergenceMonitor"
    ),
}

CLASSES = ("GaussianHMM", "GMMHMM", "CategoricalHMM", "PoissonHMM")


def hmmlearn_tests_dir() -> Path:
    import hmmlearn

    return Path(hmmlearn.__file__).parent / "tests"


def rewrite_imports(text: str) -> str:
    """Replace whole import lines only; every other line is left as it is."""
    lines = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped in IMPORT_REWRITES:
            indent = line[: len(line) - len(line.lstrip())]
            line = indent + IMPORT_REWRITES[stripped] + "\n"
        lines.append(line)
    return "".join(lines)


def make_package(dest: Path, rewrite: bool) -> Path:
    src = hmmlearn_tests_dir()
    pkg = dest / "peer_hmmlearn_tests"
    pkg.mkdir()
    for name in HELPER_FILES + TEST_FILES:
        text = (src / name).read_text()
        (pkg / name).write_text(rewrite_imports(text) if rewrite else text)
    return pkg


def run_pytest(tests: Path, seed: int, keyword: str | None, importable: bool = False) -> Path:
    """hmmlearn's test files in ``tests``, run from the folder above; with ``importable``
    that folder's parent goes on the path, so the files run as ``hmmlearn.tests`` from a
    copy of the package."""
    root = tests.parent.parent if importable else tests.parent
    report = root / "report.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit1",
        "--continue-on-collection-errors",
        *[str(tests / name) for name in TEST_FILES],
    ]
    if keyword:
        cmd += ["-k", keyword]
    env = dict(os.environ, HMMLEARN_SEED=str(seed))
    if importable:
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, check=False)
    return report


def private_names() -> set[str]:
    """Underscore names hmmlearn's classes have and latentem's lack."""
    import hmmlearn.hmm as hl

    import latentem

    names = set()
    for cls in CLASSES:
        theirs = {n for n in dir(getattr(hl, cls)) if n.startswith("_") and not n.endswith("__")}
        ours = set(dir(getattr(latentem, cls)))
        names |= theirs - ours
    return names


def test_sources(path: Path) -> dict[str, str]:
    """Source of every test function (and of its class's helper methods)."""
    tree = ast.parse(path.read_text())
    text = path.read_text()
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = ast.get_source_segment(text, node) or ""
        elif isinstance(node, ast.ClassDef):
            whole = ast.get_source_segment(text, node) or ""
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out[f"{node.name}::{item.name}"] = whole
    return out


def classify(source: str, message: str, hooks: set[str]) -> str:
    used = set(re.findall(r"\.(_[A-Za-z]\w*)", source)) & hooks
    missing = set(re.findall(r"has no attribute '(_\w+)'", message))
    return "private hook" if (used or missing) else "real difference"


def read_report(report: Path, pkg: Path, hooks: set[str] | None):
    per_file = defaultdict(lambda: [0, 0])
    failures = []
    sources = {name: test_sources(pkg / name) for name in TEST_FILES}
    for case in ET.parse(report).getroot().iter("testcase"):
        file = case.get("file") or case.get("classname", "").split(".")[-1] + ".py"
        file = Path(file).name
        if file not in sources:
            file = next((f for f in TEST_FILES if f[:-3] in case.get("classname", "")), file)
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if case.find("skipped") is not None:
            continue
        per_file[file][0 if bad is None else 1] += 1
        if bad is not None and hooks is not None:
            name = case.get("name", "").split("[")[0]
            cls = case.get("classname", "").split(".")[-1]
            src = sources.get(file, {})
            source = src.get(f"{cls}::{name}", src.get(name, ""))
            message = (bad.get("message") or "") + (bad.text or "")
            kind = classify(source, message, hooks)
            first = (bad.get("message") or "").splitlines()[0][:110] if bad.get("message") else ""
            failures.append((kind, f"{file}::{cls}::{case.get('name')}", first))
    return per_file, failures


def print_counts(title: str, per_file) -> None:
    passed = sum(p for p, _ in per_file.values())
    total = sum(p + f for p, f in per_file.values())
    print(f"{title}: {passed} of {total} passed")
    for name in TEST_FILES:
        p, f = per_file.get(name, (0, 0))
        print(f"  {name:34s} passed {p:4d}  failed {f:4d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="HMMLEARN_SEED (default 0)")
    parser.add_argument("--only-latentem", action="store_true", help="skip the hmmlearn run")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    args = parser.parse_args()
    import hmmlearn

    print(f"hmmlearn {hmmlearn.__version__} tests, seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_latentem:
            ref = Path(tmp) / "hmmlearn"
            ref.mkdir()
            # unchanged files: ``from .. import hmm`` needs them inside hmmlearn's package
            pkg = ref / "hmmlearn"
            shutil.copytree(hmmlearn_tests_dir().parent, pkg, ignore=_skip_caches)
            report = run_pytest(pkg / "tests", args.seed, args.keyword, importable=True)
            per_file, _ = read_report(report, pkg / "tests", None)
            print_counts("hmmlearn (reference)", per_file)
        ours = Path(tmp) / "latentem"
        ours.mkdir()
        pkg = make_package(ours, rewrite=True)
        report = run_pytest(pkg, args.seed, args.keyword)
        per_file, failures = read_report(report, pkg, private_names())
        print_counts("latentem (imports rewritten)", per_file)
        for kind in ("private hook", "real difference"):
            chosen = [f for f in failures if f[0] == kind]
            print(f"failures, {kind}: {len(chosen)}")
            for _, name, first in chosen:
                print(f"  {name}  {first}")


def _skip_caches(_dir, names):
    return [n for n in names if n == "__pycache__"]


if __name__ == "__main__":
    main()
