"""Dask: score a ``dask.dataframe.DataFrame`` partition by partition (``pip install mlejax[dask]``).

Example:
    >>> import dask.dataframe as dd, mlejax.dask
    >>> ddf = dd.read_parquet("rows/")                                     # doctest: +SKIP
    >>> mlejax.dask.score(ddf, "m.mle", keep=["id"]).to_parquet("scores/")  # doctest: +SKIP

Partitions follow the column and output rules of :func:`mlejax.score`
(:mod:`mlejax.batch.columns`); the output's ``meta`` is given explicitly, so
Dask does not call the model to infer it. Dask is imported only by :func:`score`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from .batch.frames import FrameScorer
from .model import Model

__all__ = ["score"]


def score(ddf: Any, model: Model | str | os.PathLike, *, method: str | None = None, columns: Sequence[str] | None = None,
          keep: Sequence[str] = (), device: Any = None) -> Any:
    """``ddf`` scored lazily: a Dask DataFrame of the ``keep`` columns, then the outputs (one partition per input partition).

    Pass the model's path on a distributed cluster: each worker process loads it once.
    A loaded :class:`~mlejax.Model` works with the local (threads or synchronous) schedulers.
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(f"mlejax.dask needs dask[dataframe] ({exc}); pip install 'mlejax[dask]'") from exc
    scorer = FrameScorer(model, method=method, columns=columns, keep=keep, device=device)
    meta = ddf._meta
    spec = scorer.spec(list(meta.columns), [str(c) for c, kind in meta.dtypes.items() if getattr(kind, "kind", "O") in "biuf"])
    out_meta = pd.DataFrame({
        **{k: meta[k] for k in spec.keep},
        **{name: pd.Series([], dtype=object if spec.output_dtype.kind in "OU" else spec.output_dtype) for name in spec.output_names},
    })
    target = _Loaded(model) if isinstance(model, Model) else os.fspath(model)
    return ddf.map_partitions(_score_partition, target, method, columns, tuple(keep), device, meta=out_meta)


class _Loaded:
    """A loaded Model passed to partitions; Dask names the graph by its identity (a Model has no content hash)."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def __dask_tokenize__(self) -> tuple:
        return ("mlejax.Model", id(self.model))


def _score_partition(part: Any, model: "_Loaded | str", method: Any, columns: Any, keep: tuple, device: Any) -> Any:
    # Built per partition: only the (picklable) path travels to workers; the model itself is cached per process.
    model = model.model if isinstance(model, _Loaded) else model
    return FrameScorer(model, method=method, columns=columns, keep=keep, device=device)(part)

