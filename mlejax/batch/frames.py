"""One in-memory batch in an engine's format (pandas, dict of NumPy arrays, pyarrow Table) scored into the same format.

The adapters for Ray, Dask and Spark (:mod:`mlejax.ray`, :mod:`mlejax.dask`,
:mod:`mlejax.spark`) hand batches to :class:`FrameScorer`, which applies the
rules of :class:`~mlejax.batch.columns.ScoringSpec` (input columns, kept
columns, output names) on one device, with the Model's own methods.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Sequence

import numpy as np

from ..model import Model, load_model
from .columns import ScoringSpec

__all__ = ["FrameScorer", "cached_model"]


@functools.lru_cache(maxsize=4)
def cached_model(path: str, device: Any = None) -> Model:
    """The model at ``path``, loaded once per process (engine workers score many batches with it)."""
    return load_model(path, device=device)


class FrameScorer:
    """Scores batches of one engine format; the spec is resolved from the first batch's columns."""

    def __init__(self, model: Model | str | os.PathLike, *, method: str | None = None, columns: Sequence[str] | None = None,
                 keep: Sequence[str] = (), device: Any = None) -> None:
        self.model = model if isinstance(model, Model) else cached_model(os.fspath(model), device)
        self._options = {"method": method, "columns": columns, "keep": tuple(keep)}
        self._spec: ScoringSpec | None = None
        self._names: list[str] | None = None

    def spec(self, names: Sequence[str], numeric: Sequence[str] | None = None) -> ScoringSpec:
        """The spec for batches with these column names (resolved again only when they change)."""
        names = [str(n) for n in names]
        if self._spec is None or names != self._names:
            self._spec = ScoringSpec.resolve(self.model, names, numeric=numeric, **self._options)
            self._names = names
        return self._spec

    def __call__(self, batch: Any) -> Any:
        """``batch`` (pandas DataFrame, dict of arrays or pyarrow Table) → kept columns + outputs, in the same format."""
        if isinstance(batch, dict):
            numeric = [k for k, v in batch.items() if np.asarray(v).dtype.kind in "biuf"]
            spec = self.spec(list(batch), numeric)
            rows = len(next(iter(batch.values()))) if batch else 0
            return {**{k: batch[k] for k in spec.keep}, **spec.score(batch, rows)}
        if hasattr(batch, "iloc"):  # pandas
            columns = {str(c): batch[c] for c in batch.columns}
            numeric = [str(c) for c, kind in batch.dtypes.items() if getattr(kind, "kind", "O") in "biuf"]
            spec = self.spec(list(columns), numeric)
            outputs = spec.score({k: v.to_numpy() for k, v in columns.items()}, len(batch))
            return batch[list(spec.keep)].assign(**outputs) if spec.keep else type(batch)(outputs, index=batch.index)
        if hasattr(batch, "schema") and hasattr(batch, "column_names"):  # pyarrow Table / RecordBatch
            import pyarrow as pa

            from .sources import numeric_fields

            spec = self.spec(batch.column_names, numeric_fields(batch.schema))
            outputs = spec.score({k: batch.column(k) for k in spec.inputs}, batch.num_rows)
            return pa.table({**{k: batch.column(k) for k in spec.keep}, **outputs})
        raise TypeError(f"cannot score a batch of type {type(batch).__name__}; expected a pandas DataFrame, a dict of arrays or a pyarrow Table")
