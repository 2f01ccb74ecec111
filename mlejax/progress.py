"""Progress bars for long work: a tqdm bar on a terminal, nothing otherwise.

Every function that can take long (:func:`mlejax.export_model`,
:func:`mlejax.benchmark`, the fuzz and benchmark scripts) takes
``progress: bool | None``:

- ``None`` (the default): a bar only when standard error is a terminal (TTY)
  and tqdm is installed; logs, CI runs and notebooks' captured streams stay quiet;
- ``False``: never a bar;
- ``True``: always a bar (tqdm must be installed: ``pip install tqdm``, also
  in the ``[batch]`` and ``[notebook]`` extras).

``MLEJAX_PROGRESS=0`` turns the default off for the whole process. tqdm is
imported only when a bar is shown. Bars wait ``delay`` seconds before they
appear, so quick work never draws one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Iterable, Iterator, TextIO

__all__ = ["enabled", "bar", "Quiet"]

#: Seconds a bar waits before it is drawn: work finished sooner shows nothing.
DELAY = 0.5
#: Seconds between two redraws (tqdm's ``mininterval``).
MIN_INTERVAL = 0.1


def enabled(progress: bool | None = None, stream: TextIO | None = None) -> bool:
    """Whether to draw a bar for ``progress`` on ``stream`` (default: ``sys.stderr``).

    ``None`` means "when ``stream`` is a TTY, tqdm is installed and
    ``MLEJAX_PROGRESS`` is not ``0``". ``True`` without tqdm raises
    ``ImportError`` with the install hint.
    """
    if progress is False:
        return False
    installed = importlib.util.find_spec("tqdm") is not None
    if progress is True:
        if not installed:
            raise ImportError("progress=True needs tqdm: pip install tqdm (or mlejax[batch])")
        return True
    if progress is not None:
        raise TypeError(f"progress must be True, False or None, not {progress!r}")
    if os.environ.get("MLEJAX_PROGRESS", "").strip() == "0" or not installed:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


class Quiet:
    """A bar that draws nothing, with the part of tqdm's interface mlejax uses."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, **_: Any) -> None:
        self._iterable = iterable
        self.total = total

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def __enter__(self) -> "Quiet":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: float = 1) -> None:
        """Advance by ``n`` (ignored)."""

    def set_description_str(self, desc: str) -> None:
        """Name the current step (ignored)."""

    def set_postfix_str(self, text: str) -> None:
        """Show ``text`` after the bar (ignored)."""

    def close(self) -> None:
        """Finish the bar (nothing to do)."""


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    progress: bool | None = None,
    stream: TextIO | None = None,
    delay: float | None = None,
) -> Any:
    """A tqdm bar over ``iterable`` (or one advanced with ``update``) when :func:`enabled`, else a :class:`Quiet` one.

    Use it as an iterable or a context manager; the bar is left off the
    terminal when it closes. ``delay`` (default :data:`DELAY`) is how long
    the bar waits before it is drawn.
    """
    if not enabled(progress, stream):
        return Quiet(iterable, total=total)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, leave=False, delay=DELAY if delay is None else delay,
                mininterval=MIN_INTERVAL, dynamic_ncols=True)
