"""Ray Data: score a ``ray.data.Dataset`` with a ``.mle`` model on a pool of actors (``pip install mlejax[ray]``).

Example:
    >>> import ray, mlejax.ray
    >>> ds = ray.data.read_parquet("s3://bucket/rows/")                                   # doctest: +SKIP
    >>> scored = ds.map_batches(mlejax.ray.Predictor, fn_constructor_kwargs={"model": "m.mle", "keep": ["id"]},
    ...                         batch_format="pyarrow", batch_size=65536,
    ...                         compute=ray.data.ActorPoolStrategy(size=4))             # doctest: +SKIP
    >>> scored.write_parquet("s3://bucket/scores/")                                        # doctest: +SKIP

Each actor loads the model once; batches follow the column and output rules of
:func:`mlejax.score` (:mod:`mlejax.batch.columns`). Ray is imported only by
:func:`score`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from .batch.frames import FrameScorer

__all__ = ["Predictor", "score"]


class Predictor(FrameScorer):
    """A callable class for ``Dataset.map_batches``: loads the model once per actor, scores each batch.

    Args:
      model: the ``.mle`` path (each actor loads it).
      method, columns, keep: as :func:`mlejax.score`.
      device: ``"cpu"``, ``"gpu"`` or ``None`` (JAX's default) for this actor.

    Batches may be ``batch_format="pyarrow"``, ``"pandas"`` or ``"numpy"``;
    the result has the same format: the ``keep`` columns, then the outputs.
    """

    def __init__(self, model: str | os.PathLike, method: str | None = None, columns: Sequence[str] | None = None,
                 keep: Sequence[str] = (), device: Any = None) -> None:
        super().__init__(model, method=method, columns=columns, keep=keep, device=device)


def score(ds: Any, model: str | os.PathLike, *, method: str | None = None, columns: Sequence[str] | None = None,
          keep: Sequence[str] = (), batch_size: int = 65536, num_actors: int = 1, num_gpus: float | None = None,
          batch_format: str = "pyarrow", **map_batches_kwargs: Any) -> Any:
    """``ds`` scored by :class:`Predictor` on ``num_actors`` actors (lazy: a ``ray.data.Dataset``).

    ``num_gpus`` per actor (each actor then scores on a GPU); other keywords go to ``map_batches``.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError("mlejax.ray.score: give the model's path; each Ray actor loads it")
    ray_data = _ray_data()
    return ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": os.fspath(model), "method": method, "columns": columns, "keep": tuple(keep),
                               "device": "gpu" if num_gpus else None},
        batch_format=batch_format, batch_size=batch_size, compute=ray_data.ActorPoolStrategy(size=num_actors),
        **({"num_gpus": num_gpus} if num_gpus else {}), **map_batches_kwargs,
    )


def _ray_data() -> Any:
    try:
        import ray.data
    except ImportError as exc:
        raise ImportError(f"mlejax.ray needs Ray Data ({exc}); pip install 'mlejax[ray]'") from exc
    return ray.data
