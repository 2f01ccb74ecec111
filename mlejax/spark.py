"""Spark: a pandas UDF scoring with a ``.mle`` model, built on ``pyspark.ml.functions.predict_batch_udf`` (``pip install mlejax[spark]``).

Example:
    >>> import mlejax, mlejax.spark
    >>> features = list(mlejax.load_model("m.mle").feature_names_in_)
    >>> score = mlejax.spark.predict_batch_udf("m.mle")                               # doctest: +SKIP
    >>> df.withColumn("p", score(*features)).select("id", "p.*")                      # doctest: +SKIP

The UDF takes the model's input columns, in the model's order, and returns a
struct with one field per output, named as :func:`mlejax.score` names them.
Each Python worker loads the model once (Spark caches it while
``spark.python.worker.reuse`` is true, the default). Spark 3.4 or later.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Sequence

import numpy as np

from .batch.frames import FrameScorer, cached_model

__all__ = ["predict_batch_udf"]


def predict_batch_udf(model_path: str | os.PathLike, *, method: str | None = None, columns: Sequence[str] | None = None,
                      batch_size: int = 8192, device: Any = None) -> Any:
    """A Spark UDF ``f(*input_columns) -> struct<outputs>``.

    ``columns`` names the UDF's arguments (default: the model's ``feature_names_in_``,
    else ``"0"``, ``"1"``, ...); ``batch_size`` rows per call of the model.
    """
    try:
        from pyspark.ml.functions import predict_batch_udf as spark_predict_batch_udf
        from pyspark.sql import types as T
    except ImportError as exc:
        raise ImportError(f"mlejax.spark needs pyspark ({exc}); pip install 'mlejax[spark]'") from exc
    path = os.fspath(model_path)
    model = cached_model(path)
    if columns is None:
        names = getattr(model, "feature_names_in_", None)
        columns = [str(c) for c in names] if names is not None else [str(i) for i in range(model.n_features_in_ or 0)]
    columns = [str(c) for c in columns]
    spec = FrameScorer(model, method=method, columns=columns).spec(columns)
    kind = spec.output_dtype
    spark_type = (T.StringType() if kind.kind in "OU" else T.BooleanType() if kind.kind == "b" else T.LongType() if kind.kind in "iu"
                  else T.FloatType() if kind == np.float32 else T.DoubleType())
    return_type = T.StructType([T.StructField(name, spark_type) for name in spec.output_names])

    def make_predict_fn():
        scorer = FrameScorer(path, method=method, columns=columns, device=device)

        def predict(*arrays: np.ndarray) -> dict[str, np.ndarray]:
            return scorer(dict(zip(columns, arrays)))

        # Spark passes one array per UDF argument when the function takes as many parameters.
        predict.__signature__ = inspect.Signature([inspect.Parameter(f"c{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(columns))])
        return predict

    return spark_predict_batch_udf(make_predict_fn, return_type=return_type, batch_size=batch_size)
