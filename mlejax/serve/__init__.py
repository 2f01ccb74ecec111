"""``mle-serve``: models over HTTP (Open Inference Protocol) with dynamic batching.

Needs the ``serve`` extra (``pip install "mlejax[serve]"``): Starlette,
uvicorn and prometheus-client. ``import mlejax`` does not import this package.

Example:
    >>> from mlejax.serve import create_app                     # doctest: +SKIP
    >>> app = create_app({"churn": "churn.mle"}, max_batch_rows=256)  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

try:
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"mlejax.serve needs the serve extra: pip install \"mlejax[serve]\" ({exc})") from None

from .app import create_app

__all__ = ["create_app"]
