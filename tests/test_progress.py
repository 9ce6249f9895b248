"""Progress: a live line on a terminal only once a fit has run for a while (the CLI's 2 s)."""

import io

from latentem.runner import _Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


class _Loop:
    restart, converged, stopped, history = 0, True, False, [1.0, 2.0]


def test_short_fit_with_a_delay_prints_nothing():
    stream = Tty()
    progress = _Progress(1, 1, stream=stream, delay=2.0)
    for i in range(1, 5):
        progress.update(0, i, -10.0 + i, 0.1, 0.3 * i)  # at most 1.2 s
    progress.done(_Loop())
    assert stream.getvalue() == ""


def test_long_fit_with_a_delay_shows_the_line_after_the_delay():
    stream = Tty()
    progress = _Progress(1, 1, stream=stream, delay=2.0)
    for i in range(1, 6):
        progress.update(0, i, -10.0 + i, 0.1, 0.75 * i)  # 0.75 ... 3.75 s
    progress.done(_Loop())
    text = stream.getvalue()
    assert text.count("\r") == 3  # iterations 3, 4, 5 (elapsed >= 2 s)
    assert "iter     3" in text and "iter     2" not in text
    assert "elapsed 2.25s" in text and text.endswith("converged after 2 iterations\n")


def test_library_default_has_no_delay():
    stream = Tty()
    progress = _Progress(1, 1, stream=stream)
    progress.update(0, 1, -3.0, float("nan"), 0.001)
    assert stream.getvalue().count("\r") == 1
