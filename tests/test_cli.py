"""The command line, run as users run it: a separate process."""

import subprocess
import sys


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "latentem", *args], capture_output=True, text=True, timeout=300
    )


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
