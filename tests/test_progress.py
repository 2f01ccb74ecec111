"""Progress bars: drawn on a terminal, quiet on pipes and files, and never with ``progress=False``."""

from __future__ import annotations

import io

import numpy as np
import pytest

import mlejax as mle
from mlejax import progress

pytest.importorskip("tqdm")


class _Stream(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("MLEJAX_PROGRESS", raising=False)


def test_default_follows_the_tty():
    assert progress.enabled(None, _Stream(tty=True))
    assert not progress.enabled(None, _Stream(tty=False))
    assert not progress.enabled(None, io.StringIO())  # a plain file: no isatty answer of True
    assert not progress.enabled(False, _Stream(tty=True))
    assert progress.enabled(True, _Stream(tty=False))


def test_environment_turns_the_default_off(monkeypatch):
    monkeypatch.setenv("MLEJAX_PROGRESS", "0")
    assert not progress.enabled(None, _Stream(tty=True))
    assert progress.enabled(True, _Stream(tty=True))  # an explicit request still wins


def test_closed_stream_and_bad_value():
    closed = _Stream(tty=True)
    closed.isatty = lambda: (_ for _ in ()).throw(ValueError("I/O operation on closed file"))  # type: ignore[method-assign]
    assert not progress.enabled(None, closed)
    with pytest.raises(TypeError, match="True, False or None"):
        progress.enabled("yes")  # type: ignore[arg-type]


def test_true_without_tqdm_says_how_to_install(monkeypatch):
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        progress.enabled(True)
    assert not progress.enabled(None, _Stream(tty=True))  # the default just stays quiet


@pytest.mark.parametrize("tty, flag, drawn", [(True, None, True), (False, None, False), (True, False, False), (False, True, True)])
def test_bar_draws_only_when_enabled(tty, flag, drawn):
    stream = _Stream(tty)
    items = list(progress.bar(range(5), total=5, desc="work", progress=flag, stream=stream, delay=0))
    assert items == [0, 1, 2, 3, 4]  # the iterable passes through either way
    assert ("work" in stream.getvalue()) is drawn
    with progress.bar(total=2, desc="steps", progress=flag, stream=stream, delay=0) as b:
        b.set_description_str("steps: one")
        b.update()
        b.set_postfix_str("x")
        b.update()
    assert ("steps: one" in stream.getvalue()) is drawn


def test_export_and_benchmark_draw_on_a_terminal_only(tmp_path, monkeypatch, capfd):
    from sklearn.linear_model import LinearRegression

    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    model = LinearRegression().fit(X, X[:, 0])
    tty = _Stream(tty=True)
    monkeypatch.setattr(progress.sys, "stderr", tty)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)  # draw every step, however fast the machine
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that the description is not cut
    mle.export_model(model, tmp_path / "a.mle", sample_input=X)
    drawn = tty.getvalue()
    assert "export: check predict" in drawn and "4/4" in drawn  # convert, write, one method checked, write again
    quiet = _Stream(tty=True)
    monkeypatch.setattr(progress.sys, "stderr", quiet)
    mle.export_model(model, tmp_path / "b.mle", sample_input=X, progress=False)
    mle.benchmark(tmp_path / "b.mle", X, batch_sizes=(1, 4), num_runs=1, warmup=0, progress=False)
    assert quiet.getvalue() == ""
    mle.benchmark(tmp_path / "b.mle", X, batch_sizes=(1, 4), num_runs=1, warmup=0)
    assert "benchmark" in quiet.getvalue()
    captured = capfd.readouterr()  # nothing reached the real (non-TTY) streams
    assert "export" not in captured.err and "benchmark" not in captured.err
